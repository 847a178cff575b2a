//! Bounded-memory mode of the sorted drift statistics: a deterministic, mergeable
//! log-bucket sketch of the window (DDSketch's relative-accuracy mapping, Masson et al. 2019,
//! centred on the baseline) and the statistics evaluated from it.
//!
//! * **Mapping.** z = (x − c)/s with c, s the baseline column's mean and population standard
//!   deviation (s = 1 when that is 0 or undefined). |z| < [`Z_MIN`] → key 0; else key ±i with
//!   i = min(⌈ln(|z|/Z_MIN)/ln γ⌉, KEY_MAX) ≥ 1, γ = (1 + α)/(1 − α).
//! * **Sketch.** Per key: the count, minimum and maximum of its values. A key stands for its
//!   values by one point: the value itself when they are all equal (so ties and discrete data
//!   stay exact), else the DDSketch representative c + s·(±Z_MIN·2γⁱ/(γ + 1)) clamped to
//!   [min, max]. Every value is then represented within **|x̂ − x| ≤ α·|x − c|** (α =
//!   [`ALPHA`]) for |z| ≤ [`Z_MAX`], and within s·Z_MIN near c. Counts, minima and maxima
//!   combine associatively and commutatively, so partial states from panes and partitions
//!   merge to exactly the single-pass sketch, bit for bit, whatever the split: the result is
//!   deterministic. Memory: 24 bytes per key between the smallest and largest key seen
//!   (≤ 32 239 keys, 774 KB; about 13 k keys, 300 KB, for a normal window of 10⁷ values).
//! * **Statistics.** The window is taken as the weighted points (x̂, count) and compared with
//!   the baseline's exact sorted sample by the same formulas as the exact statistics (pooled
//!   distinct values, midranks): see [`PooledSketch`]. Error bounds: FUNCTIONS.md, "Sketch
//!   error bounds".

use super::{anderson, cvm, ks};

/// Relative accuracy α of the mapping.
pub const ALPHA: f64 = 1e-3;
/// Smallest |z| with its own key; |z| below it maps to key 0 (z = 0).
pub const Z_MIN: f64 = 1e-5;
/// Window size (finite values per group) above which a group switches to the sketch, unless
/// the baseline's `sketch_above` option says otherwise: 2²⁰ values (8 MB of exact values).
pub const DEFAULT_SKETCH_ABOVE: usize = 1 << 20;
/// Largest |z| with its own key: values farther than 10⁹ baseline standard deviations from
/// the mean share the outermost key (represented within their [min, max]).
pub const Z_MAX: f64 = 1e9;
/// Largest |key|: ⌈ln(Z_MAX/Z_MIN)/ln γ⌉ = 16 119, so a sketch spans at most 32 239 keys
/// (24 bytes each: ≤ 774 KB).
const KEY_MAX: i64 = 16_119;
/// Smallest |x| with its own key in the [`Mapping::unanchored`] mapping (`quantile`, which
/// has no baseline to centre on): smaller values map to key 0.
pub const UNANCHORED_MIN: f64 = 1e-9;
/// Largest |x| with its own key in the [`Mapping::unanchored`] mapping.
pub const UNANCHORED_MAX: f64 = 1e15;
/// Largest |key| of the unanchored mapping: ⌈ln(10¹⁵/10⁻⁹)/ln γ⌉ = 27 631, so its sketch
/// spans at most 55 263 keys (≤ 1.33 MB; values within three decades of one sign span
/// about 3 500 keys, 83 KB).
const UNANCHORED_KEY_MAX: i64 = 27_631;

/// γ = (1 + α)/(1 − α).
fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// The value ↔ key mapping of one baseline column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    center: f64,
    scale: f64,
    inv_ln_gamma: f64,
    /// z_min·2/(γ + 1): the representative of key i is this times γⁱ.
    rep: f64,
    ln_gamma: f64,
    /// Smallest |z| with its own key.
    z_min: f64,
    /// Largest |key|.
    key_max: i64,
}

impl Mapping {
    /// The mapping centred on `mean` with scale `std_pop` (1 when not positive and finite).
    pub fn new(mean: f64, std_pop: f64) -> Self {
        let g = gamma();
        let scale = if std_pop.is_finite() && std_pop > 0.0 {
            std_pop
        } else {
            1.0
        };
        Self {
            center: if mean.is_finite() { mean } else { 0.0 },
            scale,
            inv_ln_gamma: 1.0 / g.ln(),
            rep: Z_MIN * 2.0 / (g + 1.0),
            ln_gamma: g.ln(),
            z_min: Z_MIN,
            key_max: KEY_MAX,
        }
    }

    /// The mapping of aggregates without a baseline (`quantile`): centred on 0 with scale
    /// 1, so every value is represented within α·|x| for [`UNANCHORED_MIN`] ≤ |x| ≤
    /// [`UNANCHORED_MAX`] (within 10⁻⁹ below). The same for every group and partial
    /// state, so their sketches merge exactly.
    pub fn unanchored() -> Self {
        let g = gamma();
        Self {
            center: 0.0,
            scale: 1.0,
            inv_ln_gamma: 1.0 / g.ln(),
            rep: UNANCHORED_MIN * 2.0 / (g + 1.0),
            ln_gamma: g.ln(),
            z_min: UNANCHORED_MIN,
            key_max: UNANCHORED_KEY_MAX,
        }
    }

    /// Key of the finite value `x`.
    #[inline]
    pub fn key(&self, x: f64) -> i32 {
        let z = (x - self.center) / self.scale;
        let a = z.abs();
        // (NaN compares false: key 0; callers pass finite values)
        if a < self.z_min || a.is_nan() {
            return 0;
        }
        let i = ((a / self.z_min).ln() * self.inv_ln_gamma).ceil();
        let i = (i as i64).clamp(1, self.key_max) as i32;
        if z < 0.0 {
            -i
        } else {
            i
        }
    }

    /// Representative value of `key` (increasing in `key`).
    pub fn value(&self, key: i32) -> f64 {
        if key == 0 {
            return self.center;
        }
        let z = self.rep * (key.unsigned_abs() as f64 * self.ln_gamma).exp();
        let z = if key < 0 { -z } else { z };
        (self.center + self.scale * z).clamp(-f64::MAX, f64::MAX)
    }
}

/// Count, minimum and maximum per key of a window's finite values (see the module docs).
/// All three combine associatively and commutatively, so merges are exact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogSketch {
    /// Key of index 0.
    lo: i32,
    counts: Vec<u64>,
    mins: Vec<f64>,
    maxs: Vec<f64>,
    n: u64,
}

impl LogSketch {
    /// Number of values.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        (self.counts.capacity() + self.mins.capacity() + self.maxs.capacity()) * 8
    }

    /// Makes room for keys `lo..=hi`.
    fn reserve(&mut self, lo: i32, hi: i32) {
        if self.counts.is_empty() {
            let len = (hi as i64 - lo as i64 + 1) as usize;
            self.lo = lo;
            self.counts = vec![0; len];
            self.mins = vec![f64::INFINITY; len];
            self.maxs = vec![f64::NEG_INFINITY; len];
            return;
        }
        if lo < self.lo {
            let extra = (self.lo as i64 - lo as i64) as usize;
            fn prepend<T: Copy>(v: &mut Vec<T>, extra: usize, fill: T) {
                let mut out = Vec::with_capacity(extra + v.len());
                out.resize(extra, fill);
                out.extend_from_slice(v);
                *v = out;
            }
            prepend(&mut self.counts, extra, 0);
            prepend(&mut self.mins, extra, f64::INFINITY);
            prepend(&mut self.maxs, extra, f64::NEG_INFINITY);
            self.lo = lo;
        }
        let len = (hi as i64 - self.lo as i64 + 1) as usize;
        if len > self.counts.len() {
            let extra = len - self.counts.len();
            self.counts.reserve_exact(extra);
            self.mins.reserve_exact(extra);
            self.maxs.reserve_exact(extra);
            self.counts.resize(len, 0);
            self.mins.resize(len, f64::INFINITY);
            self.maxs.resize(len, f64::NEG_INFINITY);
        }
    }

    /// Adds `count` values of `key` whose minimum and maximum are `min` and `max`.
    fn add_bucket(&mut self, key: i32, count: u64, min: f64, max: f64) {
        if count == 0 {
            return;
        }
        self.reserve(key, key);
        let i = (key as i64 - self.lo as i64) as usize;
        self.counts[i] += count;
        self.mins[i] = self.mins[i].min(min);
        self.maxs[i] = self.maxs[i].max(max);
        self.n += count;
    }

    /// Adds the finite values of `values` (non-finite ones are skipped).
    pub fn add_values(&mut self, m: &Mapping, values: &[f64]) {
        const CHUNK: usize = 4096;
        let mut keyed = Vec::with_capacity(CHUNK.min(values.len()));
        for chunk in values.chunks(CHUNK) {
            keyed.clear();
            keyed.extend(
                chunk
                    .iter()
                    .filter(|v| v.is_finite())
                    .map(|&v| (m.key(v), v)),
            );
            let lo = keyed.iter().map(|p| p.0).min();
            let hi = keyed.iter().map(|p| p.0).max();
            let (Some(lo), Some(hi)) = (lo, hi) else {
                continue;
            };
            self.reserve(lo, hi);
            let base = self.lo as i64;
            for &(k, v) in &keyed {
                let i = (k as i64 - base) as usize;
                self.counts[i] += 1;
                self.mins[i] = self.mins[i].min(v);
                self.maxs[i] = self.maxs[i].max(v);
            }
            self.n += keyed.len() as u64;
        }
    }

    /// Adds every bucket of `other`.
    pub fn merge(&mut self, other: &LogSketch) {
        for (k, c, lo, hi) in other.occupied() {
            self.add_bucket(k, c, lo, hi);
        }
    }

    /// numpy's `quantile(values, q)` ('linear') of the sketched values: the order statistics
    /// at ranks ⌊(n − 1)q⌋ and the next one, interpolated. A rank is the exact value when its
    /// key holds equal values or it is the key's smallest or largest value (kept exactly),
    /// else the key's representative (within α·|x − c| of it, see the module docs). `None`
    /// for no value.
    pub fn quantile(&self, m: &Mapping, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let h = (self.n - 1) as f64 * q;
        let lo = h.floor() as u64;
        let frac = h - lo as f64;
        let a = self.at_rank(m, lo)?;
        if frac == 0.0 || lo + 1 >= self.n {
            return Some(a);
        }
        let b = self.at_rank(m, lo + 1)?;
        // numpy's _lerp
        let d = b - a;
        Some(if frac >= 0.5 {
            b - d * (1.0 - frac)
        } else {
            a + d * frac
        })
    }

    /// The value of rank `r` (0-based, ascending) as [`Self::quantile`] takes it.
    fn at_rank(&self, m: &Mapping, r: u64) -> Option<f64> {
        let mut seen = 0u64;
        for (k, c, lo, hi) in self.occupied() {
            if r < seen + c {
                let within = r - seen;
                return Some(if within == 0 {
                    lo
                } else if within == c - 1 {
                    hi
                } else {
                    representative(m, k, lo, hi)
                });
            }
            seen += c;
        }
        None
    }

    /// (key, count, min, max) of the non-empty keys, ascending.
    pub fn occupied(&self) -> impl Iterator<Item = (i32, u64, f64, f64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (self.lo + i as i32, c, self.mins[i], self.maxs[i]))
    }

    /// The sketch as a state list: `[NaN, key₀, count₀, min₀, max₀, key₁, …]` (keys and
    /// counts are exact in f64; the leading NaN tells it from a list of finite values).
    pub fn encode(&self) -> Vec<f64> {
        let mut out = vec![f64::NAN];
        for (k, c, lo, hi) in self.occupied() {
            out.extend([k as f64, c as f64, lo, hi]);
        }
        out
    }

    /// Whether a state list is an encoded sketch (see [`Self::encode`]).
    pub fn is_encoded(list: &[f64]) -> bool {
        list.first().is_some_and(|v| v.is_nan())
    }

    /// Adds an encoded sketch (see [`Self::encode`]); an error for a malformed list.
    pub fn merge_encoded(&mut self, list: &[f64]) -> Result<(), String> {
        let body = list.get(1..).unwrap_or_default();
        if !Self::is_encoded(list) || body.len() % 4 != 0 {
            return Err(format!("malformed sketch state of {} values", list.len()));
        }
        for e in body.chunks_exact(4) {
            let (k, c, lo, hi) = (e[0], e[1], e[2], e[3]);
            let valid = k.fract() == 0.0
                && k.abs() <= KEY_MAX.max(UNANCHORED_KEY_MAX) as f64
                && c.fract() == 0.0
                && (1.0..9.0e15).contains(&c)
                && lo.is_finite()
                && hi.is_finite()
                && lo <= hi;
            if !valid {
                return Err(format!(
                    "malformed sketch state entry ({k}, {c}, {lo}, {hi})"
                ));
            }
            self.add_bucket(k as i32, c as u64, lo, hi);
        }
        Ok(())
    }
}

/// One pooled value of [`PooledSketch`].
#[derive(Debug, Clone, Copy)]
struct Point {
    value: f64,
    /// Window values at this point.
    cx: u64,
    /// Baseline values equal to `value`.
    cy: u64,
    /// The window's values here stand for a key whose values are not all equal: for the
    /// rank statistics they are distinct values just below `value`, not ties.
    spread: bool,
}

/// The pooled distinct values of a sketched window and a baseline sample, ascending, every
/// value distinct.
#[derive(Debug, Clone)]
pub struct PooledSketch {
    points: Vec<Point>,
    n: u64,
    m: u64,
}

impl PooledSketch {
    /// Pools `sketch` (mapped by `map`) with the ascending baseline `sample`.
    pub fn new(sketch: &LogSketch, map: &Mapping, sample: &[f64]) -> Self {
        let window: Vec<(f64, u64, bool)> = sketch
            .occupied()
            .map(|(k, c, lo, hi)| (representative(map, k, lo, hi), c, lo < hi))
            .collect();
        let mut points: Vec<Point> = Vec::with_capacity(window.len() + sample.len());
        let (mut i, mut j) = (0, 0);
        while i < window.len() || j < sample.len() {
            let v = if j >= sample.len() || (i < window.len() && window[i].0 <= sample[j]) {
                window[i].0
            } else {
                sample[j]
            };
            let (mut cx, mut cy, mut spread) = (0, 0, false);
            while i < window.len() && window[i].0 == v {
                cx += window[i].1;
                spread |= window[i].2;
                i += 1;
            }
            while j < sample.len() && sample[j] == v {
                cy += 1;
                j += 1;
            }
            points.push(Point {
                value: v,
                cx,
                cy,
                spread,
            });
        }
        Self {
            points,
            n: sketch.n(),
            m: sample.len() as u64,
        }
    }

    /// Window size n.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The pooled values, ascending: (value, window count, baseline count, spread) where
    /// `spread` says the window's values there stand for a key of unequal values (so at
    /// least two distinct values).
    pub fn points(&self) -> impl Iterator<Item = (f64, u64, u64, bool)> + '_ {
        self.points.iter().map(|p| (p.value, p.cx, p.cy, p.spread))
    }

    /// (value, F_window, F_baseline) after each pooled value.
    fn cdfs(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        let (n, m) = (self.n as f64, self.m as f64);
        let (mut a, mut b) = (0u64, 0u64);
        self.points.iter().map(move |p| {
            a += p.cx;
            b += p.cy;
            (p.value, a as f64 / n, b as f64 / m)
        })
    }

    /// Σ g(F_window − F_baseline)·(next value − value) over the pooled values.
    fn integral(&self, g: impl Fn(f64) -> f64) -> f64 {
        let mut sum = 0.0;
        let mut prev: Option<(f64, f64)> = None;
        for (v, fx, fy) in self.cdfs() {
            if let Some((pv, d)) = prev {
                sum += g(d) * (v - pv);
            }
            prev = Some((v, fx - fy));
        }
        sum
    }

    /// W1 = ∫|F − G| dx.
    pub fn wasserstein(&self) -> f64 {
        self.integral(f64::abs)
    }

    /// Energy distance √(2∫(F − G)² dx) (scipy's definition).
    pub fn energy_distance(&self) -> f64 {
        (2.0 * self.integral(|d| d * d)).sqrt()
    }

    /// KS statistic sup|F − G|.
    pub fn ks_stat(&self) -> f64 {
        self.cdfs()
            .map(|(_, fx, fy)| (fx - fy).abs())
            .fold(0.0, f64::max)
    }

    /// KS statistic and p-value with the full n (see [`ks::ks_2samp_from_statistic`]).
    pub fn ks(&self) -> ks::KsResult {
        ks::ks_2samp_from_statistic(self.n as usize, self.m as usize, self.ks_stat())
    }

    /// Upper bound on |KS(sketch) − KS(exact window)|: the largest window share of a key
    /// whose values are not all equal and whose range [min, max] holds a baseline value.
    /// (Elsewhere either the key is exact or the baseline CDF is flat over its range, so the
    /// supremum is attained at the range's ends, where the sketch's CDF is exact.)
    pub fn ks_error_bound(sketch: &LogSketch, sample: &[f64]) -> f64 {
        let n = sketch.n().max(1) as f64;
        sketch
            .occupied()
            .filter(|&(_, _, lo, hi)| {
                let first = sample.partition_point(|&y| y < lo);
                lo < hi && sample.get(first).is_some_and(|&y| y <= hi)
            })
            .map(|(_, c, _, _)| c)
            .max()
            .map_or(0.0, |c| c as f64 / n)
    }

    /// Two-sample Cramér–von Mises test on the pooled values (midranks, as
    /// [`cvm::cvm_2samp_sorted`]; asymptotic p-value with the full n).
    pub fn cvm(&self) -> Option<cvm::CvmResult> {
        let (nx, ny) = (self.n, self.m);
        if nx < 2 || ny < 2 {
            return None;
        }
        // Σ (2·rank − 2·index)² per sample, exact in i128.
        let (mut sx, mut sy) = (0i128, 0i128);
        let (mut ix, mut iy, mut less) = (0i128, 0i128, 0i128);
        for p in &self.points {
            let (cx, cy) = (p.cx as i128, p.cy as i128);
            if p.spread {
                // distinct window values at ranks less + 1 … less + cx: rank − index constant
                let d = 2 * (less - ix);
                sx += cx * d * d;
                ix += cx;
                less += cx;
                let r2 = 2 * less + cy + 1;
                sy += squares(r2 - 2 * (iy + 1), cy);
            } else {
                let r2 = 2 * less + cx + cy + 1;
                sx += squares(r2 - 2 * (ix + 1), cx);
                sy += squares(r2 - 2 * (iy + 1), cy);
                ix += cx;
            }
            iy += cy;
            less += cy + if p.spread { 0 } else { cx };
        }
        let sx = sx as f64 / 4.0;
        let sy = sy as f64 / 4.0;
        let u = nx as f64 * sx + ny as f64 * sy;
        let k = (nx as u128 * ny as u128) as f64;
        let n = (nx + ny) as f64;
        let t = u / (k * n) - (4.0 * k - 1.0) / (6.0 * n);
        Some(cvm::CvmResult {
            statistic: t,
            pvalue: cvm::pval_asymptotic(t, n, nx as f64, ny as f64, k),
            exact: false,
        })
    }

    /// Two-sample Anderson–Darling test on the pooled values (midrank variant, as
    /// [`anderson::anderson_2samp_sorted`], with the full sizes).
    pub fn anderson(&self) -> Option<anderson::AndersonResult> {
        let (nx, ny) = (self.n as usize, self.m as usize);
        if nx == 0 || ny == 0 || nx + ny < 4 || self.points.len() < 2 {
            return None;
        }
        let nf = (nx + ny) as f64;
        // Σ over distinct pooled values (a spread point: its window values one by one, then
        // its baseline ties), per sample, as scipy's midrank A²akN; running sums (a window
        // of n values has up to n distinct values, which are not stored)
        let mut sums = [0.0f64; 2];
        let (mut left, mut right) = (0u64, [0u64; 2]);
        let mut term = |cx: u64, cy: u64| {
            let lj = (cx + cy) as f64;
            let bj = left as f64 + lj / 2.0;
            for (s, (f, ni)) in [(cx, nx), (cy, ny)].into_iter().enumerate() {
                right[s] += f;
                let mij = right[s] as f64 - f as f64 / 2.0;
                let d = nf * mij - bj * ni as f64;
                sums[s] += lj / nf * (d * d) / (bj * (nf - bj) - nf * lj / 4.0);
            }
            left += cx + cy;
        };
        for p in &self.points {
            if p.spread {
                for _ in 0..p.cx {
                    term(1, 0);
                }
                if p.cy > 0 {
                    term(0, p.cy);
                }
            } else {
                term(p.cx, p.cy);
            }
        }
        let mut a2akn = sums[0] / nx as f64 + sums[1] / ny as f64;
        a2akn *= (nf - 1.0) / nf;
        anderson::standardise(a2akn, nx, ny)
    }
}

/// The value standing for the bucket `key` with values in [`lo`, `hi`]: the value itself
/// when all are equal (ties stay exact), else the mapping's representative clamped to the
/// range (no farther from any of the values than the unclamped one).
fn representative(map: &Mapping, key: i32, lo: f64, hi: f64) -> f64 {
    if lo == hi {
        lo
    } else {
        map.value(key).clamp(lo, hi)
    }
}

/// Σ_{t=0}^{count−1} (d₁ − 2t)², exactly.
fn squares(d1: i128, count: i128) -> i128 {
    if count == 0 {
        return 0;
    }
    let n = count;
    n * d1 * d1 - 2 * d1 * n * (n - 1) + 2 * (n - 1) * n * (2 * n - 1) / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_accuracy_and_order() {
        let m = Mapping::new(10.0, 2.0);
        let mut last = f64::NEG_INFINITY;
        for i in -2000..=2000 {
            let x = 10.0 + (i as f64 / 100.0).powi(3);
            let k = m.key(x);
            let v = m.value(k);
            assert!((v - x).abs() <= ALPHA * (x - 10.0).abs() * (1.0 + 1e-9) + 2.0 * Z_MIN);
            assert!(v >= last);
            last = v;
        }
        assert_eq!(m.key(10.0), 0);
        assert_eq!(m.value(0), 10.0);
        assert!(m.value(m.key(f64::MAX)).is_finite());
        assert!(m.value(m.key(-f64::MAX)).is_finite());
    }

    #[test]
    fn merge_and_encoding_are_exact() {
        let m = Mapping::new(0.0, 1.0);
        let v: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 10_007) as f64 / 1000.0 - 5.0)
            .collect();
        let mut whole = LogSketch::default();
        whole.add_values(&m, &v);
        let mut parts = LogSketch::default();
        for c in v.chunks(777).rev() {
            let mut p = LogSketch::default();
            p.add_values(&m, c);
            let mut q = LogSketch::default();
            q.merge_encoded(&p.encode()).unwrap();
            parts.merge(&q);
        }
        assert_eq!(
            whole.occupied().collect::<Vec<_>>(),
            parts.occupied().collect::<Vec<_>>()
        );
        assert_eq!(whole.n(), 10_000);
        assert!(LogSketch::default()
            .merge_encoded(&[f64::NAN, 1.5, 2.0, 0.0, 1.0])
            .is_err());
        assert!(LogSketch::default()
            .merge_encoded(&[f64::NAN, 1.0, 2.0, 3.0])
            .is_err());
        assert!(LogSketch::default().merge_encoded(&[1.0, 2.0]).is_err());
    }

    #[test]
    fn quantile_within_relative_accuracy() {
        let m = Mapping::unanchored();
        // lognormal-ish positive values over four decades, negative ones, ties and zeros
        let mut v: Vec<f64> = (0..50_000)
            .map(|i| {
                let t = ((i * 7919) % 50_021) as f64 / 50_021.0;
                match i % 10 {
                    0 => 0.0,
                    1 => -(10f64.powf(t * 3.0)),
                    2 => 42.0,
                    _ => 10f64.powf(t * 4.0 - 1.0),
                }
            })
            .collect();
        let mut s = LogSketch::default();
        for c in v.chunks(999) {
            let mut p = LogSketch::default();
            p.add_values(&m, c);
            s.merge(&p);
        }
        crate::math::sorted::sort_values(&mut v);
        for q in [0.0, 0.001, 0.1, 0.25, 0.3, 0.5, 0.77, 0.9, 0.999, 1.0] {
            let exact = crate::math::describe::quantile_sorted(&v, q);
            let got = s.quantile(&m, q).unwrap();
            let bound = ALPHA * exact.abs() * (1.0 + 1e-9) + UNANCHORED_MIN;
            assert!((got - exact).abs() <= bound, "q {q}: {got} vs {exact}");
        }
        // the extremes are kept exactly
        assert_eq!(s.quantile(&m, 0.0), Some(v[0]));
        assert_eq!(s.quantile(&m, 1.0), Some(v[v.len() - 1]));
        assert_eq!(LogSketch::default().quantile(&m, 0.5), None);
        // bounded: every key between the smallest and largest spanned
        assert!(s.heap_bytes() < 1_400_000, "{}", s.heap_bytes());
    }

    #[test]
    fn squares_closed_form() {
        for d1 in -7..7 {
            for n in 0..6 {
                let brute: i128 = (0..n).map(|t| (d1 - 2 * t) * (d1 - 2 * t)).sum();
                assert_eq!(squares(d1, n), brute);
            }
        }
    }
}
