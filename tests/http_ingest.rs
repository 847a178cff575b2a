//! HTTP ingest over real loopback sockets: every body kind, and malformed bodies.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, Float64Type, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use driftwatch::runtime::metrics::SourceMetrics;
use driftwatch::sources::http::{HttpConnector, HttpIngest, HttpSettings};
use driftwatch::sources::{
    Connector, ConnectorSpec, FeedMessage, RejectMessage, SourceFeed, SourceSchema, TimeFormat,
    EVENT_TIME_TYPE,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const FEATURES: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

fn iris(name: &str) -> Arc<SourceSchema> {
    let mut fields = vec![
        Field::new("request_id", DataType::Utf8, true),
        Field::new("ts", EVENT_TIME_TYPE, false),
        Field::new("event_type", DataType::Utf8, true),
    ];
    fields.extend(
        FEATURES
            .iter()
            .map(|f| Field::new(*f, DataType::Float64, true)),
    );
    Arc::new(SourceSchema::new(name, fields, Some(("ts".into(), 6000)), TimeFormat::Auto).unwrap())
}

struct Source {
    feed: SourceFeed,
    rows: mpsc::UnboundedReceiver<RecordBatch>,
    rejected: mpsc::Receiver<RejectMessage>,
}

/// A feed with one subscriber that forwards batches and acknowledges them.
fn source(schema: Arc<SourceSchema>) -> Source {
    let (reject_tx, rejected) = mpsc::channel(4096);
    let feed = SourceFeed::new(schema, None, reject_tx, Arc::new(SourceMetrics::default()));
    let mut sub = feed.subscribe("test");
    let (tx, rows) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = sub.recv().await {
            if let FeedMessage::Batch { batch, taken, .. } = msg {
                let _ = tx.send(batch);
                if let Some(t) = taken {
                    let _ = t.send(());
                }
            }
        }
    });
    Source {
        feed,
        rows,
        rejected,
    }
}

async fn serve(ingest: Arc<HttpIngest>) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(ingest.serve(listener, shutdown.clone()));
    (format!("http://{addr}"), shutdown)
}

async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<String>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).body(body.into());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// All rows delivered so far (they are in the engine before the 200 is sent).
fn drain(src: &mut Source) -> Vec<RecordBatch> {
    std::iter::from_fn(|| src.rows.try_recv().ok()).collect()
}

fn col_f64(b: &RecordBatch, name: &str) -> Vec<f64> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>()
        .values()
        .to_vec()
}
fn col_ts(b: &RecordBatch) -> Vec<i64> {
    b.column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .to_vec()
}
fn col_str(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(name).unwrap().as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

#[tokio::test]
async fn inference_log_envelopes() {
    let ingest = HttpIngest::new();
    let mut src = source(iris("iris"));
    ingest.register("iris", src.feed.clone()).unwrap();
    let (base, _stop) = serve(ingest).await;
    let url = format!("{base}/ingest/iris");

    // Unix seconds (fractional), positional instances: one row per instance.
    let body = json!({"type": "request", "id": "r1", "time": 1700000000.25,
        "payload": {"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}});
    let (status, answer) = post(&url, &[], body.to_string()).await;
    assert_eq!((status, answer), (200, json!({"accepted": 2})));
    let b = drain(&mut src);
    assert_eq!(b.len(), 1);
    assert_eq!(col_ts(&b[0]), vec![1_700_000_000_250; 2]);
    assert_eq!(col_f64(&b[0], "sepal_length"), vec![5.1, 6.2]);
    assert_eq!(col_f64(&b[0], "petal_width"), vec![0.2, 1.3]);
    assert_eq!(col_str(&b[0], "request_id"), vec![Some("r1".into()); 2]);
    assert_eq!(
        col_str(&b[0], "event_type"),
        vec![Some("request".into()); 2]
    );

    // NDJSON of envelopes, RFC 3339 time, object instances with a missing field.
    let body = format!(
        "{}\n{}\n",
        json!({"type": "request", "id": "r2", "time": "2023-11-14T22:13:21.5Z",
            "payload": {"instances": [{"sepal_length": 1.0, "petal_width": 2.0, "other": "x"}]}}),
        json!({"payload": {"instances": [[1, 2, 3, 4]]}, "time": "2023-11-14T22:13:22Z", "id": 7, "type": "request"})
    );
    let (status, answer) = post(&url, &[], body).await;
    assert_eq!(
        (status, answer),
        (200, json!({"accepted": 2, "unknown_fields": 1}))
    );
    let b = drain(&mut src);
    assert_eq!(col_ts(&b[0]), vec![1_700_000_001_500, 1_700_000_002_000]);
    assert_eq!(
        col_str(&b[0], "request_id"),
        vec![Some("r2".into()), Some("7".into())]
    );
    assert!(b[0].column_by_name("sepal_width").unwrap().is_null(0));
    assert_eq!(col_f64(&b[0], "petal_length")[1], 3.0);

    // A JSON array of envelopes; a response maps predictions onto the remaining columns.
    let body = json!([
        {"type": "request", "id": "a", "time": 1700000010, "payload": {"instances": [[1, 1, 1, 1]]}},
        {"type": "response", "id": "a", "time": 1700000011, "payload": {"predictions": [[0.1, 0.2, 0.3, 0.4]]}}
    ]);
    let (status, answer) = post(&url, &[], body.to_string()).await;
    assert_eq!((status, answer), (200, json!({"accepted": 2})));
    let b = drain(&mut src);
    assert_eq!(
        col_str(&b[0], "event_type"),
        vec![Some("request".into()), Some("response".into())]
    );
    assert_eq!(col_ts(&b[0]), vec![1_700_000_010_000, 1_700_000_011_000]);
}

#[tokio::test]
async fn kserve_cloudevents_and_plain_rows() {
    let ingest = HttpIngest::new();
    let mut src = source(iris("iris"));
    ingest.register("iris", src.feed.clone()).unwrap();
    let (base, _stop) = serve(ingest).await;
    let url = format!("{base}/ingest/iris");
    let ce = |t: &'static str| {
        vec![
            ("ce-type", t),
            ("ce-id", "ce-1"),
            ("ce-time", "2023-11-14T22:13:20.123Z"),
            ("ce-source", "http://localhost:9081/"),
            ("ce-specversion", "1.0"),
            ("content-type", "application/json"),
        ]
    };

    // v1 body in binary-mode CloudEvent.
    let body = json!({"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]});
    let (status, _) = post(
        &url,
        &ce("org.kubeflow.serving.inference.request"),
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let b = drain(&mut src);
    assert_eq!(col_ts(&b[0]), vec![1_700_000_000_123; 2]);
    assert_eq!(col_str(&b[0], "request_id"), vec![Some("ce-1".into()); 2]);
    assert_eq!(col_f64(&b[0], "sepal_length"), vec![6.8, 6.0]);

    // v2: one [n, k] input is positional (flat data, row-major).
    let body = json!({"id": "v2", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
        "data": [1, 2, 3, 4, 5, 6, 7, 8]}]});
    let (status, _) = post(
        &url,
        &ce("org.kubeflow.serving.inference.request"),
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let b = drain(&mut src);
    assert_eq!(col_f64(&b[0], "sepal_width"), vec![2.0, 6.0]);
    assert_eq!(col_f64(&b[0], "petal_width"), vec![4.0, 8.0]);

    // v2: several [n] / [n, 1] inputs map to columns by name; no CE headers.
    let body = json!({"inputs": [
        {"datatype": "FP64", "data": [[1.5], [2.5]], "name": "petal_length", "shape": [2, 1]},
        {"name": "sepal_length", "shape": [2], "datatype": "FP64", "data": [0.5, 0.75]}]});
    let (status, answer) = post(&url, &[], body.to_string()).await;
    assert_eq!((status, answer), (200, json!({"accepted": 2})));
    let b = drain(&mut src);
    assert_eq!(col_f64(&b[0], "petal_length"), vec![1.5, 2.5]);
    assert_eq!(col_f64(&b[0], "sepal_length"), vec![0.5, 0.75]);
    assert_eq!(b[0].column_by_name("sepal_width").unwrap().null_count(), 2);

    // Plain rows: an object, an array of objects, NDJSON.
    let row = |id: &str, ts: Value| json!({"request_id": id, "ts": ts, "sepal_length": 1.25});
    let (status, _) = post(
        &url,
        &[],
        row("p1", json!("2023-11-14T22:13:20Z")).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &url,
        &[],
        json!([row("p2", json!(1_700_000_000_500i64)), row("p3", json!(1))]).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let ndjson = format!("{}\n{}\n", row("p4", json!(5)), row("p5", json!(6)));
    let (status, answer) = post(&url, &[], ndjson).await;
    assert_eq!((status, answer), (200, json!({"accepted": 2})));
    let b = drain(&mut src);
    let ids: Vec<_> = b
        .iter()
        .flat_map(|b| col_str(b, "request_id"))
        .flatten()
        .collect();
    assert_eq!(ids, ["p1", "p2", "p3", "p4", "p5"]);
    let ts: Vec<_> = b.iter().flat_map(col_ts).collect();
    assert_eq!(ts, [1_700_000_000_000, 1_700_000_000_500, 1, 5, 6]);
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_dead_lettered() {
    let ingest = HttpIngest::with_settings(HttpSettings {
        body_limit: 4096,
        ..HttpSettings::default()
    });
    let mut src = source(iris("iris"));
    ingest.register("iris", src.feed.clone()).unwrap();
    let (base, _stop) = serve(ingest).await;
    let url = format!("{base}/ingest/iris");

    let cases: Vec<(String, &str)> = vec![
        ("{\"type\": \"request\", \"payload\": {\"instances\": [[1,2,3,4]]".into(), "malformed JSON"),
        (
            json!({"type": "request", "id": "x", "time": 1, "payload": {"instances": [[1, 2, 3, 4], [1, 2, 3]]}}).to_string(),
            "instance 1: expected 4 values (sepal_length, sepal_width, petal_length, petal_width), got 3",
        ),
        (
            json!({"type": "request", "id": "x", "time": "yesterday", "payload": {"instances": [[1, 2, 3, 4]]}}).to_string(),
            "field \"time\": expected unix seconds or RFC 3339, got \"yesterday\"",
        ),
        (
            json!({"type": "request", "time": 1, "payload": {"instances": [[1, "big", 3, 4]]}}).to_string(),
            "instance 0, column 'sepal_width': expected a number, got a string \"big\"",
        ),
        (json!({"request_id": "a", "ts": "noon"}).to_string(), "line 1: column 'ts'"),
        (json!({"inputs": [{"name": "x", "shape": [3, 4], "data": [1, 2]}]}).to_string(), "needs 12 values, got 2"),
        (
            json!({"instances": [{"sepal": 1}]}).to_string(),
            "instance 0: no field matches a column (sepal_length, sepal_width, petal_length, petal_width)",
        ),
        ("42".into(), "expected a JSON object or array"),
        ("\u{0}\u{1}garbage".into(), "expected a JSON object or array"),
    ];
    for (body, expected) in &cases {
        let (status, answer) = post(&url, &[], body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{body}\n→ {message}\nwanted {expected}"
        );
        let rejected = src.rejected.recv().await.unwrap().records();
        assert_eq!(rejected[0].raw, *body);
        assert_eq!(rejected[0].reason, message);
    }
    assert!(
        drain(&mut src).is_empty(),
        "nothing of a refused body reaches the engine"
    );

    let (status, answer) = post(&format!("{base}/ingest/nope"), &[], "{}").await;
    assert_eq!(status, 404);
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("unknown source 'nope' (HTTP sources: iris)"));

    let (status, answer) = post(&url, &[], "x".repeat(10_000)).await;
    assert_eq!(status, 413);
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("4096 bytes (4 KiB)") && message.contains("--http-body-limit"),
        "{message}"
    );

    let ce = [
        ("ce-type", "org.kubeflow.serving.inference.request"),
        ("ce-time", "soon"),
    ];
    let (status, answer) = post(&url, &ce, json!({"instances": [[1, 2, 3, 4]]}).to_string()).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("ce-time"),
        "{answer}"
    );

    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn connector_lifecycle_default_route_and_log_type() {
    let ingest = HttpIngest::new();
    let (base, _stop) = serve(ingest.clone()).await;
    let mut src = source(iris("iris"));
    let spec = ConnectorSpec::new(
        src.feed.schema().clone(),
        [
            ("connector".to_string(), "http".to_string()),
            ("log_type".into(), "request".into()),
        ]
        .into(),
    );
    let connector = Arc::new(HttpConnector::from_spec(&spec, ingest.clone()).unwrap());
    assert!(!connector.is_bounded());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(connector.run(src.feed.clone(), shutdown.clone()));
    while ingest.source_names().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // POST / goes to the only source; responses are ignored with log_type = 'request'.
    let body = json!([
        {"type": "response", "id": "a", "time": 5, "payload": {"predictions": [[1, 1, 1, 1]]}},
        {"type": "request", "id": "a", "time": 5, "payload": {"instances": [[2, 2, 2, 2]]}}
    ]);
    let (status, answer) = post(&format!("{base}/"), &[], body.to_string()).await;
    assert_eq!(
        (status, answer),
        (200, json!({"accepted": 1, "ignored": 1}))
    );
    assert_eq!(col_f64(&drain(&mut src)[0], "sepal_length"), vec![2.0]);

    let other = source(iris("other"));
    ingest.register("other", other.feed.clone()).unwrap();
    assert!(ingest.register("other", other.feed.clone()).is_err());
    let (status, answer) = post(&format!("{base}/"), &[], "{}").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("iris, other"),
        "{answer}"
    );

    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(ingest.source_names(), vec!["other".to_string()]);

    let bad = ConnectorSpec::new(iris("x"), [("topic".to_string(), "t".to_string())].into());
    let err = HttpConnector::from_spec(&bad, ingest)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown option 'topic'") && err.contains("log_type"),
        "{err}"
    );
}

/// What ingest questions: unknown fields, missing payloads, encodings, content types, size.
#[path = "http_ingest/questioning.rs"]
mod questioning;
