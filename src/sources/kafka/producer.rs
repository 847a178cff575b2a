//! A small wrapper over rdkafka's `FutureProducer` shared by the Kafka sink, the
//! dead-letter topic and the HTTP → Kafka forwarder: idempotent, retried by librdkafka
//! within `message.timeout.ms`, and every send awaited until the broker acknowledged it
//! (an unacknowledged message is an error for the caller, never dropped silently).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use super::options::producer_config;

/// Routes librdkafka's client logs and errors to `tracing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, "{log_message}"),
            L::Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(target: "librdkafka", %error, "{reason}");
        } else {
            tracing::warn!(target: "librdkafka", %error, "{reason}");
        }
    }
}

/// Error of a produce call: the message was not acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("Kafka topic '{topic}': {message}")]
pub struct ProduceError {
    /// Topic written to.
    pub topic: String,
    /// What failed.
    pub message: String,
}

/// An idempotent producer whose sends resolve on broker acknowledgement.
pub struct KafkaProducer {
    producer: FutureProducer<TracingContext>,
    brokers: String,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("brokers", &self.brokers)
            .field("sent", &self.sent())
            .field("failed", &self.failed())
            .finish()
    }
}

impl KafkaProducer {
    /// Creates a producer for `brokers` with extra librdkafka `properties`.
    pub fn new(brokers: &str, properties: &[(String, String)]) -> Result<Self, String> {
        let producer = producer_config(brokers, properties)
            .create_with_context(TracingContext)
            .map_err(|e| format!("cannot create a Kafka producer for '{brokers}': {e}"))?;
        Ok(Self {
            producer,
            brokers: brokers.to_string(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Messages acknowledged so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Messages that failed (after librdkafka's retries) so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Sends one message and waits for the broker's acknowledgement; returns the partition
    /// and offset the broker stored it at.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), ProduceError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(payload)
            .headers(owned);
        if let Some(k) = key {
            record = record.key(k);
        }
        match self.producer.send(record, Timeout::Never).await {
            Ok(delivery) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                Ok((delivery.partition, delivery.offset))
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(topic, error = %e, "Kafka delivery failed");
                Err(ProduceError {
                    topic: topic.to_string(),
                    message: format!("delivery failed: {e}"),
                })
            }
        }
    }

    /// Queues one message without waiting for it; the returned future resolves with the
    /// broker's answer. Fails at once when librdkafka's queue is full (wait for earlier
    /// deliveries, then queue again).
    pub fn enqueue(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let record = FutureRecord::<[u8], [u8]>::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// Counts the outcome of a delivery queued with [`KafkaProducer::enqueue`].
    pub fn count(&self, delivered: bool) {
        if delivered {
            self.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends many messages concurrently; resolves when all were acknowledged, or with the
    /// first failure (after every send finished).
    pub async fn send_all<'a>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (Option<&'a [u8]>, &'a [u8])>,
    ) -> Result<(), ProduceError> {
        let sends = messages
            .into_iter()
            .map(|(key, payload)| self.send(topic, key, payload, &[]));
        let results = futures::future::join_all(sends).await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }

    /// The underlying rdkafka producer (metadata queries).
    pub fn inner(&self) -> &FutureProducer<TracingContext> {
        &self.producer
    }

    /// Waits until every queued message is delivered (or fails) within `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        self.producer.flush(timeout).map_err(|e| ProduceError {
            topic: String::from("*"),
            message: format!("flush: {e}"),
        })
    }
}
