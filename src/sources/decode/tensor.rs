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
            let shape = t.shape.as_deref().unwrap_or_default();
            // Every dimension and their product are checked before anything is laid out:
            // a shape never allocates by itself, whatever it claims.
            let total = shape_values(shape).map_err(|e| format!("{}: {e}", label(t)))?;
            let (n, k) = match shape {
                [] => (t.data.len() / width.max(1), width),
                [n, rest @ ..] => {
                    let n = *n as usize; // checked non-negative by `shape_values`
                    let k = match total.checked_div(n) {
                        Some(k) => k,
                        None => shape_values(rest).map_err(|e| format!("{}: {e}", label(t)))?,
                    };
                    (n, k)
                }
            };
            if k != width {
                return Err(format!(
                    "{}: shape {shape:?} gives {k} values per instance, expected {}",
                    label(t),
                    self.width_label()
                ));
            }
            if k == 0 && n > 0 {
                return Err(format!(
                    "{}: shape {shape:?} gives no value per instance; the source has no column \
                     for tensor values",
                    label(t)
                ));
            }
            let needed = n * k; // ≤ `total` (or 0), so no overflow
            if needed != t.data.len() {
                return Err(format!(
                    "{}: shape {shape:?} needs {needed} values, got {}",
                    label(t),
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
            self.rows += n;
            return Ok(());
        }
        let mut n_rows: Option<usize> = None;
        let mut filled = vec![false; width];
        for t in &tensors {
            let Some(name) = t.name.as_deref() else {
                return Err("with several inputs every input needs a \"name\"".into());
            };
            let Some(c) = self.position(name, 0) else {
                // Counted (and refused by strict sources) like any field that is no column.
                let (context, names) = (self.context, &self.names);
                self.unknown.record(name, || {
                    super::unknown::describe(
                        name,
                        &format!("the inputs{context}"),
                        "columns",
                        names,
                    )
                });
                continue;
            };
            let n = match t.shape.as_deref() {
                None => t.data.len(),
                Some(s @ ([n] | [n, 1])) => usize::try_from(*n).map_err(|_| {
                    format!("{}: shape {s:?} has a negative dimension", label(t))
                })?,
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

/// Number of values a tensor of `shape` holds (the product of its dimensions; 1 for `[]`),
/// or why the shape is unusable: a negative dimension, or a product beyond `usize`.
fn shape_values(shape: &[i64]) -> Result<usize, String> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d)
            .map_err(|_| format!("shape {shape:?} has a negative dimension ({d})"))?;
        acc.checked_mul(d).ok_or_else(|| {
            format!("shape {shape:?} is too large: the product of its dimensions overflows")
        })
    })
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
