//! Sorting of value samples, shared by every statistic that needs the window sorted.
//!
//! A window's values are sorted once per partial state (in parallel across partitions and
//! panes) with a radix sort, and partial states then combine as **sorted runs** merged in
//! linear time, instead of re-sorting the concatenation at evaluation.

use arrow::buffer::ScalarBuffer;
use voracious_radix_sort::RadixSort;

/// Sorts `values` ascending. Meant for finite values (NaN has no place in the order the
/// statistics use); -0.0 and +0.0 compare equal to every statistic, so their relative order
/// is irrelevant. Radix sort: O(n), about 2–3× faster than a comparison sort at 10⁶ values.
pub fn sort_values(values: &mut [f64]) {
    values.voracious_sort();
}

/// Whether `values` is ascending and every value finite (so it can be taken as a run).
pub fn is_finite_run(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite()) && values.is_sorted_by(|a, b| a <= b)
}

/// Merges the sorted runs laid back to back in `values` (run `i` ends at `ends[i]`, the last
/// end is `values.len()`) into one sorted vector: O(n log k) for k runs, pairwise rounds.
pub fn merge_runs(values: Vec<f64>, ends: &[usize]) -> Vec<f64> {
    debug_assert_eq!(ends.last().copied().unwrap_or(0), values.len());
    let mut bounds: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).collect();
    bounds.dedup();
    let mut src = values;
    let mut dst = vec![0.0; src.len()];
    while bounds.len() > 2 {
        let mut next = vec![0];
        let mut i = 0;
        while i + 1 < bounds.len() {
            let (lo, mid) = (bounds[i], bounds[i + 1]);
            let hi = bounds.get(i + 2).copied().unwrap_or(mid);
            merge_into(&src[lo..mid], &src[mid..hi], &mut dst[lo..hi]);
            next.push(hi);
            i += 2;
        }
        bounds = next;
        std::mem::swap(&mut src, &mut dst);
    }
    src
}

/// Merges sorted `a` and `b` into `out` (`out.len() == a.len() + b.len()`).
fn merge_into(a: &[f64], b: &[f64], out: &mut [f64]) {
    let (mut i, mut j) = (0, 0);
    for slot in out.iter_mut() {
        // Branch-light: pick from `a` while it is not exhausted and not greater than `b`.
        let take_a = j >= b.len() || (i < a.len() && a[i] <= b[j]);
        *slot = if take_a { a[i] } else { b[j] };
        i += take_a as usize;
        j += (!take_a) as usize;
    }
}

/// Values kept as sorted runs plus an unsorted tail: the state of the aggregates whose
/// evaluation needs the window sorted (see the module docs).
///
/// Runs are Arrow buffers, so a partial state's sorted values are shared with the state
/// arrays rather than copied: emitting a state and merging it back are zero-copy, and a
/// window whose values come from a single partial state is never merged at all.
#[derive(Debug, Default, Clone)]
pub struct SortedRuns {
    /// Sorted runs of finite values.
    runs: Vec<ScalarBuffer<f64>>,
    /// Number of values in `runs` (so [`Self::len`] is O(1)).
    run_len: usize,
    /// Values added since the last sort.
    tail: Vec<f64>,
}

impl SortedRuns {
    /// Number of values.
    #[inline]
    pub fn len(&self) -> usize {
        self.run_len + self.tail.len()
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values added since the last sort (the unsorted tail).
    #[inline]
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }

    /// Heap bytes held: the runs by the values they reference (they may be slices of a
    /// buffer shared with other groups' runs, which together reference all of it), the run
    /// list and the tail by capacity. O(1).
    #[inline]
    pub fn heap_bytes(&self) -> usize {
        self.run_len * 8
            + self.runs.capacity() * std::mem::size_of::<ScalarBuffer<f64>>()
            + self.tail.capacity() * 8
    }

    /// Adds one (unsorted) value; returns the heap bytes the tail grew by (0 unless it
    /// reallocated).
    #[inline]
    pub fn push(&mut self, v: f64) -> usize {
        let cap = self.tail.capacity();
        self.tail.push(v);
        (self.tail.capacity() - cap) * 8
    }

    /// Adds the finite values of `values` (unsorted); a plain copy when all are finite.
    /// Returns the heap bytes added.
    pub fn extend_finite_unsorted(&mut self, values: &[f64]) -> usize {
        let cap = self.tail.capacity();
        // `fold` over `&` keeps the check branch-free, so it vectorises.
        if values.iter().fold(true, |ok, v| ok & v.is_finite()) {
            self.tail.extend_from_slice(values);
        } else {
            self.tail
                .extend(values.iter().copied().filter(|v| v.is_finite()));
        }
        (self.tail.capacity() - cap) * 8
    }

    /// Adds the finite values of `values`: as a run, without copying, when they are already
    /// sorted and finite (a partial state), else to the unsorted tail. Returns the heap bytes
    /// added (see [`Self::heap_bytes`]).
    pub fn extend_finite(&mut self, values: ScalarBuffer<f64>) -> usize {
        if values.is_empty() {
            return 0;
        }
        let before = self.heap_bytes();
        if is_finite_run(&values) {
            self.run_len += values.len();
            self.runs.push(values);
        } else {
            self.tail
                .extend(values.iter().copied().filter(|v| v.is_finite()));
        }
        self.heap_bytes() - before
    }

    /// All values, in no particular order.
    pub fn parts(&self) -> impl Iterator<Item = &[f64]> {
        self.runs
            .iter()
            .map(|r| &r[..])
            .chain(std::iter::once(&self.tail[..]))
    }

    /// Sorts everything into one run and returns it.
    pub fn sorted(&mut self) -> &[f64] {
        self.sorted_buffer();
        self.runs.first().map_or(&[], |r| &r[..])
    }

    /// Sorts everything into one run and returns it as a shared buffer (no copy).
    pub fn sorted_buffer(&mut self) -> ScalarBuffer<f64> {
        if !self.tail.is_empty() {
            let mut tail = std::mem::take(&mut self.tail);
            sort_values(&mut tail);
            // a run is counted by its length: give back the tail's spare capacity
            tail.shrink_to_fit();
            self.run_len += tail.len();
            self.runs.push(tail.into());
        }
        if self.runs.len() > 1 {
            let mut all = Vec::with_capacity(self.len());
            let mut ends = Vec::with_capacity(self.runs.len());
            for r in &self.runs {
                all.extend_from_slice(r);
                ends.push(all.len());
            }
            self.runs = vec![merge_runs(all, &ends).into()];
        }
        self.runs.first().cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 100.0
            })
            .collect()
    }

    fn reference(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn radix_sort_matches_comparison_sort() {
        for n in [0, 1, 2, 17, 1000, 100_000] {
            let v = lcg(n as u64 + 1, n);
            let mut r = v.clone();
            sort_values(&mut r);
            assert_eq!(r, reference(v));
        }
        let mut ties = vec![3.0, -1.0, 3.0, 0.0, -0.0, 2.5, -1.0, 1e300, -1e-300];
        sort_values(&mut ties);
        assert!(ties.is_sorted_by(|a, b| a <= b));
    }

    #[test]
    fn runs_merge_to_the_sorted_union() {
        let parts: Vec<Vec<f64>> = (0..7).map(|i| lcg(i, 50 + 31 * i as usize)).collect();
        let mut s = SortedRuns::default();
        let mut all = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            all.extend_from_slice(p);
            if i % 3 == 0 {
                p.iter().for_each(|&v| {
                    s.push(v);
                });
            } else {
                s.extend_finite(reference(p.clone()).into());
            }
        }
        s.extend_finite(vec![f64::NAN, 1.0, f64::INFINITY, 0.5].into());
        all.extend([1.0, 0.5]);
        assert_eq!(s.len(), all.len());
        assert_eq!(s.sorted(), reference(all.clone()).as_slice());
        // Sorting again, or after more values, stays correct.
        s.push(-7.0);
        all.push(-7.0);
        assert_eq!(&s.sorted_buffer()[..], reference(all).as_slice());
    }

    #[test]
    fn merge_runs_handles_uneven_and_empty_runs() {
        let v = vec![1.0, 4.0, 9.0, 2.0, 3.0, 0.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(
            merge_runs(v, &[3, 3, 5, 6, 10]),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        );
        assert!(merge_runs(Vec::new(), &[]).is_empty());
    }
}
