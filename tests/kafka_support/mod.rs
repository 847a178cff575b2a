//! Helpers of the Kafka integration tests: the broker address, topics, an independent
//! rdkafka producer and consumer, and Iris-like inference logs with skewed partitions.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use driftwatch::query::{OutputFormat, QueryEngine};
use driftwatch::runtime::Driftwatch;
use driftwatch::sinks::ResultStore;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;

/// The broker the tests use (`DRIFTWATCH_KAFKA`, default 127.0.0.1:9092; scripts/test.sh
/// starts one).
pub fn brokers() -> String {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    std::env::var("DRIFTWATCH_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A topic name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("create_topics request (is the broker up? scripts/kafka.sh start)");
    for r in results {
        r.expect("topic created");
    }
}

/// One message to produce.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    pub partition: i32,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Produces every message (in order per partition) and waits for acknowledgements.
pub async fn produce(topic: &str, messages: &[Msg]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for chunk in messages.chunks(2000) {
        let sends = chunk.iter().map(|m| {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &m.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut record = FutureRecord::<str, [u8]>::to(topic)
                .partition(m.partition)
                .payload(&m.value)
                .headers(headers);
            if let Some(k) = &m.key {
                record = record.key(k);
            }
            producer.send(record, Timeout::After(Duration::from_secs(30)))
        });
        for r in futures::future::join_all(sends).await {
            r.expect("message acknowledged");
        }
    }
}

/// A consumed message: `(partition, offset, key, value, headers)`.
pub type Consumed = (i32, i64, Option<String>, String, Vec<(String, String)>);

/// Reads `topic` from the start with a fresh group until `n` messages arrived.
pub fn consume(topic: &str, n: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.partition(),
                m.offset(),
                m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                headers,
            ));
        }
    }
    out
}

/// Runs a query over a data dir and renders it as CSV.
pub async fn query(dir: &Path, sql: &str) -> String {
    let batches = QueryEngine::run(&ResultStore::new(dir), sql).await.unwrap();
    QueryEngine::render(&batches, OutputFormat::Csv).unwrap()
}

/// Polls `system` until `cond` holds on its snapshot, or panics after `timeout`.
pub async fn wait_until(
    system: &Driftwatch,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&driftwatch::runtime::SystemSnapshot) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let snap = system.snapshot();
        if cond(&snap) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {snap:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rows of one source in a snapshot.
pub fn rows_in(snap: &driftwatch::runtime::SystemSnapshot, source: &str) -> u64 {
    snap.sources
        .iter()
        .find(|s| s.name == source)
        .map_or(0, |s| s.rows_in)
}

/// `n` Iris-like rows over 20 s of event time, as `(event ms, request_id, JSON row)`,
/// sorted by a jittered time (disorder below the 1 s watermark delay).
pub fn iris_rows(n: usize, seed: u64) -> Vec<(i64, String, String)> {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = 1_767_225_600_000i64;
    let mut rows: Vec<(i64, i64, String, String)> = (0..n)
        .map(|i| {
            let ts = t0 + (i as i64) * 20_000 / n as i64;
            let shift = if i >= n / 2 { 1.5 } else { 0.0 };
            let id = format!("r{i}");
            let row = format!(
                r#"{{"request_id":"{id}","ts":{ts},"sepal_length":{:.3},"sepal_width":{:.3},"petal_length":{:.3},"petal_width":{:.3}}}"#,
                rng.gen_range(4.3..7.9),
                rng.gen_range(2.0..4.4),
                rng.gen_range(1.0..6.9) + shift,
                rng.gen_range(0.1..2.5),
            );
            (ts + rng.gen_range(0..800), ts, id, row)
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows.into_iter()
        .map(|(_, ts, id, row)| (ts, id, row))
        .collect()
}

/// The inference-log envelope of one row: `{"type":"request","id","time","payload"}`.
pub fn envelope(ts: i64, id: &str, row: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(row).unwrap();
    let instance = serde_json::json!([
        v["sepal_length"],
        v["sepal_width"],
        v["petal_length"],
        v["petal_width"]
    ]);
    let time = chrono::DateTime::from_timestamp_millis(ts)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(
        r#"{{"type":"request","id":"{id}","time":"{time}","payload":{{"instances":[{instance}]}}}}"#
    )
}
