//! Operations endpoints of a running system (issue 13): the gRPC health service on the
//! Flight port follows readiness (NOT_SERVING while the system starts, SERVING once sources
//! are connected and state restored), and `/ready`, `/health`, `/metrics` answer on the HTTP
//! port.

use std::time::Duration;

use driftwatch::ops::OpsSettings;
use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch::serve::{start_flight, DdlPolicy, FlightConfig};
use driftwatch::sources::http::HttpSettings;
use driftwatch_flight::tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const MONITORS: &str = "
CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '200 milliseconds')
WITH (connector = 'http');
CREATE MONITOR stats AS
SELECT window_start, window_end, count(*) AS n
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;
";

async fn status(
    client: &mut HealthClient<driftwatch_flight::tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    let answer = client
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(answer.status).unwrap()
}

#[tokio::test]
async fn grpc_health_follows_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().join("data"),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        http: HttpSettings {
            ops: OpsSettings {
                enabled: true,
                metrics_auth: false,
            },
            ..HttpSettings::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    system.execute_script(MONITORS).await.unwrap();
    let config = FlightConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..FlightConfig::default()
    };
    // Flight before start: the catalog is loaded but connectors are not running yet.
    let server = start_flight(&system, &config, DdlPolicy::new([dir.path().to_path_buf()]))
        .await
        .unwrap();
    let channel = Endpoint::new(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    assert_eq!(status(&mut health, "").await, ServingStatus::NotServing);
    let flight = "arrow.flight.protocol.FlightService";
    assert_eq!(status(&mut health, flight).await, ServingStatus::NotServing);
    assert!(!system.ops().readiness().ready);

    system.start().await.unwrap();
    let base = format!("http://{}", system.http_addr().unwrap());
    let shutdown = system.shutdown_token();
    let run = tokio::spawn(async move { system.wait(None).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&mut health, "").await != ServingStatus::Serving {
        assert!(tokio::time::Instant::now() < deadline, "never SERVING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&mut health, flight).await, ServingStatus::Serving);
    assert!(health
        .check(HealthCheckRequest {
            service: "no.such.Service".into()
        })
        .await
        .is_err());

    let http = reqwest::Client::new();
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    for path in ["/health", "/healthz"] {
        let live = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(live.status(), 200, "{path}");
    }
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        metrics.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("driftwatch_ready 1"), "{text}");
    assert!(
        text.contains("driftwatch_monitor_windows_total{monitor=\"stats\",source=\"s\"} 0"),
        "{text}"
    );

    shutdown.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn ops_endpoints_are_opt_in_for_embedded_systems() {
    // Without `ops.enabled` and without an HTTP source, nothing listens.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.jsonl");
    std::fs::write(&file, "{\"ts\": 1000, \"x\": 1}\n").unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().join("data"),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system
        .execute_script(&format!(
            "CREATE SOURCE f (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts) WITH \
             (connector = 'file', path = '{}', format = 'jsonl', time_format = 'epoch_ms');",
            file.display()
        ))
        .await
        .unwrap();
    system.start().await.unwrap();
    assert_eq!(system.http_addr(), None);
    // The readiness is still tracked (a CLI-less embedder may read it).
    assert!(system.ops().readiness().ready);
    system.wait(None).await.unwrap();
}
