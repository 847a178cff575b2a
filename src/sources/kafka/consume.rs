//! The consume loop of a Kafka source: receive messages, cut micro-batches by size and
//! linger time, decode them per partition, deliver them into the feed with the offset they
//! reach (partition = Kafka partition), dead-letter what does not decode, and tell the feed
//! which partitions are caught up. Offsets are not committed here: the runtime commits only
//! what a durable checkpoint covers (see [`super::KafkaConnector`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::assign;
use super::format::{MessageDecoder, RawMessage};
use super::group::GroupContext;
use super::options::{Assignment, KafkaSourceOptions, MessageFormat};
use super::producer::KafkaProducer;
use crate::metrics::Health;
use crate::sources::connector::ConnectorError;
use crate::sources::feed::{Delivery, SourceFeed};
use crate::sources::position::SourcePosition;
use crate::sources::rejected::RejectedRecord;

/// How often a statically assigned consumer looks for partitions added to the topic.
const PARTITION_REFRESH: Duration = Duration::from_secs(30);
/// How often, at most, caught-up states are re-evaluated.
const CAUGHT_UP_CHECK: Duration = Duration::from_millis(200);

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
    /// Offsets to commit (group mode: commits go through the member consumer); the newest
    /// only (see `KafkaConnector::group_commits`).
    pub commits: Option<watch::Receiver<BTreeMap<i32, i64>>>,
    topic: CString,
    buffer: BTreeMap<i32, Vec<RawMessage>>,
    buffered: usize,
    deadline: Option<Instant>,
    last_refresh: Instant,
    last_caught_up: Instant,
}

impl ConsumeLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        options: KafkaSourceOptions,
        consumer: Arc<StreamConsumer<GroupContext>>,
        context: GroupContext,
        decoder: MessageDecoder,
        feed: SourceFeed,
        dead_letters: Option<KafkaProducer>,
        not_at_end: Option<BTreeSet<i32>>,
        commits: Option<watch::Receiver<BTreeMap<i32, i64>>>,
    ) -> Self {
        let topic = CString::new(options.topic.clone()).unwrap_or_default();
        Self {
            options,
            consumer,
            context,
            decoder: std::sync::Mutex::new(decoder),
            feed,
            dead_letters,
            not_at_end,
            commits,
            topic,
            buffer: BTreeMap::new(),
            buffered: 0,
            deadline: None,
            last_refresh: Instant::now(),
            last_caught_up: Instant::now(),
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
        let mut commits = self.commits.take();
        loop {
            self.apply_rebalances().await?;
            if self.reached_end() {
                self.flush(&shutdown).await?;
                self.feed
                    .finish()
                    .await
                    .map_err(|e| self.io(e.to_string()))?;
                break;
            }
            let sleep_until = self
                .deadline
                .unwrap_or_else(|| Instant::now() + CAUGHT_UP_CHECK);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(offsets) = async {
                    match commits.as_mut() {
                        Some(rx) => match rx.changed().await {
                            Ok(()) => Some(rx.borrow_and_update().clone()),
                            Err(_) => None,
                        },
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = self.context.commit(consumer.as_ref(), &offsets, CommitMode::Async) {
                        tracing::warn!(source = %self.feed.schema().name, error = %e, "commit failed");
                    }
                }
                _ = tokio::time::sleep_until(sleep_until) => {
                    if self.deadline.is_some() {
                        self.flush(&shutdown).await?;
                    }
                    self.housekeeping()?;
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
                            self.flush(&shutdown).await?;
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
        if self.options.assignment == Assignment::Group {
            // Leaving the group: hand over what was processed (see `super::group`).
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
        }
        Ok(())
    }

    /// Periodic work while waiting for messages: caught-up states, new partitions.
    fn housekeeping(&mut self) -> Result<(), ConnectorError> {
        if self.last_caught_up.elapsed() >= CAUGHT_UP_CHECK {
            self.last_caught_up = Instant::now();
            self.update_caught_up();
        }
        if self.options.assignment == Assignment::Static
            && self.last_refresh.elapsed() >= PARTITION_REFRESH
        {
            self.last_refresh = Instant::now();
            self.add_new_partitions();
        }
        Ok(())
    }

    /// Tells the feed, per owned partition, whether everything the broker holds has been
    /// delivered (nothing buffered, position at the high watermark). A partition behind its
    /// high watermark never counts as idle, so a consumer that is catching up after a restart
    /// does not let processing time push the watermark past data waiting in the topic.
    fn update_caught_up(&self) {
        let owned: Vec<i32> = {
            let state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
            state.owned.iter().copied().collect()
        };
        let positions = self.consumer.position().ok();
        for p in owned {
            let buffered = self.buffer.get(&p).is_some_and(|b| !b.is_empty());
            let position = self
                .feed
                .position(p as u32)
                .and_then(|pos| pos.kafka_offset())
                .or_else(|| {
                    positions.as_ref().and_then(|tpl| {
                        tpl.find_partition(&self.options.topic, p)
                            .and_then(|e| match e.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            })
                    })
                });
            let high = assign::cached_high_watermark(self.consumer.as_ref(), &self.topic, p);
            let caught_up = !buffered
                && match (position, high) {
                    (Some(pos), Some(high)) => pos >= high,
                    (None, Some(0)) => true,
                    _ => false,
                };
            if let (Some(pos), Some(high)) = (position, high) {
                self.feed.metrics().set_partition_lag(p as u32, high - pos);
            }
            self.feed.set_caught_up(p as u32, caught_up);
        }
    }

    /// Static assignment: starts reading partitions added to the topic since the start.
    fn add_new_partitions(&mut self) {
        let Ok(partitions) = assign::topic_partitions(self.consumer.as_ref(), &self.options.topic)
        else {
            return;
        };
        let new: BTreeSet<i32> = {
            let state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
            partitions.difference(&state.owned).copied().collect()
        };
        if new.is_empty() {
            return;
        }
        match assign::start_offsets(self.consumer.as_ref(), &self.options, &new, &self.feed) {
            Ok(tpl) => {
                if let Err(e) = self.consumer.incremental_assign(&tpl) {
                    tracing::warn!(source = %self.feed.schema().name, error = %e, "assigning new partitions failed");
                    return;
                }
                tracing::info!(source = %self.feed.schema().name, partitions = ?new, "new partitions assigned");
                let mut state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
                for p in &new {
                    state.owned.insert(*p);
                    self.feed.register_partition(*p as u32);
                    self.feed.set_caught_up(*p as u32, false);
                }
            }
            Err(e) => {
                tracing::warn!(source = %self.feed.schema().name, error = %e, "new partitions")
            }
        }
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
                self.feed.set_caught_up(p as u32, false);
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

    /// Decodes and delivers every buffered message, each partition with the offset after
    /// its last message.
    async fn flush(&mut self, shutdown: &CancellationToken) -> Result<(), ConnectorError> {
        self.apply_rebalances().await?;
        self.deadline = None;
        self.buffered = 0;
        let buffer = std::mem::take(&mut self.buffer);
        let now = chrono::Utc::now().timestamp_millis();
        for (partition, messages) in buffer {
            let Some(next) = messages.last().map(|m| m.offset + 1) else {
                continue;
            };
            tracing::trace!(
                partition,
                first = messages[0].offset,
                next,
                messages = messages.len(),
                "delivering"
            );
            // Arrival time for `max_future`: the broker/producer timestamp, never later than
            // now (so a replay decides as the first run did).
            let arrival_ms = messages
                .iter()
                .filter_map(|m| m.timestamp)
                .max()
                .map_or(now, |t| t.min(now));
            let decoded = self
                .decoder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .decode(&messages);
            if !decoded.rejected.is_empty() && !self.dead_letter(&decoded.rejected, shutdown).await
            {
                // Stopped while the dead-letter topic was unwritable: nothing of this
                // partition was delivered, so it is read again next time.
                return Ok(());
            }
            self.feed
                .deliver(
                    partition as u32,
                    Delivery {
                        batch: decoded.batch,
                        rejected: decoded.rejected,
                        position: Some(SourcePosition::Kafka { next_offset: next }),
                        arrival_ms,
                    },
                )
                .await
                .map_err(|e| self.io(e.to_string()))?;
            let mut state = self.context.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.owned.contains(&partition) {
                state.processed.insert(partition, next);
            }
        }
        self.update_caught_up();
        self.last_caught_up = Instant::now();
        Ok(())
    }

    /// Sends rejected messages to the dead-letter topic, when one is configured, retrying
    /// with backoff while it is unwritable (the source's status says so). Returns false when
    /// stopped first.
    async fn dead_letter(&self, rejected: &[RejectedRecord], shutdown: &CancellationToken) -> bool {
        let (Some(producer), Some(topic)) = (&self.dead_letters, &self.options.dead_letter_topic)
        else {
            return true;
        };
        let health = &self.feed.metrics().health;
        let mut backoff = Duration::from_millis(500);
        let mut failed = false;
        for r in rejected {
            let partition = r.partition.to_string();
            let offset = r.position.unwrap_or(-1).to_string();
            let headers: [(&str, &[u8]); 4] = [
                ("driftwatch_source", self.feed.schema().name.as_bytes()),
                ("driftwatch_reason", r.reason.as_bytes()),
                ("driftwatch_partition", partition.as_bytes()),
                ("driftwatch_offset", offset.as_bytes()),
            ];
            loop {
                match producer.send(topic, None, r.raw.as_bytes(), &headers).await {
                    Ok(_) => break,
                    Err(e) => {
                        failed = true;
                        let message = format!("dead-letter topic '{topic}': {e}");
                        tracing::warn!(source = %self.feed.schema().name, error = %message, "retrying");
                        health.set(Health::Retrying, Some(message));
                        tokio::select! {
                            _ = shutdown.cancelled() => return false,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
        if failed {
            health.set(Health::Running, None);
        }
        true
    }

    /// With `stop_at_end`: whether every partition reported end-of-partition. Its
    /// messages came before that event, so they are all buffered or delivered.
    fn reached_end(&self) -> bool {
        self.not_at_end.as_ref().is_some_and(BTreeSet::is_empty)
    }
}

/// Offsets of `positions` as a topic-partition list.
pub(super) fn offsets_tpl(topic: &str, offsets: &BTreeMap<i32, i64>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*o));
    }
    tpl
}
