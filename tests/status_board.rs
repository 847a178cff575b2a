//! Snapshots (what `system.*` tables and status lines show) are read from the status board,
//! never through the control loop: they answer while the loop serves nothing, and show
//! every statement whose reply was sent.

use std::net::SocketAddr;
use std::time::Duration;

use driftwatch::runtime::{Driftwatch, RuntimeConfig};

const SOURCE: &str = "CREATE SOURCE ev (ts TIMESTAMP, k VARCHAR, v DOUBLE, \
    WATERMARK FOR ts AS ts - INTERVAL '1 second') \
    WITH (connector = 'http', time_format = 'epoch_ms');";

fn monitor(name: &str) -> String {
    format!(
        "CREATE MONITOR {name} AS SELECT window_start, window_end, k, count(*) AS n \
         FROM TUMBLE(ev, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end, k;"
    )
}

fn config(dir: &std::path::Path) -> RuntimeConfig {
    RuntimeConfig {
        data_dir: dir.to_path_buf(),
        http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..RuntimeConfig::default()
    }
}

fn names(snapshot: &driftwatch::runtime::SystemSnapshot) -> (Vec<String>, Vec<String>) {
    (
        snapshot.sources.iter().map(|s| s.name.clone()).collect(),
        snapshot.monitors.iter().map(|m| m.name.clone()).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_answer_without_the_control_loop_and_show_every_replied_statement() {
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(config(dir.path())).unwrap();
    system
        .execute_script(&format!("{SOURCE}\n{}", monitor("first")))
        .await
        .unwrap();
    system.start().await.unwrap();
    let control = system.control();

    // Nothing runs the control loop (as when it is busy with a slow statement): the
    // snapshot is answered anyway, with the catalog so far.
    let snapshot = tokio::time::timeout(Duration::from_secs(5), control.snapshot())
        .await
        .expect("a snapshot must not wait for the control loop")
        .unwrap();
    assert_eq!(
        names(&snapshot),
        (vec!["ev".to_string()], vec!["first".to_string()])
    );
    assert_eq!(snapshot.monitors[0].source, "ev");
    assert_eq!(snapshot.monitors[0].status, "running");

    // With the loop running, a statement's effect is on the board before its reply.
    let stop = system.shutdown_token();
    let runner = tokio::spawn(async move { system.wait(None).await });
    for i in 0..20 {
        let name = format!("m{i}");
        control.execute(monitor(&name)).await.unwrap();
        let (_, monitors) = names(&control.snapshot().await.unwrap());
        assert!(monitors.contains(&name), "{name} missing from {monitors:?}");
    }
    control.execute("DROP MONITOR m3").await.unwrap();
    let (_, monitors) = names(&control.snapshot().await.unwrap());
    assert!(!monitors.contains(&"m3".to_string()), "{monitors:?}");
    assert_eq!(monitors.len(), 20, "{monitors:?}");

    stop.cancel();
    runner.await.unwrap().unwrap();
}
