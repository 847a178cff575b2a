//! Bounded-memory (sketch) mode of the sorted drift statistics holds its stated error bounds
//! (FUNCTIONS.md, "Sketch error bounds"): each statistic from the sketch against the exact
//! computation on the same values, for normal, lognormal, tied and shifted windows.
//!
//! The suite runs them on 10⁶-value windows; `scripts/sketch-bounds.sh` runs the same tests
//! on 10⁷-value windows (`DRIFTWATCH_SKETCH_N`; about 40 s in all in a debug build).

use driftwatch_udfs::math::iforest::SplitMix64;
use driftwatch_udfs::math::sketch::{LogSketch, Mapping, PooledSketch, ALPHA, Z_MIN};
use driftwatch_udfs::math::sorted::sort_values;
use driftwatch_udfs::math::{anderson, cvm, ks, wasserstein};

const M: usize = 20_000;

fn normals(rng: &mut SplitMix64, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        out.push(r * t.cos());
        out.push(r * t.sin());
    }
    out.truncate(n);
    out
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Measured errors of one window (printed by the test, reported in FUNCTIONS.md).
#[derive(Debug)]
#[allow(dead_code)]
struct Errors {
    w1: f64,
    w1_bound: f64,
    energy2: f64,
    energy2_bound: f64,
    ks: f64,
    ks_bound: f64,
    ks_p: (f64, f64),
    cvm_rel: f64,
    anderson_rel: f64,
    p_cvm: (f64, f64),
    p_ad: (f64, f64),
    buckets: usize,
}

/// Sketch-mode statistics of `window` (any order) vs the exact ones against `baseline`
/// (sorted), asserting the stated bounds.
fn check(name: &str, mut window: Vec<f64>, baseline: &[f64]) -> Errors {
    let n = window.len();
    let (c, s) = mean_std(baseline);
    let map = Mapping::new(c, s);
    // the sketch, filled in 10 pieces merged as partial states would be
    let mut sketch = LogSketch::default();
    for part in window.chunks(n / 10) {
        let mut p = LogSketch::default();
        p.add_values(&map, part);
        sketch.merge(&p);
    }
    let pooled = PooledSketch::new(&sketch, &map, baseline);
    sort_values(&mut window);
    let x = &window[..];

    let w1 = wasserstein::wasserstein_sorted(x, baseline);
    let mean_dev = x.iter().map(|v| (v - c).abs()).sum::<f64>() / x.len() as f64;
    let w1_bound = ALPHA * mean_dev * (1.0 + 1e-9) + s * Z_MIN;
    let w1_err = (pooled.wasserstein() - w1).abs();
    assert!(w1_err <= w1_bound, "{name}: W1 error {w1_err} > {w1_bound}");

    let e = wasserstein::energy_distance_sorted(x, baseline);
    let e_hat = pooled.energy_distance();
    let e2_err = (e_hat * e_hat - e * e).abs();
    assert!(e2_err <= 4.0 * w1_bound, "{name}: energy² error {e2_err}");

    let exact_ks = ks::ks_2samp_sorted(x, baseline);
    let sk_ks = pooled.ks();
    let ks_bound = PooledSketch::ks_error_bound(&sketch, baseline);
    let ks_err = (sk_ks.statistic - exact_ks.statistic).abs();
    assert!(
        ks_err <= ks_bound + 1e-12,
        "{name}: KS error {ks_err} > {ks_bound}"
    );
    assert!(ks_bound <= 1e-3, "{name}: KS bound {ks_bound}");

    let exact_cvm = cvm::cvm_2samp_sorted(x, baseline).unwrap();
    let sk_cvm = pooled.cvm().unwrap();
    let cvm_rel = (sk_cvm.statistic - exact_cvm.statistic).abs() / exact_cvm.statistic.max(1.0);
    assert!(cvm_rel <= 0.01, "{name}: CvM {sk_cvm:?} vs {exact_cvm:?}");

    let exact_ad = anderson::anderson_2samp_sorted(x, baseline).unwrap();
    let sk_ad = pooled.anderson().unwrap();
    let ad_rel = (sk_ad.statistic - exact_ad.statistic).abs() / exact_ad.statistic.abs().max(1.0);
    assert!(ad_rel <= 0.01, "{name}: AD {sk_ad:?} vs {exact_ad:?}");

    let buckets = sketch.occupied().count();
    assert!(
        sketch.heap_bytes() <= 6 << 20,
        "{name}: {} bytes",
        sketch.heap_bytes()
    );
    let errors = Errors {
        w1: w1_err,
        w1_bound,
        energy2: e2_err,
        energy2_bound: 4.0 * w1_bound,
        ks: ks_err,
        ks_bound,
        ks_p: (sk_ks.pvalue, exact_ks.pvalue),
        cvm_rel,
        anderson_rel: ad_rel,
        p_cvm: (sk_cvm.pvalue, exact_cvm.pvalue),
        p_ad: (sk_ad.pvalue, exact_ad.pvalue),
        buckets,
    };
    println!(
        "{name}: W1 exact {w1} energy {e} KS {} CvM {} AD {}: {errors:?}",
        exact_ks.statistic, exact_cvm.statistic, exact_ad.statistic
    );
    errors
}

fn baseline(seed: u64, f: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut b: Vec<f64> = normals(&mut SplitMix64::new(seed), M)
        .into_iter()
        .map(f)
        .collect();
    sort_values(&mut b);
    b
}

fn normal_and_shifted(n: usize) {
    let b = baseline(1, |z| 5.0 + 2.0 * z);
    let w: Vec<f64> = normals(&mut SplitMix64::new(2), n)
        .into_iter()
        .map(|z| 5.0 + 2.0 * z)
        .collect();
    let e = check(&format!("normal {n}"), w, &b);
    // no drift: the p-values agree closely
    assert!((e.ks_p.0 - e.ks_p.1).abs() < 0.02, "{e:?}");
    let w: Vec<f64> = normals(&mut SplitMix64::new(3), n)
        .into_iter()
        .map(|z| 5.2 + 2.0 * z)
        .collect();
    check(&format!("shifted {n}"), w, &b);
}

fn lognormal_and_tied(n: usize) {
    let b = baseline(4, |z| (0.5 * z).exp());
    let w: Vec<f64> = normals(&mut SplitMix64::new(5), n)
        .into_iter()
        .map(|z| (0.5 * z + 0.05).exp())
        .collect();
    check(&format!("lognormal {n}"), w, &b);
    // ties: values on a 0.25 grid, in both the window and the baseline
    let b = baseline(6, |z| (z * 4.0).round() / 4.0);
    let w: Vec<f64> = normals(&mut SplitMix64::new(7), n)
        .into_iter()
        .map(|z| (z * 4.0 + 0.3).round() / 4.0)
        .collect();
    let e = check(&format!("ties {n}"), w, &b);
    // a key whose values are all equal stands for them exactly: the sketch is exact on a grid
    assert_eq!((e.ks, e.w1, e.cvm_rel), (0.0, 0.0, 0.0), "{e:?}");
}

/// Window size: 10⁶ in the suite, `DRIFTWATCH_SKETCH_N` otherwise (10⁷ in
/// `scripts/sketch-bounds.sh`).
fn window_size() -> usize {
    std::env::var("DRIFTWATCH_SKETCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[test]
fn normal_and_shifted_windows() {
    normal_and_shifted(window_size());
}

#[test]
fn lognormal_and_tied_windows() {
    lognormal_and_tied(window_size());
}

mod sql {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use driftwatch_udfs::math::iforest::SplitMix64;
    use driftwatch_udfs::{
        aggregate_functions, register_all, BaselineProfile, BaselineRegistry, ProfileOptions,
    };

    fn batch(v: Vec<f64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(v)) as ArrayRef]).unwrap()
    }

    fn registry(sketch_above: usize) -> Arc<BaselineRegistry> {
        let b = super::normals(&mut SplitMix64::new(11), 5000);
        let reg = Arc::new(BaselineRegistry::new());
        let opts = ProfileOptions {
            sketch_above,
            ..Default::default()
        };
        reg.insert(BaselineProfile::from_batches("ref", &[batch(b)], &opts).unwrap());
        reg
    }

    const QUERY: &str = "SELECT wasserstein(x, 'ref') AS w, wasserstein_norm(x, 'ref') AS wn, \
        ks_stat(x, 'ref') AS d, ks_pvalue(x, 'ref') AS p, energy_distance(x, 'ref') AS e, \
        cvm_stat(x, 'ref') AS c, cvm_pvalue(x, 'ref') AS cp, anderson_stat(x, 'ref') AS a, \
        anderson_pvalue(x, 'ref') AS ap FROM cur";

    async fn run(reg: &Arc<BaselineRegistry>, partitions: usize, fused: bool) -> Vec<f64> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
        if fused {
            register_all(&ctx, reg);
        } else {
            aggregate_functions(reg)
                .into_iter()
                .for_each(|f| ctx.register_udaf(f));
        }
        let mut rng = SplitMix64::new(12);
        let values: Vec<f64> = super::normals(&mut rng, 60_000)
            .into_iter()
            .map(|z| z * 1.1 + 0.05)
            .collect();
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        for (i, c) in values.chunks(7000).enumerate() {
            parts[i % partitions].push(batch(c.to_vec()));
        }
        let schema = parts[0][0].schema();
        ctx.register_table("cur", Arc::new(MemTable::try_new(schema, parts).unwrap()))
            .unwrap();
        let out = ctx.sql(QUERY).await.unwrap().collect().await.unwrap();
        (0..out[0].num_columns())
            .map(|c| {
                let a = out[0].column(c).as_any().downcast_ref::<Float64Array>();
                a.unwrap().value(0)
            })
            .collect()
    }

    /// Through SQL, with `sketch_above = 2000`: partitions and the fusion rule do not change
    /// a single bit, and the values stay within the stated bounds of the exact ones.
    #[tokio::test]
    async fn sketch_mode_through_sql_is_split_independent() {
        let reg = registry(2000);
        let single = run(&reg, 1, false).await;
        assert_eq!(run(&reg, 4, false).await, single);
        assert_eq!(run(&reg, 3, true).await, single);
        let exact = run(&registry(1 << 20), 4, true).await;
        assert_ne!(exact, single);
        for (i, (s, e)) in single.iter().zip(&exact).enumerate() {
            assert!(
                (s - e).abs() <= 0.01 * e.abs().max(1.0),
                "column {i}: {s} vs {e}"
            );
        }
    }
}
