//! The late table holds no sentinel values: a row that is late before any watermark exists
//! (a NULL event time as the first row) has a NULL `_watermark`, and the table can be queried.

use std::time::Duration;

use driftwatch::query::{OutputFormat, QueryEngine};
use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch::sinks::ResultStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_event_time_before_any_watermark_is_queryable() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("rows.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"first\",\"ts\":null,\"x\":1.0}\n\
         {\"id\":\"a\",\"ts\":1767225600000,\"x\":2.0}\n\
         {\"id\":\"b\",\"ts\":1767225601000,\"x\":3.0}\n\
         {\"id\":\"later\",\"ts\":null,\"x\":4.0}\n",
    )
    .unwrap();
    let data = work.path().join("data");
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: data.clone(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    system
        .execute_script(&format!(
            "CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE, \
             WATERMARK FOR ts AS ts - INTERVAL '1 second') \
             WITH (connector = 'file', path = '{}', format = 'jsonl', time_format = 'epoch_ms', \
                   batch_size = '1');
             CREATE MONITOR m AS SELECT window_start, window_end, count(*) AS n \
             FROM TUMBLE(s, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end;",
            file.display()
        ))
        .await
        .unwrap();
    system.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), system.wait(None))
        .await
        .unwrap()
        .unwrap();
    let store = ResultStore::new(&data);
    let batches = QueryEngine::run(
        &store,
        "SELECT id, _late_reason, _watermark FROM m_late ORDER BY id",
    )
    .await
    .expect("the late table is queryable");
    let csv = QueryEngine::render(&batches, OutputFormat::Csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,_late_reason,_watermark", "{csv}");
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(lines[1], "first,event time is NULL,", "{csv}");
    assert!(
        lines[2].starts_with("later,event time is NULL,2026-01-01T00:00:00"),
        "{csv}"
    );
    let all = QueryEngine::run(&store, "SELECT * FROM m_late").await;
    assert!(all.is_ok(), "SELECT * works: {:?}", all.err());
}
