//! KServe v2 tensors (`{"name", "shape", "datatype", "data"}`): buffered while parsing
//! (their `data` may precede `name` and `shape`), then laid out as rows: one `[n, k]`
//! tensor positionally, several `[n]` / `[n, 1]` tensors as columns by name.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::builders::Cell;
use super::rows::Columns;

/// A KServe v2 tensor (`{"name", "shape", "datatype", "data"}`), data flattened.
#[derive(Debug, Default)]
pub(crate) struct Tensor {
    name: Option<String>,
    shape: Option<Vec<i64>>,
    data: Vec<Cell>,
}

impl Columns {
    /// Turns the tensors collected by [`super::rows::InstancesSeed`] into rows.
    pub(super) fn assemble_tensors(&mut self) -> Result<(), String> {
        let tensors = std::mem::take(&mut self.tensors);
        if tensors.is_empty() {
            return Ok(());
        }
        let width = self.names.len();
        let label = |t: &Tensor| format!("input '{}'", t.name.as_deref().unwrap_or("?"));
        let single_named = tensors.len() == 1
            && tensors[0]
                .name
                .as_deref()
                .and_then(|n| self.position(n, 0))
                .is_some()
            && tensors[0]
                .shape
                .as_ref()
                .is_none_or(|s| s.len() == 1 || s.get(1) == Some(&1))
            && width > 1;
        if tensors.len() == 1 && !single_named {
            let t = &tensors[0];
            let (n, k) = match t.shape.as_deref() {
                Some([n]) => (*n, 1),
                Some([n, rest @ ..]) => (*n, rest.iter().product()),
                _ => ((t.data.len() / width.max(1)) as i64, width as i64),
            };
            if k as usize != width {
                return Err(format!(
                    "{}: shape {:?} gives {k} values per instance, expected {}",
                    label(t),
                    t.shape.as_deref().unwrap_or_default(),
                    self.width_label()
                ));
            }
            if n < 0 || (n * k) as usize != t.data.len() {
                return Err(format!(
                    "{}: shape {:?} needs {} values, got {}",
                    label(t),
                    t.shape.as_deref().unwrap_or_default(),
                    n * k,
                    t.data.len()
                ));
            }
            for row in t.data.chunks(width.max(1)) {
                for (c, cell) in row.iter().enumerate() {
                    self.builders[c]
                        .append_cell(cell)
                        .map_err(|e| format!("{}, column '{}': {e}", label(t), self.names[c]))?;
                }
            }
            self.rows += n as usize;
            return Ok(());
        }
        let mut n_rows: Option<usize> = None;
        let mut filled = vec![false; width];
        for t in &tensors {
            let Some(name) = t.name.as_deref() else {
                return Err("with several inputs every input needs a \"name\"".into());
            };
            let Some(c) = self.position(name, 0) else {
                tracing::debug!(input = name, "ignoring input that is not a source column");
                continue;
            };
            let n = match t.shape.as_deref() {
                None => t.data.len(),
                Some([n]) | Some([n, 1]) => *n as usize,
                Some(s) => {
                    return Err(format!(
                        "{}: shape {s:?}; when inputs map to columns by name each must have shape [n] or [n, 1]",
                        label(t)
                    ))
                }
            };
            if t.data.len() != n {
                return Err(format!(
                    "{}: shape says {n} values, got {}",
                    label(t),
                    t.data.len()
                ));
            }
            match n_rows {
                Some(m) if m != n => {
                    return Err(format!(
                        "{}: {n} values, but other inputs have {m}",
                        label(t)
                    ))
                }
                _ => n_rows = Some(n),
            }
            if std::mem::replace(&mut filled[c], true) {
                return Err(format!("{} appears twice", label(t)));
            }
            for cell in &t.data {
                self.builders[c]
                    .append_cell(cell)
                    .map_err(|e| format!("{}: {e}", label(t)))?;
            }
        }
        let n = n_rows.unwrap_or(0);
        for (c, filled) in filled.into_iter().enumerate() {
            if !filled {
                if !self.nullable[c] {
                    return Err(format!(
                        "no input named '{}' (column is NOT NULL)",
                        self.names[c]
                    ));
                }
                (0..n).for_each(|_| self.builders[c].append_null());
            }
        }
        self.rows += n;
        Ok(())
    }
}

pub(super) fn tensor_value<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: &str,
    t: &mut Tensor,
) -> Result<(), A::Error> {
    match key {
        "name" => t.name = Some(map.next_value()?),
        "shape" => t.shape = Some(map.next_value()?),
        "data" => map.next_value_seed(FlatCells(&mut t.data))?,
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(())
}

/// A (possibly nested) array of scalars, flattened row-major into cells.
struct FlatCells<'a>(&'a mut Vec<Cell>);

impl<'de> DeserializeSeed<'de> for FlatCells<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlatCells<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("tensor data (an array of values)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(FlatCells(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(Cell::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(Cell::I64(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(Cell::U64(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(Cell::F64(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(Cell::Str(v.to_string()));
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push(Cell::Null);
        Ok(())
    }
}
