//! The connector seam: how a source's raw input (files, HTTP, Kafka) reaches its
//! [`SourceFeed`]. Each `connector = '…'` value maps to one implementation.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::feed::SourceFeed;
use super::schema::SourceSchema;

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
#[async_trait::async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// Whether the input ends by itself (files) or runs until shut down (HTTP, Kafka).
    fn is_bounded(&self) -> bool;
    /// Runs the connector until input ends or `shutdown` is cancelled.
    async fn run(
        self: Arc<Self>,
        feed: SourceFeed,
        shutdown: CancellationToken,
    ) -> Result<(), ConnectorError>;
}

/// Everything a connector factory gets: the source schema and its options.
#[derive(Debug, Clone)]
pub struct ConnectorSpec {
    /// The source schema.
    pub schema: Arc<SourceSchema>,
    /// `WITH (…)` options.
    pub options: SourceOptions,
}
