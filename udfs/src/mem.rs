//! Heap-size arithmetic for accumulator memory accounting.
//!
//! The window operator reserves every accumulator's `size()` in a DataFusion memory pool and
//! enforces per-monitor limits against it, so sizes must follow real allocations (capacity,
//! not length) and be cheap to keep: kernels report the *change* of their groups' heap bytes
//! as they go (see [`crate::group::Kernel::update`]), using these helpers to turn a
//! collection's capacity before and after an operation into bytes.

use std::mem::size_of;
use std::sync::Arc;

/// Bytes of a `Vec<T>` of capacity `cap`.
#[inline]
pub(crate) fn vec_bytes<T>(cap: usize) -> usize {
    cap * size_of::<T>()
}

/// Bytes of a hashbrown table (std's `HashMap` and DataFusion's) holding entries of
/// `entry` bytes at capacity `cap` (as `HashMap::capacity` reports it): buckets × entry
/// (padded to the 16-byte control alignment) + one control byte per bucket + one group of
/// trailing control bytes.
#[inline]
pub(crate) fn table_bytes(cap: usize, entry: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    // inverse of hashbrown's bucket_mask_to_capacity
    let buckets = if cap < 8 { cap + 1 } else { cap / 7 * 8 };
    (buckets * entry).div_ceil(16) * 16 + buckets + 16
}

/// Bytes of a hash map from `K` to `V` at capacity `cap` (keys' own heap not included).
#[inline]
pub(crate) fn map_bytes<K, V>(cap: usize) -> usize {
    table_bytes(cap, size_of::<(K, V)>())
}

/// Heap bytes of an `Arc<str>` of `len` bytes (two reference counts and the text).
#[inline]
pub(crate) fn arc_str_bytes(len: usize) -> usize {
    2 * size_of::<usize>() + len
}

/// Heap bytes of an optional `Arc<str>` (counted by every holder: feature names are short
/// and usually held once per group).
#[inline]
pub(crate) fn opt_arc_str_bytes(s: &Option<Arc<str>>) -> usize {
    s.as_ref().map_or(0, |s| arc_str_bytes(s.len()))
}

/// `after − before` as a signed byte change.
#[inline]
pub(crate) fn delta(before: usize, after: usize) -> isize {
    after as isize - before as isize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn table_bytes_follows_hashbrown_growth() {
        let mut m: HashMap<u64, u64> = HashMap::new();
        assert_eq!(map_bytes::<u64, u64>(m.capacity()), 0);
        let mut caps = Vec::new();
        for i in 0..1000 {
            m.insert(i, i);
            if caps.last() != Some(&m.capacity()) {
                caps.push(m.capacity());
            }
        }
        // 4, 8, 16, … buckets: capacities 3, 7, 14, 28, …
        assert_eq!(&caps[..4], &[3, 7, 14, 28]);
        assert_eq!(table_bytes(3, 16), 4 * 16 + 4 + 16);
        assert_eq!(table_bytes(28, 16), 32 * 16 + 32 + 16);
        assert_eq!(table_bytes(7, 24), 8 * 24 + 8 + 16);
    }
}
