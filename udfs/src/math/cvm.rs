//! Two-sample Cramér–von Mises test, a port of `scipy.stats.cramervonmises_2samp`
//! (method 'auto', scipy 1.7 – 1.17).
//!
//! * statistic T (Anderson 1962, eq. 9) from midranks of the pooled sample (ties averaged);
//! * p-value, method 'auto': **exact** when max(n₁, n₂) ≤ 20 — the lattice-path frequency
//!   table of Xiao, Gordon & Yakovlev (2006), as scipy's `_pval_cvm_2samp_exact` — otherwise
//!   **asymptotic**: the normalised statistic tn = 1/6 + (T − E T)/√(45 Var T) against the
//!   limiting one-sample distribution (Csörgő & Faraway 1996, eq. 1.2), whose series is
//!   summed, like scipy's, until a term is below 1e-7; p = max(1 − cdf(tn), 0) and p = 1 when
//!   tn < 0.003.

use std::collections::BTreeMap;

use super::special::{bessel_k, lgamma};

/// Largest sample size for which method 'auto' uses the exact distribution.
pub const MAX_EXACT_N: usize = 20;

/// Result of [`cvm_2samp_sorted`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CvmResult {
    /// Statistic T.
    pub statistic: f64,
    /// p-value.
    pub pvalue: f64,
    /// True when the exact distribution was used.
    pub exact: bool,
}

/// `scipy.stats.cramervonmises_2samp(x, y)` for ascending, finite samples with at least two
/// values each (`None` otherwise, where scipy raises).
pub fn cvm_2samp_sorted(x: &[f64], y: &[f64]) -> Option<CvmResult> {
    let (nx, ny) = (x.len(), y.len());
    if nx < 2 || ny < 2 {
        return None;
    }
    // Σ (rank − i)² per sample, in quarters (midranks are half-integers) — exact integers.
    let (mut sx, mut sy) = (0u128, 0u128);
    let (mut i, mut j) = (0usize, 0usize);
    while i < nx || j < ny {
        let v = if j >= ny || (i < nx && x[i] <= y[j]) {
            x[i]
        } else {
            y[j]
        };
        let (i0, j0) = (i, j);
        while i < nx && x[i] == v {
            i += 1;
        }
        while j < ny && y[j] == v {
            j += 1;
        }
        // twice the midrank: 2·(#less) + (#equal) + 1
        let less = (i0 + j0) as i128;
        let eq = ((i - i0) + (j - j0)) as i128;
        let r2 = 2 * less + eq + 1;
        for p in i0..i {
            let d = r2 - 2 * (p as i128 + 1);
            sx += (d * d) as u128;
        }
        for p in j0..j {
            let d = r2 - 2 * (p as i128 + 1);
            sy += (d * d) as u128;
        }
    }
    let sx = sx as f64 / 4.0;
    let sy = sy as f64 / 4.0;
    let u = nx as f64 * sx + ny as f64 * sy;
    // nx·ny as an exact integer (u128: no overflow at any size), rounded once
    let k = (nx as u128 * ny as u128) as f64;
    let n = (nx + ny) as f64;
    let t = u / (k * n) - (4.0 * k - 1.0) / (6.0 * n);
    let exact = nx.max(ny) <= MAX_EXACT_N;
    let pvalue = if exact {
        pval_exact(u, nx as u64, ny as u64)
    } else {
        pval_asymptotic(t, n, nx as f64, ny as f64, k)
    };
    Some(CvmResult {
        statistic: t,
        pvalue,
        exact,
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Python's float floor division `a // b` (b > 0).
fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && (b < 0.0) != (m < 0.0) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0.0f64.copysign(a / b);
    }
    let f = div.floor();
    if div - f > 0.5 {
        f + 1.0
    } else {
        f
    }
}

fn binom(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut r: u128 = 1;
    for i in 0..k {
        r = r * (n - i) as u128 / (i + 1) as u128;
    }
    r as u64
}

/// scipy's `_pval_cvm_2samp_exact(u, m, n)`.
fn pval_exact(s: f64, m: u64, n: u64) -> f64 {
    let lcm = m / gcd(m, n) * n;
    let (a, b) = (lcm / m, lcm / n);
    let mn = m * n;
    let num = ((lcm * lcm * (m + n)) as f64) * (6.0 * s - (mn * (4 * mn - 1)) as f64);
    let zeta = py_floordiv(num, (6 * mn * mn) as f64);
    // gs[v]: frequency table value -> count of lattice paths, for the current u
    let mut gs: Vec<BTreeMap<u64, u64>> = vec![BTreeMap::new(); m as usize + 1];
    gs[0].insert(0, 1);
    for u in 0..=n {
        let mut next: Vec<BTreeMap<u64, u64>> = Vec::with_capacity(gs.len());
        let mut tmp: BTreeMap<u64, u64> = BTreeMap::new();
        for (v, g) in gs.iter().enumerate() {
            for (val, f) in g {
                *tmp.entry(*val).or_default() += f;
            }
            let d = (a * v as u64) as i128 - (b * u) as i128;
            let res = (d * d) as u64;
            tmp = tmp.into_iter().map(|(val, f)| (val + res, f)).collect();
            next.push(tmp.clone());
        }
        gs = next;
    }
    let total: u64 = gs[m as usize]
        .iter()
        .filter(|(v, _)| **v as f64 >= zeta)
        .map(|(_, f)| *f)
        .sum();
    total as f64 / binom(m + n, m) as f64
}

/// Limiting CDF of the one-sample Cramér–von Mises statistic (scipy `_cdf_cvm_inf`).
pub fn cdf_cvm_inf(x: f64) -> f64 {
    let mut tot = 0.0;
    let mut k = 0u32;
    loop {
        let kf = k as f64;
        let u = (lgamma(kf + 0.5) - lgamma(kf + 1.0)).exp()
            / (std::f64::consts::PI.powf(1.5) * x.sqrt());
        let y = 4.0 * kf + 1.0;
        let q = y * y / (16.0 * x);
        let b = bessel_k(0.25, q);
        let z = u * y.sqrt() * (-q).exp() * b;
        tot += z;
        if z.abs() < 1e-7 || k > 10_000 {
            break;
        }
        k += 1;
    }
    tot
}

/// Asymptotic p-value of statistic `t` (sizes: `n` = nx + ny, `k` = nx·ny), as in
/// [`cvm_2samp_sorted`]; also used by the sketch mode ([`super::sketch`]).
pub(crate) fn pval_asymptotic(t: f64, n: f64, nx: f64, ny: f64, k: f64) -> f64 {
    let et = (1.0 + 1.0 / n) / 6.0;
    let vt = (n + 1.0) * (4.0 * k * n - 3.0 * (nx * nx + ny * ny) - 2.0 * k);
    let vt = vt / (45.0 * n * n * 4.0 * k);
    let tn = 1.0 / 6.0 + (t - et) / (45.0 * vt).sqrt();
    if tn >= 0.003 {
        (1.0 - cdf_cvm_inf(tn)).max(0.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scipy_examples() {
        // scipy: cramervonmises_2samp([1,2,3],[4,5,6]) -> T=0.5277777777777778, p=0.1
        let r = cvm_2samp_sorted(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert!((r.statistic - 0.527_777_777_777_777_8).abs() < 1e-15);
        assert!((r.pvalue - 0.1).abs() < 1e-15, "{}", r.pvalue);
        assert!(r.exact);
        assert_eq!(cvm_2samp_sorted(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(-7.0, 2.0), -4.0);
    }
}
