//! Static partition assignment (`assignment = 'static'`, the default): this consumer reads
//! every partition of the topic, assigned explicitly, from where the restored checkpoint
//! (or an earlier run of the connector) left each one — the feed's position. Only when the
//! feed has no position is the consumer group's committed offset used, and only without one
//! the `start` option. Because there is no group membership, a restarted instance never waits
//! for the broker to evict the consumer of a killed predecessor.
//!
//! Also here: whether a partition is caught up (its position at the high watermark), which
//! decides whether it may count as idle (see [`crate::sources::watermark`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::options::{KafkaSourceOptions, StartPosition};
use crate::sources::feed::SourceFeed;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Partitions of the topic, from the broker's metadata.
pub fn topic_partitions<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
) -> Result<BTreeSet<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| format!("metadata of topic '{topic}': {e}"))?;
    let mut partitions = BTreeSet::new();
    for t in metadata.topics() {
        if let Some(e) = t.error() {
            return Err(format!("topic '{topic}': {e:?} (does it exist?)"));
        }
        partitions.extend(t.partitions().iter().map(|p| p.id()));
    }
    if partitions.is_empty() {
        return Err(format!(
            "topic '{topic}' has no partitions (does it exist?)"
        ));
    }
    Ok(partitions)
}

/// Where each of `partitions` starts: the feed's position, else the committed group
/// offset (unless `use_committed` is off), else the `start` option.
pub fn start_offsets<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    options: &KafkaSourceOptions,
    partitions: &BTreeSet<i32>,
    feed: &SourceFeed,
) -> Result<TopicPartitionList, String> {
    let topic = &options.topic;
    let mut offsets: BTreeMap<i32, Offset> = BTreeMap::new();
    let mut unknown = Vec::new();
    for p in partitions {
        match feed.position(*p as u32).and_then(|pos| pos.kafka_offset()) {
            Some(o) => {
                offsets.insert(*p, Offset::Offset(o));
            }
            None => unknown.push(*p),
        }
    }
    if !unknown.is_empty() && options.use_committed {
        let mut query = TopicPartitionList::new();
        for p in &unknown {
            query
                .add_partition(topic, *p)
                .set_offset(Offset::Invalid)
                .map_err(|e| e.to_string())?;
        }
        let committed = consumer
            .committed_offsets(query, TIMEOUT)
            .map_err(|e| format!("committed offsets of group '{}': {e}", options.group_id))?;
        for e in committed.elements_for_topic(topic) {
            if let Offset::Offset(o) = e.offset() {
                offsets.insert(e.partition(), Offset::Offset(o));
            }
        }
        unknown.retain(|p| !offsets.contains_key(p));
    }
    if !unknown.is_empty() {
        match options.start {
            StartPosition::Earliest => {
                for p in &unknown {
                    offsets.insert(*p, Offset::Beginning);
                }
            }
            StartPosition::Latest => {
                for p in &unknown {
                    offsets.insert(*p, Offset::End);
                }
            }
            StartPosition::Committed => {
                return Err(format!(
                    "start = 'committed' but partitions {unknown:?} of '{topic}' have neither a \
                     checkpointed position nor an offset committed by group '{}'",
                    options.group_id
                ))
            }
            StartPosition::Timestamp(ms) => {
                let mut query = TopicPartitionList::new();
                for p in &unknown {
                    query
                        .add_partition_offset(topic, *p, Offset::Offset(ms))
                        .map_err(|e| e.to_string())?;
                }
                let found = consumer
                    .offsets_for_times(query, TIMEOUT)
                    .map_err(|e| format!("offsets for time {ms} of '{topic}': {e}"))?;
                for e in found.elements_for_topic(topic) {
                    let o = match e.offset() {
                        Offset::Offset(o) => Offset::Offset(o),
                        _ => Offset::End,
                    };
                    offsets.insert(e.partition(), o);
                }
            }
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, p, o)
            .map_err(|e| e.to_string())?;
    }
    Ok(tpl)
}

/// The high watermark librdkafka last saw for a partition in a fetch response (no request
/// is sent); `None` before the first response.
pub fn cached_high_watermark<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &CString,
    partition: i32,
) -> Option<i64> {
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: `native_ptr` is a live client handle for as long as `consumer` is borrowed;
    // `topic` is a NUL-terminated string that outlives the call; `low` and `high` are valid
    // for writes. `rd_kafka_get_watermark_offsets` only reads its cache.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}
