//! serde seeds that deserialize JSON instances (positional lists, objects by column name,
//! single scalars, KServe v2 tensors) straight into Arrow column builders.

use std::fmt;

use arrow::array::ArrayRef;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::builders::{Cell, ColumnBuilder};
use crate::sources::schema::SourceSchema;

/// The columns instances fill: a subset of the source's columns, in declared order.
#[derive(Debug)]
pub(crate) struct Columns {
    names: Vec<String>,
    nullable: Vec<bool>,
    builders: Vec<ColumnBuilder>,
    /// Rows appended so far.
    pub rows: usize,
    seen: Vec<bool>,
    tensors: Vec<Tensor>,
    /// What one row is called in messages ("instance" or "row").
    noun: &'static str,
}

/// A KServe v2 tensor (`{"name", "shape", "datatype", "data"}`), data flattened.
#[derive(Debug, Default)]
struct Tensor {
    name: Option<String>,
    shape: Option<Vec<i64>>,
    data: Vec<Cell>,
}

const TENSOR_KEYS: [&str; 5] = ["name", "shape", "datatype", "data", "parameters"];

impl Columns {
    /// Builders for the source columns at `indices`; `noun` names a row in messages.
    pub fn new(
        schema: &SourceSchema,
        indices: &[usize],
        capacity: usize,
        noun: &'static str,
    ) -> Self {
        let fields = schema.arrow.fields();
        Self {
            names: indices.iter().map(|i| fields[*i].name().clone()).collect(),
            nullable: indices.iter().map(|i| fields[*i].is_nullable()).collect(),
            builders: indices
                .iter()
                .map(|i| ColumnBuilder::new(fields[*i].data_type(), schema.time_format, capacity))
                .collect(),
            rows: 0,
            seen: vec![false; indices.len()],
            tensors: Vec::new(),
            noun,
        }
    }

    /// Finishes every column.
    pub fn finish(&mut self) -> Result<Vec<ArrayRef>, String> {
        self.builders.iter_mut().map(|b| b.finish()).collect()
    }

    fn width_label(&self) -> String {
        format!("{} values ({})", self.names.len(), self.names.join(", "))
    }

    fn position(&self, key: &str, hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|n| n == key) {
            return Some(hint);
        }
        self.names
            .iter()
            .position(|n| n == key)
            .or_else(|| self.names.iter().position(|n| n.eq_ignore_ascii_case(key)))
    }

    /// Turns the tensors collected by [`InstancesSeed`] into rows.
    fn assemble_tensors(&mut self) -> Result<(), String> {
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

/// Deserializes an array of instances into [`Columns`]; returns the rows appended.
/// `tensors` allows KServe v2 tensor objects as elements (`inputs` / `outputs`).
pub(crate) struct InstancesSeed<'a> {
    pub cols: &'a mut Columns,
    pub tensors: bool,
}

impl<'de> DeserializeSeed<'de> for InstancesSeed<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InstancesSeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of instances")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let start = self.cols.rows;
        let mut index = 0;
        while seq
            .next_element_seed(RowSeed {
                cols: self.cols,
                index,
                tensors: self.tensors,
            })?
            .is_some()
        {
            index += 1;
        }
        if !self.cols.tensors.is_empty() {
            if self.cols.rows != start {
                return Err(de::Error::custom(
                    "mixes KServe v2 tensors and plain instances",
                ));
            }
            self.cols.assemble_tensors().map_err(de::Error::custom)?;
        }
        Ok(self.cols.rows - start)
    }
}

/// One instance: a positional list, an object by column name, a scalar (one-column
/// sources), or (when allowed) a v2 tensor, which is buffered in `cols`.
pub(crate) struct RowSeed<'a> {
    pub cols: &'a mut Columns,
    pub index: usize,
    pub tensors: bool,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl RowSeed<'_> {
    fn scalar<E: de::Error>(
        self,
        append: impl FnOnce(&mut ColumnBuilder) -> Result<(), String>,
    ) -> Result<(), E> {
        if self.cols.builders.len() != 1 {
            return Err(E::custom(format!(
                "{} {}: expected {}, got a single value",
                self.cols.noun,
                self.index,
                self.cols.width_label()
            )));
        }
        append(&mut self.cols.builders[0]).map_err(|e| {
            E::custom(format!(
                "{} {}, column '{}': {e}",
                self.cols.noun, self.index, self.cols.names[0]
            ))
        })?;
        self.cols.rows += 1;
        Ok(())
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an instance (a list of values or an object)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let cols = self.cols;
        let width = cols.builders.len();
        let mut i = 0;
        while i < width {
            let (names, builders) = (&cols.names, &mut cols.builders);
            let cell = CellSeed {
                builder: &mut builders[i],
                index: self.index,
                noun: cols.noun,
                column: &names[i],
            };
            if seq.next_element_seed(cell)?.is_none() {
                break;
            }
            i += 1;
        }
        let mut got = i;
        if i == width {
            while seq.next_element::<IgnoredAny>()?.is_some() {
                got += 1;
            }
        }
        if got != width {
            return Err(de::Error::custom(format!(
                "{} {}: expected {}, got {got}",
                cols.noun,
                self.index,
                cols.width_label()
            )));
        }
        cols.rows += 1;
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let cols = self.cols;
        cols.seen.iter_mut().for_each(|s| *s = false);
        let mut hint = 0;
        let mut first = true;
        while let Some(key) = map.next_key_seed(KeySeed { cols: &*cols, hint })? {
            match key {
                Key::Column(c) => {
                    if std::mem::replace(&mut cols.seen[c], true) {
                        return Err(de::Error::custom(format!(
                            "{} {}: column '{}' given twice",
                            cols.noun, self.index, cols.names[c]
                        )));
                    }
                    let (names, builders) = (&cols.names, &mut cols.builders);
                    map.next_value_seed(CellSeed {
                        builder: &mut builders[c],
                        index: self.index,
                        noun: cols.noun,
                        column: &names[c],
                    })?;
                    hint = c + 1;
                }
                Key::Tensor(k) if first && self.tensors => {
                    let mut t = Tensor::default();
                    tensor_value(&mut map, k, &mut t)?;
                    while let Some(k) = map.next_key::<String>()? {
                        tensor_value(&mut map, &k, &mut t)?;
                    }
                    cols.tensors.push(t);
                    return Ok(());
                }
                Key::Tensor(_) | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            first = false;
        }
        for c in 0..cols.seen.len() {
            if !cols.seen[c] {
                if !cols.nullable[c] {
                    return Err(de::Error::custom(format!(
                        "{} {}: missing value for NOT NULL column '{}'",
                        cols.noun, self.index, cols.names[c]
                    )));
                }
                cols.builders[c].append_null();
            }
        }
        cols.rows += 1;
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(|b| b.append_bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(|b| b.append_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(|b| b.append_u64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(|b| b.append_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(|b| b.append_str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(|b| {
            b.append_null();
            Ok(())
        })
    }
}

fn tensor_value<'de, A: MapAccess<'de>>(
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

enum Key {
    Column(usize),
    Tensor(&'static str),
    Other,
}

struct KeySeed<'a> {
    cols: &'a Columns,
    hint: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match self.cols.position(v, self.hint) {
            Some(c) => Key::Column(c),
            None => match TENSOR_KEYS.iter().find(|k| **k == v) {
                Some(k) => Key::Tensor(k),
                None => Key::Other,
            },
        })
    }
}

/// One value into one column builder.
struct CellSeed<'a> {
    builder: &'a mut ColumnBuilder,
    index: usize,
    noun: &'static str,
    column: &'a str,
}

impl CellSeed<'_> {
    fn wrap<E: de::Error>(&self, r: Result<(), String>) -> Result<(), E> {
        r.map_err(|e| {
            E::custom(format!(
                "{} {}, column '{}': {e}",
                self.noun, self.index, self.column
            ))
        })
    }
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value for column '{}'", self.column)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let r = self.builder.append_bool(v);
        self.wrap(r)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let r = self.builder.append_i64(v);
        self.wrap(r)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let r = self.builder.append_u64(v);
        self.wrap(r)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let r = self.builder.append_f64(v);
        self.wrap(r)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let r = self.builder.append_str(v);
        self.wrap(r)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.builder.append_null();
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        let r = Err("expected a single value, got an array".to_string());
        self.wrap(r)
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        let r = Err("expected a single value, got an object".to_string());
        self.wrap(r)
    }
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
