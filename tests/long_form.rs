//! The long `(feature, value)` view "just works" (issue 12, item 5): `features(src)` leaves
//! out metadata, event-time and id columns by default, `include` / `exclude` choose exactly,
//! mistakes are planning errors with a location and a suggestion, and a per-row feature that
//! the baseline lacks gives NULL (counted in `system.missing_features`) instead of killing
//! the monitor.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::UInt64Type;
use arrow::record_batch::RecordBatch;
use driftwatch::engine::input::is_id_column;
use driftwatch::runtime::{Driftwatch, Outcome, RuntimeConfig};
use driftwatch_sql::{analyze_monitor, parse_statements, Statement};
use driftwatch_udfs::{BaselineProfile, BaselineRegistry, ProfileOptions};

/// A source with Kafka-style metadata, id columns, two features and a string column.
const SOURCE: &str = "CREATE SOURCE w (ts TIMESTAMP, _partition INT, _offset BIGINT, \
     user_id BIGINT, \"deviceId\" INT, a DOUBLE, b BIGINT, tag VARCHAR, WATERMARK FOR ts AS ts) \
     WITH (connector = 'http');";

fn source_batch(schema: &arrow::datatypes::SchemaRef) -> RecordBatch {
    let n = 3;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(vec![0, 1_000, 2_000])),
        Arc::new(Int32Array::from(vec![0; n])),
        Arc::new(Int64Array::from(vec![7, 8, 9])),
        Arc::new(Int64Array::from(vec![100, 101, 102])),
        Arc::new(Int32Array::from(vec![5, 5, 6])),
        Arc::new(Float64Array::from(vec![1.5, 2.5, 3.0])),
        Arc::new(Int64Array::from(vec![10, 20, 30])),
        Arc::new(StringArray::from(vec!["x", "y", "z"])),
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

/// `(feature, count, sum)` per feature of `features(w, <args>)` over [`source_batch`].
async fn feature_sums(args: &str) -> Vec<Vec<String>> {
    let sql = format!(
        "{SOURCE} CREATE MONITOR m AS SELECT feature, count(value) AS n, sum(value) AS s \
         FROM TUMBLE(features(w{args}), ts, INTERVAL '10 seconds') GROUP BY window_start, feature"
    );
    let h = common::start(&sql, None).await.unwrap();
    let batch = source_batch(&h.schema.arrow);
    h.feed.push(0, batch).await.unwrap();
    let (results, _) = h.finish().await;
    let mut t = common::table(&results);
    t.sort();
    t
}

fn row(f: &str, n: &str, s: &str) -> Vec<String> {
    vec![f.to_string(), n.to_string(), s.to_string()]
}

#[tokio::test]
async fn default_features_leave_out_metadata_event_time_and_ids() {
    assert_eq!(
        feature_sums("").await,
        vec![row("a", "3", "7.0"), row("b", "3", "60.0")]
    );
}

#[tokio::test]
async fn columns_left_out_stay_ordinary_columns() {
    // user_id is not a feature, so it can be grouped by.
    let sql = format!(
        "{SOURCE} CREATE MONITOR m AS SELECT feature, max(user_id) AS u, max(_offset) AS o \
         FROM TUMBLE(features(w), ts, INTERVAL '10 seconds') GROUP BY window_start, feature"
    );
    let h = common::start(&sql, None).await.unwrap();
    let batch = source_batch(&h.schema.arrow);
    h.feed.push(0, batch).await.unwrap();
    let (results, _) = h.finish().await;
    let mut t = common::table(&results);
    t.sort();
    assert_eq!(t, vec![row("a", "102", "9"), row("b", "102", "9")]);
}

#[tokio::test]
async fn include_and_exclude_choose_the_features() {
    assert_eq!(
        feature_sums(", include => '_offset, A'").await,
        vec![row("_offset", "3", "24.0"), row("a", "3", "7.0")]
    );
    assert_eq!(
        feature_sums(", exclude => 'b'").await,
        vec![row("a", "3", "7.0")]
    );
    assert_eq!(
        feature_sums(", include => '*'").await,
        vec![
            row("_offset", "3", "24.0"),
            row("_partition", "3", "0.0"),
            row("a", "3", "7.0"),
            row("b", "3", "60.0"),
            row("deviceId", "3", "16.0"),
            row("user_id", "3", "303.0"),
        ]
    );
    assert_eq!(
        feature_sums(", include => '*', exclude => '_partition, _offset, deviceId, user_id'").await,
        vec![row("a", "3", "7.0"), row("b", "3", "60.0")]
    );
}

async fn plan_error(features: &str) -> String {
    let sql = format!(
        "{SOURCE}\nCREATE MONITOR m AS SELECT feature, count(*) FROM TUMBLE({features}, ts, \
         INTERVAL '10 seconds') GROUP BY window_start, feature"
    );
    match common::start(&sql, None).await {
        Ok(_) => panic!("{features} should not plan"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn wrong_feature_lists_are_located_planning_errors() {
    // The list starts at column 81 of line 2.
    let e = plan_error("features(w, include => 'a, bb')").await;
    assert!(
        e.contains("line 2, column 81: features(w): include names 'bb', which is not a column")
            && e.contains("did you mean 'b'?")
            && e.contains("numeric columns: _partition, _offset, user_id, deviceId, a, b"),
        "{e}"
    );
    let e = plan_error("features(w, include => 'tag')").await;
    assert!(
        e.contains(
            "line 2, column 81: features(w): include names 'tag', which is Utf8 and not numeric"
        ),
        "{e}"
    );
    let e = plan_error("features(w, include => 'ts')").await;
    assert!(e.contains("'ts', which is Timestamp"), "{e}");
    let e = plan_error("features(w, exclude => 'zz')").await;
    assert!(
        e.contains("exclude names 'zz', which is not a column"),
        "{e}"
    );
    let e = plan_error("features(w, exclude => 'a, b')").await;
    assert!(
        e.contains("features(w): no column left to unpivot")
            && e.contains("left out by default: _partition (metadata), _offset (metadata), user_id (id column), deviceId (id column)"),
        "{e}"
    );
}

fn analyze_error(from: &str) -> String {
    let sql = format!("CREATE MONITOR m AS SELECT * FROM {from}");
    let stmts = parse_statements(&sql).unwrap();
    let Statement::CreateMonitor(m) = &stmts[0] else {
        panic!()
    };
    let e = analyze_monitor(&m.query).unwrap_err();
    format!(
        "{}: {}",
        e.location.map(|l| l.to_string()).unwrap_or_default(),
        e.message
    )
}

#[test]
fn malformed_features_arguments_are_syntax_errors() {
    let e = analyze_error("features(w, inclde => 'a')");
    assert!(
        e.starts_with(
            "line 1, column 47: features(): unknown argument 'inclde'; did you mean include?"
        ),
        "{e}"
    );
    let e = analyze_error("features(w, include => a)");
    assert!(
        e.contains("include takes a string of comma-separated column names"),
        "{e}"
    );
    let e = analyze_error("features(w, include => 'a,,b')");
    assert!(e.contains("has an empty column name"), "{e}");
    let e = analyze_error("features(w, include => 'a', include => 'b')");
    assert!(e.contains("include is given twice"), "{e}");
    let e = analyze_error("features(w, exclude => '*')");
    assert!(e.contains("would leave no feature"), "{e}");
    let e = analyze_error("features(w, v)");
    assert!(e.contains("unexpected argument v"), "{e}");
    // Nested in a window, with both options.
    let stmts = parse_statements(
        "CREATE MONITOR m AS SELECT * FROM HOP(features(w, include => 'a, b', exclude => 'b'), \
         ts, INTERVAL '1' SECOND, INTERVAL '2' SECOND)",
    )
    .unwrap();
    let Statement::CreateMonitor(m) = &stmts[0] else {
        panic!()
    };
    let input = analyze_monitor(&m.query).unwrap();
    assert!(input.long_view);
    assert_eq!(input.features.include.unwrap().names, ["a", "b"]);
    assert_eq!(input.features.exclude.unwrap().names, ["b"]);
}

#[test]
fn id_column_rule() {
    for id in [
        "id",
        "ID",
        "user_id",
        "ORDER_ID",
        "userId",
        "deviceID",
        "sensor2Id",
    ] {
        assert!(is_id_column(id), "{id}");
    }
    for not in ["paid", "valid", "grid", "idle", "_id_x", "Id2", "width"] {
        assert!(!is_id_column(not), "{not}");
    }
}

/// Baseline `b` with columns `a` and `b` (no `c`).
fn registry() -> Arc<BaselineRegistry> {
    let batch = RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(Float64Array::from_iter_values(
                (0..50).map(|i| i as f64 / 10.0),
            )) as ArrayRef,
        ),
        (
            "b",
            Arc::new(Float64Array::from_iter_values(
                (0..50).map(|i| (i % 7) as f64),
            )) as ArrayRef,
        ),
    ])
    .unwrap();
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(BaselineProfile::from_batches("b", &[batch], &ProfileOptions::default()).unwrap());
    reg
}

/// Runs a long-form monitor computing `stat(value, 'b', feature)` over a source with columns
/// `cols` (all DOUBLE) and 2 windows of 4 rows; returns `(window_start, feature, stat)` rows,
/// sorted.
async fn stat_by_feature(
    stat: &str,
    cols: &[&str],
    reg: &Arc<BaselineRegistry>,
) -> Vec<Vec<String>> {
    let decl: Vec<String> = cols.iter().map(|c| format!("{c} DOUBLE")).collect();
    let sql = format!(
        "CREATE SOURCE s (ts TIMESTAMP, {}, WATERMARK FOR ts AS ts) WITH (connector = 'http');
         CREATE MONITOR m AS SELECT window_start, feature, {stat}(value, 'b', feature) AS v \
         FROM TUMBLE(features(s), ts, INTERVAL '10 seconds') GROUP BY window_start, feature",
        decl.join(", ")
    );
    let h = common::start_with(&sql, None, reg).await.unwrap();
    let ts: Vec<i64> = vec![0, 1_000, 2_000, 3_000, 10_000, 11_000, 12_000, 13_000];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(TimestampMillisecondArray::from(ts.clone()))];
    for (j, _) in cols.iter().enumerate() {
        columns.push(Arc::new(Float64Array::from_iter_values(
            (0..ts.len()).map(|i| (i * (j + 1)) as f64 / 3.0),
        )));
    }
    let batch = RecordBatch::try_new(Arc::clone(&h.schema.arrow), columns).unwrap();
    h.feed.push(0, batch).await.unwrap();
    let (results, _) = h.finish().await;
    let mut t = common::table(&results);
    t.sort();
    t
}

#[tokio::test]
async fn a_feature_missing_from_the_baseline_gives_null_and_is_counted() {
    for stat in ["ks_stat", "psi", "wasserstein", "chi2_pvalue"] {
        missing_feature_case(stat).await;
    }
}

async fn missing_feature_case(stat: &str) {
    let reg = registry();
    let with_c = stat_by_feature(stat, &["a", "b", "c"], &reg).await;
    let c_rows: Vec<&Vec<String>> = with_c.iter().filter(|r| r[1] == "c").collect();
    assert_eq!(c_rows.len(), 2, "{stat}: {with_c:?}");
    assert!(c_rows.iter().all(|r| r[2] == "NULL"), "{stat}: {with_c:?}");
    // The other features' values are those of a source without c.
    let without_c = stat_by_feature(stat, &["a", "b"], &reg).await;
    let others: Vec<Vec<String>> = with_c.into_iter().filter(|r| r[1] != "c").collect();
    assert_eq!(others, without_c, "{stat}");
    assert!(others.iter().all(|r| r[2] != "NULL"), "{stat}: {others:?}");
    // One NULL result per window of c.
    assert_eq!(
        reg.missing_features(),
        vec![("b".to_string(), "c".to_string(), 2)],
        "{stat}"
    );
}

#[tokio::test]
async fn row_level_long_form_outliers_give_null_per_row() {
    let reg = registry();
    let sql = "CREATE SOURCE s (ts TIMESTAMP, a DOUBLE, c DOUBLE) WITH (connector = 'http');
         CREATE MONITOR m AS SELECT feature, value, zscore(value, 'b', feature) AS z, \
         iqr_outlier(value, 'b', feature) AS o FROM features(s)";
    let h = common::start_with(sql, None, &reg).await.unwrap();
    let batch = RecordBatch::try_new(
        Arc::clone(&h.schema.arrow),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![0, 1, 2])),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 30.0])),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
        ],
    )
    .unwrap();
    h.feed.push(0, batch).await.unwrap();
    let (results, _) = h.finish().await;
    let t = common::table(&results);
    assert_eq!(t.len(), 6, "{t:?}");
    for r in &t {
        assert_eq!(r[0] == "c", r[2] == "NULL", "{t:?}");
        assert_eq!(r[0] == "c", r[3] == "NULL", "{t:?}");
    }
    // Three rows of c, each NULL in two functions.
    assert_eq!(
        reg.missing_features(),
        vec![("b".to_string(), "c".to_string(), 6)]
    );
}

#[tokio::test]
async fn a_missing_feature_fixed_in_the_sql_stays_a_planning_error() {
    let reg = registry();
    let sql = "CREATE SOURCE s (ts TIMESTAMP, a DOUBLE, WATERMARK FOR ts AS ts) WITH (connector = 'http');
         CREATE MONITOR m AS SELECT window_start, ks_stat(value, 'b', 'zz') AS ks \
         FROM TUMBLE(features(s), ts, INTERVAL '10 seconds') GROUP BY window_start";
    let e = match common::start_with(sql, None, &reg).await {
        Ok(_) => panic!("a fixed unknown feature must not plan"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("baseline 'b' has no numeric column 'zz'"), "{e}");
}

fn column_u64(b: &RecordBatch, name: &str) -> Vec<u64> {
    let c = b.column_by_name(name).unwrap().as_primitive::<UInt64Type>();
    (0..c.len()).map(|i| c.value(i)).collect()
}

fn column_str(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = b.column_by_name(name).unwrap().as_string::<i32>();
    (0..c.len()).map(|i| c.value(i).to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_table_and_explain_show_it() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("rows.jsonl");
    let mut lines = String::new();
    for i in 0..20 {
        let t = 1_767_225_600_000i64 + i * 1_000;
        lines.push_str(&format!(
            "{{\"ts\":{t},\"_offset\":{i},\"a\":{},\"c\":{}}}\n",
            i % 5,
            i % 3
        ));
    }
    std::fs::write(&file, lines).unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: work.path().join("data"),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system
        .execute_script(&format!(
            "CREATE SOURCE s (ts TIMESTAMP, _offset BIGINT, a DOUBLE, c DOUBLE, \
             WATERMARK FOR ts AS ts) \
             WITH (connector = 'file', path = '{}', format = 'jsonl', time_format = 'epoch_ms');
             CREATE BASELINE b AS SELECT CAST(column1 AS DOUBLE) AS a \
             FROM (VALUES (0), (1), (2), (3), (4), (2));
             CREATE MONITOR m AS SELECT window_start, feature, wasserstein(value, 'b', feature) AS w \
             FROM TUMBLE(features(s), ts, INTERVAL '5 seconds') GROUP BY window_start, feature;",
            file.display()
        ))
        .await
        .unwrap();
    let out = system.execute_script("EXPLAIN MONITOR m").await.unwrap();
    let Outcome::Rows(plan) = &out[0] else {
        panic!("{out:?}")
    };
    let physical = plan.column(1).as_string::<i32>().value(1).to_string();
    assert!(
        physical.contains("MonitorInputExec: source=s, features=[a, c]"),
        "{physical}"
    );
    system.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), system.wait(None))
        .await
        .unwrap()
        .unwrap();
    let snap = system.snapshot();
    assert!(
        snap.monitors.iter().all(|m| m.status != "failed"),
        "{:?}",
        snap.monitors
    );
    let tables = driftwatch::serve::system_tables::system_tables(&snap, 0).unwrap();
    let missing = &tables
        .iter()
        .find(|(n, _)| *n == "missing_features")
        .unwrap()
        .1;
    assert_eq!(column_str(missing, "baseline"), ["b"]);
    assert_eq!(column_str(missing, "feature"), ["c"]);
    // 20 rows over 5-second windows: 4 windows, each with a NULL for c.
    assert_eq!(column_u64(missing, "null_results"), [4]);
    let counters = &tables.iter().find(|(n, _)| *n == "counters").unwrap().1;
    let names = column_str(counters, "counter");
    assert!(
        names.contains(&"missing_feature_nulls".to_string()),
        "{names:?}"
    );
}

#[test]
fn missing_feature_counts_survive_replace_and_are_bounded() {
    let reg = registry();
    let p = reg.get("b").unwrap();
    p.missing_features.record("b", "c", 3);
    // CREATE OR REPLACE: the new profile counts into the same counter.
    let replaced = reg.insert((*p).clone());
    replaced.missing_features.record("b", "c", 1);
    assert_eq!(
        reg.missing_features(),
        vec![("b".to_string(), "c".to_string(), 4)]
    );
    // Distinct names are bounded; the rest are counted together.
    for i in 0..1_100 {
        replaced.missing_features.record("b", &format!("f{i}"), 1);
    }
    let counts = reg.missing_features();
    assert_eq!(counts.len(), 1_000 + 1, "1000 names plus (other)");
    let other = counts.iter().find(|(_, f, _)| f == "(other)").unwrap();
    assert_eq!(other.2, 101);
    // DROP BASELINE clears them.
    assert!(reg.remove("b"));
    assert!(reg.missing_features().is_empty());
}

#[tokio::test]
async fn iqr_outlier_takes_a_feature_column_or_k() {
    // Baseline a = 0.0, 0.1, …, 4.9: quartiles 1.225 and 3.675, IQR 2.45, so 9.0 is outside
    // the 1.5·IQR fences [-2.45, 7.35] and inside the 3·IQR ones [-6.125, 11.025].
    let reg = registry();
    let ctx = datafusion::prelude::SessionContext::new();
    driftwatch_udfs::register_all(&ctx, &reg);
    let batch = RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(Float64Array::from(vec![9.0, 9.0])) as ArrayRef,
        ),
        ("f", Arc::new(StringArray::from(vec!["a", "c"])) as ArrayRef),
    ])
    .unwrap();
    ctx.register_batch("cur", batch).unwrap();
    let out = ctx
        .sql(
            "SELECT iqr_outlier(a, 'b') AS k15, iqr_outlier(a, 'b', 3.0) AS k3, \
             iqr_outlier(a, 'b', f) AS long15, iqr_outlier(a, 'b', 3.0, f) AS long3 FROM cur",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        common::table(&out),
        vec![
            vec!["true", "false", "true", "false"],
            vec!["true", "false", "NULL", "NULL"],
        ]
    );
}
