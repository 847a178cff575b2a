//! One monitor file, two modes: the same rows replayed from a file (`replay = 'fast'`) and
//! posted over HTTP produce identical result tables; `driftwatch demo` detects the drifted
//! features and only those.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use driftwatch::demo::{run_demo, DemoOptions, DRIFTED_FEATURES};
use driftwatch::query::{OutputFormat, QueryEngine};
use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch::sinks::ResultStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MONITORS: &str = "
CREATE BASELINE train FROM '{TRAIN}';
CREATE MONITOR stats AS
  SELECT window_start, window_end, count(*) AS n, avg(sepal_length) AS sl_avg,
         stddev(petal_length) AS pl_std, min(petal_width) AS pw_min, max(petal_width) AS pw_max
  FROM TUMBLE(iris, ts, INTERVAL '2 seconds') GROUP BY window_start, window_end;
CREATE MONITOR drift AS
  SELECT window_start, window_end, feature, count(*) AS n,
         wasserstein(value, 'train', feature) AS w, ks_pvalue(value, 'train', feature) AS ks_p
  FROM HOP(features(iris), ts, INTERVAL '1 second', INTERVAL '3 seconds')
  GROUP BY window_start, window_end, feature;
CREATE MONITOR outliers AS
  SELECT request_id, ts, zscore(petal_length, 'train') AS z
  FROM iris WHERE abs(zscore(petal_length, 'train')) > 2;
";

fn source(connector: &str) -> String {
    format!(
        "CREATE SOURCE iris (request_id VARCHAR, ts TIMESTAMP, sepal_length DOUBLE, sepal_width DOUBLE,
            petal_length DOUBLE, petal_width DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second')
         WITH ({connector}, time_format = 'epoch_ms', idle_timeout = '200 ms');"
    )
}

/// Iris-like rows over 20 s of event time, drifting halfway, shuffled by less than the
/// watermark delay.
fn generate_rows(n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(42);
    let t0 = 1_767_225_600_000i64;
    let mut rows: Vec<(i64, String)> = (0..n)
        .map(|i| {
            let ts = t0 + (i as i64) * 20_000 / n as i64;
            let shift = if i >= n / 2 { 1.5 } else { 0.0 };
            let jitter = ts + rng.gen_range(0..800);
            let row = format!(
                r#"{{"request_id":"r{i}","ts":{ts},"sepal_length":{:.3},"sepal_width":{:.3},"petal_length":{:.3},"petal_width":{:.3}}}"#,
                rng.gen_range(4.3..7.9),
                rng.gen_range(2.0..4.4),
                rng.gen_range(1.0..6.9) + shift,
                rng.gen_range(0.1..2.5),
            );
            (jitter, row)
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|r| r.1).collect()
}

fn monitors() -> String {
    let train = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iris/train.csv");
    MONITORS.replace("{TRAIN}", &train.display().to_string())
}

async fn query(dir: &Path, sql: &str) -> String {
    let batches = QueryEngine::run(&ResultStore::new(dir), sql).await.unwrap();
    QueryEngine::render(&batches, OutputFormat::Csv).unwrap()
}

const CHECKS: &[&str] = &[
    "SELECT * FROM stats ORDER BY window_start",
    "SELECT * FROM drift ORDER BY window_start, feature",
    "SELECT * FROM outliers ORDER BY request_id",
    "SELECT count(*) FROM stats_late",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_replay_and_http_ingest_give_identical_result_tables() {
    let rows = generate_rows(4_000);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("inference.jsonl");
    std::fs::write(&file, rows.join("\n") + "\n").unwrap();

    // 1. File source, fast replay: ends by itself.
    let file_dir = work.path().join("from-file");
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: file_dir.clone(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let sql = format!(
        "{}\n{}",
        source(&format!(
            "connector = 'file', path = '{}', format = 'jsonl', replay = 'fast'",
            file.display()
        )),
        monitors()
    );
    system.execute_script(&sql).await.unwrap();
    system.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), system.wait(None))
        .await
        .unwrap()
        .unwrap();
    let expected_windows = query(&file_dir, "SELECT count(*) AS c FROM drift").await;

    // 2. HTTP source fed the same rows by a client, in chunks.
    let http_dir = work.path().join("from-http");
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: http_dir.clone(),
        http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let sql = format!("{}\n{}", source("connector = 'http'"), monitors());
    system.execute_script(&sql).await.unwrap();
    system.start().await.unwrap();
    let url = format!("http://{}/ingest/iris", system.http_addr().unwrap());
    let shutdown = system.shutdown_token();
    let runner = tokio::spawn(async move { system.wait(None).await });
    let client = reqwest::Client::new();
    for chunk in rows.chunks(97) {
        let resp = client
            .post(&url)
            .body(chunk.join("\n"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
    // Traffic stops: the idle timeout lets the last windows close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = query(&http_dir, "SELECT count(*) AS c FROM drift").await;
        if got == expected_windows || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    shutdown.cancel();
    runner.await.unwrap().unwrap();

    for check in CHECKS {
        let a = query(&file_dir, check).await;
        let b = query(&http_dir, check).await;
        assert!(a.lines().count() > 1, "{check} returned nothing");
        assert_eq!(a, b, "{check} differs between file replay and HTTP ingest");
    }
    // The drift monitor saw the shift of petal_length in the second half.
    let drifted = query(
        &file_dir,
        "SELECT count(*) FROM drift WHERE feature = 'petal_length' AND ks_p < 0.001",
    )
    .await;
    assert_ne!(
        drifted.lines().nth(1),
        Some("0"),
        "petal_length drift detected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_reports_drift_on_drifted_features_only() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run_demo(DemoOptions {
        duration: Duration::from_secs(22),
        drift_after: Duration::from_secs(8),
        rate: 200,
        data_dir: dir.path().to_path_buf(),
        http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        print: false,
    })
    .await
    .unwrap();
    assert!(summary.rows_posted > 3_000, "{summary:?}");
    // Every injected millimetre reading is flagged by the outlier monitor, and nothing else
    // (drifted petals stay below |z| = 3).
    assert!(summary.outliers_injected > 0, "{summary:?}");
    assert_eq!(
        summary.outliers_flagged, summary.outliers_injected,
        "{summary:?}"
    );
    assert_eq!(
        summary.drifted_features(),
        DRIFTED_FEATURES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
        "{summary:?}"
    );
    for (feature, (windows, flagged)) in &summary.before {
        assert!(*windows > 0);
        assert_eq!(
            *flagged, 0,
            "{feature} flagged before the drift: {summary:?}"
        );
    }
    for (feature, (windows, flagged)) in &summary.after {
        assert!(*windows > 0, "{feature}");
        if !DRIFTED_FEATURES.contains(&feature.as_str()) {
            assert_eq!(*flagged, 0, "{feature} flagged without drift: {summary:?}");
        }
    }
}
