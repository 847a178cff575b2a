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
