//! Reading back a Kafka sink topic: its end offsets when a sink starts, and after a restart
//! the identities of the results a monitor wrote after the restored checkpoint (see
//! [`super`] for why).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{error, identity, Identity, MONITOR_HEADER};
use crate::sinks::SinkError;

/// How long reading back the tail of a sink topic may take.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(120);

/// A consumer-side view of one sink topic (outside any consumer group).
#[derive(Debug, Clone)]
pub struct TopicReader {
    /// The topic.
    pub topic: String,
    /// Bootstrap servers.
    pub brokers: String,
    /// librdkafka settings (security).
    pub properties: Vec<(String, String)>,
}

/// What a read-back found.
#[derive(Debug, Default)]
pub struct ReadBack {
    /// Identities of the monitor's messages, with multiplicity.
    pub found: HashMap<Identity, u32>,
    /// End offset of every partition when reading started.
    pub end: BTreeMap<i32, i64>,
    /// Messages read (the monitor's and others').
    pub read: u64,
}

impl TopicReader {
    pub(super) fn consumer(&self) -> Result<BaseConsumer, SinkError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "driftwatch-sink-readback")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed");
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
            .create()
            .map_err(|e| error(format!("cannot create a Kafka consumer: {e}")))
    }

    /// High watermark of every partition of the topic.
    pub fn end_offsets(&self) -> Result<BTreeMap<i32, i64>, SinkError> {
        self.end_offsets_with(&self.consumer()?)
    }

    fn end_offsets_with(&self, consumer: &BaseConsumer) -> Result<BTreeMap<i32, i64>, SinkError> {
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| error(format!("metadata of topic '{}': {e}", self.topic)))?;
        let mut out = BTreeMap::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(&self.topic, p.id(), timeout)
                    .map_err(|e| {
                        error(format!("end offset of '{}' [{}]: {e}", self.topic, p.id()))
                    })?;
                out.insert(p.id(), high);
            }
        }
        Ok(out)
    }

    /// Reads every partition from `from` (0 for partitions it does not name) to its end
    /// and collects the identities of the messages `monitor` wrote.
    pub fn read_back(
        &self,
        monitor: &str,
        from: &BTreeMap<i32, i64>,
        by_content: bool,
    ) -> Result<ReadBack, SinkError> {
        let consumer = self.consumer()?;
        let end = self.end_offsets_with(&consumer)?;
        let mut tpl = TopicPartitionList::new();
        let mut pending = BTreeMap::new();
        for (p, high) in &end {
            // A recorded position beyond the end: the topic was deleted and created again
            // (offsets restart at 0), so all of it may hold results of the crashed run.
            let start = match from.get(p).copied().unwrap_or(0) {
                s if s > *high => 0,
                s => s.max(0),
            };
            if start < *high {
                tpl.add_partition_offset(&self.topic, *p, Offset::Offset(start))
                    .map_err(|e| error(e.to_string()))?;
                pending.insert(*p, *high);
            }
        }
        let mut out = ReadBack {
            end: end.clone(),
            ..ReadBack::default()
        };
        if pending.is_empty() {
            return Ok(out);
        }
        consumer.assign(&tpl).map_err(|e| error(e.to_string()))?;
        let deadline = Instant::now() + READ_BACK_TIMEOUT;
        while !pending.is_empty() {
            if Instant::now() > deadline {
                return Err(error(format!(
                    "reading back topic '{}' after a restart timed out before {pending:?}",
                    self.topic
                )));
            }
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.map_err(|e| error(format!("reading back '{}': {e}", self.topic)))?;
            out.read += 1;
            let ours = m.headers().is_some_and(|h| {
                h.iter()
                    .any(|h| h.key == MONITOR_HEADER && h.value == Some(monitor.as_bytes()))
            });
            if ours {
                let id = identity(
                    m.key().unwrap_or_default(),
                    by_content.then(|| m.payload().unwrap_or_default()),
                );
                *out.found.entry(id).or_insert(0) += 1;
            }
            if pending
                .get(&m.partition())
                .is_some_and(|high| m.offset() + 1 >= *high)
            {
                pending.remove(&m.partition());
            }
        }
        Ok(out)
    }
}
