//! The consume loop of a Kafka source: receive messages, cut micro-batches by size and
//! linger time, decode them per partition, push them into the feed (partition = Kafka
//! partition), dead-letter what does not decode, and commit offsets once the feed took
//! the rows (see [`super::group`] for the rebalance rules).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::format::{MessageDecoder, RawMessage};
use super::group::GroupContext;
use super::options::{KafkaSourceOptions, MessageFormat};
use super::producer::KafkaProducer;
use crate::sources::connector::ConnectorError;
use crate::sources::feed::SourceFeed;
use crate::sources::rejected::RejectedRecord;

/// State of one running consume loop.
pub(super) struct ConsumeLoop {
    pub options: KafkaSourceOptions,
    pub consumer: Arc<StreamConsumer<GroupContext>>,
    pub context: GroupContext,
    /// Behind a mutex so the loop is `Sync` (the arrow decoders are only `Send`).
    decoder: std::sync::Mutex<MessageDecoder>,
    pub feed: SourceFeed,
    pub dead_letters: Option<KafkaProducer>,
    /// With `stop_at_end`: partitions that have not reported end-of-partition yet.
    pub not_at_end: Option<BTreeSet<i32>>,
    buffer: BTreeMap<i32, Vec<RawMessage>>,
    buffered: usize,
    deadline: Option<Instant>,
}

impl ConsumeLoop {
    pub fn new(
        options: KafkaSourceOptions,
        consumer: Arc<StreamConsumer<GroupContext>>,
        context: GroupContext,
        decoder: MessageDecoder,
        feed: SourceFeed,
        dead_letters: Option<KafkaProducer>,
        not_at_end: Option<BTreeSet<i32>>,
    ) -> Self {
        Self {
            options,
            consumer,
            context,
            decoder: std::sync::Mutex::new(decoder),
            feed,
            dead_letters,
            not_at_end,
            buffer: BTreeMap::new(),
            buffered: 0,
            deadline: None,
        }
    }

    fn io(&self, message: String) -> ConnectorError {
        ConnectorError::Io {
            source_name: self.feed.schema().name.clone(),
            message,
        }
    }

    /// Runs until `shutdown` (or, with `stop_at_end`, until every partition is consumed).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ConnectorError> {
        let consumer = Arc::clone(&self.consumer);
        let keep_headers = self.options.format == MessageFormat::CloudEvents;
        loop {
            self.apply_rebalances().await?;
            if self.reached_end() {
                self.flush().await?;
                self.feed
                    .finish()
                    .await
                    .map_err(|e| self.io(e.to_string()))?;
                break;
            }
            let sleep_until = self
                .deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(sleep_until) => {
                    if self.deadline.is_some() {
                        self.flush().await?;
                    }
                }
                received = consumer.recv() => match received {
                    Ok(m) => {
                        let raw = RawMessage {
                            partition: m.partition(),
                            offset: m.offset(),
                            timestamp: m.timestamp().to_millis(),
                            key: m.key().map(<[u8]>::to_vec),
                            payload: m.payload().map(<[u8]>::to_vec),
                            headers: if keep_headers {
                                m.headers()
                                    .map(|h| {
                                        h.iter()
                                            .map(|h| {
                                                (h.key.to_string(), h.value.unwrap_or_default().to_vec())
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default()
                            } else {
                                Vec::new()
                            },
                        };
                        drop(m);
                        self.buffer_message(raw);
                        if self.buffered >= self.options.batch_size {
                            self.flush().await?;
                        }
                    }
                    Err(KafkaError::PartitionEOF(p)) => {
                        if let Some(pending) = &mut self.not_at_end {
                            pending.remove(&p);
                        }
                    }
                    Err(e) => self.on_error(e)?,
                }
            }
        }
        // Commit what was processed; buffered messages are read again next time.
        let processed = std::mem::take(
            &mut self
                .context
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .processed,
        );
        if let Err(e) = self
            .context
            .commit(consumer.as_ref(), &processed, CommitMode::Sync)
        {
            tracing::warn!(source = %self.feed.schema().name, error = %e, "final commit failed");
        }
        Ok(())
    }

    fn buffer_message(&mut self, raw: RawMessage) {
        self.drop_revoked();
        let owned = {
            let state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
            state.owned.contains(&raw.partition)
        };
        if !owned {
            // Fetched before a revoke: the partition's new owner reads it.
            return;
        }
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.options.linger);
        }
        self.buffered += 1;
        self.buffer.entry(raw.partition).or_default().push(raw);
    }

    fn on_error(&self, e: KafkaError) -> Result<(), ConnectorError> {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AutoOffsetReset) => Err(self.io(format!(
                "no committed offset to start from (start = 'committed'): {e}"
            ))),
            _ => {
                tracing::warn!(source = %self.feed.schema().name, error = %e, "Kafka consumer error");
                Ok(())
            }
        }
    }

    /// Drops buffered messages of partitions revoked since the last look. Called before a
    /// newly received message is buffered: a message returned by `recv` is always newer
    /// than the rebalance events served in that call.
    fn drop_revoked(&mut self) {
        let revoked = {
            let mut state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut state.revoked)
        };
        for p in revoked {
            if let Some(dropped) = self.buffer.remove(&p) {
                tracing::debug!(
                    partition = p,
                    messages = dropped.len(),
                    "dropped after revoke"
                );
                self.buffered -= dropped.len();
            }
        }
        if self.buffered == 0 {
            self.deadline = None;
        }
    }

    /// Applies rebalances seen since the last look: drops buffered messages of revoked
    /// partitions and (un)registers feed partitions.
    async fn apply_rebalances(&mut self) -> Result<(), ConnectorError> {
        self.drop_revoked();
        let changes = {
            let mut state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut state.changes)
        };
        for (added, removed) in changes {
            for p in added {
                self.feed.register_partition(p as u32);
            }
            for p in removed {
                self.feed
                    .unregister_partition(p as u32)
                    .await
                    .map_err(|e| self.io(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Decodes and pushes every buffered message, then commits the new offsets.
    async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.apply_rebalances().await?;
        self.deadline = None;
        self.buffered = 0;
        let buffer = std::mem::take(&mut self.buffer);
        let mut committed = BTreeMap::new();
        for (partition, messages) in buffer {
            let Some(next) = messages.last().map(|m| m.offset + 1) else {
                continue;
            };
            let decoded = self
                .decoder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .decode(&messages);
            if !decoded.rejected.is_empty() {
                self.dead_letter(&decoded.rejected).await?;
                self.feed.reject(decoded.rejected);
            }
            if let Some(batch) = decoded.batch {
                self.feed
                    .push(partition as u32, batch)
                    .await
                    .map_err(|e| self.io(e.to_string()))?;
            }
            let mut state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.owned.contains(&partition) {
                state.processed.insert(partition, next);
                committed.insert(partition, next);
            }
        }
        if let Err(e) = self
            .context
            .commit(self.consumer.as_ref(), &committed, CommitMode::Async)
        {
            tracing::warn!(source = %self.feed.schema().name, error = %e, "commit failed");
        }
        Ok(())
    }

    /// Sends rejected messages to the dead-letter topic, when one is configured.
    async fn dead_letter(&self, rejected: &[RejectedRecord]) -> Result<(), ConnectorError> {
        let (Some(producer), Some(topic)) = (&self.dead_letters, &self.options.dead_letter_topic)
        else {
            return Ok(());
        };
        for r in rejected {
            let partition = r.partition.to_string();
            let offset = r.position.unwrap_or(-1).to_string();
            let headers: [(&str, &[u8]); 4] = [
                ("driftwatch_source", self.feed.schema().name.as_bytes()),
                ("driftwatch_reason", r.reason.as_bytes()),
                ("driftwatch_partition", partition.as_bytes()),
                ("driftwatch_offset", offset.as_bytes()),
            ];
            producer
                .send(topic, None, r.raw.as_bytes(), &headers)
                .await
                .map_err(|e| self.io(format!("dead-letter topic: {e}")))?;
        }
        Ok(())
    }

    /// With `stop_at_end`: whether every partition reported end-of-partition. Its
    /// messages came before that event, so they are all buffered or pushed.
    fn reached_end(&self) -> bool {
        self.not_at_end.as_ref().is_some_and(BTreeSet::is_empty)
    }
}
