//! ADWIN — ADaptive WINdowing change detector (Bifet & Gavaldà, "Learning from time-changing
//! data with adaptive windowing", SDM 2007), in its ADWIN2 form with an exponential histogram.
//!
//! This is a line-by-line port of River 0.26's `drift.ADWIN` (the Rust `AdaptiveWindowing`
//! helper in River's `rust_src/adwin.rs`, itself a port of the former Cython `adwin_c.pyx`),
//! with the arithmetic in the same order so that detections are identical:
//!
//! * **Window.** The window is kept as an exponential histogram: row `i` of the bucket list
//!   holds up to `max_buckets` bucket summaries (sum, variance) of 2ⁱ values each, oldest
//!   first. A new value enters row 0; when a row reaches `max_buckets + 1` entries its two
//!   oldest are merged into one entry of the next row (variance of the merge
//!   v₁ + v₂ + n·(μ₁ − μ₂)²/2), cascading upwards.
//! * **Totals.** The width W, the sum and the variance sum (n·σ², Welford-style:
//!   `(W − 1)·(x − total/(W − 1))²/W` per insert) are tracked incrementally.
//! * **Cut checks.** Every `clock`-th update, once W > `grace_period`, every split of the
//!   window into an older part W₀ (n₀ values) and a newer part W₁ (n₁ values) at a bucket
//!   boundary is tested, oldest boundary first, excluding the split that leaves W₁ empty.
//!   With both n₀, n₁ ≥ `min_window_length`, a cut is signalled when |μ₀ − μ₁| > ε where
//!   δ′ = ln(2·ln(W)/δ), m⁻¹ = 1/(n₀ − `min_window_length` + 1) + 1/(n₁ − `min_window_length` + 1)
//!   and ε = √(2·m⁻¹·(variance/W)·δ′) + ⅔·δ′·m⁻¹.
//! * **Shrinking.** On a cut the oldest bucket (the first entry of the last row) is dropped,
//!   and the scan restarts on the shrunken window, until no split is significant; the update
//!   then reports a change.
//! * **After a detection.** River's `ADWIN.update` *resets* the whole detector (fresh window,
//!   clock counter back to 0) on the value following a detection, so the shrunken window is
//!   not carried over; [`adwin`] does the same.
//!
//! One deliberate difference: with `max_buckets = 1` River can panic while shrinking (it
//! deletes from a histogram row that a merge has emptied); this port drops the oldest
//! non-empty bucket instead. Up to that point the detections are the same.

/// Parameters of [`adwin`] (River `drift.ADWIN` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adwin {
    /// Significance value δ (0.002).
    pub delta: f64,
    /// Check for cuts every `clock` updates (32); must be ≥ 1.
    pub clock: u32,
    /// Bucket summaries of each size kept before two are merged (5); must be ≥ 1.
    pub max_buckets: usize,
    /// Minimum length of either sub-window for a cut to be considered (5).
    pub min_window_length: i32,
    /// No cut checks until the window holds more than this many values (10).
    pub grace_period: i32,
}

impl Default for Adwin {
    fn default() -> Self {
        Self {
            delta: 0.002,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
        }
    }
}

/// One row of the exponential histogram: summaries of 2^row values each, oldest first.
#[derive(Debug, Clone, Default)]
struct Row {
    totals: Vec<f64>,
    variances: Vec<f64>,
}

impl Row {
    fn with_capacity(n: usize) -> Self {
        Self {
            totals: Vec::with_capacity(n),
            variances: Vec::with_capacity(n),
        }
    }
    fn len(&self) -> usize {
        self.totals.len()
    }
    fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
    fn push(&mut self, total: f64, variance: f64) {
        self.totals.push(total);
        self.variances.push(variance);
    }
    /// Drops the `n` oldest summaries.
    fn drop_oldest(&mut self, n: usize) {
        self.totals.drain(..n);
        self.variances.drain(..n);
    }
}

/// The state of one ADWIN window (River's `AdaptiveWindowing`), without the reset after a
/// detection that [`adwin`] adds.
#[derive(Debug, Clone)]
pub struct AdaptiveWindow {
    p: Adwin,
    min_window_length: f64,
    grace_period: f64,
    total: f64,
    variance: f64,
    width: f64,
    tick: u64,
    n_detections: u64,
    rows: Vec<Row>,
}

impl AdaptiveWindow {
    /// An empty window.
    ///
    /// # Panics
    ///
    /// If `clock` or `max_buckets` is 0 (River panics on those too).
    pub fn new(p: &Adwin) -> Self {
        assert!(p.clock >= 1, "adwin: clock must be >= 1");
        assert!(p.max_buckets >= 1, "adwin: max_buckets must be >= 1");
        Self {
            p: *p,
            min_window_length: f64::from(p.min_window_length),
            grace_period: f64::from(p.grace_period),
            total: 0.0,
            variance: 0.0,
            width: 0.0,
            tick: 0,
            n_detections: 0,
            rows: vec![Row::with_capacity(p.max_buckets + 1)],
        }
    }

    /// Adds a value; returns whether a change was detected (the window was cut).
    pub fn update(&mut self, x: f64) -> bool {
        self.insert(x);
        self.detect_change()
    }

    /// Number of values in the window.
    pub fn width(&self) -> f64 {
        self.width
    }
    /// Sum of the values in the window.
    pub fn total(&self) -> f64 {
        self.total
    }
    /// Sum of squared deviations from the mean (River's `variance`; divide by the width for
    /// the population variance).
    pub fn variance(&self) -> f64 {
        self.variance
    }
    /// Mean of the window (0 when empty), River's `estimation`.
    pub fn estimation(&self) -> f64 {
        if self.width == 0.0 {
            0.0
        } else {
            self.total / self.width
        }
    }
    /// Number of updates that detected a change.
    pub fn n_detections(&self) -> u64 {
        self.n_detections
    }

    fn insert(&mut self, x: f64) {
        // Row 0 always exists in River; here every row may have been dropped (only possible
        // with max_buckets = 1, where River has panicked before), so start a new one.
        if self.rows.is_empty() {
            self.rows.push(Row::with_capacity(self.p.max_buckets + 1));
        }
        self.rows[0].push(x, 0.0);
        self.width += 1.0;
        let mut incremental_variance = 0.0;
        if self.width > 1.0 {
            let delta_v = x - self.total / (self.width - 1.0);
            incremental_variance = (self.width - 1.0) * delta_v * delta_v / self.width;
        }
        self.variance += incremental_variance;
        self.total += x;
        self.compress();
    }

    /// Merges the two oldest summaries of every full row into the next row.
    fn compress(&mut self) {
        let mb = self.p.max_buckets;
        let mut idx = 0;
        while self.rows[idx].len() == mb + 1 {
            let n1 = (1u64 << idx) as f64;
            let row = &self.rows[idx];
            let (t0, t1) = (row.totals[0], row.totals[1]);
            let (v0, v1) = (row.variances[0], row.variances[1]);
            let mu1 = t0 / n1;
            let mu2 = t1 / n1;
            let total12 = t0 + t1;
            let temp = n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2);
            let v12 = v0 + v1 + temp;
            if idx + 1 >= self.rows.len() {
                self.rows.push(Row::with_capacity(mb + 1));
            }
            self.rows[idx + 1].push(total12, v12);
            self.rows[idx].drop_oldest(2);
            if self.rows[idx + 1].len() <= mb {
                break;
            }
            idx += 1;
        }
    }

    /// Drops the oldest bucket (first summary of the last row).
    fn delete_oldest(&mut self) {
        // With max_buckets = 1 a merge empties its row, so after the last row is dropped the
        // new last row can be empty; River then deletes from that empty row and panics
        // ("slice index starts at 1 but ends at 0"). Drop the oldest non-empty bucket instead.
        while self.rows.last().is_some_and(Row::is_empty) {
            self.rows.pop();
        }
        let Some(last) = self.rows.len().checked_sub(1) else {
            return;
        };
        let n = (1u64 << last) as f64;
        let (u, v) = (self.rows[last].totals[0], self.rows[last].variances[0]);
        let mu = u / n;
        self.width -= n;
        self.total -= u;
        let mu_window = self.total / self.width;
        let inc = v + n * self.width * (mu - mu_window) * (mu - mu_window) / (n + self.width);
        self.variance -= inc;
        self.rows[last].drop_oldest(1);
        if self.rows[last].is_empty() {
            self.rows.pop();
        }
    }

    fn detect_change(&mut self) -> bool {
        let mut change = false;
        self.tick += 1;
        if self.tick.is_multiple_of(u64::from(self.p.clock)) && self.width > self.grace_period {
            let mut reduce_width = true;
            while reduce_width {
                reduce_width = false;
                let (mut n0, mut n1) = (0.0f64, self.width);
                let (mut u0, mut u1) = (0.0f64, self.total);
                'scan: for idx in (0..self.rows.len()).rev() {
                    let size = (1u64 << idx) as f64;
                    let len = self.rows[idx].len();
                    for k in 0..len {
                        n0 += size;
                        n1 -= size;
                        let t = self.rows[idx].totals[k];
                        u0 += t;
                        u1 -= t;
                        if idx == 0 && k == len - 1 {
                            break 'scan;
                        }
                        let delta_mean = (u0 / n0) - (u1 / n1);
                        if n1 >= self.min_window_length
                            && n0 >= self.min_window_length
                            && self.evaluate_cut(n0, n1, delta_mean)
                        {
                            reduce_width = true;
                            change = true;
                            if self.width > 0.0 {
                                self.delete_oldest();
                                break 'scan;
                            }
                        }
                    }
                }
            }
        }
        if change {
            self.n_detections += 1;
        }
        change
    }

    fn evaluate_cut(&self, n0: f64, n1: f64, delta_mean: f64) -> bool {
        let delta_prime = (2.0 * self.width.ln() / self.p.delta).ln();
        let m_recip =
            1.0 / (n0 - self.min_window_length + 1.0) + 1.0 / (n1 - self.min_window_length + 1.0);
        let epsilon = (2.0 * m_recip * (self.variance / self.width) * delta_prime).sqrt()
            + 2.0 / 3.0 * delta_prime * m_recip;
        delta_mean.abs() > epsilon
    }
}

/// ADWIN as River's `drift.ADWIN` between updates: the window, and whether the previous
/// update detected a change (the detector then resets before the next value).
#[derive(Debug, Clone)]
pub struct AdwinState {
    window: AdaptiveWindow,
    drift: bool,
}

impl AdwinState {
    /// A fresh detector.
    ///
    /// # Panics
    ///
    /// If `p.clock` or `p.max_buckets` is 0.
    pub fn new(p: &Adwin) -> Self {
        Self {
            window: AdaptiveWindow::new(p),
            drift: false,
        }
    }

    /// One step of River's `ADWIN.update` with a (non-missing) value; returns whether it
    /// detected a change.
    pub fn update(&mut self, x: f64) -> bool {
        if self.drift {
            self.window = AdaptiveWindow::new(&self.window.p);
        }
        self.drift = self.window.update(x);
        self.drift
    }

    /// The current window.
    pub fn window(&self) -> &AdaptiveWindow {
        &self.window
    }

    /// The state as numbers (for checkpoints): drift flag, totals, tick, detections, then
    /// per histogram row its length, totals and variances. [`Self::from_values`] reads it
    /// back (every count is far below 2⁵³, so exact).
    pub fn to_values(&self) -> Vec<f64> {
        let w = &self.window;
        let mut v = vec![
            f64::from(u8::from(self.drift)),
            w.total,
            w.variance,
            w.width,
            w.tick as f64,
            w.n_detections as f64,
            w.rows.len() as f64,
        ];
        for r in &w.rows {
            v.push(r.len() as f64);
            v.extend_from_slice(&r.totals);
            v.extend_from_slice(&r.variances);
        }
        v
    }

    /// The state written by [`Self::to_values`] for parameters `p`; `None` when `v` is not
    /// such a state (or does not fit `p`).
    pub fn from_values(v: &[f64], p: &Adwin) -> Option<Self> {
        let [drift, total, variance, width, tick, n_detections, n_rows, ref rest @ ..] = *v else {
            return None;
        };
        let count = |f: f64| (f >= 0.0 && f.fract() == 0.0 && f < 9.0e15).then_some(f as usize);
        let mut window = AdaptiveWindow::new(p);
        window.total = total;
        window.variance = variance;
        window.width = width;
        window.tick = count(tick)? as u64;
        window.n_detections = count(n_detections)? as u64;
        window.rows.clear();
        let mut rest = rest;
        for _ in 0..count(n_rows)? {
            let (&len, tail) = rest.split_first()?;
            let len = count(len)?;
            if len > p.max_buckets + 1 || tail.len() < 2 * len {
                return None;
            }
            let mut row = Row::with_capacity(p.max_buckets + 1);
            for i in 0..len {
                row.push(tail[i], tail[len + i]);
            }
            window.rows.push(row);
            rest = &tail[2 * len..];
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Self {
            window,
            drift: drift != 0.0,
        })
    }
}

/// ADWIN over an ordered series, exactly River's `drift.ADWIN().update` loop: returns the
/// 1-based positions of the updates that detected a change. After a detection the detector
/// is reset (new empty window) before the next value. Missing values (NULL / NaN) are
/// skipped but keep their position.
///
/// # Panics
///
/// If `p.clock` or `p.max_buckets` is 0.
pub fn adwin(xs: impl IntoIterator<Item = Option<f64>>, p: &Adwin) -> Vec<i64> {
    let mut out = Vec::new();
    let mut state = AdwinState::new(p);
    for (pos, x) in xs.into_iter().enumerate() {
        let Some(x) = x.filter(|v| !v.is_nan()) else {
            continue;
        };
        if state.update(x) {
            out.push(pos as i64 + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PCG-style 64-bit LCG, uniform in [0, 1); the Python side of the expected values is
    /// `s = (s * 6364136223846793005 + 1442695040888963407) % 2**64; (s >> 11) / 2**53`.
    fn lcg(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    fn some(xs: &[f64]) -> Vec<Option<f64>> {
        xs.iter().copied().map(Some).collect()
    }

    fn abrupt() -> Vec<f64> {
        lcg(1, 3000)
            .into_iter()
            .enumerate()
            .map(|(i, x)| x + if i >= 1000 { 0.5 } else { 0.0 })
            .collect()
    }

    // Expected positions from River 0.26.1 `drift.ADWIN` on the same streams.
    #[test]
    fn matches_river_abrupt_shift() {
        assert_eq!(adwin(some(&abrupt()), &Adwin::default()), vec![1056]);
    }

    #[test]
    fn matches_river_non_default_parameters() {
        let p = Adwin {
            delta: 0.1,
            clock: 1,
            max_buckets: 2,
            min_window_length: 3,
            grace_period: 20,
        };
        assert_eq!(adwin(some(&abrupt()), &p), vec![1019]);
    }

    #[test]
    fn matches_river_binary_and_gradual() {
        let bin: Vec<f64> = lcg(7, 4000)
            .into_iter()
            .enumerate()
            .map(|(i, x)| (x < if i < 2000 { 0.1 } else { 0.3 }) as u8 as f64)
            .collect();
        assert_eq!(adwin(some(&bin), &Adwin::default()), vec![2080]);
        let ramp: Vec<f64> = lcg(3, 3000)
            .into_iter()
            .enumerate()
            .map(|(i, x)| x + i as f64 / 1000.0)
            .collect();
        assert_eq!(
            adwin(some(&ramp), &Adwin::default()),
            vec![384, 800, 1248, 1568, 1952, 2304, 2720]
        );
    }

    #[test]
    fn window_statistics() {
        let mut w = AdaptiveWindow::new(&Adwin::default());
        for x in [1.0, 2.0, 3.0, 4.0, 5.0] {
            assert!(!w.update(x));
        }
        assert_eq!((w.width(), w.total(), w.variance()), (5.0, 15.0, 10.0));
        assert_eq!(w.estimation(), 3.0);
        let mut w = AdaptiveWindow::new(&Adwin::default());
        for i in 1..=5000 {
            assert!(!w.update(1.0));
            assert_eq!(w.width(), i as f64);
        }
        assert_eq!((w.n_detections(), w.variance()), (0, 0.0));
        // the histogram keeps O(max_buckets · log W) summaries
        assert!(w.rows.iter().all(|r| r.len() <= 5) && w.rows.len() <= 13);
    }

    #[test]
    fn missing_values_keep_positions() {
        let xs = abrupt();
        let mut with_gaps: Vec<Option<f64>> = Vec::new();
        let mut map = Vec::new();
        for (i, &x) in xs.iter().enumerate() {
            if i % 10 == 3 {
                with_gaps.push(None);
            }
            if i % 17 == 5 {
                with_gaps.push(Some(f64::NAN));
            }
            with_gaps.push(Some(x));
            map.push(with_gaps.len() as i64);
        }
        let clean = adwin(some(&xs), &Adwin::default());
        let want: Vec<i64> = clean.iter().map(|&p| map[p as usize - 1]).collect();
        assert_eq!(adwin(with_gaps, &Adwin::default()), want);
        assert!(adwin(vec![None; 100], &Adwin::default()).is_empty());
        assert!(adwin(Vec::new(), &Adwin::default()).is_empty());
    }

    #[test]
    fn resets_after_detection() {
        // Two shifts: the second is found in a fresh window started after the first.
        let xs: Vec<f64> = lcg(11, 3000)
            .into_iter()
            .enumerate()
            .map(|(i, x)| x + (i / 1000) as f64)
            .collect();
        let pos = adwin(some(&xs), &Adwin::default());
        assert!(pos.len() >= 2 && pos[0] > 1000 && pos[0] < 1200, "{pos:?}");
        let mut w = AdaptiveWindow::new(&Adwin::default());
        let first = xs.iter().position(|&x| w.update(x)).unwrap() as i64 + 1;
        assert_eq!(first, pos[0]);
        // the cut shrank the window to (roughly) the new regime
        assert!(w.width() < first as f64 - 900.0, "{}", w.width());
    }

    #[test]
    fn state_round_trips_mid_stream() {
        let xs = abrupt();
        let p = Adwin {
            clock: 4,
            ..Adwin::default()
        };
        let mut whole = AdwinState::new(&p);
        let want: Vec<bool> = xs.iter().map(|&x| whole.update(x)).collect();
        assert!(want.iter().any(|&d| d));
        // checkpoint after every value up to and past the detection
        let mut s = AdwinState::new(&p);
        for (i, &x) in xs.iter().enumerate() {
            s = AdwinState::from_values(&s.to_values(), &p).expect("own state reads back");
            assert_eq!(s.update(x), want[i], "value {i}");
        }
        assert!(AdwinState::from_values(&[1.0, 2.0], &p).is_none());
        let mut bad = s.to_values();
        bad.push(1.0);
        assert!(AdwinState::from_values(&bad, &p).is_none());
    }

    #[test]
    fn max_buckets_one() {
        let p = |delta, min_window_length| Adwin {
            delta,
            clock: 1,
            max_buckets: 1,
            min_window_length,
            grace_period: 0,
        };
        // River: [1014]
        assert_eq!(adwin(some(&abrupt()), &p(0.5, 1)), vec![1014]);
        // River detects at 4, 10, 14, 28, 36, 42, 50, then panics on value 60 (deleting from
        // an emptied histogram row); this port carries on.
        let got = adwin(some(&abrupt()), &p(0.002, 0));
        assert_eq!(got[..7], [4, 10, 14, 28, 36, 42, 50]);
        assert!(got.len() > 7 && got[7] >= 60, "{got:?}");
    }
}
