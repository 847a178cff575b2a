//! The webhook sink end to end, in process: a HAVING monitor over a file source posts to a
//! local axum receiver (127.0.0.1:0) — one `firing` and one `resolved` per key for a
//! sustained drift, retries through 500s, and windows that do not wait for a receiver that
//! hangs.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use driftwatch::query::{OutputFormat, QueryEngine};
use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch::sinks::ResultStore;
use serde_json::Value;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const WINDOWS: i64 = 40;

/// What the receiver saw and how it answers.
#[derive(Default)]
struct Receiver {
    /// (Idempotency-Key, Authorization, body) of every request answered 2xx.
    got: Mutex<Vec<(String, String, Value)>>,
    requests: AtomicUsize,
    /// Answer 500 to the first this many requests.
    fail_first: usize,
    /// Never answer.
    hang: bool,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let n = r.requests.fetch_add(1, Ordering::SeqCst);
    if r.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if n < r.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    r.got
        .lock()
        .unwrap()
        .push((header("idempotency-key"), header("authorization"), body));
    StatusCode::OK
}

async fn serve(r: Arc<Receiver>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook/{token}", post(receive))
        .with_state(r);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook/SECRET-TOKEN")
}

/// One row per 100 ms for models `a` and `b`; `x` is 10 (drift) for `a` in windows 5..25
/// and for `b` in windows 8..30, else 1.
fn write_events(path: &Path) {
    let mut csv = String::from("ts,model,x\n");
    for i in 0..WINDOWS * 10 {
        let w = i / 10;
        for (model, drift) in [("a", 5..25), ("b", 8..30)] {
            let x = if drift.contains(&w) { 10 } else { 1 };
            csv.push_str(&format!("{},{model},{x}\n", T0 + i * 100));
        }
    }
    std::fs::write(path, csv).unwrap();
}

async fn run(dir: &Path, name: &str, url: &str, extra: &str) -> Driftwatch {
    let events = dir.join("events.csv");
    write_events(&events);
    let sql = format!(
        "CREATE SOURCE s (ts TIMESTAMP, model VARCHAR, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1 second')
           WITH (connector = 'file', path = '{}', format = 'csv', time_format = 'epoch_ms');
         CREATE MONITOR {name} WITH (sink = 'webhook', url = '{url}',
             headers = 'Authorization: Bearer HEADER-SECRET'{extra}) AS
           SELECT window_start, window_end, model, avg(x) AS x_avg
           FROM TUMBLE(s, ts, INTERVAL '1 second')
           GROUP BY window_start, window_end, model HAVING avg(x) > 5;",
        events.display()
    );
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.join("data"),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system.execute_script(&sql).await.unwrap();
    system.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), system.wait(None))
        .await
        .expect("bounded run ends")
        .unwrap();
    system
}

async fn stored(dir: &Path, name: &str) -> String {
    let store = ResultStore::new(dir.join("data"));
    let batches = QueryEngine::run(&store, &format!("SELECT count(*) AS c FROM {name}"))
        .await
        .unwrap();
    QueryEngine::render(&batches, OutputFormat::Csv).unwrap()
}

async fn wait_for(r: &Receiver, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while r.got.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Per model: (status, window_end in windows since T0) of what the receiver got.
fn sequence(got: &[(String, String, Value)], model: &str) -> Vec<(String, i64)> {
    got.iter()
        .filter(|(_, _, b)| b["key"]["model"] == model)
        .map(|(_, _, b)| {
            (
                b["status"].as_str().unwrap().to_string(),
                (ms(&b["window_end"]) - T0) / 1000,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_drift_is_one_firing_and_one_resolved_per_key() {
    let work = tempfile::tempdir().unwrap();
    let r = Arc::new(Receiver::default());
    let url = serve(Arc::clone(&r)).await;
    let _system = run(work.path(), "sustained", &url, ", cooldown = '5 seconds'").await;
    assert_eq!(
        stored(work.path(), "sustained").await,
        "c\n42\n",
        "20 + 22 alert rows stored"
    );
    wait_for(&r, 4, Duration::from_secs(20)).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "{got:#?}");
    let f = |s: &str, e: i64| (s.to_string(), e);
    assert_eq!(sequence(&got, "a"), [f("firing", 6), f("resolved", 25)]);
    assert_eq!(sequence(&got, "b"), [f("firing", 9), f("resolved", 30)]);
    for (id, auth, body) in &got {
        assert_eq!(
            id,
            body["id"].as_str().unwrap(),
            "Idempotency-Key is the body's id"
        );
        assert_eq!(auth, "Bearer HEADER-SECRET");
        assert_eq!(body["monitor"], "sustained");
        if body["status"] == "firing" {
            assert!(body["row"]["x_avg"].as_f64().unwrap() > 5.0, "{body}");
        } else {
            // Resolved when the window after the last alert passed without one.
            assert_eq!(ms(&body["resolved_at"]) - ms(&body["window_end"]), 1000);
        }
    }
    let ids: std::collections::BTreeSet<_> = got.iter().map(|g| g.0.clone()).collect();
    assert_eq!(ids.len(), 4, "distinct ids");
    let metrics = driftwatch::sinks::webhook::all_metrics();
    let m = &metrics.iter().find(|(n, _)| n == "sustained").unwrap().1;
    assert_eq!(m.pending.load(Ordering::Relaxed), 0);
    assert_eq!(m.firing.load(Ordering::Relaxed), 2);
    assert_eq!(m.resolved.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_and_delivered_once() {
    let work = tempfile::tempdir().unwrap();
    let r = Arc::new(Receiver {
        fail_first: 3,
        ..Receiver::default()
    });
    let url = serve(Arc::clone(&r)).await;
    let _system = run(work.path(), "retried", &url, "").await;
    wait_for(&r, 4, Duration::from_secs(30)).await;
    let got = r.got.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<_> = got.iter().map(|g| g.0.clone()).collect();
    assert_eq!(
        (got.len(), ids.len()),
        (4, 4),
        "each delivered once: {got:#?}"
    );
    assert_eq!(
        r.requests.load(Ordering::SeqCst),
        7,
        "3 failures, then 4 deliveries"
    );
    // In order per key, despite the retries.
    assert_eq!(sequence(&got, "a")[0].0, "firing");
    assert_eq!(sequence(&got, "a")[1].0, "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_the_windows_back() {
    let work = tempfile::tempdir().unwrap();
    let r = Arc::new(Receiver {
        hang: true,
        ..Receiver::default()
    });
    let url = serve(Arc::clone(&r)).await;
    let started = Instant::now();
    let system = run(
        work.path(),
        "hanging",
        &url,
        ", request_timeout = '60 seconds'",
    )
    .await;
    // The run waits at most FINISH_WAIT for the outbox at the end of its input.
    assert!(
        started.elapsed() < driftwatch::sinks::webhook::FINISH_WAIT + Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        stored(work.path(), "hanging").await,
        "c\n42\n",
        "every window is in the store"
    );
    assert!(
        r.requests.load(Ordering::SeqCst) >= 1,
        "the first notification is in flight"
    );
    assert!(r.got.lock().unwrap().is_empty());
    let metrics = driftwatch::sinks::webhook::all_metrics();
    let m = &metrics.iter().find(|(n, _)| n == "hanging").unwrap().1;
    assert_eq!(
        m.pending.load(Ordering::Relaxed),
        4,
        "all four wait in the outbox"
    );
    drop(system);
    let outbox =
        std::fs::read_to_string(work.path().join("data/webhooks/hanging/outbox.log")).unwrap();
    assert_eq!(outbox.lines().count(), 4);
    assert!(!outbox.contains("SECRET"), "no URL or header in the outbox");
}

#[tokio::test]
async fn a_row_level_monitor_with_a_webhook_sink_is_refused_at_create() {
    let work = tempfile::tempdir().unwrap();
    let events = work.path().join("events.csv");
    write_events(&events);
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: work.path().join("data"),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let sql = format!(
        "CREATE SOURCE s (ts TIMESTAMP, model VARCHAR, x DOUBLE, WATERMARK FOR ts AS ts)
           WITH (connector = 'file', path = '{}', format = 'csv', time_format = 'epoch_ms');
         CREATE MONITOR per_row WITH (sink = 'webhook', url = 'http://127.0.0.1:9/hook?token=SECRET')
           AS SELECT ts, model, x FROM s WHERE x > 5;",
        events.display()
    );
    let err = system.execute_script(&sql).await.unwrap_err().to_string();
    assert!(
        err.contains("per_row") && err.contains("needs a windowed monitor"),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "the URL is redacted: {err}");
}
