//! Kernel of `covariance_matrix(x1, …, xk)` and `correlation_matrix(x1, …, xk)`.
//!
//! * **Rows.** Only complete rows count: every argument non-NULL and finite.
//! * **State.** Per group: the row count n, a shift s (the group's first complete row), the
//!   mean relative to it x̄ − s, and the co-moment matrix C = Σ (x − x̄)(x − x̄)ᵀ (upper
//!   triangle, packed row-major). Blocks of at most [`BLOCK`] rows are reduced two-pass
//!   (mean of x − s, then centred products), and blocks and partial states are combined
//!   with the pairwise update of Chan, Golub & LeVeque (1979):
//!   n = n_a + n_b, δ = x̄_b − x̄_a, x̄ = x̄_a + δ·n_b/n, C = C_a + C_b + δδᵀ·n_a·n_b/n.
//!   No sum of raw products is ever formed, so large means do not cancel the variance, and
//!   since means are kept relative to s, δ is not rounded at the scale of a large mean
//!   (which would otherwise enter C at first order once per block).
//!   A column whose values are all equal gets a co-moment of exactly 0.
//! * **Merging.** Exact in real arithmetic; in floating point a merged state agrees with
//!   the single-pass one to rounding (property-tested at relative 1e-9), not bit for bit.
//! * **Results** (`List<Float64>`, k×k row-major, NULL for fewer than 2 complete rows):
//!   covariance C/(n − 1) (`np.cov(rows.T, ddof=1)`); correlation C_ij/√(C_ii·C_jj)
//!   clipped to [−1, 1] with an exact 1 on the diagonal (`np.corrcoef(rows.T)`). Where
//!   numpy would give NaN (the row and column of a zero-variance variable) or a value
//!   overflows f64, the entry is NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use datafusion::common::{internal_err, Result};

use crate::group::{passes, Kernel};

/// Rows reduced two-pass before being combined with Chan's update.
pub const BLOCK: usize = 1024;

/// Which matrix a [`MomentsKernel`] evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatrixKind {
    /// Sample covariance (ddof 1).
    Covariance,
    /// Pearson correlation.
    Correlation,
}

/// Count, shift, mean (relative to the shift) and packed co-moment matrix of one group.
#[derive(Debug, Default, Clone)]
pub(crate) struct Moments {
    n: u64,
    shift: Vec<f64>,
    mean: Vec<f64>,
    comoment: Vec<f64>,
}

impl Moments {
    /// Heap bytes held (by capacity; the vectors only grow, once).
    #[inline]
    fn heap_bytes(&self) -> usize {
        (self.shift.capacity() + self.mean.capacity() + self.comoment.capacity()) * 8
    }
}

/// Number of entries of a packed upper triangle of a k×k matrix.
#[inline]
fn packed_len(k: usize) -> usize {
    k * (k + 1) / 2
}

/// Index of (i, j), i ≤ j, in the packed upper triangle.
#[inline]
fn packed(k: usize, i: usize, j: usize) -> usize {
    i * k - i * (i + 1) / 2 + j
}

impl Moments {
    /// Chan et al.'s pairwise update: adds the statistics of other rows, n_b rows with mean
    /// shift_b + mean_b and co-moment c_b. `delta` is scratch of length k.
    fn combine(
        &mut self,
        n_b: u64,
        shift_b: &[f64],
        mean_b: &[f64],
        c_b: &[f64],
        delta: &mut [f64],
    ) {
        if n_b == 0 {
            return;
        }
        if self.n == 0 {
            self.n = n_b;
            self.shift.clear();
            self.shift.extend_from_slice(shift_b);
            self.mean.clear();
            self.mean.extend_from_slice(mean_b);
            self.comoment.clear();
            self.comoment.extend_from_slice(c_b);
            return;
        }
        let k = mean_b.len();
        let (na, nb) = (self.n as f64, n_b as f64);
        let n = na + nb;
        for (j, d) in delta.iter_mut().enumerate() {
            // exact when the shifts are equal (blocks of one group) or close (Sterbenz)
            *d = (shift_b[j] - self.shift[j]) + (mean_b[j] - self.mean[j]);
        }
        let f = na * nb / n;
        let mut p = 0;
        for i in 0..k {
            let di = delta[i] * f;
            for dj in &delta[i..] {
                self.comoment[p] += c_b[p] + di * dj;
                p += 1;
            }
        }
        let w = nb / n;
        for (m, d) in self.mean.iter_mut().zip(delta.iter()) {
            *m += d * w;
        }
        self.n += n_b;
    }
}

/// Scratch for reducing a block of rows.
struct Block {
    shift: Vec<f64>,
    mean: Vec<f64>,
    comoment: Vec<f64>,
    centred: Vec<f64>,
    delta: Vec<f64>,
}

impl Block {
    fn new(k: usize) -> Self {
        Self {
            shift: vec![0.0; k],
            mean: vec![0.0; k],
            comoment: vec![0.0; packed_len(k)],
            centred: vec![0.0; k],
            delta: vec![0.0; k],
        }
    }

    /// Two-pass statistics of `rows` of `cols` (relative to the shift of `into`, set from
    /// the first row if `into` is empty), combined into `into`.
    fn add_rows(&mut self, cols: &[&[f64]], rows: &[u32], into: &mut Moments) {
        let k = cols.len();
        let m = rows.len() as f64;
        if into.n == 0 {
            for (s, c) in self.shift.iter_mut().zip(cols) {
                *s = c[rows[0] as usize];
            }
        } else {
            self.shift.copy_from_slice(&into.shift);
        }
        for ((mean, c), shift) in self.mean.iter_mut().zip(cols).zip(&self.shift) {
            let s: f64 = rows.iter().map(|&r| c[r as usize] - shift).sum();
            *mean = s / m;
        }
        self.comoment.fill(0.0);
        for &r in rows {
            for (((d, c), mean), shift) in self
                .centred
                .iter_mut()
                .zip(cols)
                .zip(&self.mean)
                .zip(&self.shift)
            {
                *d = (c[r as usize] - shift) - mean;
            }
            let mut p = 0;
            for i in 0..k {
                let di = self.centred[i];
                for dj in &self.centred[i..] {
                    self.comoment[p] += di * dj;
                    p += 1;
                }
            }
        }
        into.combine(
            rows.len() as u64,
            &self.shift,
            &self.mean,
            &self.comoment,
            &mut self.delta,
        );
    }
}

/// `List<Float64>` with one (non-NULL) list per slice.
fn list_of<'a>(lists: impl Iterator<Item = &'a [f64]>) -> ListArray {
    let mut lens = Vec::new();
    let mut flat = Vec::new();
    for l in lists {
        lens.push(l.len());
        flat.extend_from_slice(l);
    }
    ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        OffsetBuffer::from_lengths(lens),
        Arc::new(Float64Array::from(flat)),
        None,
    )
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct MomentsKernel {
    /// Number of columns (≥ 2).
    pub k: usize,
    /// Result matrix.
    pub kind: MatrixKind,
}

impl MomentsKernel {
    fn matrix(&self, g: &Moments) -> Option<Vec<Option<f64>>> {
        if g.n < 2 {
            return None;
        }
        let k = self.k;
        let c = &g.comoment;
        let at = |i: usize, j: usize| c[packed(k, i.min(j), i.max(j))];
        let mut out = Vec::with_capacity(k * k);
        match self.kind {
            MatrixKind::Covariance => {
                let d = (g.n - 1) as f64;
                for i in 0..k {
                    for j in 0..k {
                        let v = at(i, j) / d;
                        out.push(v.is_finite().then_some(v));
                    }
                }
            }
            MatrixKind::Correlation => {
                let sd: Vec<f64> = (0..k).map(|i| at(i, i).sqrt()).collect();
                for i in 0..k {
                    for j in 0..k {
                        let ok =
                            sd[i] > 0.0 && sd[j] > 0.0 && sd[i].is_finite() && sd[j].is_finite();
                        let v = if !ok {
                            None
                        } else if i == j {
                            Some(1.0)
                        } else {
                            let r = at(i, j) / sd[i] / sd[j];
                            r.is_finite().then(|| r.clamp(-1.0, 1.0))
                        };
                        out.push(v);
                    }
                }
            }
        }
        Some(out)
    }
}

impl Kernel for MomentsKernel {
    type Group = Moments;

    fn update(
        &self,
        groups: &mut [Moments],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        let k = self.k;
        let arrays: Vec<ArrayRef> = args[..k]
            .iter()
            .map(|a| cast(a, &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        let cols: Vec<&Float64Array> = arrays
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let values: Vec<&[f64]> = cols.iter().map(|c| c.values().as_ref()).collect();
        let nulls: Vec<Option<NullBuffer>> = cols.iter().map(|c| c.logical_nulls()).collect();
        let mut rows: Vec<u32> = (0..idx.len())
            .filter(|&i| {
                passes(filter, i)
                    && nulls
                        .iter()
                        .all(|n| n.as_ref().is_none_or(|n| n.is_valid(i)))
                    && values.iter().all(|v| v[i].is_finite())
            })
            .map(|i| i as u32)
            .collect();
        let Some(&first) = rows.first() else {
            return Ok(0);
        };
        if !rows.iter().all(|&r| idx[r as usize] == idx[first as usize]) {
            // stable: rows of a group keep their order
            rows.sort_by_key(|&r| idx[r as usize]);
        }
        let mut block = Block::new(k);
        let mut added = 0;
        for run in rows.chunk_by(|a, b| idx[*a as usize] == idx[*b as usize]) {
            let g = &mut groups[idx[run[0] as usize]];
            let before = g.heap_bytes();
            for chunk in run.chunks(BLOCK) {
                block.add_rows(&values, chunk, g);
            }
            added += g.heap_bytes() - before;
        }
        Ok(added as isize)
    }

    fn merge(&self, groups: &mut [Moments], states: &[ArrayRef], idx: &[usize]) -> Result<isize> {
        if states.len() != 4 {
            return internal_err!("moments state must have 4 columns, got {}", states.len());
        }
        let (k, kp) = (self.k, packed_len(self.k));
        let counts = states[0].as_primitive::<Int64Type>();
        let shifts = states[1].as_list::<i32>();
        let means = states[2].as_list::<i32>();
        let comoments = states[3].as_list::<i32>();
        let sv = shifts.values().as_primitive::<Float64Type>().values();
        let mv = means.values().as_primitive::<Float64Type>().values();
        let cv = comoments.values().as_primitive::<Float64Type>().values();
        let (so, mo, co) = (
            shifts.value_offsets(),
            means.value_offsets(),
            comoments.value_offsets(),
        );
        let mut delta = vec![0.0; k];
        let mut added = 0;
        for (i, &g) in idx.iter().enumerate() {
            if !counts.is_valid(i) || counts.value(i) <= 0 {
                continue;
            }
            let sh = &sv[so[i] as usize..so[i + 1] as usize];
            let m = &mv[mo[i] as usize..mo[i + 1] as usize];
            let c = &cv[co[i] as usize..co[i + 1] as usize];
            if sh.len() != k || m.len() != k || c.len() != kp {
                return internal_err!(
                    "moments state has {} shifts, {} means and {} co-moments, k = {k}",
                    sh.len(),
                    m.len(),
                    c.len()
                );
            }
            let g = &mut groups[g];
            let before = g.heap_bytes();
            g.combine(counts.value(i) as u64, sh, m, c, &mut delta);
            added += g.heap_bytes() - before;
        }
        Ok(added as isize)
    }

    fn state(&self, groups: &mut [Moments]) -> Result<Vec<ArrayRef>> {
        let counts: Int64Array = groups.iter().map(|g| Some(g.n as i64)).collect();
        let shifts = list_of(groups.iter().map(|g| g.shift.as_slice()));
        let means = list_of(groups.iter().map(|g| g.mean.as_slice()));
        let comoments = list_of(groups.iter().map(|g| g.comoment.as_slice()));
        Ok(vec![
            Arc::new(counts),
            Arc::new(shifts),
            Arc::new(means),
            Arc::new(comoments),
        ])
    }

    fn evaluate(&self, groups: &mut [Moments]) -> Result<ArrayRef> {
        let mut lens = Vec::with_capacity(groups.len());
        let mut valid = Vec::with_capacity(groups.len());
        let mut flat: Vec<Option<f64>> = Vec::new();
        for g in groups.iter() {
            match self.matrix(g) {
                Some(m) => {
                    lens.push(m.len());
                    valid.push(true);
                    flat.extend(m);
                }
                None => {
                    lens.push(0);
                    valid.push(false);
                }
            }
        }
        let nulls = NullBuffer::from(valid);
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        Ok(Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::from_lengths(lens),
            Arc::new(Float64Array::from(flat)),
            nulls,
        )))
    }

    fn group_size(&self, g: &Moments) -> usize {
        g.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-pass reference over all rows at once.
    fn reference(rows: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
        let k = rows[0].len();
        let n = rows.len() as f64;
        let mean: Vec<f64> = (0..k)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let mut c = vec![0.0; packed_len(k)];
        for r in rows {
            for i in 0..k {
                for j in i..k {
                    c[packed(k, i, j)] += (r[i] - mean[i]) * (r[j] - mean[j]);
                }
            }
        }
        (mean, c)
    }

    #[test]
    fn blocks_and_chan_match_two_pass() {
        let k = 3;
        let rows: Vec<Vec<f64>> = (0..2500)
            .map(|i| {
                let t = i as f64;
                vec![1e6 + (t * 0.37).sin(), (t * 0.11).cos() * 3.0, t % 7.0]
            })
            .collect();
        let cols: Vec<Vec<f64>> = (0..k)
            .map(|j| rows.iter().map(|r| r[j]).collect())
            .collect();
        let cols: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
        let idx: Vec<u32> = (0..rows.len() as u32).collect();
        let mut g = Moments::default();
        let mut b = Block::new(k);
        for chunk in idx.chunks(BLOCK) {
            b.add_rows(&cols, chunk, &mut g);
        }
        let (mean, c) = reference(&rows);
        assert_eq!(g.n, 2500);
        for ((a, s), b) in g.mean.iter().zip(&g.shift).zip(&mean) {
            let a = s + a;
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} {b}");
        }
        for (a, b) in g.comoment.iter().zip(&c) {
            assert!((a - b).abs() <= 1e-10 * b.abs(), "{a} {b}");
        }
    }

    #[test]
    fn constant_column_has_zero_comoment() {
        let cols = [vec![0.1; 7], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]];
        let cols: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
        let mut g = Moments::default();
        let mut b = Block::new(2);
        b.add_rows(&cols, &[0, 1, 2], &mut g);
        b.add_rows(&cols, &[3, 4, 5, 6], &mut g);
        assert_eq!(g.comoment[0], 0.0);
        assert_eq!(g.comoment[1], 0.0);
        assert_eq!((g.shift[0], g.mean[0]), (0.1, 0.0));
        let kernel = MomentsKernel {
            k: 2,
            kind: MatrixKind::Correlation,
        };
        assert_eq!(kernel.matrix(&g), Some(vec![None, None, None, Some(1.0)]));
    }
}
