//! Interning of GROUP BY key values (other than the window columns) into dense group
//! indices, as DataFusion's `GroupsAccumulator`s expect.
//!
//! Keys are stored once, in row format; the hash table holds only `(hash, group index)`,
//! so interning a new key does not allocate per key, and [`GroupKeys::clear`] keeps every
//! buffer for the next use (mergers are reused once per emitted window).
//!
//! Partial states keep their keys in the same row format ([`GroupKeys::take_rows`]), all
//! from one shared [`KeyCodec`], so merging them needs no array ↔ row conversion, and a
//! state whose keys match the merger's (same groups in the same order: the usual case for
//! consecutive panes of steady traffic) is merged by position, without hashing.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{internal_err, Result};
use hashbrown::{DefaultHashBuilder, HashTable};

/// The row format of one operator's group keys, shared by every [`GroupKeys`] and partial
/// state of that operator (rows of different converters cannot be mixed).
#[derive(Clone)]
pub struct KeyCodec {
    /// `None` when there are no key columns (one group per window).
    converter: Option<Arc<RowConverter>>,
}

impl KeyCodec {
    /// Row format for key columns of these types.
    pub fn new(key_types: &[DataType]) -> Result<Self> {
        let converter = if key_types.is_empty() {
            None
        } else {
            Some(Arc::new(RowConverter::new(
                key_types.iter().cloned().map(SortField::new).collect(),
            )?))
        };
        Ok(Self { converter })
    }

    /// An empty key set in this format.
    pub fn group_keys(&self) -> GroupKeys {
        let keyed = self.converter.as_ref().map(|converter| Keyed {
            rows: converter.empty_rows(0, 0),
            scratch: converter.empty_rows(0, 0),
            converter: Arc::clone(converter),
            table: HashTable::new(),
            indexed: 0,
            hasher: DefaultHashBuilder::default(),
        });
        GroupKeys {
            keyed,
            unkeyed_groups: 0,
        }
    }

    /// Key columns of `rows` (taken from a [`GroupKeys`] of this codec).
    pub fn columns(&self, rows: Option<&Rows>) -> Result<Vec<ArrayRef>> {
        match (&self.converter, rows) {
            (None, _) => Ok(Vec::new()),
            (Some(c), Some(rows)) => Ok(c.convert_rows(rows.iter())?),
            (Some(_), None) => internal_err!("keyed partial state without key rows"),
        }
    }

    /// The distinct keys of `num_rows` rows of `keys`, in first-seen order, and whether
    /// every row was distinct.
    pub fn distinct_rows(
        &self,
        keys: &[ArrayRef],
        num_rows: usize,
    ) -> Result<(Option<Rows>, bool)> {
        let mut group_keys = self.group_keys();
        let mut indices = Vec::new();
        group_keys.intern(keys, num_rows, &mut indices)?;
        let distinct = group_keys.len() == num_rows;
        Ok((group_keys.into_rows(), distinct))
    }
}

/// Maps group keys to dense indices `0..len()`, in first-seen order.
pub struct GroupKeys {
    keyed: Option<Keyed>,
    /// Number of groups when there are no key columns (0 or 1).
    unkeyed_groups: usize,
}

struct Keyed {
    converter: Arc<RowConverter>,
    /// `(hash of the key's row bytes, group index)` per group of `rows[..indexed]`.
    table: HashTable<(u64, usize)>,
    /// Rows before this are in `table`; later ones are added before the next lookup
    /// (positional merges append rows without hashing them).
    indexed: usize,
    hasher: DefaultHashBuilder,
    /// Key of every group, in group-index order.
    rows: Rows,
    /// Rows of the batch being interned (reused between calls).
    scratch: Rows,
}

impl Keyed {
    /// Adds the rows not yet in the hash table.
    fn index(&mut self) {
        for i in self.indexed..self.rows.num_rows() {
            let hash = self.hasher.hash_one(self.rows.row(i).data());
            self.table.insert_unique(hash, (hash, i), |&(h, _)| h);
        }
        self.indexed = self.rows.num_rows();
    }
}

/// Index of the group with key `row` in `rows`, added if new; `table` must index every
/// row of `rows`.
fn find_or_insert(
    table: &mut HashTable<(u64, usize)>,
    hasher: &DefaultHashBuilder,
    rows: &mut Rows,
    row: arrow::row::Row<'_>,
) -> usize {
    let bytes = row.data();
    let hash = hasher.hash_one(bytes);
    let existing = &*rows;
    if let Some(&(_, i)) = table.find(hash, |&(h, i)| h == hash && existing.row(i).data() == bytes)
    {
        return i;
    }
    let i = rows.num_rows();
    rows.push(row);
    table.insert_unique(hash, (hash, i), |&(h, _)| h);
    i
}

impl GroupKeys {
    /// Number of groups seen.
    pub fn len(&self) -> usize {
        match &self.keyed {
            Some(k) => k.rows.num_rows(),
            None => self.unkeyed_groups,
        }
    }

    /// Forgets every group, keeping the allocated buffers.
    pub fn clear(&mut self) {
        self.unkeyed_groups = 0;
        if let Some(k) = &mut self.keyed {
            k.table.clear();
            k.indexed = 0;
            k.rows.clear();
            k.scratch.clear();
        }
    }

    /// Interns the keys of `num_rows` rows, writing each row's group index to `out`.
    pub fn intern(
        &mut self,
        keys: &[ArrayRef],
        num_rows: usize,
        out: &mut Vec<usize>,
    ) -> Result<()> {
        out.clear();
        match &mut self.keyed {
            None => {
                if num_rows > 0 {
                    self.unkeyed_groups = 1;
                }
                out.resize(num_rows, 0);
            }
            Some(k) => {
                k.index();
                k.scratch.clear();
                k.converter.append(&mut k.scratch, keys)?;
                out.reserve(num_rows);
                let Keyed {
                    table,
                    hasher,
                    rows,
                    scratch,
                    ..
                } = k;
                for row in scratch.iter() {
                    out.push(find_or_insert(table, hasher, rows, row));
                }
                k.indexed = k.rows.num_rows();
            }
        }
        Ok(())
    }

    /// Interns the keys of a partial state: `num_groups` distinct keys, `rows` taken from a
    /// [`GroupKeys`] of the same [`KeyCodec`] (`None` without key columns). Keys equal to
    /// the ones at the same positions here are matched by position, without hashing.
    pub fn intern_rows(
        &mut self,
        rows: Option<&Rows>,
        num_groups: usize,
        out: &mut Vec<usize>,
    ) -> Result<()> {
        out.clear();
        let Some(k) = &mut self.keyed else {
            if num_groups > 0 {
                self.unkeyed_groups = 1;
            }
            out.resize(num_groups, 0);
            return Ok(());
        };
        let Some(part) = rows else {
            return internal_err!("keyed partial state without key rows");
        };
        if part.num_rows() != num_groups {
            return internal_err!(
                "partial state has {} key rows for {num_groups} groups",
                part.num_rows()
            );
        }
        let existing = k.rows.num_rows();
        let common = (0..existing.min(num_groups))
            .take_while(|&i| k.rows.row(i).data() == part.row(i).data())
            .count();
        out.reserve(num_groups);
        out.extend(0..common);
        if common == num_groups {
            return Ok(());
        }
        if common == existing {
            // Every key here matched one of `part`'s, whose keys are distinct: the rest
            // are new.
            for i in common..num_groups {
                k.rows.push(part.row(i));
            }
            out.extend(existing..k.rows.num_rows());
            return Ok(());
        }
        k.index();
        let Keyed {
            table,
            hasher,
            rows,
            ..
        } = k;
        for i in common..num_groups {
            out.push(find_or_insert(table, hasher, rows, part.row(i)));
        }
        k.indexed = k.rows.num_rows();
        Ok(())
    }

    /// A copy of the keys in row format, for a partial state (`None` without key
    /// columns); then forgets every group, like [`GroupKeys::clear`].
    pub fn take_rows(&mut self) -> Option<Rows> {
        let rows = self.keyed.as_ref().map(|k| k.rows.clone());
        self.clear();
        rows
    }

    /// The keys in row format (`None` without key columns).
    pub fn into_rows(self) -> Option<Rows> {
        self.keyed.map(|k| k.rows)
    }

    /// Approximate heap bytes: the interned rows, the batch scratch rows and the hash
    /// table's slots.
    pub fn size(&self) -> usize {
        match &self.keyed {
            None => 0,
            Some(k) => {
                let slot = std::mem::size_of::<(u64, usize)>() + 1;
                k.rows.size() + k.scratch.size() + k.table.capacity() * slot
            }
        }
    }

    /// The key columns of every group, in group-index order.
    pub fn key_columns(&self) -> Result<Vec<ArrayRef>> {
        match &self.keyed {
            None => Ok(Vec::new()),
            Some(k) => Ok(k.converter.convert_rows(k.rows.iter())?),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn keys_are_interned_in_first_seen_order_and_clear_resets() {
        let mut keys = KeyCodec::new(&[DataType::Int64, DataType::Utf8])
            .unwrap()
            .group_keys();
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(1), None]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "x", "x"]));
        let mut out = Vec::new();
        keys.intern(&[a, b], 4, &mut out).unwrap();
        assert_eq!(out, vec![0, 1, 0, 2]);
        let a: ArrayRef = Arc::new(Int64Array::from(vec![None, Some(3)]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["x", "x"]));
        keys.intern(&[a.clone(), b.clone()], 2, &mut out).unwrap();
        assert_eq!(out, vec![2, 3]);
        let cols = keys.key_columns().unwrap();
        assert_eq!(cols[0].len(), 4);
        assert!(cols[0].is_null(2));
        keys.clear();
        assert_eq!(keys.len(), 0);
        keys.intern(&[a, b], 2, &mut out).unwrap();
        assert_eq!(out, vec![0, 1]);
        assert_eq!(keys.len(), 2);
    }

    fn ints(codec: &KeyCodec, values: &[i64]) -> Rows {
        let a: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
        let (rows, distinct) = codec.distinct_rows(&[a], values.len()).unwrap();
        assert!(distinct);
        rows.unwrap()
    }

    #[test]
    fn partial_states_intern_by_position_then_by_hash() {
        let codec = KeyCodec::new(&[DataType::Int64]).unwrap();
        let mut keys = codec.group_keys();
        let mut out = Vec::new();
        // Empty: every key is new.
        keys.intern_rows(Some(&ints(&codec, &[5, 6, 7])), 3, &mut out)
            .unwrap();
        assert_eq!(out, vec![0, 1, 2]);
        // Same keys, same order, plus a new one.
        keys.intern_rows(Some(&ints(&codec, &[5, 6, 7, 8])), 4, &mut out)
            .unwrap();
        assert_eq!(out, vec![0, 1, 2, 3]);
        // Same prefix, then other orders and known keys found by hash.
        keys.intern_rows(Some(&ints(&codec, &[5, 8, 9, 6])), 4, &mut out)
            .unwrap();
        assert_eq!(out, vec![0, 3, 4, 1]);
        // Array interning sees the positionally added keys too.
        let a: ArrayRef = Arc::new(Int64Array::from(vec![9, 7, 10, 7]));
        keys.intern(&[a], 4, &mut out).unwrap();
        assert_eq!(out, vec![4, 2, 5, 2]);
        let rows = keys.take_rows().unwrap();
        assert_eq!(keys.len(), 0);
        let cols = codec.columns(Some(&rows)).unwrap();
        let cols = cols[0].as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(cols.values().to_vec(), vec![5, 6, 7, 8, 9, 10]);
        // Mismatched row counts are an error, not a panic.
        assert!(keys.intern_rows(Some(&rows), 2, &mut out).is_err());
        assert!(keys.intern_rows(None, 2, &mut out).is_err());
    }

    #[test]
    fn duplicate_keys_are_reported_and_unkeyed_states_have_one_group() {
        let codec = KeyCodec::new(&[DataType::Int64]).unwrap();
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 1]));
        let (rows, distinct) = codec.distinct_rows(&[a], 3).unwrap();
        assert!(!distinct);
        assert_eq!(rows.unwrap().num_rows(), 2);
        let unkeyed = KeyCodec::new(&[]).unwrap();
        let mut keys = unkeyed.group_keys();
        let mut out = Vec::new();
        keys.intern_rows(None, 1, &mut out).unwrap();
        assert_eq!((out, keys.len()), (vec![0], 1));
        assert!(keys.take_rows().is_none());
        assert!(unkeyed.columns(None).unwrap().is_empty());
    }
}
