//! The Kafka result sink: `CREATE MONITOR m WITH (sink = 'kafka', topic = 'alerts',
//! brokers = '127.0.0.1:9092', format = 'json') AS …`.
//!
//! One message per result row: the value is the row as a JSON object (column name →
//! value, timestamps as ISO 8601 text), the key is `monitor|window_start|window_end|<text
//! columns>` (the text columns are the group keys of typical monitors, such as `feature`),
//! and the `driftwatch_monitor` header names the monitor. The producer is idempotent and
//! librdkafka retries within `message.timeout.ms`.
//!
//! Deliveries are pipelined: `send` queues a batch's messages and returns; their
//! acknowledgements are collected as they come, and [`ResultSink::flush`] — called at every
//! checkpoint barrier and at the end — waits for all of them. So every result emitted
//! before a checkpoint is in Kafka before that checkpoint completes, and a slow broker costs
//! throughput only at checkpoints, not on every window. At most [`MAX_IN_FLIGHT`] messages
//! wait for their acknowledgement (back-pressure beyond).
//!
//! # The topic
//!
//! `CREATE MONITOR` looks the topic up (bounded by [`topic::METADATA_TIMEOUT`]) and fails at
//! once when it is missing or the broker does not answer; with `create_topic = 'true'` a
//! missing topic is created (`partitions`, `replication_factor`, default: the broker's). The
//! broker's auto-creation is never relied on. `driftwatch check` validates the options only.
//!
//! # When the topic is unwritable
//!
//! A message the producer refuses (unknown topic) or whose delivery fails is *held* in the
//! sink, in order, and queued again with backoff (0.5 s to 10 s) at the next results and
//! checkpoints; `send` does not wait for it, so the monitor keeps taking input and the
//! source and its other monitors go on. The checkpoint promise is kept: [`ResultSink::flush`]
//! succeeds only when nothing is held or in flight, and answers within [`FLUSH_WAIT`] (at
//! once while deliveries fail), so the monitor hands in no part, that checkpoint is
//! abandoned, and the previous one still covers every undelivered result. The monitor shows
//! `retrying` with the count and the broker's error until a checkpoint flushes again.
//! Results are in the result store meanwhile. A crash while results are held restarts from
//! the last complete checkpoint and emits them again (nothing lost, nothing twice, as
//! below). Beyond [`MAX_PENDING_BYTES`] held, `send` refuses the next results and the
//! monitor holds its source back until the topic takes them.
//!
//! # Exactly once without transactions
//!
//! Every checkpoint records, per partition of the topic, the offset after the last message
//! this monitor had written ([`ResultSink::position`]). After a crash the monitor restarts
//! from the checkpoint and emits again what it emitted after it. Before it does,
//! [`ResultSink::recover`] reads the topic's tail after the recorded offsets and notes the
//! *identity* of every message of this monitor found there — the key for windowed monitors
//! (monitor, window, group), key and value for row-level ones — in a skip multiset; a result
//! whose identity is in it is not sent again. A delivery that failed half-way records what
//! did arrive the same way, so its retry sends only the rest. This needs neither
//! transactions nor `read_committed`, and holds the same on tansu and on stock Apache Kafka:
//! a consumer sees each result exactly once. (A transactional producer would hide results
//! from `read_committed` consumers until the next checkpoint — seconds of extra latency —
//! and tansu's fetch does not hide aborted transactions.)
//!
//! The one case this cannot mend: a window re-emitted after a crash with *different* values
//! (rows that were late in one run and not in the other) keeps the first version in Kafka.

mod readback;
pub mod topic;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::DeliveryFuture;
use tokio::sync::Mutex;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::json::LineDelimitedWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use driftwatch_sql::Options;

pub use self::readback::{ReadBack, TopicReader};
pub use self::topic::{TopicCheck, TopicSpec};
use super::{ResultSink, SinkError};
use crate::checkpoint::SinkPosition;
use crate::sources::kafka::{default_brokers, KafkaProducer};

/// Options read by the Kafka sink (besides `sink`).
pub const KAFKA_SINK_OPTIONS: &[&str] = &[
    "topic",
    "brokers",
    "format",
    "properties",
    "create_topic",
    "partitions",
    "replication_factor",
];

/// Header naming the monitor that wrote a result.
pub const MONITOR_HEADER: &str = "driftwatch_monitor";

/// Messages waiting for their acknowledgement, at most.
pub const MAX_IN_FLIGHT: usize = 50_000;

/// Bytes of undelivered results a sink holds in memory while its topic is unwritable;
/// beyond it the monitor stops taking input (and so holds its source back) until they are
/// delivered.
pub const MAX_PENDING_BYTES: usize = 256 << 20;

/// Longest wait for acknowledgements at a checkpoint; a sink whose topic refuses the results
/// it holds answers after one attempt.
pub const FLUSH_WAIT: Duration = Duration::from_secs(5);

const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(500);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(10);

/// Identity of a result message (see the module docs).
type Identity = [u8; 32];

fn identity(key: &[u8], value: Option<&[u8]>) -> Identity {
    let mut h = blake3::Hasher::new();
    h.update(key);
    if let Some(v) = value {
        h.update(&[0xff]);
        h.update(v);
    }
    *h.finalize().as_bytes()
}

/// A message queued and not acknowledged yet (kept to be queued again if it fails).
struct InFlight {
    key: Vec<u8>,
    value: Vec<u8>,
    monitor: Arc<str>,
    delivery: Option<DeliveryFuture>,
}

/// What the sink knows about the topic.
#[derive(Default)]
struct Written {
    /// Next offset after this sink's last acknowledged message (or the end when it
    /// started), per partition.
    next: BTreeMap<i32, i64>,
    /// Results known to be in the topic already, with multiplicity.
    skip: HashMap<Identity, u32>,
    /// Identities are of key and value (row-level monitors) rather than key alone.
    by_content: bool,
    /// Queued to librdkafka and not acknowledged yet, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Not (or no longer) in librdkafka's queue: failed deliveries and results the
    /// producer refused, to be queued again, oldest first. Never dropped.
    pending: VecDeque<InFlight>,
    /// Key and value bytes held in `pending`.
    pending_bytes: usize,
    /// Set while deliveries fail.
    failing: Option<Failing>,
}

/// A sink whose deliveries fail: since when, why, and when to try again.
#[derive(Debug)]
struct Failing {
    since: Instant,
    error: String,
    backoff: Duration,
    next_attempt: Instant,
}

impl Written {
    fn hold(&mut self, m: InFlight) {
        self.pending_bytes += m.key.len() + m.value.len();
        self.pending.push_back(m);
    }

    /// Notes a failed delivery or a refused message; backs off the next attempt.
    fn note_failure(&mut self, topic: &str, why: String) {
        let now = Instant::now();
        match &mut self.failing {
            Some(f) => {
                f.backoff = (f.backoff * 2).min(MAX_RETRY_BACKOFF);
                f.next_attempt = now + f.backoff;
                f.error = why;
            }
            None => {
                tracing::warn!(
                    topic, error = %why,
                    "Kafka sink: deliveries fail; results are kept and retried (the checkpoint \
                     waits for them, the source does not)"
                );
                self.failing = Some(Failing {
                    since: now,
                    error: why,
                    backoff: MIN_RETRY_BACKOFF,
                    next_attempt: now + MIN_RETRY_BACKOFF,
                });
            }
        }
    }

    /// What is not delivered yet, for error messages.
    fn describe(&self, topic: &str) -> String {
        let (since, why) = self
            .failing
            .as_ref()
            .map_or((String::new(), String::new()), |f| {
                (
                    format!(", failing for {}s", f.since.elapsed().as_secs()),
                    format!(": {}", f.error),
                )
            });
        format!(
            "{} results not acknowledged yet by Kafka topic '{topic}' ({} waiting for the \
             broker, {} to send again, {} KiB{since}){why}; they are kept and retried, never \
             dropped",
            self.in_flight.len() + self.pending.len(),
            self.in_flight.len(),
            self.pending.len(),
            self.pending_bytes / 1024,
        )
    }
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("next", &self.next)
            .field("skip", &self.skip.len())
            .field("in_flight", &self.in_flight.len())
            .field("pending", &self.pending.len())
            .field("failing", &self.failing)
            .finish()
    }
}

/// Sends every result row of a monitor to a Kafka topic.
#[derive(Debug)]
pub struct KafkaSink {
    reader: TopicReader,
    spec: TopicSpec,
    producer: Arc<KafkaProducer>,
    written: Mutex<Written>,
}

fn error(message: impl Into<String>) -> SinkError {
    SinkError {
        sink: "kafka".into(),
        message: message.into(),
    }
}

impl KafkaSink {
    /// Builds the sink from monitor options. `properties = 'k=v, k2=v2'` passes librdkafka
    /// settings (security, timeouts) to the producer.
    pub fn from_options(monitor: &str, options: &Options) -> Result<Self, SinkError> {
        let topic = options
            .get_str("topic")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| error(format!("monitor '{monitor}': add WITH (topic = '…')")))?;
        if let Some(f) = options.get_str("format") {
            if !f.eq_ignore_ascii_case("json") {
                return Err(error(format!(
                    "monitor '{monitor}': format = '{f}' is not supported (use 'json')"
                )));
            }
        }
        let brokers = options.get_str("brokers").unwrap_or_else(default_brokers);
        let mut properties = Vec::new();
        for pair in options.get_str("properties").unwrap_or_default().split(',') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                error(format!(
                    "monitor '{monitor}': properties: '{pair}' is not key=value"
                ))
            })?;
            properties.push((k.trim().to_string(), v.trim().to_string()));
        }
        let spec = TopicSpec::from_options(monitor, options)?;
        let producer = KafkaProducer::new(&brokers, &properties).map_err(error)?;
        Ok(Self {
            spec,
            reader: TopicReader {
                topic,
                brokers,
                properties,
            },
            producer: Arc::new(producer),
            written: Mutex::new(Written::default()),
        })
    }

    /// The underlying producer (delivery counters).
    pub fn producer(&self) -> &Arc<KafkaProducer> {
        &self.producer
    }

    /// Queues one message, or holds it when the producer refuses it (unknown topic, full
    /// queue) or older results are still held (they go first).
    fn queue(&self, w: &mut Written, mut message: InFlight) {
        if !w.pending.is_empty() {
            w.hold(message);
            return;
        }
        match self.enqueue(&message) {
            Ok(delivery) => {
                message.delivery = Some(delivery);
                w.in_flight.push_back(message);
            }
            Err(e) => {
                if !matches!(
                    e,
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                ) {
                    w.note_failure(&self.reader.topic, e.to_string());
                }
                w.hold(message);
            }
        }
    }

    fn enqueue(&self, m: &InFlight) -> Result<DeliveryFuture, KafkaError> {
        let headers: [(&str, &[u8]); 1] = [(MONITOR_HEADER, m.monitor.as_bytes())];
        self.producer
            .enqueue(&self.reader.topic, &m.key, &m.value, &headers)
    }

    /// Queues held results again, oldest first, unless the last attempt failed less than
    /// its backoff ago (`force`: try anyway). Stops at the first refusal.
    fn retry_held(&self, w: &mut Written, force: bool) {
        if w.pending.is_empty()
            || (!force
                && w.failing
                    .as_ref()
                    .is_some_and(|f| Instant::now() < f.next_attempt))
        {
            return;
        }
        while let Some(mut m) = w.pending.pop_front() {
            match self.enqueue(&m) {
                Ok(delivery) => {
                    w.pending_bytes -= m.key.len() + m.value.len();
                    m.delivery = Some(delivery);
                    w.in_flight.push_back(m);
                }
                Err(e) => {
                    w.pending.push_front(m);
                    w.note_failure(&self.reader.topic, e.to_string());
                    return;
                }
            }
        }
    }

    /// Waits for the oldest delivery and records its outcome.
    async fn settle_oldest(&self, w: &mut Written) {
        if let Some(mut m) = w.in_flight.pop_front() {
            let result = match m.delivery.take() {
                Some(d) => d.await,
                None => return,
            };
            self.record(w, m, result);
        }
    }

    /// Records the outcomes of deliveries that are done, oldest first, without waiting.
    fn settle_ready(&self, w: &mut Written) {
        while let Some(front) = w.in_flight.front_mut() {
            let Some(result) = front.delivery.as_mut().and_then(|d| d.now_or_never()) else {
                return;
            };
            let m = w.in_flight.pop_front().expect("front exists");
            self.record(w, m, result);
        }
    }

    fn record(
        &self,
        w: &mut Written,
        mut m: InFlight,
        result: Result<
            rdkafka::producer::future_producer::OwnedDeliveryResult,
            futures::channel::oneshot::Canceled,
        >,
    ) {
        match result {
            Ok(Ok(delivery)) => {
                self.producer.count(true);
                let next = w.next.entry(delivery.partition).or_insert(0);
                *next = (*next).max(delivery.offset + 1);
                if w.pending.is_empty() {
                    if let Some(f) = w.failing.take() {
                        tracing::info!(
                            topic = %self.reader.topic,
                            failed_for_s = f.since.elapsed().as_secs(),
                            "Kafka sink: deliveries work again"
                        );
                    }
                }
            }
            Ok(Err((e, _))) => {
                self.producer.count(false);
                w.note_failure(&self.reader.topic, e.to_string());
                m.delivery = None;
                w.hold(m);
            }
            Err(_) => {
                self.producer.count(false);
                w.note_failure(&self.reader.topic, "the producer was closed".into());
                m.delivery = None;
                w.hold(m);
            }
        }
    }
}

/// Message keys of a batch: monitor, window bounds and text columns.
fn keys(monitor: &str, batch: &RecordBatch) -> Result<Vec<String>, SinkError> {
    let options = FormatOptions::default().with_null("");
    let schema = batch.schema();
    let mut parts: Vec<ArrayFormatter<'_>> = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let is_window = matches!(field.name().as_str(), "window_start" | "window_end");
        let is_text = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..)
        );
        if is_window || is_text {
            let column: &dyn Array = batch.column(i).as_ref();
            parts
                .push(ArrayFormatter::try_new(column, &options).map_err(|e| error(e.to_string()))?);
        }
    }
    Ok((0..batch.num_rows())
        .map(|row| {
            let mut key = monitor.to_string();
            for p in &parts {
                key.push('|');
                key.push_str(&p.value(row).to_string());
            }
            key
        })
        .collect())
}

#[async_trait::async_trait]
impl ResultSink for KafkaSink {
    fn name(&self) -> String {
        format!("kafka:{}", self.reader.topic)
    }

    async fn position(&self) -> Option<SinkPosition> {
        Some(self.written.lock().await.next.clone())
    }

    async fn prepare(&self) -> Result<(), SinkError> {
        let reader = self.reader.clone();
        let end = tokio::task::spawn_blocking(move || reader.end_offsets())
            .await
            .map_err(|e| error(e.to_string()))??;
        let mut w = self.written.lock().await;
        for (p, high) in end {
            w.next.entry(p).or_insert(high);
        }
        Ok(())
    }

    async fn recover(
        &self,
        monitor: &str,
        position: &SinkPosition,
        windowed: bool,
    ) -> Result<(), SinkError> {
        let started = std::time::Instant::now();
        let by_content = !windowed;
        let (reader, m, from) = (self.reader.clone(), monitor.to_string(), position.clone());
        let back = tokio::task::spawn_blocking(move || reader.read_back(&m, &from, by_content))
            .await
            .map_err(|e| error(e.to_string()))??;
        let found: u32 = back.found.values().sum();
        tracing::info!(
            monitor, topic = %self.reader.topic, read = back.read, already_written = found,
            ms = started.elapsed().as_millis() as u64,
            "read back the sink topic after a restart: results found there are not sent again"
        );
        let mut w = self.written.lock().await;
        w.skip = back.found;
        w.by_content = by_content;
        // Until this sink writes again, the end of what was read back is its position.
        w.next = back.end;
        Ok(())
    }

    async fn check(&self) -> Result<(), SinkError> {
        topic::ensure_topic(&self.reader, &self.spec)
            .await
            .map(|_| ())
    }

    async fn send(&self, monitor: &str, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut w = self.written.lock().await;
        self.settle_ready(&mut w);
        self.retry_held(&mut w, false);
        if w.pending_bytes > MAX_PENDING_BYTES {
            // Nothing of this batch is queued: the caller retries it whole.
            return Err(error(format!(
                "{}; over {} MiB held, the monitor holds its source back until they are delivered",
                w.describe(&self.reader.topic),
                MAX_PENDING_BYTES >> 20
            )));
        }
        let mut writer = LineDelimitedWriter::new(Vec::new());
        writer.write(batch).map_err(|e| error(e.to_string()))?;
        writer.finish().map_err(|e| error(e.to_string()))?;
        let body = writer.into_inner();
        let values: Vec<&[u8]> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let keys = keys(monitor, batch)?;
        if values.len() != keys.len() {
            return Err(error("JSON encoding produced a different number of rows"));
        }
        let monitor: Arc<str> = Arc::from(monitor);
        for (k, v) in keys.iter().zip(values) {
            // A result already in the topic (read back after a restart) is not sent again.
            let id = identity(k.as_bytes(), w.by_content.then_some(v));
            if let Some(n) = w.skip.get_mut(&id).filter(|n| **n > 0) {
                *n -= 1;
                continue;
            }
            let message = InFlight {
                key: k.clone().into_bytes(),
                value: v.to_vec(),
                monitor: Arc::clone(&monitor),
                delivery: None,
            };
            self.queue(&mut w, message);
        }
        self.settle_ready(&mut w);
        while w.in_flight.len() > MAX_IN_FLIGHT {
            self.settle_oldest(&mut w).await;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let mut w = self.written.lock().await;
        // A sink whose topic refuses results answers after one attempt (below); the
        // checkpoint is then left incomplete rather than the source held back.
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut force = true;
        loop {
            self.retry_held(&mut w, force);
            force = false;
            self.settle_ready(&mut w);
            if w.in_flight.is_empty() && w.pending.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            // Results held after a failed attempt: answer now, not at the deadline.
            let refused = w.failing.is_some() && !w.pending.is_empty();
            if now >= deadline || refused {
                if w.failing.is_none() {
                    // A broker that does not answer at all: the next flushes answer at once.
                    let why = format!("no acknowledgement within {}s", FLUSH_WAIT.as_secs());
                    w.note_failure(&self.reader.topic, why);
                }
                return Err(error(w.describe(&self.reader.topic)));
            }
            let mut wait = deadline - now;
            if let (false, Some(f)) = (w.pending.is_empty(), &w.failing) {
                let due = f.next_attempt.saturating_duration_since(now);
                wait = wait.min(due.max(Duration::from_millis(1)));
            }
            match w.in_flight.front_mut().and_then(|m| m.delivery.as_mut()) {
                Some(delivery) => {
                    if let Ok(result) = tokio::time::timeout(wait, delivery).await {
                        let m = w.in_flight.pop_front().expect("front exists");
                        self.record(&mut w, m, result);
                    }
                }
                None => tokio::time::sleep(wait.min(Duration::from_millis(100))).await,
            }
        }
    }
}
