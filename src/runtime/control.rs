//! The running system's front-end API: requests a front end (the Flight SQL server, the
//! CLI) sends to a running [`Driftwatch`](super::Driftwatch), and what it gets back —
//! statement outcomes, snapshots of sources and monitors, live result batches.

use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use super::status_board::StatusBoard;
use super::RuntimeError;

/// A request served by a running system (see [`Driftwatch::control`](super::Driftwatch::control)): how the Flight SQL
/// server and other front ends change and inspect it while [`Driftwatch::wait`](super::Driftwatch::wait) runs.
pub enum Control {
    /// Executes a script (CREATE / DROP / SHOW) and starts any new connector.
    Execute {
        /// The statements.
        sql: String,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<Vec<Outcome>, RuntimeError>>,
    },
    /// Slow DDL work (baseline profiling) that ran on its own task has finished; sent by
    /// that task, never by front ends (a [`JobDone`] cannot be built outside the runtime).
    JobDone(JobDone),
}

/// The outcome of DDL work that ran off the control loop (see [`Control::JobDone`]).
pub struct JobDone(pub(super) JobResult);

/// What a job off the control loop produced.
pub(super) enum JobResult {
    /// `CREATE BASELINE`: the profile to register, or why there is none.
    Baseline(Result<Box<driftwatch_udfs::BaselineProfile>, RuntimeError>),
}

/// Cloneable handle for sending [`Control`] requests to a running system and reading its
/// status board.
#[derive(Clone, Debug)]
pub struct ControlHandle {
    pub(super) tx: mpsc::Sender<Control>,
    pub(super) board: StatusBoard,
}

impl ControlHandle {
    /// Executes `sql` in the running system.
    pub async fn execute(&self, sql: impl Into<String>) -> Result<Vec<Outcome>, RuntimeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Control::Execute {
                sql: sql.into(),
                reply,
            })
            .await
            .map_err(|_| RuntimeError::Invalid("the system is shutting down".into()))?;
        rx.await
            .map_err(|_| RuntimeError::Invalid("the system is shutting down".into()))?
    }

    /// Sources and monitors of the running system, read from its status board: answered
    /// at once, whatever the control loop is doing (see [`StatusBoard`]).
    pub async fn snapshot(&self) -> Result<SystemSnapshot, RuntimeError> {
        Ok(self.board.snapshot())
    }
}

/// State of one source, for system tables and status lines.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    /// Source name.
    pub name: String,
    /// Its CREATE statement.
    pub sql: String,
    /// Rows decoded.
    pub rows_in: u64,
    /// Records rejected (dead letters).
    pub rejected: u64,
    /// Fields of accepted input that matched no column (ignored; HTTP sources).
    pub unknown_fields: u64,
    /// Current watermark (epoch ms; `i64::MIN` before data).
    pub watermark_ms: i64,
    /// `running`, `retrying`, `finished` or `failed`.
    pub status: String,
    /// The error behind `retrying` / `failed`.
    pub error: Option<String>,
}

/// State of one monitor, for system tables and status lines.
#[derive(Debug, Clone)]
pub struct MonitorStatus {
    /// Monitor name.
    pub name: String,
    /// Its CREATE statement.
    pub sql: String,
    /// The source it reads.
    pub source: String,
    /// Windows emitted.
    pub windows: u64,
    /// Result rows written.
    pub rows_out: u64,
    /// Late rows kept aside.
    pub late_rows: u64,
    /// End of the last emitted window (epoch ms; `i64::MIN` if none yet).
    pub last_window_end_ms: i64,
    /// `running`, `retrying`, `finished` or `failed`.
    pub status: String,
    /// The error behind `retrying` / `failed`.
    pub error: Option<String>,
    /// The most recent error, kept after the monitor recovered from it.
    pub last_error: Option<String>,
    /// When the monitor failed (epoch ms), if it did.
    pub failed_at_ms: Option<i64>,
}

/// Everything a system runs, with counters.
#[derive(Debug, Clone, Default)]
pub struct SystemSnapshot {
    /// Sources.
    pub sources: Vec<SourceStatus>,
    /// Monitors.
    pub monitors: Vec<MonitorStatus>,
    /// Baseline names.
    pub baselines: Vec<String>,
    /// `(baseline, feature, NULL results)` of long-form features missing from a baseline.
    pub missing_features: Vec<(String, String, u64)>,
    /// Figures of the last checkpoint.
    pub checkpoint: super::checkpointing::CheckpointStats,
}

/// One batch of results of one monitor, as broadcast to live subscribers.
#[derive(Debug, Clone)]
pub struct MonitorResult {
    /// Monitor name.
    pub monitor: String,
    /// The rows (one window, for windowed monitors).
    pub batch: RecordBatch,
}

/// Result batches buffered per live subscriber; a subscriber further behind loses the
/// oldest batches and is told how many (tokio broadcast "lagged"): it never stalls monitors.
pub const FOLLOW_BUFFER: usize = 1024;

/// The result of one statement.
#[derive(Debug)]
pub enum Outcome {
    /// Something was created or dropped.
    Done(String),
    /// Rows to show (SHOW …).
    Rows(RecordBatch),
}
