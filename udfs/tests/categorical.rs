//! Categorical columns that are not strings: integer class labels (inferred at ≤ 5 distinct
//! values, Evidently's rule, or declared) and booleans. The binned drift statistics on them
//! compare categories, exactly as on the same values as strings.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use driftwatch_udfs::{
    register_all, BaselineProfile, BaselineRegistry, ProfileOptions, MAX_INFERRED_CATEGORIES,
};

fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).unwrap()
}

/// `n` rows: `label` cycling through `labels` (also as text in `label_s`), `zip` =
/// 10 000 + i mod `zips`, `flag` = (i mod `flag_every` = 0), `x` = i / `x_div`.
fn rows(n: i64, labels: [i64; 6], zips: i64, flag_every: i64, x_div: f64) -> RecordBatch {
    let labels: Vec<i64> = (0..n).map(|i| labels[(i % 6) as usize]).collect();
    batch(vec![
        (
            "label",
            Arc::new(Int64Array::from(labels.clone())) as ArrayRef,
        ),
        (
            "label_s",
            Arc::new(StringArray::from_iter_values(
                labels.iter().map(|l| l.to_string()),
            )),
        ),
        (
            "zip",
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|i| 10_000 + i % zips),
            )),
        ),
        (
            "flag",
            Arc::new(BooleanArray::from_iter(
                (0..n).map(|i| Some(i % flag_every == 0)),
            )),
        ),
        (
            "x",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 / x_div),
            )),
        ),
    ])
}

/// Reference: `label` in {0, 1, 2} (inferred), `zip` with 8 distinct values (not inferred
/// unless declared), `flag` boolean, `x` float; the same labels as text in `label_s`.
fn reference() -> RecordBatch {
    rows(60, [0, 0, 1, 2, 2, 2], 8, 3, 7.0)
}

/// Shifted shares, and a label (3) the baseline never saw.
fn current() -> RecordBatch {
    rows(40, [0, 1, 1, 1, 2, 3], 5, 2, 5.0)
}

fn profile(categorical: &[&str]) -> BaselineProfile {
    let opts = ProfileOptions {
        categorical: categorical.iter().map(|s| s.to_string()).collect(),
        ..ProfileOptions::default()
    };
    BaselineProfile::from_batches("b", &[reference()], &opts).unwrap()
}

async fn values(p: BaselineProfile, sql: &str) -> Vec<Option<f64>> {
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(p);
    let ctx = SessionContext::new();
    register_all(&ctx, &reg);
    ctx.register_batch("cur", current()).unwrap();
    let out = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let b = &out[0];
    (0..b.num_columns())
        .map(|i| {
            let c = arrow::compute::cast(b.column(i), &DataType::Float64).unwrap();
            let c = c.as_any().downcast_ref::<Float64Array>().unwrap().clone();
            (!c.is_null(0)).then(|| c.value(0))
        })
        .collect()
}

async fn error(p: BaselineProfile, sql: &str) -> String {
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(p);
    let ctx = SessionContext::new();
    register_all(&ctx, &reg);
    ctx.register_batch("cur", current()).unwrap();
    match ctx.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(df) => df.collect().await.unwrap_err().to_string(),
    }
}

#[test]
fn low_cardinality_integers_and_booleans_are_categorical() {
    assert_eq!(MAX_INFERRED_CATEGORIES, 5);
    let p = profile(&[]);
    assert_eq!(p.categorical_columns(), ["label", "label_s", "flag"]);
    let label = p.categorical("label").unwrap();
    assert_eq!(
        label
            .frequencies
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        [("0", 20), ("1", 10), ("2", 30)]
    );
    assert_eq!(p.categorical("LABEL"), Some(label));
    // Integer columns stay numeric too; booleans are categorical only.
    assert_eq!(p.numeric_columns(), ["label", "zip", "x"]);
    assert_eq!(
        p.categorical("flag")
            .unwrap()
            .frequencies
            .keys()
            .collect::<Vec<_>>(),
        ["false", "true"]
    );
    // Eight distinct zip codes: categorical only when declared.
    assert!(p.categorical("zip").is_none());
    let declared = profile(&["zip", "label_s"]);
    assert_eq!(declared.categorical("zip").unwrap().frequencies.len(), 8);
    assert_eq!(
        declared.categorical_columns(),
        ["label", "label_s", "zip", "flag"]
    );
}

#[test]
fn declared_columns_must_exist_and_hold_categories() {
    let opts = |c: &str| ProfileOptions {
        categorical: vec![c.to_string()],
        ..ProfileOptions::default()
    };
    let err = BaselineProfile::from_batches("b", &[reference()], &opts("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "categorical column 'nope' is not a column (columns: label, label_s, zip, flag, x)"
        ),
        "{err}"
    );
    let err = BaselineProfile::from_batches("b", &[reference()], &opts("x"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column 'x' is Float64; only integer, boolean and string"),
        "{err}"
    );
}

#[test]
fn stored_profiles_keep_their_categories() {
    let p = profile(&["zip"]);
    let dir = std::env::temp_dir().join(format!("dw-categorical-{}", std::process::id()));
    p.write_to(&dir).unwrap();
    let q = BaselineProfile::read_from(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(q.integer_categories, p.integer_categories);
    assert_eq!(q.options, p.options);
}

#[tokio::test]
async fn integer_labels_are_compared_as_categories() {
    // The integer column, its text and the same labels profiled from strings give the
    // same statistics (the string path is the one checked against scipy).
    let stats = ["psi", "js_distance", "chi2_stat", "chi2_pvalue", "tvd"];
    let over = |value: &str, feature: &str| {
        stats
            .iter()
            .map(|s| format!("{s}({value}, 'b', '{feature}')"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ints = values(
        profile(&[]),
        &format!("SELECT {} FROM cur", over("label", "label")),
    )
    .await;
    let text = values(
        profile(&[]),
        &format!("SELECT {} FROM cur", over("label_s", "label_s")),
    )
    .await;
    let cast = values(
        profile(&[]),
        &format!(
            "SELECT {} FROM cur",
            over("CAST(label AS VARCHAR)", "label")
        ),
    )
    .await;
    assert_eq!(ints, text);
    assert_eq!(cast, text);
    assert!(ints.iter().all(Option::is_some), "{ints:?}");
    // Without the feature argument too (it is the column name).
    let short = values(profile(&[]), "SELECT psi(label, 'b') FROM cur").await;
    assert_eq!(short[0], text[0]);
    // Booleans, and a declared high-cardinality integer.
    let flag = values(profile(&[]), "SELECT chi2_stat(flag, 'b') FROM cur").await;
    let gof = values(profile(&[]), "SELECT chi2_gof_stat(flag, 'b') FROM cur").await;
    // The one-sample test: chisquare([20, 20], [40/3, 80/3]).
    let want_gof = (20.0f64 - 40.0 / 3.0).powi(2) / (40.0 / 3.0)
        + (20.0f64 - 80.0 / 3.0).powi(2) / (80.0 / 3.0);
    assert!((gof[0].unwrap() - want_gof).abs() < 1e-12, "{gof:?}");
    // Baseline 20 true / 40 false, window 20 / 20:
    // scipy.stats.chi2_contingency([[20, 20], [20, 40]]).statistic (Yates, dof 1).
    let want = 2.126_736_111_111_110_7;
    assert!(
        (flag[0].unwrap() - want).abs() < 1e-12,
        "{flag:?} vs {want}"
    );
    let zip = values(profile(&["zip"]), "SELECT tvd(zip, 'b') FROM cur").await;
    // Baseline: 8 codes, 7 or 8 rows each (60 rows); window: 5 codes, 8 rows each.
    let base: Vec<f64> = (0..8)
        .map(|c| (0..60).filter(|i| i % 8 == c).count() as f64 / 60.0)
        .collect();
    let cur: Vec<f64> = (0..8)
        .map(|c| if c < 5 { 8.0 / 40.0 } else { 0.0 })
        .collect();
    let want: f64 = 0.5
        * base
            .iter()
            .zip(&cur)
            .map(|(b, c)| (b - c).abs())
            .sum::<f64>();
    assert!((zip[0].unwrap() - want).abs() < 1e-12, "{zip:?} vs {want}");
    // Numeric statistics still see the integer column as numbers.
    let w = values(profile(&[]), "SELECT wasserstein(label, 'b') FROM cur").await;
    assert!(w[0].is_some());
}

#[tokio::test]
async fn missing_categorical_column_lists_the_categorical_ones() {
    let msg = error(
        profile(&[]),
        "SELECT psi(CAST(zip AS VARCHAR), 'b', 'zip') FROM cur",
    )
    .await;
    assert!(
        msg.contains("baseline 'b' has no categorical column 'zip' (categorical columns: label, label_s, flag)"),
        "{msg}"
    );
    assert!(msg.contains("WITH (categorical = 'zip')"), "{msg}");
    let numeric_only = BaselineProfile::from_batches(
        "n",
        &[batch(vec![(
            "x",
            Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
        )])],
        &ProfileOptions::default(),
    )
    .unwrap();
    let msg = error(numeric_only, "SELECT psi('a', 'n', 'x') FROM cur").await;
    assert!(msg.contains("(it has no categorical columns)"), "{msg}");
}
