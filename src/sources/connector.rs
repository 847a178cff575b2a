//! The connector seam: how a source's raw input (files, HTTP, Kafka) reaches its
//! [`SourceFeed`]. Each `connector = '…'` value maps to one implementation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::feed::SourceFeed;
use super::position::SourcePosition;
use super::rejected::PartitionId;
use super::schema::SourceSchema;

/// Options every source may carry, whatever its connector (handled by the runtime).
pub const GENERIC_OPTIONS: &[&str] = &["connector", "time_format", "idle_timeout", "max_future"];

/// Options from `CREATE SOURCE … WITH (k = v, …)`, keys lower-cased.
pub type SourceOptions = BTreeMap<String, String>;

/// Error raised by a connector; carries the source name and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// An option is missing or invalid (reported at CREATE time).
    #[error("source '{source_name}': {message}")]
    Config {
        /// Source name.
        source_name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Reading input failed at run time.
    #[error("source '{source_name}': {message}")]
    Io {
        /// Source name.
        source_name: String,
        /// What failed.
        message: String,
    },
}

/// A running input of one source. `run` delivers everything through the feed; for bounded
/// input it calls [`SourceFeed::finish`] and returns when input ends, for unbounded input it
/// runs until `shutdown` is cancelled.
///
/// `run` starts reading where the feed's positions say ([`SourceFeed::position`]: restored
/// from a checkpoint, or reached by an earlier `run` that failed), so the runtime can restart
/// a failed connector without reading anything twice or skipping anything.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// Whether the input ends by itself (files) or runs until shut down (HTTP, Kafka).
    fn is_bounded(&self) -> bool;
    /// What the source's positions refer to (`kafka:<topic>`, `file:<path>`, `http`): a
    /// checkpoint's positions are restored only into a source with the same identity.
    fn identity(&self) -> String;
    /// Runs the connector until input ends or `shutdown` is cancelled.
    async fn run(
        self: Arc<Self>,
        feed: SourceFeed,
        shutdown: CancellationToken,
    ) -> Result<(), ConnectorError>;
    /// A checkpoint covering `committed` is durable; `oldest_kept` are the positions of the
    /// oldest checkpoint still on disk (what a restart may go back to). Kafka commits
    /// `committed` to the consumer group; the HTTP ingest truncates its write-ahead log
    /// before `oldest_kept`.
    async fn on_checkpoint(
        &self,
        _committed: &BTreeMap<PartitionId, SourcePosition>,
        _oldest_kept: &BTreeMap<PartitionId, SourcePosition>,
    ) {
    }
}

/// Everything a connector factory gets: the source schema, its options, and where the
/// running system keeps its files.
#[derive(Debug, Clone)]
pub struct ConnectorSpec {
    /// The source schema.
    pub schema: Arc<SourceSchema>,
    /// `WITH (…)` options.
    pub options: SourceOptions,
    /// The data dir (the HTTP ingest keeps its write-ahead log there).
    pub data_dir: PathBuf,
    /// Whether acknowledgements must be durable (checkpoints are on): the HTTP ingest
    /// writes a write-ahead log.
    pub durable: bool,
    /// `--from-scratch`: ignore offsets committed to the Kafka consumer group.
    pub ignore_committed_offsets: bool,
}

impl ConnectorSpec {
    /// A spec outside a running system: no data dir, acknowledgements not durable.
    pub fn new(schema: Arc<SourceSchema>, options: SourceOptions) -> Self {
        Self {
            schema,
            options,
            data_dir: PathBuf::new(),
            durable: false,
            ignore_committed_offsets: false,
        }
    }
}
