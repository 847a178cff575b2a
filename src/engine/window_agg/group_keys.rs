//! Interning of GROUP BY key values (other than the window columns) into dense group
//! indices, as DataFusion's `GroupsAccumulator`s expect.

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::Result;
use hashbrown::HashMap;

/// Maps group keys to dense indices `0..len()`, in first-seen order.
pub struct GroupKeys {
    keyed: Option<Keyed>,
    /// Number of groups when there are no key columns (0 or 1).
    unkeyed_groups: usize,
}

struct Keyed {
    converter: RowConverter,
    index: HashMap<Box<[u8]>, usize>,
    rows: Rows,
}

impl GroupKeys {
    /// Key interning for columns of these types (empty: one group per window).
    pub fn new(key_types: &[DataType]) -> Result<Self> {
        let keyed = if key_types.is_empty() {
            None
        } else {
            let converter =
                RowConverter::new(key_types.iter().cloned().map(SortField::new).collect())?;
            let rows = converter.empty_rows(0, 0);
            Some(Keyed {
                converter,
                index: HashMap::new(),
                rows,
            })
        };
        Ok(Self {
            keyed,
            unkeyed_groups: 0,
        })
    }

    /// Number of groups seen.
    pub fn len(&self) -> usize {
        match &self.keyed {
            Some(k) => k.rows.num_rows(),
            None => self.unkeyed_groups,
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
                let rows = k.converter.convert_columns(keys)?;
                out.reserve(num_rows);
                for row in rows.iter() {
                    let bytes = row.data();
                    let idx = match k.index.get(bytes) {
                        Some(&i) => i,
                        None => {
                            let i = k.rows.num_rows();
                            k.rows.push(row);
                            k.index.insert(bytes.into(), i);
                            i
                        }
                    };
                    out.push(idx);
                }
            }
        }
        Ok(())
    }

    /// Approximate heap bytes: the interned rows plus the hash index (its boxed keys and
    /// table slots).
    pub fn size(&self) -> usize {
        match &self.keyed {
            None => 0,
            Some(k) => {
                let slot = std::mem::size_of::<(Box<[u8]>, usize)>() + 1;
                2 * k.rows.size() + k.index.capacity() * slot
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
