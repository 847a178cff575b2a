//! End-to-end tests through DataFusion SQL, including partial-state merging.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use driftwatch_udfs::drift::DriftKind;
use driftwatch_udfs::{register_all, BaselineProfile, BaselineRegistry, ProfileOptions};
use proptest::prelude::*;

fn f64_batch(cols: &[(&str, Vec<Option<f64>>)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, _)| Field::new(*n, DataType::Float64, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = cols
        .iter()
        .map(|(_, v)| Arc::new(Float64Array::from(v.clone())) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema, arrays).unwrap()
}

fn setup() -> (SessionContext, Arc<BaselineRegistry>) {
    let reg = Arc::new(BaselineRegistry::new());
    let base = f64_batch(&[
        ("x", vec![Some(0.0), Some(1.0), Some(2.0), Some(3.0)]),
        ("y", vec![Some(1.0), Some(3.0), Some(2.0), Some(5.0)]),
    ]);
    reg.insert(BaselineProfile::from_batches("ref", &[base], &ProfileOptions::default()).unwrap());
    let ctx = SessionContext::new();
    register_all(&ctx, &reg);
    let cur = f64_batch(&[
        (
            "x",
            vec![Some(5.0), Some(6.0), None, Some(f64::NAN), Some(8.0)],
        ),
        (
            "y",
            vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)],
        ),
    ]);
    ctx.register_batch("cur", cur).unwrap();
    (ctx, reg)
}

async fn one(ctx: &SessionContext, sql: &str) -> Option<f64> {
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let c = b[0].column(0);
    let c = arrow::compute::cast(c, &DataType::Float64).unwrap();
    let a = c.as_any().downcast_ref::<Float64Array>().unwrap();
    (!a.is_null(0)).then(|| a.value(0))
}

#[tokio::test]
async fn wasserstein_via_sql() {
    let (ctx, _) = setup();
    // scipy.stats.wasserstein_distance([5, 6, 8], [0, 1, 2, 3]) == 4.833333333333334
    let w = one(&ctx, "SELECT wasserstein(x, 'ref') FROM cur")
        .await
        .unwrap();
    assert!((w - 4.833333333333334).abs() < 1e-12, "{w}");
    let w3 = one(&ctx, "SELECT wasserstein(y + 0, 'ref', 'x') FROM cur")
        .await
        .unwrap();
    // scipy.stats.wasserstein_distance([1,2,3,4,5],[0,1,2,3]) == 1.5
    assert!((w3 - 1.5).abs() < 1e-12, "{w3}");
    let ks = one(&ctx, "SELECT ks_stat(x, 'ref') FROM cur")
        .await
        .unwrap();
    assert_eq!(ks, 1.0);
    // empty input -> NULL
    assert_eq!(
        one(&ctx, "SELECT psi(x, 'ref') FROM cur WHERE y > 100").await,
        None
    );
}

#[tokio::test]
async fn long_form_group_by_feature() {
    let (ctx, _) = setup();
    let sql = "SELECT feature, wasserstein(value, 'ref', feature) AS w FROM \
               (SELECT 'x' AS feature, x AS value FROM cur UNION ALL \
                SELECT 'y' AS feature, y AS value FROM cur) GROUP BY feature ORDER BY feature";
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let b = arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
    let w = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
    assert!((w.value(0) - 4.833333333333334).abs() < 1e-12);
    // scipy.stats.wasserstein_distance([1,2,3,4,5],[1,3,2,5]) == 0.35000000000000003
    assert!(
        (w.value(1) - 0.35000000000000003).abs() < 1e-12,
        "{}",
        w.value(1)
    );
}

#[tokio::test]
async fn scalar_functions_and_errors() {
    let (ctx, _) = setup();
    // zscore(5, mean 1.5, std sqrt(5/3))
    let z = one(&ctx, "SELECT zscore(x, 'ref') FROM cur LIMIT 1")
        .await
        .unwrap();
    assert!((z - 3.5 / (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    let m = one(&ctx, "SELECT mahalanobis(x, y, 'ref') FROM cur LIMIT 1").await;
    assert!(m.unwrap() > 0.0);
    let err = ctx
        .sql("SELECT wasserstein(x, 'nope') FROM cur")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("unknown baseline 'nope' (known: ref)"));
    let err = ctx
        .sql("SELECT zscore(x + 1, 'ref') FROM cur")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(err.unwrap_err().to_string().contains("third argument"));
    let err = ctx
        .sql("SELECT ks_stat(y, 'ref', 'zz') FROM cur")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("no numeric column 'zz'"));
}

/// Build an accumulator the way DataFusion does, through SQL-free direct use of state/merge.
fn accumulate(kind: DriftKind, reg: &Arc<BaselineRegistry>, parts: &[Vec<f64>]) -> Option<f64> {
    use datafusion::physical_expr::expressions::{col, lit};
    let udaf = driftwatch_udfs::aggregate_functions(reg)
        .into_iter()
        .find(|f| f.name() == kind.name())
        .unwrap();
    let schema = Schema::new(vec![Field::new("x", DataType::Float64, true)]);
    let exprs = vec![col("x", &schema).unwrap(), lit("ref")];
    let fields = vec![
        Arc::new(Field::new("x", DataType::Float64, true)),
        Arc::new(Field::new("lit", DataType::Utf8, false)),
    ];
    let make = || {
        udaf.accumulator(datafusion::logical_expr::function::AccumulatorArgs {
            return_field: Arc::new(Field::new("r", DataType::Float64, true)),
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "f",
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        })
        .unwrap()
    };
    let mut fin = make();
    for p in parts {
        let mut a = make();
        a.update_batch(&[
            Arc::new(Float64Array::from(p.clone())) as ArrayRef,
            Arc::new(StringArray::from(vec!["ref"; p.len()])),
        ])
        .unwrap();
        let st = a.state().unwrap();
        let arrays: Vec<ArrayRef> = st.iter().map(|s| s.to_array().unwrap()).collect();
        fin.merge_batch(&arrays).unwrap();
    }
    match fin.evaluate().unwrap() {
        datafusion::common::ScalarValue::Float64(v) => v,
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn merge_of_splits_equals_single_pass(
        v in proptest::collection::vec(-100.0f64..100.0, 1..60),
        cut in 0usize..60,
    ) {
        let (_, reg) = setup();
        let cut = cut.min(v.len());
        for kind in DriftKind::ALL {
            let single = accumulate(kind, &reg, std::slice::from_ref(&v));
            let split = accumulate(kind, &reg, &[v[..cut].to_vec(), v[cut..].to_vec(), vec![]]);
            prop_assert_eq!(single.map(f64::to_bits), split.map(f64::to_bits), "{:?}", kind);
        }
    }
}

// ---- top_k, covariance_matrix, correlation_matrix ----

/// Two partitions (partial aggregation, then a merge of the states) of
/// g: Int64, s: Utf8, n: Int64, b: Boolean, x/y/z: Float64.
fn stats_ctx() -> SessionContext {
    use arrow::array::{BooleanArray, Int64Array};
    use datafusion::datasource::MemTable;
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
        Field::new("z", DataType::Float64, true),
    ]));
    let part = |g: Vec<i64>,
                s: Vec<Option<&str>>,
                n: Vec<Option<i64>>,
                b: Vec<Option<bool>>,
                x: Vec<Option<f64>>,
                y: Vec<Option<f64>>,
                z: Vec<Option<f64>>| {
        RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(g)),
                Arc::new(StringArray::from(s)),
                Arc::new(Int64Array::from(n)),
                Arc::new(BooleanArray::from(b)),
                Arc::new(Float64Array::from(x)),
                Arc::new(Float64Array::from(y)),
                Arc::new(Float64Array::from(z)),
            ],
        )
        .unwrap()
    };
    let nan = f64::NAN;
    let p1 = part(
        vec![1, 1, 1, 2],
        vec![Some("b"), Some("a"), None, Some("q")],
        vec![Some(10), Some(9), Some(10), None],
        vec![Some(true), Some(false), Some(true), None],
        vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)],
        vec![Some(2.0), Some(1.0), Some(4.0), Some(3.0)],
        vec![Some(0.5), None, Some(1.5), Some(f64::INFINITY)],
    );
    let p2 = part(
        vec![1, 1, 2, 2],
        vec![Some("b"), Some("c"), Some("a"), Some("b")],
        vec![Some(9), Some(7), Some(7), Some(10)],
        vec![Some(false), Some(true), Some(true), Some(true)],
        vec![Some(5.0), Some(6.0), Some(7.5), Some(nan)],
        vec![Some(7.0), Some(8.0), None, Some(1.0)],
        vec![Some(2.0), Some(2.5), Some(3.0), Some(1.0)],
    );
    let ctx = SessionContext::new();
    let reg = Arc::new(BaselineRegistry::new());
    register_all(&ctx, &reg);
    let t = MemTable::try_new(schema, vec![vec![p1], vec![p2]]).unwrap();
    ctx.register_table("t", Arc::new(t)).unwrap();
    ctx
}

/// First column of the result rows, each a list rendered by `f` (`None` for NULL).
async fn list_rows<T>(
    ctx: &SessionContext,
    sql: &str,
    f: impl Fn(&ArrayRef) -> T,
) -> Vec<Option<T>> {
    use arrow::array::AsArray;
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for batch in &b {
        let l = batch.column(0).as_list::<i32>();
        for i in 0..l.len() {
            out.push((!l.is_null(i)).then(|| f(&l.value(i))));
        }
    }
    out
}

fn entries(a: &ArrayRef) -> Vec<(String, i64)> {
    use arrow::array::AsArray;
    let s = a.as_struct();
    let v = arrow::compute::cast(s.column(0), &DataType::Utf8).unwrap();
    let v = v.as_string::<i32>();
    let c = s.column(1).as_primitive::<arrow::datatypes::Int64Type>();
    (0..s.len())
        .map(|i| (v.value(i).to_string(), c.value(i)))
        .collect()
}

fn floats(a: &ArrayRef) -> Vec<Option<f64>> {
    use arrow::array::AsArray;
    let v = a.as_primitive::<arrow::datatypes::Float64Type>();
    (0..v.len())
        .map(|i| v.is_valid(i).then(|| v.value(i)))
        .collect()
}

fn e(v: &[(&str, i64)]) -> Option<Vec<(String, i64)>> {
    Some(v.iter().map(|(s, c)| (s.to_string(), *c)).collect())
}

#[tokio::test]
async fn top_k_via_sql() {
    let ctx = stats_ctx();
    // Counter(['b','a','q','b','c','a','b']).most_common: b 3, a 2, then c / q tied at 1
    for x in [
        "s",
        "arrow_cast(s, 'Utf8View')",
        "arrow_cast(s, 'LargeUtf8')",
        "arrow_cast(s, 'Dictionary(Int32, Utf8)')",
    ] {
        let got = list_rows(&ctx, &format!("SELECT top_k({x}, 3) FROM t"), entries).await;
        assert_eq!(got, vec![e(&[("b", 3), ("a", 2), ("c", 1)])], "{x}");
    }
    let got = list_rows(&ctx, "SELECT top_k(s, 100) FROM t", entries).await;
    assert_eq!(got, vec![e(&[("b", 3), ("a", 2), ("c", 1), ("q", 1)])]);
    let got = list_rows(
        &ctx,
        "SELECT top_k(s, 1) FROM t GROUP BY g ORDER BY g",
        entries,
    )
    .await;
    // group 1: b 2, a 1, c 1; group 2: a, b, q once each -> smallest value
    assert_eq!(got, vec![e(&[("b", 2)]), e(&[("a", 1)])]);
    // integers and booleans are counted as text ("10" < "7" < "9")
    let got = list_rows(&ctx, "SELECT top_k(n, 2) FROM t", entries).await;
    assert_eq!(got, vec![e(&[("10", 3), ("7", 2)])]);
    let got = list_rows(&ctx, "SELECT top_k(b, 2) FROM t", entries).await;
    assert_eq!(got, vec![e(&[("true", 5), ("false", 2)])]);
    // no non-NULL value -> NULL
    let got = list_rows(
        &ctx,
        "SELECT top_k(s, 2) FILTER (WHERE g > 5) FROM t",
        entries,
    )
    .await;
    assert_eq!(got, vec![None]);
    for (bad, msg) in [
        ("top_k(s, 0)", "k must be a positive integer literal"),
        ("top_k(s, -1)", "k must be a positive integer literal"),
        ("top_k(s, 1.5)", "k must be a positive integer literal"),
        ("top_k(s, n)", "k must be a positive integer literal"),
        ("top_k(s)", "expects (x, k)"),
        (
            "top_k(x, 2)",
            "x must be a string, integer or boolean column",
        ),
    ] {
        let err = match ctx.sql(&format!("SELECT {bad} FROM t")).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let err = err.expect_err(bad).to_string();
        assert!(err.contains(msg), "{bad}: {err}");
    }
}

#[tokio::test]
async fn moment_matrices_via_sql() {
    let ctx = stats_ctx();
    let close = |got: &[Option<f64>], want: &[f64]| {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let g = g.expect("non-NULL entry");
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    };
    // complete rows (x, y, z): (1,2,.5) (3,4,1.5) (5,7,2) (6,8,2.5); numpy:
    // np.cov(R, ddof=1).ravel() and np.corrcoef(R).ravel()
    let cov = list_rows(&ctx, "SELECT covariance_matrix(x, y, z) FROM t", floats).await;
    close(
        cov[0].as_ref().unwrap(),
        &[
            4.916666666666666,
            6.083333333333333,
            1.875,
            6.083333333333333,
            7.583333333333333,
            2.2916666666666665,
            1.875,
            2.2916666666666665,
            0.7291666666666666,
        ],
    );
    let cor = list_rows(&ctx, "SELECT correlation_matrix(x, y, z) FROM t", floats).await;
    close(
        cor[0].as_ref().unwrap(),
        &[
            1.0,
            0.9962679474209222,
            0.9902674083052385,
            0.9962679474209222,
            1.0,
            0.9745586289152092,
            0.9902674083052385,
            0.9745586289152092,
            1.0,
        ],
    );
    // 2 columns: agrees with DataFusion's covar_samp / corr over the same complete rows
    let b = ctx
        .sql(
            "SELECT covariance_matrix(x, y)[2], covar_samp(x, y), \
                    correlation_matrix(x, y)[3], corr(x, y) \
             FROM t WHERE x < 7 AND y IS NOT NULL",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let v: Vec<f64> = (0..4)
        .map(|i| {
            b[0].column(i)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .value(0)
        })
        .collect();
    // np.cov([1,2,3,4,5,6], [2,1,4,3,7,8]) -> 4.7; np.corrcoef -> 0.9014600868406593
    // (`x < 7` also drops the NaN row, which covar_samp / corr would propagate)
    assert!(
        (v[0] - 4.7).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12,
        "{v:?}"
    );
    assert!((v[2] - 0.9014600868406593).abs() < 1e-12, "{v:?}");
    assert!((v[2] - v[3]).abs() < 1e-12, "{v:?}");
    // per group; fewer than 2 complete rows -> NULL
    let cov = list_rows(
        &ctx,
        "SELECT covariance_matrix(x, z) FROM t GROUP BY g ORDER BY g",
        floats,
    )
    .await;
    assert!(cov[0].is_some() && cov[1].is_none(), "{cov:?}");
    // a constant column: NULL correlations in its row and column (numpy: NaN)
    let cor = list_rows(
        &ctx,
        "SELECT correlation_matrix(x, 2.5, y) FROM t WHERE g = 1",
        floats,
    )
    .await;
    let cor = cor[0].as_ref().unwrap();
    for p in [1, 3, 4, 5, 7] {
        assert_eq!(cor[p], None, "{cor:?}");
    }
    assert_eq!((cor[0], cor[8]), (Some(1.0), Some(1.0)));
    assert!(cor[2].unwrap() > 0.9 && cor[2] == cor[6], "{cor:?}");
    let cov = list_rows(
        &ctx,
        "SELECT covariance_matrix(x, 2.5, y) FROM t WHERE g = 1",
        floats,
    )
    .await;
    assert_eq!(cov[0].as_ref().unwrap()[4], Some(0.0));
    for (bad, msg) in [
        ("covariance_matrix(x)", "at least 2 numeric columns"),
        ("correlation_matrix(x, s)", "arguments must be numeric"),
    ] {
        let err = match ctx.sql(&format!("SELECT {bad} FROM t")).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let err = err.expect_err(bad).to_string();
        assert!(err.contains(msg), "{bad}: {err}");
    }
}

/// Pins the DataFusion behaviour FUNCTIONS.md documents for the built-ins next to ours:
/// NaN is a value for approx_percentile_cont (above +inf), approx_distinct has no Float64
/// implementation (count the text), covar_samp gives NaN and corr NULL on a NaN.
#[tokio::test]
async fn builtin_sketches_documented_edge_cases() {
    let ctx = stats_ctx();
    // x (g = 1, 2): 1, 2, 3, 4, 5, 6, 7.5, NaN
    let hi = one(&ctx, "SELECT approx_percentile_cont(x, 0.99) FROM t").await;
    assert!(hi.unwrap().is_nan());
    let hi = one(
        &ctx,
        "SELECT approx_percentile_cont(x, 0.99) FILTER (WHERE NOT isnan(x)) FROM t",
    )
    .await;
    assert_eq!(hi, Some(7.5));
    let err = match ctx.sql("SELECT approx_distinct(x) FROM t").await {
        Ok(df) => df.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(err.unwrap_err().to_string().contains("not implemented"));
    let d = one(&ctx, "SELECT approx_distinct(CAST(x AS VARCHAR)) FROM t").await;
    assert_eq!(d, Some(8.0));
    assert!(one(&ctx, "SELECT covar_samp(x, y) FROM t")
        .await
        .unwrap()
        .is_nan());
    assert_eq!(one(&ctx, "SELECT corr(x, y) FROM t").await, None);
}
