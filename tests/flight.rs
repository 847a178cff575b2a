//! The Flight SQL server over a running system, through the arrow-flight Rust client:
//! queries, prepared statements with parameters, metadata, DDL, live follow, auth and roles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch::serve::{start_flight, DdlPolicy, FlightConfig};
use driftwatch_flight::arrow_flight::sql::client::FlightSqlServiceClient;
use driftwatch_flight::arrow_flight::sql::CommandGetTables;
use driftwatch_flight::arrow_flight::{FlightInfo, Ticket};
use driftwatch_flight::auth::hash_password;
use driftwatch_flight::tonic::transport::{Channel, Endpoint};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

const MONITORS: &str = "
CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '200 milliseconds')
WITH (connector = 'http', idle_timeout = '500 milliseconds');
CREATE MONITOR stats AS
SELECT window_start, window_end, count(*) AS n, avg(x) AS x_avg
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;
";

struct Running {
    flight: SocketAddr,
    ingest: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start(auth_file: Option<&str>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().join("data"),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system.execute_script(MONITORS).await.unwrap();
    system.start().await.unwrap();
    let auth_file = auth_file.map(|text| {
        let path = dir.path().join("users.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let config = FlightConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        auth_file,
        ..FlightConfig::default()
    };
    let policy = DdlPolicy::new([dir.path().to_path_buf()]);
    let server = start_flight(&system, &config, policy).await.unwrap();
    let ingest = format!("http://{}/ingest/s", system.http_addr().unwrap());
    let shutdown = system.shutdown_token();
    tokio::spawn(async move { system.wait(None).await });
    Running {
        flight: server.addr,
        ingest,
        shutdown,
        _dir: dir,
    }
}

async fn client(addr: SocketAddr) -> FlightSqlServiceClient<Channel> {
    let channel = Endpoint::new(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    FlightSqlServiceClient::new(channel)
}

/// Posts `n` rows in the second starting at `start_ms`.
async fn post_window(url: &str, start_ms: i64, n: i64) {
    let rows: Vec<_> = (0..n)
        .map(|i| serde_json::json!({"id": format!("{start_ms}-{i}"), "ts": start_ms + i * 10, "x": i as f64}))
        .collect();
    let resp = reqwest::Client::new()
        .post(url)
        .json(&rows)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
}

async fn fetch(c: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    c.do_get(ticket).await.unwrap().try_collect().await.unwrap()
}

async fn count(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> i64 {
    let info = c.execute(sql.to_string(), None).await.unwrap();
    let batches = fetch(c, info).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_parameters_metadata_ddl_and_follow() {
    let sys = start(None).await;
    let mut c = client(sys.flight).await;

    // Follow first, then produce windows: each arrives as it closes.
    let mut follow = c.do_get(Ticket::new("follow:stats")).await.unwrap();
    let base = (now_ms() / 1000 - 5) * 1000;
    for k in 0..3 {
        post_window(&sys.ingest, base + k * 1000, 5).await;
    }
    let first = tokio::time::timeout(Duration::from_secs(20), follow.try_next())
        .await
        .expect("a window within 20 s")
        .unwrap()
        .unwrap();
    assert_eq!(first.schema().field(2).name(), "n");
    assert_eq!(first.column(2).as_primitive::<Int64Type>().value(0), 5);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while count(&mut c, "SELECT count(*) FROM stats").await < 3 {
        assert!(tokio::time::Instant::now() < deadline, "windows not stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Prepared statement with a parameter.
    let mut stmt = c
        .prepare("SELECT count(*) AS c FROM stats WHERE n >= $1".into(), None)
        .await
        .unwrap();
    assert_eq!(
        stmt.parameter_schema().unwrap().field(0).data_type(),
        &DataType::Int64
    );
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![6]))],
    )
    .unwrap();
    stmt.set_parameters(params).unwrap();
    let info = stmt.execute().await.unwrap();
    let batches = fetch(&mut c, info).await;
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 0);

    // Metadata: tables with schemas.
    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("stats%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut c, info).await;
    let names: Vec<&str> = batches[0]
        .column(2)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(names, vec!["stats", "stats_late"]);

    // DDL as an update, visible in the system tables; then dropped.
    c.execute_update(
        "CREATE MONITOR m2 AS SELECT window_start, window_end, max(x) AS m \
         FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end"
            .into(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM system.monitors WHERE name = 'm2'"
        )
        .await,
        1
    );
    c.execute_update("DROP MONITOR m2".into(), None)
        .await
        .unwrap();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM system.monitors").await,
        1
    );
    sys.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_roles() {
    let users = format!(
        "[[users]]\nname = \"a\"\npassword_hash = \"{}\"\nrole = \"admin\"\n\
         [[users]]\nname = \"r\"\npassword_hash = \"{}\"\nrole = \"read\"\n",
        hash_password("pa"),
        hash_password("pr")
    );
    let sys = start(Some(&users)).await;
    let mut anon = client(sys.flight).await;
    assert!(anon.execute("SELECT 1".into(), None).await.is_err());
    assert!(anon.handshake("a", "wrong").await.is_err());
    anon.set_token("forged".into());
    let err = anon.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(
        err.to_string().contains("invalid or expired token"),
        "{err}"
    );

    let mut reader = client(sys.flight).await;
    reader.handshake("r", "pr").await.unwrap();
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM system.monitors").await,
        1
    );
    let err = reader
        .execute_update("DROP MONITOR stats".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only admins"), "{err}");

    let mut admin = client(sys.flight).await;
    admin.handshake("a", "pa").await.unwrap();
    admin
        .execute_update("DROP MONITOR stats".into(), None)
        .await
        .unwrap();
    assert_eq!(
        count(&mut admin, "SELECT count(*) FROM system.monitors").await,
        0
    );
    sys.shutdown.cancel();
}
