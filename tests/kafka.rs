//! Kafka source and sink against a real broker (`DRIFTWATCH_KAFKA`, default
//! 127.0.0.1:9092; `scripts/kafka.sh start` runs one, scripts/test.sh does it for CI).
//! Messages are produced and read back by an independent rdkafka client.

mod kafka_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use kafka_support::*;

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
";

const COLUMNS: &str = "request_id VARCHAR, ts TIMESTAMP, sepal_length DOUBLE, \
    sepal_width DOUBLE, petal_length DOUBLE, petal_width DOUBLE";

const CHECKS: &[&str] = &[
    "SELECT * FROM stats ORDER BY window_start",
    "SELECT * FROM drift ORDER BY window_start, feature",
    "SELECT count(*) FROM stats_late",
];

fn monitors() -> String {
    let train = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iris/train.csv");
    MONITORS.replace("{TRAIN}", &train.display().to_string())
}

fn system(dir: &Path) -> Driftwatch {
    Driftwatch::open(RuntimeConfig {
        data_dir: dir.to_path_buf(),
        http_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

async fn run_to_end(dir: &Path, sql: &str) {
    let mut system = system(dir);
    system.execute_script(sql).await.unwrap();
    system.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), system.wait(None))
        .await
        .expect("bounded run ends")
        .unwrap();
}

/// Three partitions holding consecutive thirds of event time (partition 2 is 13 s ahead
/// of partition 0 while they are read together) give exactly the file source's windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_partitions_give_the_file_sources_windows() {
    let rows = iris_rows(6_000, 7);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("rows.jsonl");
    let lines: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let topic = unique("iris-skew");
    create_topic(&topic, 3).await;
    let n = rows.len();
    let messages: Vec<Msg> = rows
        .iter()
        .enumerate()
        .map(|(i, (ts, id, row))| Msg {
            partition: (i * 3 / n) as i32,
            key: Some(id.clone()),
            value: envelope(*ts, id, row).into_bytes(),
            ..Msg::default()
        })
        .collect();
    produce(&topic, &messages).await;

    let source = |with: String| {
        format!(
            "CREATE SOURCE iris ({COLUMNS}, WATERMARK FOR ts AS ts - INTERVAL '1 second') \
             WITH ({with});\n{}",
            monitors()
        )
    };
    let file_dir = work.path().join("file");
    run_to_end(
        &file_dir,
        &source(format!(
            "connector = 'file', path = '{}', format = 'jsonl', replay = 'fast', \
             time_format = 'epoch_ms'",
            file.display()
        )),
    )
    .await;
    let kafka_dir = work.path().join("kafka");
    run_to_end(
        &kafka_dir,
        &source(format!(
            "connector = 'kafka', brokers = '{}', topic = '{topic}', format = 'inference-log', \
             group_id = '{}', start = 'earliest', stop_at_end = 'true', batch_size = '1000', \
             linger = '20 ms'",
            brokers(),
            unique("g")
        )),
    )
    .await;
    for check in CHECKS {
        let expected = query(&file_dir, check).await;
        let got = query(&kafka_dir, check).await;
        assert_same_table(&got, &expected, check);
    }
    let windows = query(
        &kafka_dir,
        "SELECT count(*) AS c, sum(n) AS rows FROM stats",
    )
    .await;
    assert_eq!(windows, "c,rows\n10,6000\n", "all rows in ten 2 s windows");
}

/// Compares two CSV tables cell by cell; numbers may differ in the last bits (rows of
/// several partitions are summed in another order than the file's).
fn assert_same_table(got: &str, expected: &str, what: &str) {
    let (g, e): (Vec<&str>, Vec<&str>) = (got.lines().collect(), expected.lines().collect());
    assert_eq!(g.len(), e.len(), "{what}: row count\n{got}\n{expected}");
    for (gl, el) in g.iter().zip(&e) {
        for (gc, ec) in gl.split(',').zip(el.split(',')) {
            match (gc.parse::<f64>(), ec.parse::<f64>()) {
                (Ok(a), Ok(b)) => assert!(
                    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
                    "{what}: {gl} vs {el}"
                ),
                _ => assert_eq!(gc, ec, "{what}: {gl} vs {el}"),
            }
        }
    }
}

/// A partition that never receives a row does not hold windows back once idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partition_does_not_stall_windows() {
    let rows = iris_rows(3_000, 3);
    let topic = unique("iris-idle");
    create_topic(&topic, 3).await;
    let messages: Vec<Msg> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, _, row))| Msg {
            partition: (i % 2) as i32, // partition 2 stays empty
            value: row.clone().into_bytes(),
            ..Msg::default()
        })
        .collect();
    produce(&topic, &messages).await;
    let work = tempfile::tempdir().unwrap();
    let mut system = system(work.path());
    let sql = format!(
        "CREATE SOURCE iris ({COLUMNS}, _partition INT, _offset BIGINT, \
           WATERMARK FOR ts AS ts - INTERVAL '1 second') \
         WITH (connector = 'kafka', brokers = '{}', topic = '{topic}', group_id = '{}', \
               time_format = 'epoch_ms', idle_timeout = '1 second');
         CREATE MONITOR per_partition AS
           SELECT window_start, window_end, _partition, count(*) AS n, max(_offset) AS last
           FROM TUMBLE(iris, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end, _partition;",
        brokers(),
        unique("g")
    );
    system.execute_script(&sql).await.unwrap();
    system.start().await.unwrap();
    wait_until(&system, Duration::from_secs(60), "all rows in", |s| {
        rows_in(s, "iris") == 3_000
    })
    .await;
    // Windows close while partition 2 is still assigned and silent.
    wait_until(&system, Duration::from_secs(30), "every window", |s| {
        s.monitors[0].windows >= 4
    })
    .await;
    system.shutdown_token().cancel();
    system.wait(None).await.unwrap();
    let got = query(
        work.path(),
        "SELECT _partition, sum(n) AS n, max(last) AS last FROM per_partition \
         GROUP BY _partition ORDER BY _partition",
    )
    .await;
    assert_eq!(got, "_partition,n,last\n0,1500,1499\n1,1500,1499\n");
}

/// A second consumer in the same group (`assignment = 'group'`) joins and leaves
/// mid-stream: every row is seen exactly once over both consumers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_joining_and_leaving_loses_and_duplicates_nothing() {
    let rows = iris_rows(9_000, 5);
    let topic = unique("iris-group");
    create_topic(&topic, 3).await;
    let group = unique("shared");
    let sql = format!(
        "CREATE SOURCE iris ({COLUMNS}, _partition INT, _offset BIGINT) \
         WITH (connector = 'kafka', brokers = '{}', topic = '{topic}', group_id = '{group}', \
               assignment = 'group', time_format = 'epoch_ms', batch_size = '200', \
               linger = '10 ms');
         CREATE MONITOR seen AS SELECT request_id, _partition, _offset FROM iris;",
        brokers()
    );
    let msgs: Vec<Msg> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, id, row))| Msg {
            partition: (i % 3) as i32,
            key: Some(id.clone()),
            value: row.clone().into_bytes(),
            ..Msg::default()
        })
        .collect();
    let work = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (work.path().join("a"), work.path().join("b"));
    let mut a = system(&dir_a);
    a.execute_script(&sql).await.unwrap();
    a.start().await.unwrap();
    produce(&topic, &msgs[..3_000]).await;
    wait_until(&a, Duration::from_secs(60), "A read the first third", |s| {
        rows_in(s, "iris") == 3_000
    })
    .await;

    let mut b = system(&dir_b);
    b.execute_script(&sql).await.unwrap();
    b.start().await.unwrap();
    // B joins while the second third trickles in.
    for chunk in msgs[3_000..6_000].chunks(100) {
        produce(&topic, chunk).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while rows_in(&a.snapshot(), "iris") + rows_in(&b.snapshot(), "iris") < 6_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "second third not consumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        rows_in(&b.snapshot(), "iris") > 0,
        "the second consumer took partitions"
    );
    // B leaves while the last third trickles in.
    let producer = {
        let (topic, rest) = (topic.clone(), msgs[6_000..].to_vec());
        tokio::spawn(async move {
            for chunk in rest.chunks(100) {
                produce(&topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    b.shutdown_token().cancel();
    b.wait(None).await.unwrap();
    let b_rows = rows_in(&b.snapshot(), "iris");
    producer.await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while rows_in(&a.snapshot(), "iris") + b_rows < 9_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "last third not consumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.shutdown_token().cancel();
    a.wait(None).await.unwrap();

    let mut seen = Vec::new();
    for dir in [&dir_a, &dir_b] {
        let csv = query(dir, "SELECT request_id FROM seen").await;
        seen.extend(csv.lines().skip(1).map(str::to_string));
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 9_000, "no row lost");
    assert_eq!(seen.len(), 9_000, "no row counted twice");
}

/// Undecodable messages land in the dead-letter table (with partition and offset) and on
/// the dead-letter topic; the partition keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered() {
    let topic = unique("iris-poison");
    let dlq = unique("iris-dlq");
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    let good = |i: i64| {
        format!(
            r#"{{"request_id":"g{i}","ts":{},"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#,
            1_767_225_600_000i64 + i * 100
        )
    };
    let values: Vec<String> = vec![
        good(0),
        "{not json".into(),
        good(1),
        r#"{"request_id":"b","ts":"yesterday","sepal_length":1}"#.into(),
        String::new(),
        good(2),
        r#"{"request_id":"c","ts":1767225600000,"sepal_length":"abc"}"#.into(),
        good(3),
    ];
    let msgs: Vec<Msg> = values
        .iter()
        .map(|v| Msg {
            value: v.clone().into_bytes(),
            ..Msg::default()
        })
        .collect();
    produce(&topic, &msgs).await;
    let work = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE SOURCE iris ({COLUMNS}, _offset BIGINT) \
         WITH (connector = 'kafka', brokers = '{}', topic = '{topic}', group_id = '{}', \
               time_format = 'epoch_ms', dead_letter_topic = '{dlq}', stop_at_end = 'true');
         CREATE MONITOR rows AS SELECT request_id, _offset FROM iris;",
        brokers(),
        unique("g")
    );
    run_to_end(work.path(), &sql).await;
    let good_rows = query(
        work.path(),
        "SELECT request_id, _offset FROM rows ORDER BY _offset",
    )
    .await;
    assert_eq!(good_rows, "request_id,_offset\ng0,0\ng1,2\ng2,5\ng3,7\n");
    let errors = query(
        work.path(),
        "SELECT partition, position FROM iris_errors ORDER BY position",
    )
    .await;
    assert_eq!(errors, "partition,position\n0,1\n0,3\n0,4\n0,6\n");
    let reasons = query(
        work.path(),
        "SELECT reason FROM iris_errors ORDER BY position",
    )
    .await;
    assert!(reasons.contains("offset 1"), "{reasons}");
    assert!(reasons.contains("empty message"), "{reasons}");
    let dead = consume(&dlq, 4, Duration::from_secs(30));
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(dead[0].3.contains("{not json"));
    assert!(dead[0]
        .4
        .iter()
        .any(|(k, v)| k == "driftwatch_offset" && v == "1"));
}

/// Windowed results reach the sink topic, one message per row, keyed by monitor, window
/// and group; read back by an independent consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_the_sink_topic() {
    let rows = iris_rows(2_000, 9);
    let topic = unique("iris-in");
    let out = unique("iris-drift");
    create_topic(&topic, 3).await;
    create_topic(&out, 1).await;
    let msgs: Vec<Msg> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, _, row))| Msg {
            partition: (i % 3) as i32,
            value: row.clone().into_bytes(),
            ..Msg::default()
        })
        .collect();
    produce(&topic, &msgs).await;
    let work = tempfile::tempdir().unwrap();
    let train = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iris/train.csv");
    let sql = format!(
        "CREATE SOURCE iris ({COLUMNS}, WATERMARK FOR ts AS ts - INTERVAL '1 second') \
         WITH (connector = 'kafka', brokers = '{b}', topic = '{topic}', group_id = '{g}', \
               time_format = 'epoch_ms', stop_at_end = 'true');
         CREATE BASELINE train FROM '{train}';
         CREATE MONITOR drift WITH (sink = 'kafka', topic = '{out}', brokers = '{b}') AS
           SELECT window_start, window_end, feature, count(*) AS n,
                  wasserstein(value, 'train', feature) AS w
           FROM TUMBLE(features(iris), ts, INTERVAL '5 seconds')
           GROUP BY window_start, window_end, feature;",
        b = brokers(),
        g = unique("g"),
        train = train.display()
    );
    run_to_end(work.path(), &sql).await;
    let stored = query(work.path(), "SELECT count(*) AS c FROM drift").await;
    assert_eq!(stored, "c\n16\n", "4 windows x 4 features");
    let got = consume(&out, 16, Duration::from_secs(30));
    assert_eq!(got.len(), 16);
    let keys: BTreeSet<String> = got.iter().filter_map(|m| m.2.clone()).collect();
    assert_eq!(keys.len(), 16, "one key per (window, feature): {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("drift|")));
    let mut total = 0;
    for (_, _, _, value, headers) in &got {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        assert!(v["w"].as_f64().is_some(), "{value}");
        total += v["n"].as_i64().unwrap();
        assert!(headers
            .iter()
            .any(|(k, v)| k == "driftwatch_monitor" && v == "drift"));
    }
    assert_eq!(total, 4 * 2_000, "every feature of every row counted once");
}

/// CloudEvents in binary mode (`ce_*` headers) and Kafka metadata columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_and_metadata_columns() {
    let topic = unique("kserve");
    create_topic(&topic, 2).await;
    let msgs: Vec<Msg> = (0..6)
        .map(|i| Msg {
            partition: i % 2,
            key: Some(format!("k{i}")),
            value: format!(r#"{{"instances":[[5.1,3.5,1.4,{i}.0],[6.0,3.0,4.0,1.0]]}}"#)
                .into_bytes(),
            headers: vec![
                ("ce_specversion".into(), "1.0".into()),
                (
                    "ce_type".into(),
                    "org.kubeflow.serving.inference.request".into(),
                ),
                ("ce_id".into(), format!("req-{i}")),
                ("ce_time".into(), format!("2026-01-01T00:00:0{i}Z")),
                ("ce_source".into(), "http://model".into()),
            ],
        })
        .collect();
    produce(&topic, &msgs).await;
    let work = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE SOURCE kserve ({COLUMNS}, _partition INT, _offset BIGINT, _key VARCHAR, \
           _timestamp TIMESTAMP) \
         WITH (connector = 'kafka', brokers = '{}', topic = '{topic}', group_id = '{}', \
               format = 'cloudevents', stop_at_end = 'true');
         CREATE MONITOR rows AS
           SELECT request_id, ts, petal_width, _partition, _offset, _key, _timestamp FROM kserve;",
        brokers(),
        unique("g")
    );
    run_to_end(work.path(), &sql).await;
    let got = query(
        work.path(),
        "SELECT request_id, CAST(ts AS VARCHAR) AS ts, petal_width, _partition, _offset, _key, \
                _timestamp IS NOT NULL AS has_ts \
         FROM rows ORDER BY request_id, petal_width",
    )
    .await;
    let mut expected = String::from("request_id,ts,petal_width,_partition,_offset,_key,has_ts\n");
    for i in 0..6 {
        let (p, o) = (i % 2, i / 2);
        let mut pair = [(1.0, "1.0"), (i as f64, "")];
        pair.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        for (w, _) in pair {
            expected.push_str(&format!(
                "req-{i},2026-01-01T00:00:0{i},{w:?},{p},{o},k{i},true\n"
            ));
        }
    }
    assert_eq!(got, expected);
}

/// HTTP → Kafka → monitor: a Kafka source with `ingest = 'http'` answers 200 only after the
/// broker acknowledged the body; the rows then come back through the consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_goes_through_kafka() {
    let topic = unique("iris-http");
    create_topic(&topic, 1).await;
    let work = tempfile::tempdir().unwrap();
    let mut system = system(work.path());
    let sql = format!(
        "CREATE SOURCE iris ({COLUMNS}, _offset BIGINT) \
         WITH (connector = 'kafka', ingest = 'http', brokers = '{}', topic = '{topic}', \
               group_id = '{}', format = 'inference-log');
         CREATE MONITOR rows AS SELECT request_id, _offset FROM iris;",
        brokers(),
        unique("g")
    );
    system.execute_script(&sql).await.unwrap();
    system.start().await.unwrap();
    let url = format!("http://{}/ingest/iris", system.http_addr().unwrap());
    let client = reqwest::Client::new();
    let rows = iris_rows(50, 1);
    for (ts, id, row) in &rows {
        let mut tries = 0;
        let r = loop {
            let r = client
                .post(&url)
                .body(envelope(*ts, id, row))
                .send()
                .await
                .unwrap();
            // The source registers its route once its connector started.
            if r.status() != 404 || tries == 50 {
                break r;
            }
            tries += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let bad = client
        .post(&url)
        .body("{\"type\":\"request\",\"payload\":")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Acknowledged by the broker: an independent consumer reads every body.
    let stored = consume(&topic, 50, Duration::from_secs(30));
    assert_eq!(stored.len(), 50);
    wait_until(
        &system,
        Duration::from_secs(30),
        "rows back from Kafka",
        |s| rows_in(s, "iris") == 50,
    )
    .await;
    system.shutdown_token().cancel();
    system.wait(None).await.unwrap();
    let got = query(
        work.path(),
        "SELECT count(DISTINCT request_id) AS n, max(_offset) AS last FROM rows",
    )
    .await;
    assert_eq!(got, "n,last\n50,49\n");
    let errors = query(work.path(), "SELECT count(*) AS n FROM iris_errors").await;
    assert_eq!(errors, "n\n1\n");
}
