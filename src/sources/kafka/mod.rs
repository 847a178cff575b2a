//! The Kafka connector (`connector = 'kafka'`), built on rdkafka (librdkafka).
//!
//! ```sql
//! CREATE SOURCE iris (request_id VARCHAR, ts TIMESTAMP, sepal_length DOUBLE, …,
//!                     _partition INT, _offset BIGINT,
//!                     WATERMARK FOR ts AS ts - INTERVAL '6 seconds')
//! WITH (connector = 'kafka', brokers = '127.0.0.1:9092', topic = 'iris-inference',
//!       group_id = 'driftwatch', start = 'earliest', format = 'inference-log',
//!       batch_size = '8192', linger = '50 ms', dead_letter_topic = 'iris-dlq',
//!       properties.security.protocol = 'SASL_SSL');
//! ```
//!
//! - [`options`]: the `WITH` options and the client configuration;
//! - [`format`](mod@format): messages → Arrow, metadata columns (`_partition`, `_offset`,
//!   `_timestamp`, `_key`);
//! - [`assign`]: static assignment (every partition, positions from checkpoints), caught-up
//!   detection;
//! - [`group`]: consumer-group mode (`assignment = 'group'`): rebalances;
//! - [`consume`]: the consume loop (micro-batches, feed, dead letters);
//! - [`producer`]: the acknowledged producer used by sinks, dead letters and HTTP forward;
//! - [`forward`]: `ingest = 'http'`, HTTP bodies written to the topic before the 200.
//!
//! Each Kafka partition is a feed partition, so the watermark is the minimum over the
//! partitions this consumer owns, with idle detection from the feed (a partition is idle
//! only when it is caught up with the broker and silent).
//!
//! What a committed offset means: a checkpoint that covers every message before it is
//! durable. Offsets are committed to the consumer group only after a checkpoint is written
//! ([`Connector::on_checkpoint`]), for lag visibility and other tools; positions themselves
//! come from the checkpoint, so a restart never reads a message twice into the same state and
//! never skips one.

pub mod assign;
pub mod consume;
pub mod format;
pub mod forward;
pub mod group;
pub mod options;
pub mod producer;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use self::consume::ConsumeLoop;
use self::format::MessageDecoder;
use self::forward::KafkaForwarder;
use self::group::GroupContext;
pub use self::options::{
    default_brokers, Assignment, KafkaSourceOptions, MessageFormat, StartPosition,
};
pub use self::producer::{KafkaProducer, ProduceError};
use super::connector::{Connector, ConnectorError, ConnectorSpec};
use super::decode::HttpDecodeOptions;
use super::feed::SourceFeed;
use super::http::HttpIngest;
use super::position::SourcePosition;
use super::rejected::PartitionId;
use super::schema::SourceSchema;

/// Unbounded connector of a `connector = 'kafka'` source (bounded with `stop_at_end`).
pub struct KafkaConnector {
    schema: Arc<SourceSchema>,
    options: KafkaSourceOptions,
    http: Arc<HttpIngest>,
    /// Static assignment: a consumer outside the group that commits checkpointed offsets.
    committer: Mutex<Option<Arc<BaseConsumer>>>,
    /// Group mode: commits go through the running member consumer. A watch channel: one
    /// slot holding the newest offsets (each checkpoint's offsets cover the previous
    /// ones), so the queue never grows while the consume loop is busy delivering.
    group_commits: Mutex<Option<watch::Sender<BTreeMap<i32, i64>>>>,
}

impl std::fmt::Debug for KafkaConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnector")
            .field("source", &self.schema.name)
            .field("options", &self.options)
            .finish()
    }
}

impl KafkaConnector {
    /// Validates the options of a Kafka source (no broker is contacted yet); `http` is
    /// used with `ingest = 'http'`.
    pub fn from_spec(spec: &ConnectorSpec, http: Arc<HttpIngest>) -> Result<Self, ConnectorError> {
        let options = KafkaSourceOptions::from_spec(spec)?;
        // Fail at CREATE time on a schema the decoder cannot fill.
        MessageDecoder::new(
            Arc::clone(&spec.schema),
            options.format,
            options.log_type.as_deref(),
            options.csv_delimiter,
            options.batch_size,
        )
        .map_err(|message| ConnectorError::Config {
            source_name: spec.schema.name.clone(),
            message,
        })?;
        Ok(Self {
            schema: Arc::clone(&spec.schema),
            options,
            http,
            committer: Mutex::new(None),
            group_commits: Mutex::new(None),
        })
    }

    /// The validated options.
    pub fn options(&self) -> &KafkaSourceOptions {
        &self.options
    }

    fn io(&self, message: String) -> ConnectorError {
        ConnectorError::Io {
            source_name: self.schema.name.clone(),
            message,
        }
    }

    /// A consumer outside the group that commits checkpointed offsets (static assignment).
    fn committer(&self) -> Result<Arc<BaseConsumer>, String> {
        Ok({
            let mut slot = self.committer.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(c) => Arc::clone(c),
                None => {
                    let c: BaseConsumer = self
                        .options
                        .consumer_config()
                        .create()
                        .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
                    let c = Arc::new(c);
                    *slot = Some(Arc::clone(&c));
                    c
                }
            }
        })
    }
}

#[async_trait::async_trait]
impl Connector for KafkaConnector {
    fn is_bounded(&self) -> bool {
        self.options.stop_at_end
    }

    fn identity(&self) -> String {
        format!("kafka:{}", self.options.topic)
    }

    async fn on_checkpoint(
        &self,
        committed: &BTreeMap<PartitionId, SourcePosition>,
        _oldest_kept: &BTreeMap<PartitionId, SourcePosition>,
    ) {
        let offsets: BTreeMap<i32, i64> = committed
            .iter()
            .filter_map(|(p, pos)| pos.kafka_offset().map(|o| (*p as i32, o)))
            .collect();
        if offsets.is_empty() {
            return;
        }
        match self.options.assignment {
            Assignment::Group => {
                let tx = self
                    .group_commits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(tx) = tx {
                    tx.send_replace(offsets);
                }
            }
            Assignment::Static => {
                let tpl = consume::offsets_tpl(&self.options.topic, &offsets);
                let result = match self.committer() {
                    Ok(c) => tokio::task::spawn_blocking(move || {
                        c.commit(&tpl, CommitMode::Sync).map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string())),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::warn!(source = %self.schema.name, error = %e, "committing checkpointed offsets to the consumer group failed (positions are in the checkpoint; only lag reporting is affected)");
                }
            }
        }
    }

    async fn run(
        self: Arc<Self>,
        feed: SourceFeed,
        shutdown: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let o = &self.options;
        let group_feed = (o.assignment == Assignment::Group).then(|| feed.clone());
        let context = GroupContext::new(&self.schema.name, &o.topic, o.start, group_feed);
        let consumer: StreamConsumer<GroupContext> = o
            .consumer_config()
            .create_with_context(context.clone())
            .map_err(|e| self.io(format!("cannot create a Kafka consumer: {e}")))?;
        let consumer = Arc::new(consumer);
        let partitions = {
            let c = Arc::clone(&consumer);
            let topic = o.topic.clone();
            tokio::task::spawn_blocking(move || assign::topic_partitions(c.as_ref(), &topic))
                .await
                .map_err(|e| self.io(e.to_string()))?
                .map_err(|e| self.io(e))?
        };
        let not_at_end = o.stop_at_end.then(|| partitions.clone());
        let mut commits = None;
        match o.assignment {
            Assignment::Static => {
                let tpl = {
                    let (c, this, f, ps) = (
                        Arc::clone(&consumer),
                        Arc::clone(&self),
                        feed.clone(),
                        partitions.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        assign::start_offsets(c.as_ref(), &this.options, &ps, &f)
                    })
                    .await
                    .map_err(|e| self.io(e.to_string()))?
                    .map_err(|e| self.io(e))?
                };
                consumer
                    .assign(&tpl)
                    .map_err(|e| self.io(format!("cannot assign '{}': {e}", o.topic)))?;
                let mut state = context.state.lock().unwrap_or_else(|e| e.into_inner());
                for p in &partitions {
                    state.owned.insert(*p);
                    feed.register_partition(*p as u32);
                    feed.set_caught_up(*p as u32, false);
                }
                let starts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}@{:?}", e.partition(), e.offset()))
                    .collect();
                tracing::info!(source = %self.schema.name, partitions = ?starts, "partitions assigned (static)");
            }
            Assignment::Group => {
                consumer
                    .subscribe(&[&o.topic])
                    .map_err(|e| self.io(format!("cannot subscribe to '{}': {e}", o.topic)))?;
                let (tx, rx) = watch::channel(BTreeMap::new());
                *self.group_commits.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
                commits = Some(rx);
            }
        }
        let dead_letters = match &o.dead_letter_topic {
            Some(_) => Some(KafkaProducer::new(&o.brokers, &o.properties).map_err(|e| self.io(e))?),
            None => None,
        };
        let decoder = || {
            MessageDecoder::new(
                Arc::clone(&self.schema),
                o.format,
                o.log_type.as_deref(),
                o.csv_delimiter,
                o.batch_size,
            )
            .map_err(|e| self.io(e))
        };
        if o.ingest_http {
            let producer = KafkaProducer::new(&o.brokers, &o.properties).map_err(|e| self.io(e))?;
            let forwarder = KafkaForwarder::new(&o.topic, Arc::new(producer), decoder()?);
            self.http.register_forwarder(
                &self.schema.name,
                feed.clone(),
                HttpDecodeOptions::default(),
                Arc::new(forwarder),
            )?;
        }
        tracing::info!(
            source = %self.schema.name, brokers = %o.brokers, topic = %o.topic,
            group = %o.group_id, "Kafka source consuming"
        );
        let result = ConsumeLoop::new(
            o.clone(),
            Arc::clone(&consumer),
            context,
            decoder()?,
            feed,
            dead_letters,
            not_at_end,
            commits,
        )
        .run(shutdown)
        .await;
        *self.group_commits.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if o.ingest_http {
            self.http.unregister(&self.schema.name);
        }
        // Closing leaves the group (a final revoke commits what was processed); it blocks.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        result
    }
}
