//! Checking a Kafka sink's topic when its monitor is created: the topic must exist (Driftwatch
//! never relies on the broker's `auto.create.topics.enable`, which many managed clusters and
//! tansu turn off), or be created here when the monitor asks for it with
//! `create_topic = 'true'` (`partitions`, `replication_factor`).
//!
//! Every broker call is bounded by [`METADATA_TIMEOUT`], so an unreachable broker fails the
//! `CREATE MONITOR` in seconds with the address it tried, instead of stalling the source at
//! the first result.

use std::time::{Duration, Instant};

use driftwatch_sql::Options;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::{error, TopicReader};
use crate::sinks::SinkError;
use crate::sources::kafka::producer::TracingContext;

/// Longest wait for the broker's answer to a metadata or topic-creation request.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Most partitions `partitions = N` accepts (a guard against typos; Kafka clusters
/// recommend far fewer per topic).
pub const MAX_PARTITIONS: usize = 10_000;

/// What a sink does about its topic at `CREATE MONITOR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Create the topic when it does not exist (`create_topic`, default false).
    pub create: bool,
    /// Partitions of a created topic (`partitions`; `None`: the broker's `num.partitions`).
    pub partitions: Option<i32>,
    /// Replication factor of a created topic (`replication_factor`; `None`: the broker's
    /// `default.replication.factor`).
    pub replication: Option<i32>,
}

impl TopicSpec {
    /// Reads `create_topic`, `partitions` and `replication_factor` (offline: `driftwatch
    /// check` validates them without a broker).
    pub fn from_options(monitor: &str, options: &Options) -> Result<Self, SinkError> {
        let create = options
            .get_bool("create_topic")
            .map_err(|e| error(format!("monitor '{monitor}': {e}")))?
            .unwrap_or(false);
        let count = |key: &str, max: usize, what: &str| -> Result<Option<i32>, SinkError> {
            let Some(v) = options.get(key) else {
                return Ok(None);
            };
            let text = v.as_text();
            let n = options.get_usize(key).ok().flatten().filter(|n| *n >= 1);
            match n {
                Some(n) if n <= max => Ok(Some(n as i32)),
                _ => Err(error(format!(
                    "monitor '{monitor}' (line {}, column {}): {key} = {text} is not a valid {what}; \
                     use a whole number from 1 to {max}",
                    v.location.line, v.location.column
                ))),
            }
        };
        let partitions = count("partitions", MAX_PARTITIONS, "partition count")?;
        let replication = count(
            "replication_factor",
            i16::MAX as usize,
            "replication factor",
        )?;
        if !create {
            if let Some(key) = ["partitions", "replication_factor"]
                .into_iter()
                .find(|k| options.contains(k))
            {
                return Err(error(format!(
                    "monitor '{monitor}': {key} only applies to a topic the sink creates; add \
                     create_topic = 'true' (or remove {key})"
                )));
            }
        }
        Ok(Self {
            create,
            partitions,
            replication,
        })
    }
}

/// What [`ensure_topic`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicCheck {
    /// The topic existed, with this many partitions.
    Exists(usize),
    /// The topic was missing and has been created with this many partitions.
    Created(usize),
}

/// Partitions of `topic` (`None`: the broker says it does not exist). Bounded by
/// [`METADATA_TIMEOUT`]; a broker that cannot be reached or refuses is an error naming it.
fn partitions(reader: &TopicReader) -> Result<Option<usize>, SinkError> {
    // A consumer handle: its metadata requests never ask the broker to auto-create.
    let consumer = reader.consumer()?;
    let metadata = consumer
        .fetch_metadata(Some(&reader.topic), METADATA_TIMEOUT)
        .map_err(|e| {
            error(format!(
                "cannot get the metadata of topic '{}' from {} within {}s: {e} (is the broker \
                 up and the address right? brokers = '…' or $DRIFTWATCH_KAFKA)",
                reader.topic,
                reader.brokers,
                METADATA_TIMEOUT.as_secs()
            ))
        })?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == reader.topic) else {
        return Ok(None);
    };
    match t.error().map(RDKafkaErrorCode::from) {
        None if t.partitions().is_empty() => Ok(None),
        None => Ok(Some(t.partitions().len())),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(None),
        Some(RDKafkaErrorCode::LeaderNotAvailable) if !t.partitions().is_empty() => {
            Ok(Some(t.partitions().len()))
        }
        Some(code) => Err(error(format!(
            "topic '{}' on {}: the broker answered {code}",
            reader.topic, reader.brokers
        ))),
    }
}

/// [`partitions`] on a blocking thread.
async fn lookup(reader: &TopicReader) -> Result<Option<usize>, SinkError> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || partitions(&reader))
        .await
        .map_err(|e| error(e.to_string()))?
}

/// Makes sure the sink's topic exists: looks it up and, when missing, creates it if `spec`
/// allows, else fails with the commands that fix it.
pub async fn ensure_topic(reader: &TopicReader, spec: &TopicSpec) -> Result<TopicCheck, SinkError> {
    let topic = &reader.topic;
    if let Some(n) = lookup(reader).await? {
        if let Some(want) = spec.partitions.filter(|p| *p as usize != n) {
            tracing::warn!(
                topic = %topic, partitions = n, requested = want,
                "the sink topic exists already with another partition count; it is used as it is"
            );
        }
        return Ok(TopicCheck::Exists(n));
    }
    if !spec.create {
        return Err(error(format!(
            "Kafka topic '{topic}' does not exist on {brokers}; create it (kafka-topics.sh \
             --bootstrap-server {brokers} --create --topic {topic} --partitions 1) or add \
             create_topic = 'true' (optionally partitions = N, replication_factor = N) to the \
             monitor's WITH options",
            brokers = reader.brokers
        )));
    }
    create(reader, spec).await?;
    // Creation spreads to every broker asynchronously: wait until metadata shows it.
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        if let Some(n) = lookup(reader).await? {
            tracing::info!(topic = %topic, partitions = n, "created the sink topic");
            return Ok(TopicCheck::Created(n));
        }
        if Instant::now() > deadline {
            return Err(error(format!(
                "topic '{topic}' was created on {} but its metadata did not show it within {}s",
                reader.brokers,
                METADATA_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends the CreateTopics request (a topic created meanwhile by someone else is fine).
async fn create(reader: &TopicReader, spec: &TopicSpec) -> Result<(), SinkError> {
    let topic = &reader.topic;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &reader.brokers);
    for (k, v) in &reader.properties {
        config.set(k, v);
    }
    let admin: AdminClient<TracingContext> = config
        .create_with_context(TracingContext)
        .map_err(|e| error(format!("cannot create a Kafka admin client: {e}")))?;
    // -1: the broker's num.partitions / default.replication.factor (KIP-464, Kafka 2.4+).
    let new = NewTopic::new(
        topic,
        spec.partitions.unwrap_or(-1),
        TopicReplication::Fixed(spec.replication.unwrap_or(-1)),
    );
    let options = AdminOptions::new()
        .request_timeout(Some(METADATA_TIMEOUT))
        .operation_timeout(Some(METADATA_TIMEOUT));
    let results = tokio::time::timeout(
        METADATA_TIMEOUT + Duration::from_secs(1),
        admin.create_topics([&new], &options),
    )
    .await;
    let fail = |why: String| {
        error(format!(
            "cannot create topic '{topic}' on {} (partitions {}, replication factor {}): {why}",
            reader.brokers,
            spec.partitions
                .map_or("broker default".into(), |p| p.to_string()),
            spec.replication
                .map_or("broker default".into(), |r| r.to_string()),
        ))
    };
    let results = results
        .map_err(|_| fail(format!("no answer within {}s", METADATA_TIMEOUT.as_secs())))?
        .map_err(|e| fail(e.to_string()))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(fail(code.to_string())),
        }
    }
    Ok(())
}
