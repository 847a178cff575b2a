//! HTTP → Kafka: a Kafka source with `ingest = 'http'` also accepts `POST /ingest/<source>`
//! and writes each valid body, as one message, to its own topic (CloudEvent `ce-*` request
//! headers become `ce_*` message headers). The answer is 200 only once the broker
//! acknowledged the message; the rows then reach the monitors through the normal consume
//! path, so a restart or a second instance loses nothing that was answered 200.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

use super::format::{MessageDecoder, RawMessage};
use super::producer::KafkaProducer;
use crate::sources::http::{BodyForwarder, ForwardError};

/// Validates HTTP bodies with the source's decoder and produces them to its topic.
pub struct KafkaForwarder {
    topic: String,
    producer: Arc<KafkaProducer>,
    /// Used only to validate bodies (the arrow decoders are `Send`, not `Sync`).
    decoder: Mutex<MessageDecoder>,
}

impl KafkaForwarder {
    /// A forwarder to `topic`.
    pub fn new(topic: &str, producer: Arc<KafkaProducer>, decoder: MessageDecoder) -> Self {
        Self {
            topic: topic.to_string(),
            producer,
            decoder: Mutex::new(decoder),
        }
    }
}

/// Request headers kept on the Kafka message: CloudEvent attributes (`ce-type` → `ce_type`)
/// and the content type.
fn message_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str();
            let key = if let Some(rest) = name.strip_prefix("ce-") {
                format!("ce_{rest}")
            } else if name == "content-type" {
                "content-type".to_string()
            } else {
                return None;
            };
            Some((key, value.as_bytes().to_vec()))
        })
        .collect()
}

#[async_trait::async_trait]
impl BodyForwarder for KafkaForwarder {
    async fn forward(&self, headers: &HeaderMap, body: &[u8]) -> Result<usize, ForwardError> {
        let headers = message_headers(headers);
        let message = RawMessage {
            payload: Some(body.to_vec()),
            headers,
            ..RawMessage::default()
        };
        let decoded = self
            .decoder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .decode(std::slice::from_ref(&message));
        if let Some(bad) = decoded.rejected.first() {
            let reason = bad
                .reason
                .split_once(": ")
                .map_or(bad.reason.as_str(), |x| x.1);
            return Err(ForwardError::Invalid(reason.to_string()));
        }
        let header_refs: Vec<(&str, &[u8])> = message
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        self.producer
            .send(&self.topic, None, body, &header_refs)
            .await
            .map_err(|e| ForwardError::Unavailable(e.to_string()))?;
        Ok(decoded.num_rows())
    }
}
