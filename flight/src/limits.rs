//! Resource limits of client queries: a memory cap, a time limit and threads of their own.
//!
//! A dashboard query must not take the engine down. Each client query therefore
//!
//! - runs in a session of its own whose DataFusion memory pool holds at most
//!   [`QueryLimits::memory`] bytes; spilling is off, so an operator that needs more fails with
//!   "query exceeded the memory limit of N MiB" instead of filling the disk or the RAM;
//! - is cancelled after [`QueryLimits::timeout`] ("query exceeded the time limit");
//! - is planned and executed on the [`QueryRuntime`]: tokio worker threads named
//!   `dw-query` that are separate from the streaming engine's and, on Linux, run at a lower
//!   scheduling priority (nice 10), so ingestion and window emission keep their latency while
//!   readers query.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use tonic::Status;

/// Default memory cap of one query: 512 MiB.
pub const DEFAULT_QUERY_MEMORY: usize = 512 * 1024 * 1024;
/// Default time limit of one query.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(300);
/// Nice value of the query threads (Linux): below the engine's 0.
const QUERY_THREAD_NICE: i32 = 10;

/// Limits applied to every Flight SQL query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most bytes the operators of one query may hold (sorts, aggregations, joins).
    pub memory: usize,
    /// Longest time a query may run, from planning to its last batch.
    pub timeout: Duration,
    /// Worker threads of the query runtime (0: half the cores, at least one).
    pub threads: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            memory: DEFAULT_QUERY_MEMORY,
            timeout: DEFAULT_QUERY_TIMEOUT,
            threads: 0,
        }
    }
}

impl QueryLimits {
    /// `ctx`'s tables and functions in a session of its own with a memory pool of
    /// [`Self::memory`] bytes and no spilling. Settings changed in it do not reach `ctx`.
    pub fn session(&self, ctx: &SessionContext) -> Result<SessionContext, DataFusionError> {
        let shared = ctx.runtime_env();
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(self.memory)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .with_object_store_registry(Arc::clone(&shared.object_store_registry))
            .build_arc()?;
        let state = SessionStateBuilder::new_from_existing(ctx.state())
            .with_runtime_env(runtime)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// The gRPC status of a query error: memory and time limits say which limit and how to
    /// raise it; everything else is the client's query.
    pub fn status(&self, e: &DataFusionError) -> Status {
        let text = e.to_string();
        if is_resources_exhausted(e) {
            Status::resource_exhausted(format!(
                "query exceeded the memory limit of {} MiB (--query-memory-limit): {text}",
                self.memory / (1024 * 1024)
            ))
        } else {
            Status::invalid_argument(text)
        }
    }

    /// [`Self::status`] of an error planning a query, with "did you mean …?" when it names
    /// a missing table close to one of `known` (see [`crate::suggest`]).
    pub fn plan_status(&self, e: &DataFusionError, known: &[String]) -> Status {
        if is_resources_exhausted(e) {
            self.status(e)
        } else {
            Status::invalid_argument(crate::suggest::with_table_hint(e, known))
        }
    }

    /// The gRPC status of a query that ran out of time.
    pub fn timeout_status(&self) -> Status {
        Status::deadline_exceeded(format!(
            "query exceeded the time limit of {} (--query-timeout)",
            humantime_secs(self.timeout)
        ))
    }
}

fn humantime_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn is_resources_exhausted(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::ResourcesExhausted(_) => true,
        DataFusionError::Context(_, inner) => is_resources_exhausted(inner),
        DataFusionError::Shared(inner) => is_resources_exhausted(inner),
        DataFusionError::External(inner) => inner
            .downcast_ref::<DataFusionError>()
            .is_some_and(is_resources_exhausted),
        DataFusionError::Collection(all) => all.iter().any(is_resources_exhausted),
        _ => false,
    }
}

/// The tokio runtime client queries run on (see the module docs).
///
/// One per process, made at first use with the thread count asked for then: DataFusion
/// spawns its own tasks onto the runtime a plan is executed on, so the whole query stays on
/// these threads.
#[derive(Debug, Clone)]
pub struct QueryRuntime {
    handle: tokio::runtime::Handle,
}

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

impl QueryRuntime {
    /// The process's query runtime, made with `threads` workers (0: half the cores) if it
    /// does not exist yet.
    pub fn get(threads: usize) -> Self {
        let runtime = RUNTIME.get_or_init(|| {
            let threads = if threads == 0 {
                std::thread::available_parallelism()
                    .map(|n| (n.get() / 2).max(1))
                    .unwrap_or(1)
            } else {
                threads
            };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("dw-query")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .expect("query runtime starts")
        });
        Self {
            handle: runtime.handle().clone(),
        }
    }

    /// Runs `future` on the query threads and waits for its output.
    pub async fn run<F>(&self, future: F) -> Result<F::Output, Status>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .map_err(|e| Status::internal(format!("query task failed: {e}")))
    }

    /// Spawns `future` on the query threads.
    pub fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }
}

/// Lowers the calling thread's scheduling priority (Linux: nice is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; `who = 0` is the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, QUERY_THREAD_NICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_query_over_the_cap_fails_with_the_limit_named() {
        let limits = QueryLimits {
            memory: 8 * 1024 * 1024,
            ..QueryLimits::default()
        };
        let ctx = limits.session(&SessionContext::new()).unwrap();
        let e = ctx
            // Not in value order, so the distinct values are held in a hash table.
            .sql("SELECT count(DISTINCT (value * 7919) % 20000003) FROM generate_series(1, 20000000)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        let status = limits.status(&e);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{e}");
        assert!(
            status.message().contains("memory limit of 8 MiB"),
            "{status}"
        );
        // A small one fits.
        let small = limits.session(&SessionContext::new()).unwrap();
        assert!(small
            .sql("SELECT count(DISTINCT value) FROM generate_series(1, 1000)")
            .await
            .unwrap()
            .collect()
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn settings_of_a_query_session_stay_in_it() {
        let shared = SessionContext::new();
        let mine = QueryLimits::default().session(&shared).unwrap();
        mine.sql("SET datafusion.execution.batch_size = 7")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(mine.state().config().batch_size(), 7);
        assert_ne!(shared.state().config().batch_size(), 7);
    }
}
