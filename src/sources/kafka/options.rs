//! The `WITH (…)` options of a `connector = 'kafka'` source, validated once at CREATE time,
//! and the librdkafka client configuration they produce.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::sources::connector::{ConnectorError, ConnectorSpec, GENERIC_OPTIONS};

/// Options the Kafka connector understands (besides `properties.*` pass-through keys and
/// the generic source options).
pub const KAFKA_OPTIONS: &[&str] = &[
    "brokers",
    "topic",
    "group_id",
    "start",
    "format",
    "batch_size",
    "linger",
    "log_type",
    "dead_letter_topic",
    "stop_at_end",
    "csv_delimiter",
    "ingest",
    "assignment",
];

/// Prefix of options passed to librdkafka unchanged (`properties.security.protocol = …`).
pub const PROPERTY_PREFIX: &str = "properties.";

/// Default broker list (also what the tests use): the `DRIFTWATCH_KAFKA` environment
/// variable, else `127.0.0.1:9092`.
pub fn default_brokers() -> String {
    std::env::var("DRIFTWATCH_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

/// How each Kafka message is decoded (`format` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFormat {
    /// One flat JSON object per message (default).
    Json,
    /// The inference-log envelope of the HTTP ingest: one row per instance.
    InferenceLog,
    /// KServe logger CloudEvents in binary mode: `ce_*` headers, KServe body.
    CloudEvents,
    /// One CSV record per message, columns in declared order (metadata columns skipped).
    Csv,
}

impl MessageFormat {
    /// Parses the `format` option.
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "json" | "jsonl" => Some(Self::Json),
            "inference-log" | "inference_log" | "envelope" => Some(Self::InferenceLog),
            "cloudevents" | "cloudevent" | "kserve" => Some(Self::CloudEvents),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Where a partition without a committed offset starts (`start` option). Committed group
/// offsets always win for `earliest`, `latest` and `timestamp`, so a restarted consumer or
/// one taking over a partition in a rebalance continues where the group left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest retained message.
    Earliest,
    /// Only messages produced after the partition was assigned.
    Latest,
    /// Only committed offsets: a partition without one is an error.
    Committed,
    /// The first message whose Kafka timestamp is at or after this epoch millisecond.
    Timestamp(i64),
}

impl StartPosition {
    /// Parses the `start` option.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "earliest" => Some(Self::Earliest),
            "latest" => Some(Self::Latest),
            "committed" | "group" => Some(Self::Committed),
            _ => v
                .strip_prefix("timestamp:")
                .and_then(|ms| ms.trim().parse().ok())
                .map(Self::Timestamp),
        }
    }

    fn auto_offset_reset(self) -> &'static str {
        match self {
            Self::Earliest | Self::Timestamp(_) => "earliest",
            Self::Latest => "latest",
            Self::Committed => "error",
        }
    }
}

/// How partitions are given to this consumer (`assignment` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Every partition of the topic, assigned explicitly, starting at the positions of the
    /// restored checkpoint (default). No consumer-group membership: a restart never waits
    /// for the broker to evict a killed predecessor. The group is used only to publish
    /// committed offsets (lag visibility, other tools), and only offsets a durable
    /// checkpoint covers are committed.
    Static,
    /// Partitions shared by the members of the consumer group (rebalances). A partition
    /// moving here starts at the later of its committed offset and this instance's own
    /// position; on revoke, what was processed is committed for the next owner.
    Group,
}

/// Validated options of one Kafka source.
#[derive(Debug, Clone)]
pub struct KafkaSourceOptions {
    /// Bootstrap servers.
    pub brokers: String,
    /// The topic read.
    pub topic: String,
    /// Consumer group (default `driftwatch-<source>`).
    pub group_id: String,
    /// Start position for partitions without a committed offset.
    pub start: StartPosition,
    /// Message format.
    pub format: MessageFormat,
    /// Largest number of messages decoded into one micro-batch.
    pub batch_size: usize,
    /// Longest time a message waits in the current micro-batch.
    pub linger: Duration,
    /// `log_type` for the envelope formats (`request`, `response`, `both`).
    pub log_type: Option<String>,
    /// Topic receiving undecodable messages as they were (besides the dead-letter table).
    pub dead_letter_topic: Option<String>,
    /// Stop (and end the source) once every partition of the topic reported
    /// end-of-partition (caught up): a bounded backfill of a topic by one consumer. End
    /// offsets are taken from fetch responses, not from ListOffsets.
    pub stop_at_end: bool,
    /// CSV delimiter.
    pub csv_delimiter: u8,
    /// `ingest = 'http'`: also accept HTTP bodies and write them to the topic.
    pub ingest_http: bool,
    /// `properties.*` options, prefix removed.
    pub properties: Vec<(String, String)>,
    /// How partitions are assigned.
    pub assignment: Assignment,
    /// Whether offsets committed to the group are a starting point when no checkpoint has
    /// a position (`false` with `--from-scratch`).
    pub use_committed: bool,
}

impl KafkaSourceOptions {
    /// Validates the options of `spec`.
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, ConnectorError> {
        let name = spec.schema.name.clone();
        let err = |message: String| ConnectorError::Config {
            source_name: name.clone(),
            message,
        };
        let mut properties = Vec::new();
        for (key, value) in &spec.options {
            if let Some(prop) = key.strip_prefix(PROPERTY_PREFIX) {
                properties.push((prop.to_string(), value.clone()));
            } else if !KAFKA_OPTIONS.contains(&key.as_str())
                && !GENERIC_OPTIONS.contains(&key.as_str())
            {
                return Err(err(format!(
                    "unknown option '{key}' for connector 'kafka' (valid: {}, and \
                     '{PROPERTY_PREFIX}<librdkafka setting>')",
                    KAFKA_OPTIONS.join(", ")
                )));
            }
        }
        let get = |k: &str| spec.options.get(k).map(|v| v.trim().to_string());
        let topic = get("topic")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("add WITH (topic = '…'): the Kafka topic to read".into()))?;
        let start = match get("start") {
            None => StartPosition::Earliest,
            Some(v) => StartPosition::parse(&v).ok_or_else(|| {
                err(format!(
                    "start = '{v}' is not 'earliest', 'latest', 'committed' or \
                     'timestamp:<epoch ms>'"
                ))
            })?,
        };
        let format = match get("format") {
            None => MessageFormat::Json,
            Some(v) => MessageFormat::parse(&v).ok_or_else(|| {
                err(format!(
                    "format = '{v}' is not 'json', 'inference-log', 'cloudevents' or 'csv'"
                ))
            })?,
        };
        let batch_size = match get("batch_size") {
            None => 8192,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| err(format!("batch_size = '{v}' is not a positive integer")))?,
        };
        let linger = match get("linger") {
            None => Duration::from_millis(50),
            Some(v) => humantime::parse_duration(&v)
                .map_err(|e| err(format!("linger = '{v}': {e} (e.g. '50 ms')")))?,
        };
        let log_type = get("log_type");
        if let Some(v) = &log_type {
            if crate::sources::decode::LogType::parse(v).is_none() {
                return Err(err(format!(
                    "log_type must be 'request', 'response' or 'both', got '{v}'"
                )));
            }
        }
        let stop_at_end = match get("stop_at_end").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(err(format!("stop_at_end = '{v}' is not true or false"))),
        };
        let csv_delimiter = match get("csv_delimiter") {
            None => b',',
            Some(v) if v.len() == 1 => v.as_bytes()[0],
            Some(v) if v == "\\t" => b'\t',
            Some(v) => return Err(err(format!("csv_delimiter = '{v}' is not one character"))),
        };
        let assignment = match get("assignment").as_deref() {
            None | Some("static") => Assignment::Static,
            Some("group") => Assignment::Group,
            Some(v) => {
                return Err(err(format!(
                    "assignment = '{v}' is not 'static' (every partition, positions from \
                     checkpoints) or 'group' (partitions shared by the consumer group)"
                )))
            }
        };
        let ingest_http = match get("ingest").as_deref() {
            None | Some("kafka") => false,
            Some("http") => true,
            Some(v) => return Err(err(format!("ingest = '{v}' is not 'http'"))),
        };
        Ok(Self {
            ingest_http,
            brokers: get("brokers").unwrap_or_else(default_brokers),
            group_id: get("group_id").unwrap_or_else(|| format!("driftwatch-{name}")),
            topic,
            start,
            format,
            batch_size,
            linger,
            log_type,
            dead_letter_topic: get("dead_letter_topic").filter(|t| !t.is_empty()),
            stop_at_end,
            csv_delimiter,
            properties,
            assignment,
            use_committed: !spec.ignore_committed_offsets,
        })
    }

    /// The consumer configuration: manual commits only, offsets never stored automatically,
    /// the eager rebalance protocol, and the user's `properties.*` on top.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", self.start.auto_offset_reset())
            .set(
                "enable.partition.eof",
                if self.stop_at_end { "true" } else { "false" },
            )
            .set("partition.assignment.strategy", "range,roundrobin")
            .set("session.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "50");
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }
}

/// Producer configuration shared by the Kafka sink, the dead-letter topic and the HTTP
/// forwarder: idempotent (no duplicates on retry), acks from all in-sync replicas, retries
/// bounded by `delivery.timeout.ms`; `properties` go on top.
pub fn producer_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}
