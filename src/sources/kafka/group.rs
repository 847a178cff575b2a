//! Consumer-group membership of a Kafka source (`assignment = 'group'`): the rebalance
//! callback, what the consume loop must do after a rebalance, and which offsets may be
//! committed. (With the default static assignment none of this runs: the context only
//! routes librdkafka's logs.)
//!
//! The rules that keep rows neither lost nor double-counted across rebalances:
//! - while partitions stay put, only offsets a durable checkpoint covers are committed
//!   (see [`super::KafkaConnector`]);
//! - a partition assigned here starts at the later of its committed offset and this
//!   instance's own position for it (restored from a checkpoint), so a restart continues
//!   from its checkpoint and a partition that comes back after another member advanced it
//!   continues from there;
//! - on revoke, the processed offsets of the revoked partitions are committed
//!   synchronously inside the callback (nothing is being pushed then: callbacks run inside
//!   the consume loop's `recv`), and forgotten, so a stale offset is never committed later;
//! - messages buffered for a revoked partition but not pushed are dropped: the next owner
//!   reads them again from the committed offset.
//!
//! Rebalances use the eager protocol (revoke all, then assign). Feed partitions are
//! (un)registered only when the assignment that follows a revoke arrives, so a partition
//! that stays with this consumer never leaves the watermark.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::options::StartPosition;
use super::producer::TracingContext;
use crate::sources::feed::SourceFeed;

/// What the consume loop learns from rebalances.
#[derive(Debug, Default)]
pub struct GroupState {
    /// Partitions currently assigned to this consumer.
    pub owned: BTreeSet<i32>,
    /// Next offset to commit per partition (everything before it is in the engine).
    pub processed: BTreeMap<i32, i64>,
    /// Partitions revoked since the loop last looked (buffered messages must be dropped).
    pub revoked: Vec<i32>,
    /// Set when an assignment arrived: `(newly owned, no longer owned)` for the feed.
    pub changes: Vec<(Vec<i32>, Vec<i32>)>,
    /// Partitions revoked and not yet known to be re-assigned or gone.
    pending_revoke: BTreeSet<i32>,
    /// Rebalances seen (for logs and tests).
    pub rebalances: u64,
}

/// The consumer context: tracing logs plus the rebalance handling described above.
#[derive(Debug, Clone)]
pub struct GroupContext {
    source: String,
    topic: String,
    start: StartPosition,
    /// Group mode: the feed whose positions are a lower bound on assign.
    feed: Option<SourceFeed>,
    /// Shared with the consume loop.
    pub state: Arc<Mutex<GroupState>>,
}

impl GroupContext {
    /// A context for `source` reading `topic`.
    /// A context for `source` reading `topic`; `feed` in group mode.
    pub fn new(source: &str, topic: &str, start: StartPosition, feed: Option<SourceFeed>) -> Self {
        Self {
            source: source.to_string(),
            topic: topic.to_string(),
            start,
            feed,
            state: Arc::new(Mutex::new(GroupState::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits `offsets` (partition → next offset) of the topic.
    pub fn commit<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        offsets: &BTreeMap<i32, i64>,
        mode: CommitMode,
    ) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))?;
        }
        consumer.commit(&tpl, mode)
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let mut state = self.lock();
        let to_commit: BTreeMap<i32, i64> = partitions
            .iter()
            .filter_map(|p| state.processed.remove(p).map(|o| (*p, o)))
            .collect();
        if let Err(e) = self.commit(consumer, &to_commit, CommitMode::Sync) {
            tracing::error!(source = %self.source, error = %e, "commit on revoke failed");
        }
        tracing::info!(source = %self.source, ?partitions, committed = ?to_commit, "partitions revoked");
        for p in &partitions {
            state.owned.remove(p);
            state.pending_revoke.insert(*p);
        }
        state.revoked.extend(partitions);
        state.rebalances += 1;
    }

    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        if let StartPosition::Timestamp(ms) = self.start {
            self.seek_to_time(consumer, tpl, ms);
        }
        self.resume_own_positions(consumer, tpl);
        let mut state = self.lock();
        let added: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !state.pending_revoke.contains(p) && !state.owned.contains(p))
            .collect();
        let removed: Vec<i32> = state
            .pending_revoke
            .iter()
            .copied()
            .filter(|p| !partitions.contains(p))
            .collect();
        state.pending_revoke.clear();
        state.owned.extend(partitions.iter().copied());
        state.changes.push((added, removed));
        state.rebalances += 1;
        tracing::info!(source = %self.source, ?partitions, "partitions assigned");
    }

    /// Starts each partition at the later of its committed offset and the feed's own
    /// position (restored from a checkpoint or reached before the partition left).
    fn resume_own_positions(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let Some(feed) = &self.feed else { return };
        let own: Vec<(i32, i64)> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .filter_map(|e| {
                feed.position(e.partition() as u32)
                    .and_then(|p| p.kafka_offset())
                    .map(|o| (e.partition(), o))
            })
            .collect();
        if own.is_empty() {
            return;
        }
        let committed = consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .ok();
        for (p, o) in own {
            let c = committed
                .as_ref()
                .and_then(|c| c.find_partition(&self.topic, p))
                .and_then(|e| match e.offset() {
                    Offset::Offset(c) => Some(c),
                    _ => None,
                });
            if c.is_none_or(|c| o > c) {
                let _ = tpl.set_partition_offset(&self.topic, p, Offset::Offset(o));
            }
        }
    }

    /// For partitions without a committed offset, starts at the first message at or after
    /// `ms` (committed offsets win).
    fn seek_to_time(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList, ms: i64) {
        let timeout = Duration::from_secs(10);
        let committed = match consumer.committed_offsets(tpl.clone(), timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "cannot read committed offsets");
                return;
            }
        };
        let mut query = TopicPartitionList::new();
        for e in committed.elements_for_topic(&self.topic) {
            if !matches!(e.offset(), Offset::Offset(_)) {
                let _ = query.add_partition_offset(&self.topic, e.partition(), Offset::Offset(ms));
            }
        }
        if query.count() == 0 {
            return;
        }
        match consumer.offsets_for_times(query, timeout) {
            Ok(found) => {
                for e in found.elements_for_topic(&self.topic) {
                    let offset = match e.offset() {
                        Offset::Offset(o) => Offset::Offset(o),
                        _ => Offset::End,
                    };
                    let _ = tpl.set_partition_offset(&self.topic, e.partition(), offset);
                }
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "offsets_for_times failed")
            }
        }
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        TracingContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.on_assign(consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.on_revoke(consumer, tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(source = %self.source, error = ?other, "rebalance error");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(source = %self.source, error = %e, "applying the assignment failed");
        }
    }
}
