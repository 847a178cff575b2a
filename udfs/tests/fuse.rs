//! Fusing drift aggregates over the same values (`FuseDriftAggregates`) changes the plan, not
//! the answers: every query here runs with and without the rule and must agree bit for bit.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use driftwatch_udfs::{
    aggregate_functions, register_all, scalar_functions, BaselineProfile, BaselineRegistry,
    ProfileOptions,
};

/// Deterministic pseudo-random values in [0, 1).
fn uniform(seed: u64, n: usize) -> Vec<f64> {
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

fn batch(seed: u64, n: usize, shift: f64) -> RecordBatch {
    let u = uniform(seed, 3 * n);
    let x: Vec<Option<f64>> = (0..n)
        .map(|i| match i % 97 {
            0 => None,
            1 => Some(f64::NAN),
            _ => Some((u[i] * 10.0).round() / 2.0 + shift), // ties on a 0.5 grid
        })
        .collect();
    let y: Vec<f64> = (0..n).map(|i| u[n + i] * 4.0 - 2.0 + shift).collect();
    let g: Vec<i64> = (0..n).map(|i| (u[2 * n + i] * 3.0) as i64).collect();
    let c: Vec<&str> = (0..n).map(|i| ["a", "b", "c", "d"][(i * 7) % 4]).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Float64, false),
            Field::new("g", DataType::Int64, false),
            Field::new("c", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Float64Array::from(x)) as ArrayRef,
            Arc::new(Float64Array::from(y)),
            Arc::new(Int64Array::from(g)),
            Arc::new(StringArray::from(c)),
        ],
    )
    .unwrap()
}

/// A context over four partitions of current data, with or without the fusion rule.
fn context(reg: &Arc<BaselineRegistry>, fused: bool) -> SessionContext {
    context_with_rows(reg, fused, 700)
}

/// [`context`] with `rows` rows per batch (12 batches).
fn context_with_rows(reg: &Arc<BaselineRegistry>, fused: bool, rows: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
    if fused {
        register_all(&ctx, reg);
    } else {
        aggregate_functions(reg)
            .into_iter()
            .for_each(|f| ctx.register_udaf(f));
        scalar_functions(reg)
            .into_iter()
            .for_each(|f| ctx.register_udf(f));
    }
    let parts: Vec<Vec<RecordBatch>> = (0..4)
        .map(|p| (0..3).map(|b| batch(100 + p * 3 + b, rows, 0.3)).collect())
        .collect();
    let schema = parts[0][0].schema();
    ctx.register_table("cur", Arc::new(MemTable::try_new(schema, parts).unwrap()))
        .unwrap();
    ctx
}

fn registry() -> Arc<BaselineRegistry> {
    let reg = Arc::new(BaselineRegistry::new());
    let base = [batch(1, 5000, 0.0), batch(2, 3000, 0.0)];
    reg.insert(BaselineProfile::from_batches("ref", &base, &ProfileOptions::default()).unwrap());
    reg
}

async fn run(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

async fn explain(ctx: &SessionContext, sql: &str) -> String {
    run(ctx, &format!("EXPLAIN {sql}")).await
}

const QUERIES: &[&str] = &[
    // Three statistics of x, two of y, a FILTERed set, a categorical set and a plain
    // aggregate in between, grouped.
    "SELECT g, wasserstein(x, 'ref') AS w, count(*) AS n, ks_stat(x, 'ref') AS d, \
            ks_pvalue(x, 'ref') AS p, psi(x, 'ref') AS psi, cvm_pvalue(x, 'ref') AS cvm, \
            anderson_stat(x, 'ref') AS ad, energy_distance(y, 'ref') AS e, \
            wasserstein_norm(y, 'ref') AS wn, \
            ks_stat(x, 'ref') FILTER (WHERE y > 0) AS d_pos, \
            wasserstein(x, 'ref') FILTER (WHERE y > 0) AS w_pos, \
            js_distance(c, 'ref') AS js_c, tvd(c, 'ref') AS tvd_c \
     FROM cur GROUP BY g ORDER BY g",
    // No GROUP BY: partial states from four partitions merge as sorted runs.
    "SELECT wasserstein(x, 'ref') AS w, ks_stat(x, 'ref') AS d, ks_pvalue(x, 'ref') AS p, \
            hellinger(x, 'ref') AS h, kl_div(x, 'ref') AS kl FROM cur",
    // An expression argument naming its feature; used again above the aggregate.
    "SELECT w + d AS s FROM (SELECT wasserstein(y * 2, 'ref', 'y') AS w, \
            ks_stat(y * 2, 'ref', 'y') AS d FROM cur)",
];

#[tokio::test]
async fn fused_queries_give_the_unfused_answers() {
    let reg = registry();
    let (fused, plain) = (context(&reg, true), context(&reg, false));
    for q in QUERIES {
        let (a, b) = (run(&fused, q).await, run(&plain, q).await);
        assert_eq!(a, b, "{q}");
        assert!(explain(&fused, q).await.contains("drift_stats["), "{q}");
        assert!(!explain(&plain, q).await.contains("drift_stats["), "{q}");
    }
}

#[tokio::test]
async fn each_statistic_alone_equals_its_fused_value() {
    let reg = registry();
    let ctx = context(&reg, true);
    let all = run(
        &ctx,
        "SELECT wasserstein(x, 'ref') AS v FROM cur UNION ALL \
         SELECT ks_stat(x, 'ref') FROM cur UNION ALL SELECT ks_pvalue(x, 'ref') FROM cur",
    )
    .await;
    let fused = run(
        &ctx,
        "SELECT unnest(make_array(wasserstein(x, 'ref'), ks_stat(x, 'ref'), \
                ks_pvalue(x, 'ref'))) AS v FROM cur",
    )
    .await;
    let lines = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(lines(&all), lines(&fused));
}

#[tokio::test]
async fn columns_sharing_a_filter_fuse_into_one_aggregate() {
    let reg = registry();
    let ctx = context(&reg, true);
    let plan = explain(
        &ctx,
        "SELECT wasserstein(x, 'ref'), ks_stat(y, 'ref'), ks_pvalue(x, 'ref') FROM cur",
    )
    .await;
    assert!(
        plan.contains("drift_stats[wasserstein,ks_pvalue;ks_stat]"),
        "{plan}"
    );
}

#[tokio::test]
async fn single_statistics_and_categories_are_not_fused() {
    let reg = registry();
    let ctx = context(&reg, true);
    for q in [
        "SELECT wasserstein(x, 'ref') FROM cur",
        "SELECT js_distance(c, 'ref'), tvd(c, 'ref') FROM cur",
        "SELECT wasserstein(x, 'ref'), wasserstein(x, 'ref') FILTER (WHERE y > 0) FROM cur",
    ] {
        assert!(!explain(&ctx, q).await.contains("drift_stats["), "{q}");
    }
}

/// Windows large enough for the columns to be sorted and evaluated in parallel.
#[tokio::test]
async fn large_windows_evaluated_in_parallel_agree() {
    let reg = registry();
    let (fused, plain) = (
        context_with_rows(&reg, true, 12_000),
        context_with_rows(&reg, false, 12_000),
    );
    for q in [QUERIES[0], QUERIES[1]] {
        assert_eq!(run(&fused, q).await, run(&plain, q).await, "{q}");
    }
}
