//! Serving a running system over Arrow Flight SQL: the [`Backend`](driftwatch_flight::Backend) the `driftwatch-flight`
//! crate needs, built from the system's handles.
//!
//! - [`backend`]: sessions over the data dir plus the live `system.*` tables, DDL through
//!   the system's control handle, live follow streams fed by the result broadcast;
//! - [`ddl_policy`]: which files DDL sent over Flight may read (`--allow-dir`);
//! - [`catalog`]: DDL executed over Flight is persisted in `<data dir>/catalog.sql` and
//!   replayed by `driftwatch run` at start;
//! - [`system_tables`]: `system.sources`, `system.monitors`, `system.baselines`,
//!   `system.counters` from a [`crate::runtime::SystemSnapshot`].

pub mod backend;
pub mod catalog;
pub mod ddl_policy;
pub mod system_tables;

use std::future::Future;
use std::sync::Arc;

pub use backend::SystemBackend;
pub use catalog::{load_with_catalog, CatalogFile, CATALOG_FILE};
pub use ddl_policy::DdlPolicy;
pub use driftwatch_flight::{FlightConfig, FlightServer, TlsFiles};

use crate::runtime::Driftwatch;

/// Starts the Flight SQL server for `system` (call after [`Driftwatch::start`], before
/// [`Driftwatch::wait`], which serves the DDL and snapshot requests). DDL sent by clients
/// may read files only where `policy` allows. It stops with the system's shutdown token.
/// The returned future owns everything it needs, and resolves once the address is bound.
pub fn start_flight(
    system: &Driftwatch,
    config: &FlightConfig,
    policy: DdlPolicy,
) -> impl Future<Output = Result<FlightServer, driftwatch_flight::ServeError>> + Send + 'static {
    let backend = Arc::new(SystemBackend::new(system, policy));
    let shutdown = system.shutdown_token();
    let config = config.clone();
    // gRPC health follows /ready; call latencies go to /metrics.
    let ops = Arc::clone(system.ops());
    let options = driftwatch_flight::ServeOptions {
        ready: Some(ops.subscribe_ready()),
        observer: Some(Arc::new(move |method, ok, took| {
            ops.observe_query(method, ok, took)
        })),
    };
    async move {
        driftwatch_flight::serve_with(&config, backend, options, async move {
            shutdown.cancelled().await
        })
        .await
    }
}
