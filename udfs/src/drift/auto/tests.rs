//! SQL-level tests of the automatic drift aggregates: the method chosen per column type and
//! reference size, the struct / scalar forms agreeing, partial states (several partitions,
//! GROUP BY) merging to the single-pass result, and the long-form share.
//! Equality with Evidently itself is tested in tests/python/test_drift_auto_evidently.py.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::choice::{categorical_verdict, numeric_verdict, Method};
use crate::{register_all, BaselineProfile, BaselineRegistry, ProfileOptions};

/// Deterministic uniform numbers in [0, 1).
fn uniform(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn batch(n: usize, seed: u64, shift: f64) -> RecordBatch {
    let u = uniform(seed, 3 * n);
    let x: Float64Array = (0..n)
        .map(|i| {
            Some(if i % 50 == 7 {
                f64::NAN
            } else {
                u[i] * 4.0 + shift
            })
        })
        .collect();
    let k: Int64Array = (0..n)
        .map(|i| Some((u[n + i] * 3.0 + shift) as i64))
        .collect();
    let s: StringArray = (0..n)
        .map(|i| {
            let c = ["a", "b", "c", "d"][((u[2 * n + i] + shift / 4.0) * 3.0).min(3.0) as usize];
            (i % 31 != 3).then_some(c)
        })
        .collect();
    let b: BooleanArray = (0..n).map(|i| Some(u[n + i] < 0.5 + shift / 8.0)).collect();
    let schema = Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("k", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
    ]);
    let cols: Vec<ArrayRef> = vec![Arc::new(x), Arc::new(k), Arc::new(s), Arc::new(b)];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

/// A context with baseline `ref` of `n_ref` rows and table `cur` (the current rows split in
/// three partitions).
fn ctx(n_ref: usize, shift: f64) -> (SessionContext, RecordBatch, Arc<BaselineProfile>) {
    ctx_with(n_ref, shift, ProfileOptions::default())
}

/// [`ctx`] with the baseline profiled with `opts`.
fn ctx_with(
    n_ref: usize,
    shift: f64,
    opts: ProfileOptions,
) -> (SessionContext, RecordBatch, Arc<BaselineProfile>) {
    let reg = Arc::new(BaselineRegistry::new());
    let p = BaselineProfile::from_batches("ref", &[batch(n_ref, 1, 0.0)], &opts).unwrap();
    let p = reg.insert(p);
    let ctx = SessionContext::new();
    register_all(&ctx, &reg);
    let cur = batch(600, 2, shift);
    let parts = vec![
        vec![cur.slice(0, 100)],
        vec![cur.slice(100, 250)],
        vec![cur.slice(350, 250)],
    ];
    let t = MemTable::try_new(cur.schema(), parts).unwrap();
    ctx.register_table("cur", Arc::new(t)).unwrap();
    (ctx, cur, p)
}

async fn one(ctx: &SessionContext, sql: &str) -> ArrayRef {
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
    Arc::clone(b.column(0))
}

fn sorted_finite(a: &ArrayRef) -> Vec<f64> {
    let a = arrow::compute::cast(a, &DataType::Float64).unwrap();
    let mut v: Vec<f64> = a
        .as_primitive::<Float64Type>()
        .iter()
        .flatten()
        .filter(|v| v.is_finite())
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[tokio::test]
async fn method_per_column_type_and_reference_size() {
    for (n_ref, x_method, k_method, s_method, b_method) in [
        (
            500,
            Method::Ks,
            Method::ChiSquare,
            Method::ChiSquare,
            Method::Z,
        ),
        (
            3000,
            Method::Wasserstein,
            Method::JensenShannon,
            Method::JensenShannon,
            Method::JensenShannon,
        ),
    ] {
        let (ctx, cur, p) = ctx(n_ref, 0.3);
        for (col, want) in [
            ("x", x_method),
            ("k", k_method),
            ("s", s_method),
            ("b", b_method),
        ] {
            let sql = format!(
                "SELECT drift_test({col}, 'ref'), drift_score({col}, 'ref'), \
                 drift_detected({col}, 'ref') FROM cur"
            );
            let b = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let st = b[0].column(0).as_struct();
            let method = st.column(0).as_string::<i32>().value(0).to_string();
            let stat = st.column(1).as_primitive::<Float64Type>().value(0);
            let threshold = st.column(2).as_primitive::<Float64Type>().value(0);
            let drifted = st.column(3).as_boolean().value(0);
            assert_eq!(method, want.name(), "{col}, n_ref {n_ref}");
            assert_eq!(threshold, want.threshold());
            assert_eq!(b[0].column(1).as_primitive::<Float64Type>().value(0), stat);
            assert_eq!(b[0].column(2).as_boolean().value(0), drifted);
            assert_eq!(drifted, want.drifted(stat));
            // the same verdict from the test functions on the raw values
            let idx = cur.schema().index_of(col).unwrap();
            let expected = if col == "s" || col == "b" {
                let strs = arrow::compute::cast(cur.column(idx), &DataType::Utf8).unwrap();
                let strs = strs.as_string::<i32>();
                let c = p.categorical(col).unwrap();
                let mut keys: Vec<String> = c.frequencies.keys().cloned().collect();
                for v in strs.iter().flatten() {
                    if !keys.iter().any(|k| k == v) {
                        keys.push(v.to_string());
                    }
                }
                keys.sort();
                let counts: Vec<(u64, u64)> = keys
                    .iter()
                    .map(|k| {
                        let cur = strs.iter().flatten().filter(|v| v == k).count() as u64;
                        (cur, c.frequencies.get(k).copied().unwrap_or(0))
                    })
                    .collect();
                categorical_verdict(c.frequencies.values().sum::<u64>() as usize, &counts)
            } else {
                let n = p.numeric(col).unwrap();
                let categorical = p.categorical(col).is_some();
                let cur = sorted_finite(cur.column(idx));
                numeric_verdict(&cur, &n.sample, n.count as usize, n.std_pop, categorical)
            }
            .unwrap();
            assert_eq!(expected.method, want);
            assert!(
                (expected.score - stat).abs() <= 1e-12 * stat.abs().max(1e-300),
                "{col}"
            );
        }
    }
}

#[tokio::test]
async fn grouped_states_merge_to_the_single_pass_result() {
    let (ctx, _, _) = ctx(800, 0.2);
    for col in ["x", "k", "s", "b"] {
        // GROUP BY with one group spread over three partitions (repartitioned, then merged)
        let grouped = one(
            &ctx,
            &format!("SELECT drift_score({col}, 'ref') FROM cur GROUP BY 1 = 1"),
        )
        .await;
        let single = one(&ctx, &format!("SELECT drift_score({col}, 'ref') FROM cur")).await;
        assert_eq!(
            grouped.as_primitive::<Float64Type>().value(0),
            single.as_primitive::<Float64Type>().value(0),
            "{col}"
        );
    }
}

#[tokio::test]
async fn long_form_share_counts_drifted_features() {
    let (ctx, _, profile) = ctx(800, 0.6);
    let long = "(SELECT 'x' AS feature, x AS value FROM cur UNION ALL \
                SELECT 'k', CAST(k AS DOUBLE) FROM cur UNION ALL \
                SELECT 'nope', x FROM cur)";
    let per_feature = one(
        &ctx,
        "SELECT drift_detected(x, 'ref') AND drift_detected(k, 'ref') FROM cur",
    )
    .await;
    let x = one(&ctx, "SELECT drift_detected(x, 'ref') FROM cur").await;
    let k = one(&ctx, "SELECT drift_detected(k, 'ref') FROM cur").await;
    let n = [x.as_boolean().value(0), k.as_boolean().value(0)];
    let share = n.iter().filter(|d| **d).count() as f64 / 2.0;
    let got = one(
        &ctx,
        &format!("SELECT drift_share(value, 'ref', feature) FROM {long}"),
    )
    .await;
    // 'nope' is not a baseline column: left out of the share, and counted as a miss
    assert_eq!(got.as_primitive::<Float64Type>().value(0), share);
    assert_eq!(
        profile.missing_features.counts(),
        vec![("nope".to_string(), 1)]
    );
    let got = one(
        &ctx,
        &format!("SELECT dataset_drift(value, 'ref', feature) FROM {long}"),
    )
    .await;
    assert_eq!(got.as_boolean().value(0), share >= 0.5);
    let got = one(
        &ctx,
        &format!("SELECT dataset_drift(value, 'ref', feature, 1.0) FROM {long}"),
    )
    .await;
    assert_eq!(got.as_boolean().value(0), per_feature.as_boolean().value(0));
    let got = one(
        &ctx,
        &format!("SELECT drifted_features(value, 'ref', feature) FROM {long}"),
    )
    .await;
    let names = got.as_list::<i32>().value(0);
    let names: Vec<&str> = names.as_string::<i32>().iter().flatten().collect();
    let want: Vec<&str> = ["k", "x"]
        .into_iter()
        .filter(|f| if *f == "x" { n[0] } else { n[1] })
        .collect();
    assert_eq!(names, want);
    assert!(share > 0.0, "the shifted window should drift somewhere");
    // per window (GROUP BY) the share is computed per group
    let got = one(
        &ctx,
        &format!("SELECT drift_share(value, 'ref', feature) FROM {long} GROUP BY feature = 'k' ORDER BY 1"),
    )
    .await;
    assert_eq!(got.len(), 2);
}

/// Above the baseline's `sketch_above` the automatic aggregates keep a sketch (bounded
/// memory) and still give the exact method and verdict, with the score within the sketch's
/// error bounds (before, such a window gave NULL).
#[tokio::test]
async fn sketch_mode_keeps_the_verdict() {
    let sketched = ProfileOptions {
        sketch_above: 100,
        ..Default::default()
    };
    for (n_ref, shift) in [(500, 0.0), (500, 0.6), (3000, 0.0), (3000, 0.6)] {
        let (exact, _, _) = ctx(n_ref, shift);
        let (sketch, _, _) = ctx_with(n_ref, shift, sketched.clone());
        let sql = "SELECT drift_test(x, 'ref') FROM cur";
        let (e, s) = (one(&exact, sql).await, one(&sketch, sql).await);
        let (e, s) = (e.as_struct(), s.as_struct());
        assert!(
            s.is_valid(0),
            "n_ref {n_ref}, shift {shift}: NULL in sketch mode"
        );
        let method =
            |a: &arrow::array::StructArray| a.column(0).as_string::<i32>().value(0).to_string();
        let score =
            |a: &arrow::array::StructArray| a.column(1).as_primitive::<Float64Type>().value(0);
        let drifted = |a: &arrow::array::StructArray| a.column(3).as_boolean().value(0);
        assert_eq!(method(s), method(e));
        assert_eq!(drifted(s), drifted(e), "n_ref {n_ref}, shift {shift}");
        let (es, ss) = (score(e), score(s));
        assert!(
            (es - ss).abs() <= 0.02 * es.abs().max(0.05),
            "n_ref {n_ref}, shift {shift}: score {ss} vs exact {es}"
        );
        // the long-form share: each feature keeps its own sketch
        let long = "(SELECT 'x' AS feature, x AS value FROM cur UNION ALL \
                    SELECT 'k', CAST(k AS DOUBLE) FROM cur)";
        let sql = format!("SELECT drift_share(value, 'ref', feature) FROM {long}");
        let (e, s) = (one(&exact, &sql).await, one(&sketch, &sql).await);
        assert_eq!(
            s.as_primitive::<Float64Type>().value(0),
            e.as_primitive::<Float64Type>().value(0),
            "n_ref {n_ref}, shift {shift}"
        );
    }
}

#[tokio::test]
async fn bad_arguments_are_plan_errors() {
    let (ctx, _, _) = ctx(100, 0.0);
    for (sql, msg) in [
        (
            "SELECT drift_share(s, 'ref', 's') FROM cur",
            "value must be numeric",
        ),
        (
            "SELECT dataset_drift(x, 'ref', 'x', 1.5) FROM cur",
            "drift share must be",
        ),
        ("SELECT drift_test(x, 'nope') FROM cur", "nope"),
        (
            "SELECT drift_test(s, 'ref', 'x') FROM cur",
            "no categorical column 'x'",
        ),
    ] {
        let e = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(msg), "{sql}: {e}");
    }
    // an empty window is NULL
    let got = one(&ctx, "SELECT drift_test(x, 'ref') FROM cur WHERE x > 1e9").await;
    assert!(got.is_null(0));
}
