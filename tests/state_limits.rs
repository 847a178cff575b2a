//! Window state limits (`max_groups`, `max_state`, `max_open_windows`): a monitor crossing
//! one fails with a `ResourcesExhausted` error that names the limit, the value, the bound
//! and the option to raise; below the limits the results are those of an unlimited run,
//! and the operator's state gauge reports the state it holds.

mod common;

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::common::DataFusionError;
use driftwatch::engine::window_agg::{StateGauge, StateLimits};
use driftwatch_udfs::BaselineRegistry;

const SOURCE: &str = "CREATE SOURCE s (ts TIMESTAMP, k VARCHAR, v DOUBLE, \
                      WATERMARK FOR ts AS ts - INTERVAL '2 seconds') WITH (connector = 'http');";

type Run = common::Harness;

async fn start(monitor: &str, limits: StateLimits) -> Run {
    let sql = format!("{SOURCE}\n{monitor}");
    let registry = Arc::new(BaselineRegistry::new());
    let run = common::start_limited(&sql, None, &registry, None, limits)
        .await
        .expect("plans");
    assert!(run.gauge.is_some(), "a window operator");
    run
}

/// Rows over 20 s of event time, `keys` distinct keys per second.
fn events(keys: usize) -> Vec<(i64, String, f64)> {
    let t0 = 1_767_225_600_000i64;
    let mut out = Vec::new();
    for sec in 0..20i64 {
        for k in 0..keys {
            out.push((
                t0 + sec * 1_000 + (k as i64 % 1_000),
                format!("key-{k:05}"),
                (k % 97) as f64,
            ));
        }
    }
    out.sort_by_key(|e| e.0);
    out
}

/// Pushes every event in batches of 500; returns the stream's outcome.
async fn feed_all(
    run: Run,
    ev: &[(i64, String, f64)],
) -> (
    datafusion::common::Result<()>,
    Vec<RecordBatch>,
    Arc<StateGauge>,
) {
    for chunk in ev.chunks(500) {
        let rows: Vec<(i64, &str, f64)> = chunk.iter().map(|e| (e.0, e.1.as_str(), e.2)).collect();
        let pushed = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            run.feed.push(0, common::rows(&run.schema, &rows)),
        )
        .await;
        if !matches!(pushed, Ok(Ok(_))) {
            break;
        }
        if run.done.is_finished() {
            break;
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), run.feed.finish()).await;
    let outcome = run.done.await.expect("stream task");
    let results = run.results.lock().unwrap().clone();
    (outcome, results, run.gauge.expect("a window operator"))
}

fn resources_exhausted(outcome: datafusion::common::Result<()>) -> String {
    let err = outcome.expect_err("the monitor fails");
    let mut e = &err;
    loop {
        match e {
            DataFusionError::ResourcesExhausted(m) => return m.clone(),
            DataFusionError::Context(_, inner) => e = inner,
            DataFusionError::Shared(inner) => {
                if let DataFusionError::ResourcesExhausted(m) = inner.as_ref() {
                    return m.clone();
                }
                panic!("not ResourcesExhausted: {err}");
            }
            other => panic!("not ResourcesExhausted: {other}"),
        }
    }
}

const TUMBLE: &str = "CREATE MONITOR m AS SELECT window_start, window_end, k, count(*) AS n, \
    sum(v) AS s FROM TUMBLE(s, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end, k";

#[tokio::test]
async fn too_many_groups_fail_with_max_groups_message() {
    let limits = StateLimits {
        max_groups: 1_000,
        ..Default::default()
    };
    let (outcome, _, _) = feed_all(start(TUMBLE, limits).await, &events(3_000)).await;
    let msg = resources_exhausted(outcome);
    assert!(
        msg.contains("above max_groups = 1000") && msg.contains("WITH (max_groups = "),
        "{msg}"
    );
    assert!(msg.starts_with("window state has "), "{msg}");
}

#[tokio::test]
async fn too_much_state_fails_with_max_state_message() {
    let limits = StateLimits {
        max_state_bytes: 64 << 10,
        ..Default::default()
    };
    let (outcome, _, _) = feed_all(start(TUMBLE, limits).await, &events(3_000)).await;
    let msg = resources_exhausted(outcome);
    assert!(msg.starts_with("window state is "), "{msg}");
    assert!(
        msg.contains("above max_state = 64 KiB; raise it with WITH (max_state = '"),
        "{msg}"
    );
}

#[tokio::test]
async fn too_many_open_windows_fail_with_max_open_windows_message() {
    let limits = StateLimits {
        max_open_windows: 10,
        ..Default::default()
    };
    let monitor = "CREATE MONITOR m AS SELECT window_start, window_end, count(*) AS n \
        FROM HOP(s, ts, INTERVAL '1 second', INTERVAL '1 minute') GROUP BY window_start, window_end";
    let (outcome, _, _) = feed_all(start(monitor, limits).await, &events(10)).await;
    let msg = resources_exhausted(outcome);
    assert!(msg.contains("above max_open_windows = 10"), "{msg}");
}

#[tokio::test]
async fn below_the_limits_results_are_unchanged_and_usage_is_reported() {
    let ev = events(300);
    let limited = StateLimits {
        max_groups: 300,
        max_open_windows: 4,
        max_state_bytes: 8 << 20,
    };
    let unlimited = StateLimits {
        max_groups: usize::MAX,
        max_open_windows: usize::MAX,
        max_state_bytes: usize::MAX,
    };
    let run = start(TUMBLE, limited).await;
    let gauge = Arc::clone(run.gauge.as_ref().expect("a window operator"));
    // Mid-stream, the gauge reports open state.
    let rows: Vec<(i64, &str, f64)> = ev[..600].iter().map(|e| (e.0, e.1.as_str(), e.2)).collect();
    run.feed
        .push(0, common::rows(&run.schema, &rows))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gauge.get().groups < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let usage = gauge.get();
    assert_eq!(usage.groups, 300, "{usage:?}");
    assert!(
        usage.open_windows >= 1 && usage.bytes > 300 * 8,
        "{usage:?}"
    );
    let (outcome, limited_results, _) = feed_all(run, &ev[600..]).await;
    outcome.expect("below the limits");
    let (outcome, unlimited_results, _) =
        feed_all(start(TUMBLE, unlimited).await, &ev[600..]).await;
    outcome.expect("unlimited");
    // The limited run saw every row, the unlimited one all but the first 600: compare the
    // windows both saw completely (the second window on).
    let mut a = common::table(&limited_results);
    let mut b = common::table(&unlimited_results);
    let t1 = "2026-01-01T00:00:05";
    a.retain(|r| r[0].as_str() >= t1);
    b.retain(|r| r[0].as_str() >= t1);
    a.sort();
    b.sort();
    assert_eq!(a.len(), 300 * 3, "three full windows of 300 keys");
    assert_eq!(a, b);
}
