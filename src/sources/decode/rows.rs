//! serde seeds that deserialize JSON instances (positional lists, objects by column name,
//! single scalars, KServe v2 tensors) straight into Arrow column builders.

use std::fmt;

use arrow::array::ArrayRef;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::builders::ColumnBuilder;
use super::tensor::{tensor_value, Tensor};
use super::unknown::{describe, Context, UnknownFields};
use crate::sources::schema::SourceSchema;

/// The columns instances fill: a subset of the source's columns, in declared order.
#[derive(Debug)]
pub(crate) struct Columns {
    pub(super) names: Vec<String>,
    pub(super) nullable: Vec<bool>,
    pub(super) builders: Vec<ColumnBuilder>,
    /// Rows appended so far.
    pub rows: usize,
    seen: Vec<bool>,
    pub(super) tensors: Vec<Tensor>,
    /// What one row is called in messages ("instance" or "row").
    noun: &'static str,
    /// Fields of object instances (and named tensors) that match no column.
    pub(super) unknown: UnknownFields,
    /// Where the current message is, for messages about its instances (" of line 2").
    pub(super) context: Context,
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
            unknown: UnknownFields::default(),
            context: Context::default(),
        }
    }

    /// Finishes every column.
    pub fn finish(&mut self) -> Result<Vec<ArrayRef>, String> {
        self.builders.iter_mut().map(|b| b.finish()).collect()
    }

    pub(super) fn width_label(&self) -> String {
        format!("{} values ({})", self.names.len(), self.names.join(", "))
    }

    /// Records a field of instance `index` that matches no column.
    pub(super) fn unknown_field(&mut self, name: &str, index: usize) {
        let (noun, context, names) = (self.noun, self.context, &self.names);
        self.unknown.record(name, || {
            describe(name, &format!("{noun} {index}{context}"), "columns", names)
        });
    }

    pub(super) fn position(&self, key: &str, hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|n| n == key) {
            return Some(hint);
        }
        self.names
            .iter()
            .position(|n| n == key)
            .or_else(|| self.names.iter().position(|n| n.eq_ignore_ascii_case(key)))
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
                Key::Tensor(name) => {
                    cols.unknown_field(name, self.index);
                    map.next_value::<IgnoredAny>()?;
                }
                Key::Other(name) => {
                    cols.unknown_field(&name, self.index);
                    map.next_value::<IgnoredAny>()?;
                }
            }
            first = false;
        }
        if !cols.seen.iter().any(|s| *s) {
            return Err(de::Error::custom(format!(
                "{} {}: no field matches a column ({})",
                cols.noun,
                self.index,
                cols.names.join(", ")
            )));
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

enum Key {
    Column(usize),
    Tensor(&'static str),
    Other(String),
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
                None => Key::Other(v.to_string()),
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
