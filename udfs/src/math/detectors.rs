//! Sequential change detectors over an ordered series. Each returns the 1-based positions
//! at which a change was signalled; like River, a detector resets itself on the value
//! after a detection. Missing values (NULL / NaN) are skipped but keep their position.

/// River's running mean (`stats.Mean`): mean += (1/n)(x − mean).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Mean {
    n: f64,
    mean: f64,
}

impl Mean {
    fn update(&mut self, x: f64) {
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
    }
}

/// Parameters of [`page_hinkley`] (River `drift.PageHinkley` defaults, mode 'both').
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageHinkley {
    /// Observations before a change can be signalled (30).
    pub min_instances: f64,
    /// Tolerated magnitude of change (0.005).
    pub delta: f64,
    /// Detection threshold λ (50).
    pub threshold: f64,
    /// Forgetting factor of the cumulative sums (1 − 0.0001).
    pub alpha: f64,
}

impl Default for PageHinkley {
    fn default() -> Self {
        Self {
            min_instances: 30.0,
            delta: 0.005,
            threshold: 50.0,
            alpha: 1.0 - 0.0001,
        }
    }
}

/// The running state of a Page–Hinkley test (River's `PageHinkley` between updates).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageHinkleyState {
    mean: Mean,
    inc: f64,
    dec: f64,
    min_inc: f64,
    max_dec: f64,
    drift: bool,
}

impl Default for PageHinkleyState {
    fn default() -> Self {
        Self {
            mean: Mean::default(),
            inc: 0.0,
            dec: 0.0,
            min_inc: f64::INFINITY,
            max_dec: -1.0,
            drift: false,
        }
    }
}

impl PageHinkleyState {
    /// One step of River's `PageHinkley.update` with a (non-missing) value: the state resets
    /// first when the previous value signalled a change. Returns whether `x` signals one.
    pub fn update(&mut self, x: f64, p: &PageHinkley) -> bool {
        if self.drift {
            *self = Self::default();
        }
        self.mean.update(x);
        let dev = x - self.mean.mean;
        self.inc = p.alpha * self.inc + dev - p.delta;
        self.dec = p.alpha * self.dec + dev + p.delta;
        if self.inc < self.min_inc {
            self.min_inc = self.inc;
        }
        if self.dec > self.max_dec {
            self.max_dec = self.dec;
        }
        if self.mean.n >= p.min_instances {
            self.drift =
                self.inc - self.min_inc > p.threshold || self.max_dec - self.dec > p.threshold;
        }
        self.drift
    }

    /// The state as numbers (for checkpoints); [`Self::from_values`] reads it back.
    pub fn to_values(&self) -> Vec<f64> {
        vec![
            self.mean.n,
            self.mean.mean,
            self.inc,
            self.dec,
            self.min_inc,
            self.max_dec,
            f64::from(u8::from(self.drift)),
        ]
    }

    /// The state written by [`Self::to_values`]; `None` when `v` is not such a state.
    pub fn from_values(v: &[f64]) -> Option<Self> {
        let [n, mean, inc, dec, min_inc, max_dec, drift] = *v else {
            return None;
        };
        Some(Self {
            mean: Mean { n, mean },
            inc,
            dec,
            min_inc,
            max_dec,
            drift: drift != 0.0,
        })
    }
}

/// Page–Hinkley test, exactly River's `PageHinkley.update` loop (both directions).
pub fn page_hinkley(xs: impl IntoIterator<Item = Option<f64>>, p: &PageHinkley) -> Vec<i64> {
    let mut state = PageHinkleyState::default();
    positions(xs, |x| state.update(x, p))
}

/// The 1-based positions of `xs` at which `update` (fed the non-missing values) signals.
fn positions(
    xs: impl IntoIterator<Item = Option<f64>>,
    mut update: impl FnMut(f64) -> bool,
) -> Vec<i64> {
    let mut out = Vec::new();
    for (pos, x) in xs.into_iter().enumerate() {
        if let Some(x) = x.filter(|v| !v.is_nan()) {
            if update(x) {
                out.push(pos as i64 + 1);
            }
        }
    }
    out
}

/// Parameters of [`ddm`] (River `drift.binary.DDM` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ddm {
    /// Observations before a change can be signalled (30).
    pub warm_start: f64,
    /// Warning threshold (2.0; warnings are not reported).
    pub warning_threshold: f64,
    /// Drift threshold (3.0).
    pub drift_threshold: f64,
}

impl Default for Ddm {
    fn default() -> Self {
        Self {
            warm_start: 30.0,
            warning_threshold: 2.0,
            drift_threshold: 3.0,
        }
    }
}

/// The running state of DDM (River's `DDM` between updates).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdmState {
    mean: Mean,
    p_min: f64,
    s_min: f64,
    ps_min: f64,
    drift: bool,
}

impl Default for DdmState {
    fn default() -> Self {
        Self {
            mean: Mean::default(),
            p_min: f64::NAN,
            s_min: f64::NAN,
            ps_min: f64::INFINITY,
            drift: false,
        }
    }
}

impl DdmState {
    /// One step of River's `DDM.update` with a (non-missing) value: the state resets first
    /// when the previous value signalled a change. Returns whether `x` signals one.
    pub fn update(&mut self, x: f64, p: &Ddm) -> bool {
        if self.drift {
            *self = Self::default();
        }
        self.mean.update(x);
        let (pi, n) = (self.mean.mean, self.mean.n);
        let si = (pi * (1.0 - pi) / n).sqrt();
        if n > p.warm_start {
            if pi + si <= self.ps_min {
                self.p_min = pi;
                self.s_min = si;
                self.ps_min = self.p_min + self.s_min;
            }
            if pi + si > self.p_min + p.drift_threshold * self.s_min {
                self.drift = true;
            }
        }
        self.drift
    }

    /// The state as numbers (for checkpoints); [`Self::from_values`] reads it back.
    pub fn to_values(&self) -> Vec<f64> {
        vec![
            self.mean.n,
            self.mean.mean,
            self.p_min,
            self.s_min,
            self.ps_min,
            f64::from(u8::from(self.drift)),
        ]
    }

    /// The state written by [`Self::to_values`]; `None` when `v` is not such a state.
    pub fn from_values(v: &[f64]) -> Option<Self> {
        let [n, mean, p_min, s_min, ps_min, drift] = *v else {
            return None;
        };
        Some(Self {
            mean: Mean { n, mean },
            p_min,
            s_min,
            ps_min,
            drift: drift != 0.0,
        })
    }
}

/// Drift Detection Method (Gama et al. 2004) over an error indicator (0 / 1, or any value
/// in [0, 1]), exactly River's `DDM.update` loop.
pub fn ddm(xs: impl IntoIterator<Item = Option<f64>>, p: &Ddm) -> Vec<i64> {
    let mut state = DdmState::default();
    positions(xs, |x| state.update(x, p))
}

/// Parameters of [`cusum`] (no River counterpart; defaults are the textbook k = ½σ, h = 5σ
/// of Montgomery, *Introduction to Statistical Quality Control*, §9.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cusum {
    /// Values used to estimate the in-control mean and standard deviation (30).
    pub min_instances: f64,
    /// Allowance k in standard deviations (0.5).
    pub k: f64,
    /// Decision interval h in standard deviations (5.0).
    pub h: f64,
}

impl Default for Cusum {
    fn default() -> Self {
        Self {
            min_instances: 30.0,
            k: 0.5,
            h: 5.0,
        }
    }
}

/// The running state of [`cusum`]: the estimation buffer of the current segment (at most
/// `min_instances` values), then μ₀, σ₀ and the two cumulative sums.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CusumState {
    buf: Vec<f64>,
    mu: f64,
    sd: f64,
    sp: f64,
    sm: f64,
}

impl CusumState {
    /// One step with a (non-missing) value; returns whether `x` signals a change (a new
    /// segment, with its estimation period, starts with the next value).
    pub fn update(&mut self, x: f64, p: &Cusum) -> bool {
        let warm = p.min_instances.max(2.0) as usize;
        if self.buf.len() < warm {
            self.buf.push(x);
            if self.buf.len() == warm {
                self.mu = super::describe::mean(&self.buf);
                self.sd = super::describe::var(&self.buf, 1).sqrt();
                (self.sp, self.sm) = (0.0, 0.0);
            }
            return false;
        }
        let z = if self.sd > 0.0 {
            (x - self.mu) / self.sd
        } else if x == self.mu {
            0.0
        } else {
            (x - self.mu).signum() * f64::INFINITY
        };
        self.sp = (self.sp + z - p.k).max(0.0);
        self.sm = (self.sm - z - p.k).max(0.0);
        if self.sp > p.h || self.sm > p.h {
            self.buf.clear();
            return true;
        }
        false
    }

    /// The state as numbers (for checkpoints); [`Self::from_values`] reads it back.
    pub fn to_values(&self) -> Vec<f64> {
        let mut v = vec![self.mu, self.sd, self.sp, self.sm];
        v.extend_from_slice(&self.buf);
        v
    }

    /// The state written by [`Self::to_values`]; `None` when `v` is not such a state.
    pub fn from_values(v: &[f64]) -> Option<Self> {
        let [mu, sd, sp, sm, ref buf @ ..] = *v else {
            return None;
        };
        Some(Self {
            buf: buf.to_vec(),
            mu,
            sd,
            sp,
            sm,
        })
    }
}

/// Two-sided tabular CUSUM on standardised values z = (x − μ₀)/σ₀, where μ₀ and σ₀ (sample
/// standard deviation, ddof 1) come from the first `min_instances` values of the segment:
/// S⁺ = max(0, S⁺ + z − k), S⁻ = max(0, S⁻ − z − k); a change is signalled when S⁺ > h or
/// S⁻ > h, after which a new segment (and estimation period) starts. σ₀ = 0 makes any
/// deviation from μ₀ a change.
pub fn cusum(xs: impl IntoIterator<Item = Option<f64>>, p: &Cusum) -> Vec<i64> {
    let mut state = CusumState::default();
    positions(xs, |x| state.update(x, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_changes_detected() {
        let xs: Vec<Option<f64>> = (0..400)
            .map(|i| {
                Some(if i < 200 {
                    (i % 7) as f64 * 0.1
                } else {
                    5.0 + (i % 5) as f64 * 0.1
                })
            })
            .collect();
        let ph = page_hinkley(xs.clone(), &PageHinkley::default());
        assert!(!ph.is_empty() && ph[0] > 200, "{ph:?}");
        let cs = cusum(xs.clone(), &Cusum::default());
        assert_eq!(cs.first(), Some(&201));
        let errs: Vec<Option<f64>> = (0..400)
            .map(|i| {
                Some(if i < 200 {
                    (i % 10 == 0) as u8 as f64
                } else {
                    (i % 2 == 0) as u8 as f64
                })
            })
            .collect();
        let d = ddm(errs, &Ddm::default());
        assert!(!d.is_empty() && d[0] > 200, "{d:?}");
        assert!(page_hinkley(vec![None; 5], &PageHinkley::default()).is_empty());
    }

    #[test]
    fn states_round_trip_mid_stream() {
        let xs: Vec<f64> = (0..600)
            .map(|i| ((i * 37) % 11) as f64 * 0.1 + if i >= 300 { 3.0 } else { 0.0 })
            .collect();
        let errs: Vec<f64> = (0..600)
            .map(|i| f64::from(u8::from(i % if i < 300 { 10 } else { 2 } == 0)))
            .collect();
        let (ph, dd, cs) = (PageHinkley::default(), Ddm::default(), Cusum::default());
        let whole = |f: &dyn Fn(&[f64]) -> Vec<i64>, v: &[f64]| f(v);
        let want_ph = whole(&|v| page_hinkley(v.iter().map(|&x| Some(x)), &ph), &xs);
        let want_dd = whole(&|v| ddm(v.iter().map(|&x| Some(x)), &dd), &errs);
        let want_cs = whole(&|v| cusum(v.iter().map(|&x| Some(x)), &cs), &xs);
        assert!(!want_ph.is_empty() && !want_dd.is_empty() && !want_cs.is_empty());
        let (mut a, mut b, mut c) = (
            PageHinkleyState::default(),
            DdmState::default(),
            CusumState::default(),
        );
        let (mut got_ph, mut got_dd, mut got_cs) = (vec![], vec![], vec![]);
        for i in 0..xs.len() {
            // a checkpoint before every value
            a = PageHinkleyState::from_values(&a.to_values()).unwrap();
            b = DdmState::from_values(&b.to_values()).unwrap();
            c = CusumState::from_values(&c.to_values()).unwrap();
            let pos = i as i64 + 1;
            if a.update(xs[i], &ph) {
                got_ph.push(pos);
            }
            if b.update(errs[i], &dd) {
                got_dd.push(pos);
            }
            if c.update(xs[i], &cs) {
                got_cs.push(pos);
            }
        }
        assert_eq!((got_ph, got_dd, got_cs), (want_ph, want_dd, want_cs));
        assert!(PageHinkleyState::from_values(&[1.0]).is_none());
        assert!(DdmState::from_values(&[]).is_none());
        assert!(CusumState::from_values(&[0.0, 1.0]).is_none());
    }
}
