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
//! - [`group`]: rebalances and offset commits;
//! - [`consume`]: the consume loop (micro-batches, feed, dead letters);
//! - [`producer`]: the acknowledged producer used by sinks, dead letters and HTTP forward;
//! - [`forward`]: `ingest = 'http'`, HTTP bodies written to the topic before the 200.
//!
//! Each Kafka partition is a feed partition, so the watermark is the minimum over the
//! partitions this consumer owns, with idle detection from the feed.

pub mod consume;
pub mod format;
pub mod forward;
pub mod group;
pub mod options;
pub mod producer;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use self::consume::ConsumeLoop;
use self::format::MessageDecoder;
use self::forward::KafkaForwarder;
use self::group::GroupContext;
pub use self::options::{default_brokers, KafkaSourceOptions, MessageFormat, StartPosition};
pub use self::producer::{KafkaProducer, ProduceError};
use super::connector::{Connector, ConnectorError, ConnectorSpec};
use super::decode::HttpDecodeOptions;
use super::feed::SourceFeed;
use super::http::HttpIngest;
use super::schema::SourceSchema;

/// Unbounded connector of a `connector = 'kafka'` source (bounded with `stop_at_end`).
#[derive(Debug)]
pub struct KafkaConnector {
    schema: Arc<SourceSchema>,
    options: KafkaSourceOptions,
    http: Arc<HttpIngest>,
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

    /// Partitions of the topic (from the broker's metadata).
    fn partitions(
        &self,
        consumer: &StreamConsumer<GroupContext>,
    ) -> Result<BTreeSet<i32>, ConnectorError> {
        let topic = &self.options.topic;
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| self.io(format!("metadata of topic '{topic}': {e}")))?;
        let partitions: BTreeSet<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(self.io(format!(
                "topic '{topic}' has no partitions (does it exist?)"
            )));
        }
        Ok(partitions)
    }
}

#[async_trait::async_trait]
impl Connector for KafkaConnector {
    fn is_bounded(&self) -> bool {
        self.options.stop_at_end
    }

    async fn run(
        self: Arc<Self>,
        feed: SourceFeed,
        shutdown: CancellationToken,
    ) -> Result<(), ConnectorError> {
        let o = &self.options;
        let context = GroupContext::new(&self.schema.name, &o.topic, o.start);
        let consumer: StreamConsumer<GroupContext> = o
            .consumer_config()
            .create_with_context(context.clone())
            .map_err(|e| self.io(format!("cannot create a Kafka consumer: {e}")))?;
        let consumer = Arc::new(consumer);
        let not_at_end = if o.stop_at_end {
            let this = Arc::clone(&self);
            let c = Arc::clone(&consumer);
            Some(
                tokio::task::spawn_blocking(move || this.partitions(&c))
                    .await
                    .map_err(|e| self.io(e.to_string()))??,
            )
        } else {
            None
        };
        consumer
            .subscribe(&[&o.topic])
            .map_err(|e| self.io(format!("cannot subscribe to '{}': {e}", o.topic)))?;
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
        )
        .run(shutdown)
        .await;
        if o.ingest_http {
            self.http.unregister(&self.schema.name);
        }
        // Closing leaves the group (a final revoke commits what was processed); it blocks.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        result
    }
}
