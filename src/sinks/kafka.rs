//! The Kafka result sink: `CREATE MONITOR m WITH (sink = 'kafka', topic = 'alerts',
//! brokers = '127.0.0.1:9092', format = 'json') AS …`.
//!
//! One message per result row: the value is the row as a JSON object (column name →
//! value, timestamps as ISO 8601 text), the key is `monitor|window_start|window_end|<text
//! columns>` (the text columns are the group keys of typical monitors, such as `feature`),
//! and the `driftwatch_monitor` header names the monitor. The producer is idempotent and
//! librdkafka retries within `message.timeout.ms`; `send` resolves only when every message
//! of the batch was acknowledged, and a failed delivery is returned as an error (the
//! monitor stops with it), counted and logged, never dropped silently.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::json::LineDelimitedWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use driftwatch_sql::Options;

use super::{ResultSink, SinkError};
use crate::sources::kafka::{default_brokers, KafkaProducer};

/// Options read by the Kafka sink (besides `sink`).
pub const KAFKA_SINK_OPTIONS: &[&str] = &["topic", "brokers", "format", "properties"];

/// Sends every result row of a monitor to a Kafka topic.
#[derive(Debug)]
pub struct KafkaSink {
    topic: String,
    producer: Arc<KafkaProducer>,
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
            topic,
            producer: Arc::new(producer),
        })
    }

    /// The underlying producer (delivery counters).
    pub fn producer(&self) -> &Arc<KafkaProducer> {
        &self.producer
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
        let headers: [(&str, &[u8]); 1] = [("driftwatch_monitor", monitor.as_bytes())];
        let sends = keys.iter().zip(values).map(|(k, v)| {
            self.producer
                .send(&self.topic, Some(k.as_bytes()), v, &headers)
        });
        let results = futures::future::join_all(sends).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            return Err(error(format!(
                "monitor '{monitor}': {failed} of {} result rows were not delivered: {e}",
                keys.len()
            )));
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let producer = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| error(e.to_string()))?
            .map_err(|e| error(e.to_string()))
    }
}
