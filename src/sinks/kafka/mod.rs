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
//! checkpoint barrier and at the end — waits for all of them, queueing again any that
//! failed (the monitor retries with backoff and shows the error meanwhile). So every result
//! emitted before a checkpoint is in Kafka before that checkpoint completes, and a slow
//! broker costs throughput only at checkpoints, not on every window. At most
//! [`MAX_IN_FLIGHT`] messages wait for their acknowledgement (back-pressure beyond).
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

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
use super::{ResultSink, SinkError};
use crate::checkpoint::SinkPosition;
use crate::sources::kafka::{default_brokers, KafkaProducer};

/// Options read by the Kafka sink (besides `sink`).
pub const KAFKA_SINK_OPTIONS: &[&str] = &["topic", "brokers", "format", "properties"];

/// Header naming the monitor that wrote a result.
pub const MONITOR_HEADER: &str = "driftwatch_monitor";

/// Messages waiting for their acknowledgement, at most.
pub const MAX_IN_FLIGHT: usize = 50_000;

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
    /// Oldest first.
    in_flight: VecDeque<InFlight>,
    /// Failed deliveries, to queue again.
    failed: Vec<(InFlight, String)>,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("next", &self.next)
            .field("skip", &self.skip.len())
            .field("in_flight", &self.in_flight.len())
            .field("failed", &self.failed.len())
            .finish()
    }
}

/// Sends every result row of a monitor to a Kafka topic.
#[derive(Debug)]
pub struct KafkaSink {
    reader: TopicReader,
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
        let producer = KafkaProducer::new(&brokers, &properties).map_err(error)?;
        Ok(Self {
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

    /// Queues one message; when librdkafka's queue is full, waits for the oldest delivery
    /// first.
    async fn queue(&self, w: &mut Written, mut message: InFlight) -> Result<(), SinkError> {
        loop {
            let headers: [(&str, &[u8]); 1] = [(MONITOR_HEADER, message.monitor.as_bytes())];
            match self
                .producer
                .enqueue(&self.reader.topic, &message.key, &message.value, &headers)
            {
                Ok(delivery) => {
                    message.delivery = Some(delivery);
                    w.in_flight.push_back(message);
                    return Ok(());
                }
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
                    if !w.in_flight.is_empty() =>
                {
                    self.settle_oldest(w).await;
                }
                Err(e) => return Err(error(format!("queueing a result: {e}"))),
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
        m: InFlight,
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
            }
            Ok(Err((e, _))) => {
                self.producer.count(false);
                w.failed.push((m, e.to_string()));
            }
            Err(_) => {
                self.producer.count(false);
                w.failed.push((m, "the producer was closed".into()));
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

    async fn send(&self, monitor: &str, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
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
        let mut w = self.written.lock().await;
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
            self.queue(&mut w, message).await?;
        }
        self.settle_ready(&mut w);
        while w.in_flight.len() > MAX_IN_FLIGHT {
            self.settle_oldest(&mut w).await;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let mut w = self.written.lock().await;
        while !w.in_flight.is_empty() {
            self.settle_oldest(&mut w).await;
        }
        if w.failed.is_empty() {
            return Ok(());
        }
        // Queue the failed ones again; the caller retries the flush with backoff until
        // they are acknowledged.
        let failed = std::mem::take(&mut w.failed);
        let n = failed.len();
        let reason = failed[0].1.clone();
        for (m, _) in failed {
            self.queue(&mut w, m).await?;
        }
        Err(error(format!(
            "{n} result messages were not delivered (queued again): {reason}"
        )))
    }
}
