//! [`Backend`]: what the Flight SQL server needs from the running system. The binary
//! implements it; this crate never depends on the engine.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;

/// Why the backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The request is wrong (unknown monitor, bad DDL, …): the message says why.
    #[error("{0}")]
    Invalid(String),
    /// No object of that name.
    #[error("{0}")]
    NotFound(String),
    /// The system is shutting down or failed.
    #[error("{0}")]
    Unavailable(String),
    /// A live subscriber fell behind and lost `0` batches (see [`crate::follow`]).
    #[error("follower fell behind: {0} result batches were dropped")]
    Lagged(u64),
}

/// The running system, as the Flight SQL server sees it.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A DataFusion session with every table registered: monitor result tables,
    /// `<monitor>_late`, `<source>_errors`, baselines (schema `baselines`) and system tables
    /// (schema `system`: sources with watermark and lag, monitors with SQL and last emitted
    /// window, counters). Fresh per request or cached; either way cheap.
    async fn session(&self) -> Result<SessionContext, BackendError>;

    /// Executes DDL (`CREATE` / `DROP SOURCE | BASELINE | MONITOR`) in the running system,
    /// persists it, and returns a message saying what was done.
    async fn execute_ddl(&self, sql: &str) -> Result<String, BackendError>;

    /// Live results of `monitor`: its result schema and a stream of batches as windows are
    /// emitted. The stream ends when the system stops.
    async fn follow(
        &self,
        monitor: &str,
    ) -> Result<
        (
            SchemaRef,
            BoxStream<'static, Result<RecordBatch, BackendError>>,
        ),
        BackendError,
    >;
}
