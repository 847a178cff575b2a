//! Sequential change detectors over an ordered series. Each returns the 1-based positions
//! at which a change was signalled; like River, a detector resets itself on the value
//! after a detection. Missing values (NULL / NaN) are skipped but keep their position.

/// River's running mean (`stats.Mean`): mean += (1/n)(x − mean).
#[derive(Debug, Default, Clone, Copy)]
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

/// Page–Hinkley test, exactly River's `PageHinkley.update` loop (both directions).
pub fn page_hinkley(xs: impl IntoIterator<Item = Option<f64>>, p: &PageHinkley) -> Vec<i64> {
    let mut out = Vec::new();
    let fresh = || (Mean::default(), 0.0, 0.0, f64::INFINITY, -1.0f64);
    let (mut mean, mut inc, mut dec, mut min_inc, mut max_dec) = fresh();
    let mut drift = false;
    for (pos, x) in xs.into_iter().enumerate() {
        let Some(x) = x.filter(|v| !v.is_nan()) else {
            continue;
        };
        if drift {
            (mean, inc, dec, min_inc, max_dec) = fresh();
            drift = false;
        }
        mean.update(x);
        let dev = x - mean.mean;
        inc = p.alpha * inc + dev - p.delta;
        dec = p.alpha * dec + dev + p.delta;
        if inc < min_inc {
            min_inc = inc;
        }
        if dec > max_dec {
            max_dec = dec;
        }
        if mean.n >= p.min_instances {
            drift = inc - min_inc > p.threshold || max_dec - dec > p.threshold;
            if drift {
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

/// Drift Detection Method (Gama et al. 2004) over an error indicator (0 / 1, or any value
/// in [0, 1]), exactly River's `DDM.update` loop.
pub fn ddm(xs: impl IntoIterator<Item = Option<f64>>, p: &Ddm) -> Vec<i64> {
    let mut out = Vec::new();
    let mut mean = Mean::default();
    let (mut p_min, mut s_min, mut ps_min) = (f64::NAN, f64::NAN, f64::INFINITY);
    let mut drift = false;
    for (pos, x) in xs.into_iter().enumerate() {
        let Some(x) = x.filter(|v| !v.is_nan()) else {
            continue;
        };
        if drift {
            mean = Mean::default();
            (p_min, s_min, ps_min) = (f64::NAN, f64::NAN, f64::INFINITY);
            drift = false;
        }
        mean.update(x);
        let (pi, n) = (mean.mean, mean.n);
        let si = (pi * (1.0 - pi) / n).sqrt();
        if n > p.warm_start {
            if pi + si <= ps_min {
                p_min = pi;
                s_min = si;
                ps_min = p_min + s_min;
            }
            if pi + si > p_min + p.drift_threshold * s_min {
                drift = true;
                out.push(pos as i64 + 1);
            }
        }
    }
    out
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

/// Two-sided tabular CUSUM on standardised values z = (x − μ₀)/σ₀, where μ₀ and σ₀ (sample
/// standard deviation, ddof 1) come from the first `min_instances` values of the segment:
/// S⁺ = max(0, S⁺ + z − k), S⁻ = max(0, S⁻ − z − k); a change is signalled when S⁺ > h or
/// S⁻ > h, after which a new segment (and estimation period) starts. σ₀ = 0 makes any
/// deviation from μ₀ a change.
pub fn cusum(xs: impl IntoIterator<Item = Option<f64>>, p: &Cusum) -> Vec<i64> {
    let mut out = Vec::new();
    let warm = p.min_instances.max(2.0) as usize;
    let mut buf: Vec<f64> = Vec::with_capacity(warm);
    let (mut mu, mut sd, mut sp, mut sm) = (0.0, 0.0, 0.0, 0.0);
    for (pos, x) in xs.into_iter().enumerate() {
        let Some(x) = x.filter(|v| !v.is_nan()) else {
            continue;
        };
        if buf.len() < warm {
            buf.push(x);
            if buf.len() == warm {
                mu = super::describe::mean(&buf);
                sd = super::describe::var(&buf, 1).sqrt();
                (sp, sm) = (0.0, 0.0);
            }
            continue;
        }
        let z = if sd > 0.0 {
            (x - mu) / sd
        } else if x == mu {
            0.0
        } else {
            (x - mu).signum() * f64::INFINITY
        };
        sp = (sp + z - p.k).max(0.0);
        sm = (sm - z - p.k).max(0.0);
        if sp > p.h || sm > p.h {
            out.push(pos as i64 + 1);
            buf.clear();
        }
    }
    out
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
}
