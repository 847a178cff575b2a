//! Cutting a pane's state rows into records under a size bound, deterministically.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;

/// Splits `batch` into consecutive row ranges whose estimated size is at most `max_bytes`
/// each, in row order. The estimate is the Arrow data the rows occupy in the IPC body
/// (values, offsets, views, list children; not validity bitmaps, padding, the schema or the
/// record header, so callers leave room for those), computed from the content alone: the
/// split depends only on the batch's values and `max_bytes`, never on how its buffers were
/// allocated or sliced. Every chunk holds at least one row; a row larger than `max_bytes`
/// is a chunk of its own. A batch without rows gives no chunks.
pub fn split_into_chunks(batch: &RecordBatch, max_bytes: usize) -> Vec<RecordBatch> {
    let n = batch.num_rows();
    let mut sizes = vec![0usize; n];
    for column in batch.columns() {
        for (s, c) in sizes.iter_mut().zip(row_sizes(column.as_ref())) {
            *s = s.saturating_add(c);
        }
    }
    let mut chunks = Vec::new();
    let (mut start, mut acc) = (0, 0usize);
    for (i, size) in sizes.into_iter().enumerate() {
        if i > start && acc.saturating_add(size) > max_bytes {
            chunks.push(batch.slice(start, i - start));
            (start, acc) = (i, 0);
        }
        acc = acc.saturating_add(size);
    }
    if start < n {
        chunks.push(batch.slice(start, n - start));
    }
    chunks
}

/// Estimated bytes of each row of `array` (see [`split_into_chunks`]).
pub(super) fn row_sizes(array: &dyn Array) -> Vec<usize> {
    let n = array.len();
    match array.data_type() {
        DataType::Null => vec![0; n],
        DataType::Boolean => vec![1; n],
        DataType::Utf8 => lengths(array.as_string::<i32>().offsets().lengths(), 4),
        DataType::LargeUtf8 => lengths(array.as_string::<i64>().offsets().lengths(), 8),
        DataType::Binary => lengths(array.as_binary::<i32>().offsets().lengths(), 4),
        DataType::LargeBinary => lengths(array.as_binary::<i64>().offsets().lengths(), 8),
        DataType::Utf8View => view_sizes(array.as_string_view().views()),
        DataType::BinaryView => view_sizes(array.as_binary_view().views()),
        DataType::FixedSizeBinary(w) => vec![usize::try_from(*w).unwrap_or(0); n],
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list
                .offsets()
                .windows(2)
                .map(|w| (w[0] as usize, w[1] as usize));
            ranged(&row_sizes(list.values().as_ref()), offsets, 4)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list
                .offsets()
                .windows(2)
                .map(|w| (w[0] as usize, w[1] as usize));
            ranged(&row_sizes(list.values().as_ref()), offsets, 8)
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let offsets = map
                .offsets()
                .windows(2)
                .map(|w| (w[0] as usize, w[1] as usize));
            ranged(&row_sizes(map.entries()), offsets, 4)
        }
        DataType::FixedSizeList(_, k) => {
            let list = array.as_fixed_size_list();
            let k = usize::try_from(*k).unwrap_or(0);
            let ranges = (0..n).map(|i| {
                let start = list.value_offset(i) as usize;
                (start, start + k)
            });
            ranged(&row_sizes(list.values().as_ref()), ranges, 0)
        }
        DataType::Struct(_) => {
            let mut sizes = vec![0usize; n];
            for child in array.as_struct().columns() {
                for (s, c) in sizes.iter_mut().zip(row_sizes(child.as_ref())) {
                    *s = s.saturating_add(c);
                }
            }
            sizes
        }
        DataType::Dictionary(key, _) => {
            let dict = array.as_any_dictionary();
            let values = row_sizes(dict.values().as_ref());
            let width = key.primitive_width().unwrap_or(8);
            dict.normalized_keys()
                .into_iter()
                .map(|k| width + values.get(k).copied().unwrap_or(0))
                .collect()
        }
        t => match t.primitive_width() {
            Some(w) => vec![w; n],
            // Unions, run-end encoded and list views: the slice's share of its buffers.
            None => {
                let total = array.to_data().get_slice_memory_size().unwrap_or(0);
                vec![total.div_ceil(n.max(1)); n]
            }
        },
    }
}

pub(super) fn lengths(lengths: impl Iterator<Item = usize>, offset_width: usize) -> Vec<usize> {
    lengths.map(|l| offset_width + l).collect()
}

pub(super) fn view_sizes(views: &[u128]) -> Vec<usize> {
    // A view is 16 bytes; values longer than 12 bytes live in a data buffer as well.
    views
        .iter()
        .map(|v| match *v as u32 as usize {
            len if len > 12 => 16 + len,
            _ => 16,
        })
        .collect()
}

/// Per row: `per_row` plus the sizes of child rows `start..end`.
pub(super) fn ranged(
    child: &[usize],
    ranges: impl Iterator<Item = (usize, usize)>,
    per_row: usize,
) -> Vec<usize> {
    let mut prefix = Vec::with_capacity(child.len() + 1);
    prefix.push(0usize);
    for s in child {
        prefix.push(prefix.last().copied().unwrap_or(0).saturating_add(*s));
    }
    let at = |i: usize| prefix.get(i).or(prefix.last()).copied().unwrap_or(0);
    ranges
        .map(|(start, end)| per_row.saturating_add(at(end).saturating_sub(at(start))))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Partitioning
