//! The live page's HTTP API on a running system: parameter validation (unknown names 404,
//! bad `since`/`limit` 400, limits capped), the baseline endpoint, and the framing of the
//! server-sent events (hello, then one `result` event per emitted window).

use std::net::SocketAddr;
use std::time::Duration;

use driftwatch::runtime::{Driftwatch, RuntimeConfig};

const SQL: &str = "
CREATE SOURCE s (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts)
WITH (connector = 'http', idle_timeout = '500 milliseconds');
CREATE BASELINE b FROM 'train.csv';
CREATE MONITOR stats AS
SELECT window_start, window_end, count(*) AS n, avg(x) AS x_avg
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;
";

struct Running {
    addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let train: String = (0..100).map(|i| format!("{}\n", i % 10)).collect();
    std::fs::write(dir.path().join("train.csv"), format!("x\n{train}")).unwrap();
    let sql = SQL.replace(
        "'train.csv'",
        &format!("'{}'", dir.path().join("train.csv").display()),
    );
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().join("data"),
        http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..RuntimeConfig::default()
    })
    .unwrap();
    driftwatch::web::install(&system);
    system.execute_script(&sql).await.unwrap();
    system.start().await.unwrap();
    let addr = system.http_addr().expect("HTTP port bound");
    let stop = system.shutdown_token();
    let task = tokio::spawn(async move {
        system.wait(None).await.unwrap();
    });
    Running {
        addr,
        stop,
        task,
        _dir: dir,
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_validates_names_and_parameters() {
    let s = start().await;
    let a = s.addr;

    let (status, body) = get(a, "/api/monitors").await;
    assert_eq!(status, 200, "{body}");
    let monitors = body["monitors"].as_array().unwrap();
    assert_eq!(monitors.len(), 1);
    assert_eq!(monitors[0]["name"], "stats");
    assert_eq!(monitors[0]["source"], "s");
    assert_eq!(monitors[0]["baseline"], serde_json::Value::Null);
    assert_eq!(monitors[0]["alerts"], false);

    let (status, body) = get(a, "/api/monitors/nope/results").await;
    assert_eq!(status, 404);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("unknown monitor 'nope'") && message.contains("stats"),
        "{message}"
    );

    let (status, body) = get(a, "/api/monitors/stats/results?since=yesterday").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("since"), "{body}");
    for bad in ["0", "-3", "many"] {
        let (status, body) = get(a, &format!("/api/monitors/stats/results?limit={bad}")).await;
        assert_eq!(status, 400, "limit={bad}: {body}");
    }
    let (status, body) = get(a, "/api/monitors/stats/results?limit=99999999&since=0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limit"], driftwatch::web::api::MAX_LIMIT);
    assert_eq!(body["rows"], serde_json::json!([]));
    let (status, _) = get(a, "/api/monitors/stats/results?since=2026-01-01T00:00:00Z").await;
    assert_eq!(status, 200);

    let (status, _) = get(a, "/api/monitors/nope/events").await;
    assert_eq!(status, 404);

    let (status, body) = get(a, "/api/baselines/nope/x").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("baselines: b"),
        "{body}"
    );
    let (status, body) = get(a, "/api/baselines/b/y").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("columns: x"),
        "{body}"
    );
    let (status, body) = get(a, "/api/baselines/b/x").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "numeric");
    let edges = body["bin_edges"].as_array().unwrap().len();
    let counts: Vec<u64> = body["bin_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(edges, counts.len() + 1);
    assert_eq!(counts.iter().sum::<u64>(), 100);

    let (status, _) = get(a, "/assets/nope.js").await;
    assert_eq!(status, 404);
    let page = reqwest::get(format!("http://{a}/")).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/uPlot.iife.min.js") && !html.contains("https://"));

    s.stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.task).await;
}

/// Reads SSE frames (blank-line separated) until `want` frames are complete.
async fn frames(r: &mut reqwest::Response, buf: &mut String, want: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let complete: Vec<String> = buf
            .split("\n\n")
            .filter(|f| !f.trim().is_empty() && !f.starts_with(':'))
            .map(str::to_string)
            .collect();
        if buf.ends_with("\n\n") && complete.len() >= want {
            return complete;
        }
        let chunk = tokio::time::timeout_at(deadline, r.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .expect("stream open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_framed_one_json_line_per_result() {
    let s = start().await;
    let a = s.addr;
    let mut events = reqwest::get(format!("http://{a}/api/monitors/stats/events"))
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert_eq!(
        events.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut buf = String::new();
    let hello = frames(&mut events, &mut buf, 1).await;
    assert!(
        hello[0].starts_with("event: hello\ndata: {\"now_ms\":"),
        "{hello:?}"
    );

    // Two windows: [0 s, 1 s) closes when the row at 1.5 s moves the watermark.
    let rows = r#"[{"ts":"2026-01-01T00:00:00.100Z","x":1.0},{"ts":"2026-01-01T00:00:00.200Z","x":3.0},{"ts":"2026-01-01T00:00:01.500Z","x":5.0}]"#;
    let client = reqwest::Client::new();
    let posted = client
        .post(format!("http://{a}/ingest/s"))
        .header("content-type", "application/json")
        .body(rows)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 200);

    let all = frames(&mut events, &mut buf, 2).await;
    let result = &all[1];
    let mut lines = result.lines();
    assert_eq!(lines.next(), Some("event: result"));
    let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
    assert_eq!(lines.next(), None, "one data line per event: {result}");
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["monitor"], "stats");
    let row = &v["rows"][0];
    assert_eq!(row["n"], 2);
    assert_eq!(row["x_avg"], 2.0);
    // Timestamps as epoch milliseconds.
    assert_eq!(row["window_end"], 1_767_225_601_000_i64);

    // The monitor list now knows the result's shape.
    let (_, body) = get(a, "/api/monitors").await;
    let shape = &body["monitors"][0]["shape"];
    assert_eq!(shape["time"]["kind"], "window");
    assert_eq!(shape["measures"], serde_json::json!(["n", "x_avg"]));

    s.stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.task).await;
}
