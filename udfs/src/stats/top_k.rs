//! Kernel of `top_k(x, k)`: exact per-group counts of the distinct non-NULL values, the k
//! most frequent of which are reported at evaluation.
//!
//! * **Order.** Count descending, ties broken by the value ascending (byte order of the UTF-8
//!   text, which is Unicode code-point order, as Python's `str` comparison). The result is
//!   therefore independent of arrival, partition and merge order.
//! * **Values.** Strings (`Utf8`, `LargeUtf8`, `Utf8View`) are counted in place: a row hashes
//!   its `&str` and only a value new to the group allocates. Integers, booleans and string
//!   dictionaries are first cast to `Utf8` (one array per batch), so their values are
//!   reported as text (`true` / `false` for booleans) and ties between integers are broken
//!   in text order (`"10" < "9"`).
//! * **State.** Per group, `List<Utf8>` of distinct values and `List<Int64>` of their counts:
//!   O(distinct values). Merging adds counts, so partial states merge to the single-pass
//!   result exactly.
//! * **Result.** `List<Struct{value: Utf8, count: Int64}>` with min(k, distinct) entries;
//!   NULL when the group has no non-NULL value.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, StringArray,
    StructArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::hash_map::EntryRef;
use datafusion::common::{internal_err, HashMap, Result};

use crate::group::{passes, Kernel};
use crate::mem::map_bytes;

/// Fields of the result's struct: `value` (Utf8) and `count` (Int64).
pub(crate) fn entry_fields() -> Fields {
    Fields::from(vec![
        Field::new("value", DataType::Utf8, false),
        Field::new("count", DataType::Int64, false),
    ])
}

/// Result type of `top_k`: `List<Struct{value: Utf8, count: Int64}>`.
pub(crate) fn top_k_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(entry_fields()),
        true,
    )))
}

/// Whether `top_k` accepts `dt` as its value argument.
pub(crate) fn is_top_k_value_type(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Boolean => true,
        DataType::Dictionary(_, v) => is_top_k_value_type(v),
        d => d.is_integer(),
    }
}

/// Per-group state: count per distinct value.
#[derive(Debug, Default)]
pub(crate) struct ValueCounts {
    counts: HashMap<String, u64>,
}

impl ValueCounts {
    /// Adds `c` occurrences of `s`; returns the bytes allocated (0 unless `s` is new).
    #[inline]
    fn add(&mut self, s: &str, c: u64) -> usize {
        let cap = self.counts.capacity();
        match self.counts.entry_ref(s) {
            EntryRef::Occupied(mut o) => {
                *o.get_mut() += c;
                return 0;
            }
            EntryRef::Vacant(v) => {
                v.insert(c);
            }
        }
        s.len() + map_bytes::<String, u64>(self.counts.capacity()) - map_bytes::<String, u64>(cap)
    }

    /// The `k` most frequent values, count descending then value ascending.
    fn top(&self, k: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.counts.iter().map(|(s, c)| (s.as_str(), *c)).collect();
        let order = |a: &(&str, u64), b: &(&str, u64)| -> Ordering {
            b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0))
        };
        if v.len() > k {
            v.select_nth_unstable_by(k - 1, order);
            v.truncate(k);
        }
        v.sort_unstable_by(order);
        v
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct TopKKernel {
    /// Number of values reported (≥ 1).
    pub k: usize,
}

/// Counts the non-NULL rows of `arr` (passing `filter`) into their groups.
fn add_strings<'a, A>(
    groups: &mut [ValueCounts],
    arr: A,
    idx: &[usize],
    filter: Option<&BooleanArray>,
) -> usize
where
    A: ArrayAccessor<Item = &'a str>,
{
    let nulls = arr.logical_nulls();
    let mut added = 0;
    match (nulls, filter) {
        (None, None) => {
            for (i, &g) in idx.iter().enumerate() {
                added += groups[g].add(arr.value(i), 1);
            }
        }
        (nulls, filter) => {
            for (i, &g) in idx.iter().enumerate() {
                if nulls.as_ref().is_none_or(|n| n.is_valid(i)) && passes(filter, i) {
                    added += groups[g].add(arr.value(i), 1);
                }
            }
        }
    }
    added
}

impl Kernel for TopKKernel {
    type Group = ValueCounts;

    fn update(
        &self,
        groups: &mut [ValueCounts],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        let a = &args[0];
        let added = match a.data_type() {
            DataType::Null => 0,
            DataType::Utf8 => add_strings(groups, a.as_string::<i32>(), idx, filter),
            DataType::LargeUtf8 => add_strings(groups, a.as_string::<i64>(), idx, filter),
            DataType::Utf8View => add_strings(groups, a.as_string_view(), idx, filter),
            _ => {
                let s = cast(a, &DataType::Utf8)?;
                add_strings(groups, s.as_string::<i32>(), idx, filter)
            }
        };
        Ok(added as isize)
    }

    fn merge(
        &self,
        groups: &mut [ValueCounts],
        states: &[ArrayRef],
        idx: &[usize],
    ) -> Result<isize> {
        if states.len() != 2 {
            return internal_err!("top_k state must have 2 columns, got {}", states.len());
        }
        let values = states[0].as_list::<i32>();
        let counts = states[1].as_list::<i32>();
        let inner = cast(values.values(), &DataType::Utf8)?;
        let inner = inner.as_string::<i32>();
        let inner_counts = counts.values().as_primitive::<Int64Type>();
        let (vo, co) = (values.value_offsets(), counts.value_offsets());
        let mut added = 0;
        for (i, &g) in idx.iter().enumerate() {
            if !values.is_valid(i) || !counts.is_valid(i) {
                continue;
            }
            let (v0, v1) = (vo[i] as usize, vo[i + 1] as usize);
            let c0 = co[i] as usize;
            if co[i + 1] as usize - c0 != v1 - v0 {
                return internal_err!("top_k state: values and counts differ in length");
            }
            for (j, c) in (v0..v1).zip(c0..) {
                let n = inner_counts.value(c);
                if n < 0 {
                    return internal_err!("top_k state: negative count");
                }
                added += groups[g].add(inner.value(j), n as u64);
            }
        }
        Ok(added as isize)
    }

    fn state(&self, groups: &mut [ValueCounts]) -> Result<Vec<ArrayRef>> {
        let total: usize = groups.iter().map(|g| g.counts.len()).sum();
        let mut values = Vec::with_capacity(total);
        let mut counts = Vec::with_capacity(total);
        let mut lens = Vec::with_capacity(groups.len());
        for g in groups.iter() {
            lens.push(g.counts.len());
            for (s, c) in &g.counts {
                values.push(s.as_str());
                counts.push(*c as i64);
            }
        }
        let offsets = OffsetBuffer::from_lengths(lens);
        let v = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            offsets.clone(),
            Arc::new(StringArray::from(values)),
            None,
        );
        let c = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            offsets,
            Arc::new(Int64Array::from(counts)),
            None,
        );
        Ok(vec![Arc::new(v), Arc::new(c)])
    }

    fn evaluate(&self, groups: &mut [ValueCounts]) -> Result<ArrayRef> {
        let mut values = Vec::new();
        let mut counts = Vec::new();
        let mut lens = Vec::with_capacity(groups.len());
        let mut valid = Vec::with_capacity(groups.len());
        for g in groups.iter() {
            let top = g.top(self.k);
            lens.push(top.len());
            valid.push(!top.is_empty());
            for (s, c) in top {
                values.push(s);
                counts.push(c as i64);
            }
        }
        let entries = StructArray::new(
            entry_fields(),
            vec![
                Arc::new(StringArray::from(values)) as ArrayRef,
                Arc::new(Int64Array::from(counts)),
            ],
            None,
        );
        let DataType::List(item) = top_k_type() else {
            unreachable!("top_k_type is a list");
        };
        let nulls = NullBuffer::from(valid);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Ok(Arc::new(ListArray::new(
            item,
            OffsetBuffer::from_lengths(lens),
            Arc::new(entries),
            nulls,
        )))
    }

    fn group_size(&self, g: &ValueCounts) -> usize {
        map_bytes::<String, u64>(g.counts.capacity())
            + g.counts.keys().map(String::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_count_desc_then_value_asc() {
        let mut g = ValueCounts::default();
        for s in ["b", "a", "c", "b", "a", "d", "é", "é", "Z"] {
            g.add(s, 1);
        }
        assert_eq!(g.top(3), vec![("a", 2), ("b", 2), ("é", 2)]);
        assert_eq!(g.top(1), vec![("a", 2)]);
        assert_eq!(
            g.top(10),
            vec![("a", 2), ("b", 2), ("é", 2), ("Z", 1), ("c", 1), ("d", 1)]
        );
        assert!(ValueCounts::default().top(2).is_empty());
    }
}
