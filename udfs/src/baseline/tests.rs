use std::sync::Arc;

use arrow::array::{Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::*;

pub(crate) fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Int32, true),
        Field::new("c", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(vec![
                Some(1.0),
                Some(2.0),
                None,
                Some(f64::NAN),
                Some(4.0),
            ])),
            Arc::new(Int32Array::from(vec![
                Some(2),
                Some(1),
                Some(5),
                Some(3),
                Some(7),
            ])),
            Arc::new(StringArray::from(vec![
                Some("x"),
                Some("y"),
                Some("x"),
                None,
                Some("x"),
            ])),
        ],
    )
    .unwrap()
}

#[test]
fn profile_basic_stats() {
    let p = BaselineProfile::from_batches("t", &[batch()], &ProfileOptions::default()).unwrap();
    assert_eq!(p.numeric_columns(), vec!["a", "b"]);
    let a = p.numeric("a").unwrap();
    assert_eq!((a.rows, a.count, a.null_count, a.nan_count), (5, 3, 1, 1));
    assert_eq!(a.mean, 7.0 / 3.0);
    assert_eq!(a.sample, vec![1.0, 2.0, 4.0]);
    assert_eq!((a.min, a.max), (1.0, 4.0));
    assert_eq!(a.bin_counts.iter().sum::<u64>(), 3);
    let b = p.numeric("B").unwrap(); // case-insensitive fallback
    assert_eq!(b.sample, vec![1.0, 2.0, 3.0, 5.0, 7.0]);
    match p.column("c").unwrap() {
        ColumnProfile::Categorical(c) => {
            assert_eq!(c.frequencies["x"], 3);
            assert_eq!(c.null_count, 1);
        }
        _ => panic!("c must be categorical"),
    }
    // covariance over complete rows (0, 1, 4): a=(1,2,4), b=(2,1,7)
    assert_eq!(p.covariance.rows, 3);
    let cov = &p.covariance.covariance;
    assert!((cov[0] - 7.0 / 3.0).abs() < 1e-12);
}

#[test]
fn constant_column_and_subsample() {
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Float64, false)]));
    let b =
        RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(vec![3.0; 10]))]).unwrap();
    let opts = ProfileOptions {
        max_sample: 4,
        ..Default::default()
    };
    let p = BaselineProfile::from_batches("k", &[b], &opts).unwrap();
    let k = p.numeric("k").unwrap();
    assert_eq!(k.std, 0.0);
    assert_eq!(k.bin_edges, vec![2.5, 3.5]);
    assert_eq!(k.sample.len(), 4);
    assert_eq!(
        subsample_sorted((0..10).map(f64::from).collect(), 5),
        vec![1.0, 3.0, 5.0, 7.0, 9.0]
    );
}

#[test]
fn persistence_round_trips_exactly() {
    let p = BaselineProfile::from_batches("t", &[batch()], &ProfileOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("dw-baseline-test-{}", std::process::id()));
    p.write_to(&dir).unwrap();
    let q = BaselineProfile::read_from(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    // Debug formatting is exact for f64 and treats NaN == NaN
    assert_eq!(format!("{p:?}"), format!("{q:?}"));
}

#[test]
fn registry_basics() {
    let r = BaselineRegistry::new();
    let p = BaselineProfile::from_batches("t", &[batch()], &ProfileOptions::default()).unwrap();
    r.insert(p);
    assert_eq!(r.names(), vec!["t".to_string()]);
    assert!(r.get("t").is_some());
    assert!(r.remove("t"));
    assert!(!r.remove("t"));
}

#[test]
fn empty_input_is_an_error() {
    assert!(BaselineProfile::from_batches("e", &[], &ProfileOptions::default()).is_err());
}

fn column(values: Vec<f64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(values))]).unwrap()
}

#[test]
fn quantile_bins_drop_ties() {
    let opts = ProfileOptions {
        bins: BinRule::Quantile(4),
        ..Default::default()
    };
    let p = BaselineProfile::from_batches(
        "q",
        &[column(vec![1.0, 1.0, 3.0, 1.0, 1.0, 2.0, 1.0, 1.0])],
        &opts,
    )
    .unwrap();
    let x = p.numeric("x").unwrap();
    // np.unique(np.quantile(x, np.linspace(0, 1, 5))) == [1, 1.25, 3]
    assert_eq!(x.bin_edges, vec![1.0, 1.25, 3.0]);
    assert_eq!(x.bin_counts, vec![6, 2]);
    assert_eq!(p.options.bins, BinRule::Quantile(4));
}

#[test]
fn invalid_options_are_rejected() {
    let b = column(vec![1.0, 2.0]);
    for (bins, quantiles) in [
        (BinRule::Quantile(0), vec![0.5]),
        (BinRule::Count(0), vec![0.5]),
        (BinRule::Explicit(vec![0.0, f64::INFINITY]), vec![0.5]),
        (BinRule::Explicit(vec![1.0, 1.0]), vec![0.5]),
        (BinRule::Explicit(vec![1.0]), vec![0.5]),
        (BinRule::Fd, vec![0.5, 1.5]),
    ] {
        let opts = ProfileOptions {
            bins: bins.clone(),
            quantiles,
            ..Default::default()
        };
        let e = BaselineProfile::from_batches("bad", std::slice::from_ref(&b), &opts);
        assert!(
            matches!(e, Err(BaselineError::Invalid(_))),
            "{bins:?} accepted"
        );
    }
}

#[test]
fn non_default_options_round_trip() {
    let opts = ProfileOptions {
        max_sample: 3,
        bins: BinRule::Quantile(3),
        quantiles: vec![0.1, 0.9],
        row_sample: 2,
        iforest_trees: 7,
        iforest_sample: 4,
        seed: 9,
        categorical: vec![],
        covariance: CovarianceMethod::LedoitWolf,
        sketch_above: 12_345,
    };
    let p = BaselineProfile::from_batches("t", &[batch()], &opts).unwrap();
    assert_eq!(p.options, opts);
    let dir = std::env::temp_dir().join(format!("dw-baseline-opts-{}", std::process::id()));
    p.write_to(&dir).unwrap();
    let json = std::fs::read_to_string(dir.join("profile.json")).unwrap();
    let q = BaselineProfile::read_from(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(json.contains("\"Quantile\": 3"), "{json}");
    assert_eq!(format!("{p:?}"), format!("{q:?}"));
}

/// Files written before `Quantile` existed (and before the multivariate part) still read.
#[test]
fn old_bin_rules_still_read() {
    // Built with the former default (Freedman–Diaconis), as such files were.
    let fd = ProfileOptions {
        bins: BinRule::Fd,
        ..ProfileOptions::default()
    };
    let p = BaselineProfile::from_batches("t", &[batch()], &fd).unwrap();
    let dir = std::env::temp_dir().join(format!("dw-baseline-old-{}", std::process::id()));
    p.write_to(&dir).unwrap();
    let json = std::fs::read_to_string(dir.join("profile.json")).unwrap();
    assert!(json.contains("\"bins\": \"Fd\""), "{json}");
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    for (stored, rule) in [
        (serde_json::json!("Fd"), BinRule::Fd),
        (serde_json::json!("Sturges"), BinRule::Sturges),
        (serde_json::json!({"Count": 12}), BinRule::Count(12)),
        (
            serde_json::json!({"Explicit": ["0", "0.5", "4"]}),
            BinRule::Explicit(vec![0.0, 0.5, 4.0]),
        ),
    ] {
        value["bins"] = stored;
        value.as_object_mut().unwrap().remove("multivariate");
        std::fs::write(dir.join("profile.json"), value.to_string()).unwrap();
        let q = BaselineProfile::read_from(&dir).unwrap();
        assert_eq!(q.options.bins, rule);
        assert_eq!(q.options.row_sample, ProfileOptions::default().row_sample);
        assert_eq!(q.columns, p.columns);
    }
    std::fs::remove_dir_all(&dir).ok();
}
