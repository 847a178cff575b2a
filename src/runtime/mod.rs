//! The running system: the catalog of sources, baselines and monitors ([`Driftwatch`]) and
//! the tasks that run them.

pub mod baselines;
pub mod checkpointing;
pub mod control;
mod ddl;
pub mod dead_letters;
pub mod driver;
mod inspect;
pub mod lifecycle;
pub mod monitor_task;
pub mod script;
pub mod sources;
pub mod status_board;

/// Counters and health (also at [`crate::metrics`]).
pub use crate::metrics;
pub use control::{
    Control, ControlHandle, MonitorResult, MonitorStatus, Outcome, SourceStatus, SystemSnapshot,
    FOLLOW_BUFFER,
};
pub use driver::{Driftwatch, RuntimeConfig, DEFAULT_CHECKPOINT_INTERVAL};
pub use monitor_task::{ResultObserver, LATE_SUFFIX};
pub use status_board::StatusBoard;

use driftwatch_sql::{ObjectKind, SqlError};

/// Why a statement or a run failed. Messages name the object and say how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Syntax or dialect error, with line and column.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A monitor could not be compiled.
    #[error(transparent)]
    Plan(#[from] crate::engine::PlanError),
    /// A source's connector is misconfigured or failed.
    #[error(transparent)]
    Connector(#[from] crate::sources::ConnectorError),
    /// Writing results failed.
    #[error(transparent)]
    Store(#[from] crate::sinks::StoreError),
    /// A query over the data dir failed.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// An object of that name already exists.
    #[error("{0} '{1}' already exists (use CREATE OR REPLACE to redefine it)")]
    Exists(ObjectKind, String),
    /// No object of that name exists.
    #[error("unknown {0} '{1}'")]
    Unknown(ObjectKind, String),
    /// Anything else, with its explanation.
    #[error("{0}")]
    Invalid(String),
}
