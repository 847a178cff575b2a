//! The memory pool shared by every monitor of the process (`--memory-limit`).
//!
//! Every streaming session ([`super::streaming_session`]) runs on a DataFusion `RuntimeEnv`
//! whose memory pool is this one, so the state a window operator reserves (through a
//! `MemoryConsumer` on its `TaskContext`'s pool) counts against one process-wide budget. A
//! reservation that does not fit fails with `ResourcesExhausted`: the monitor that asked
//! fails (surfaced in `system.monitors`), the process and the other monitors keep running,
//! instead of the kernel's OOM killer ending everything.
//!
//! The pool is a greedy pool (first come, first served: window state cannot spill) that
//! names its largest consumers in the error. Its size is [`default_memory_limit`] unless
//! [`set_memory_limit`] chose another before the first monitor was planned. Flight SQL
//! queries have their own limit (`--query-memory-limit`) and are not counted here.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, TrackConsumersPool};

/// Upper end of the default limit: 1 GiB.
pub const DEFAULT_MEMORY_LIMIT_CAP: usize = 1 << 30;

/// Smallest accepted `--memory-limit`: 16 MiB (less cannot hold one busy window).
pub const MIN_MEMORY_LIMIT: usize = 16 << 20;

/// Consumers named in a `ResourcesExhausted` error.
const TOP_CONSUMERS: usize = 5;

struct ProcessPool {
    limit: usize,
    pool: Arc<dyn MemoryPool>,
}

static POOL: OnceLock<ProcessPool> = OnceLock::new();

/// Memory the machine (or its cgroup, in a container) gives this process, in bytes, if known.
pub fn available_memory() -> Option<usize> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    // cgroup v2, then v1; "max" (or a huge v1 value) means no limit.
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| s.trim().parse::<usize>().ok())
    .filter(|&b| b < (1usize << 60));
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// The default `--memory-limit`: half of [`available_memory`], at most 1 GiB (1 GiB when
/// the memory is unknown), at least [`MIN_MEMORY_LIMIT`].
pub fn default_memory_limit() -> usize {
    available_memory()
        .map_or(DEFAULT_MEMORY_LIMIT_CAP, |m| {
            (m / 2).min(DEFAULT_MEMORY_LIMIT_CAP)
        })
        .max(MIN_MEMORY_LIMIT)
}

/// Sets the size of the process pool. Call before the first monitor is planned; once the
/// pool exists its size is fixed, and asking for a different one is an error.
pub fn set_memory_limit(bytes: usize) -> Result<(), String> {
    if bytes < MIN_MEMORY_LIMIT {
        return Err(format!(
            "--memory-limit must be at least {}, got {}",
            driftwatch_sql::format_size(MIN_MEMORY_LIMIT),
            driftwatch_sql::format_size(bytes)
        ));
    }
    let pool = POOL.get_or_init(|| ProcessPool::new(bytes));
    if pool.limit != bytes {
        return Err(format!(
            "the monitor memory pool already has {} (asked for {}): the limit is set once per process",
            driftwatch_sql::format_size(pool.limit),
            driftwatch_sql::format_size(bytes)
        ));
    }
    Ok(())
}

/// The pool every monitor of the process reserves its state in (created on first use).
pub fn memory_pool() -> Arc<dyn MemoryPool> {
    Arc::clone(
        &POOL
            .get_or_init(|| ProcessPool::new(default_memory_limit()))
            .pool,
    )
}

/// Size of the process pool in bytes.
pub fn memory_limit() -> usize {
    POOL.get_or_init(|| ProcessPool::new(default_memory_limit()))
        .limit
}

impl ProcessPool {
    fn new(limit: usize) -> Self {
        tracing::debug!(
            limit = %driftwatch_sql::format_size(limit),
            "monitor memory pool"
        );
        let top = NonZeroUsize::new(TOP_CONSUMERS).expect("non-zero");
        Self {
            limit,
            pool: Arc::new(TrackConsumersPool::new(GreedyMemoryPool::new(limit), top)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryConsumer;

    #[test]
    fn default_is_bounded() {
        let d = default_memory_limit();
        assert!((MIN_MEMORY_LIMIT..=DEFAULT_MEMORY_LIMIT_CAP).contains(&d));
        if let Some(m) = available_memory() {
            assert!(d <= (m / 2).max(MIN_MEMORY_LIMIT));
        }
    }

    #[test]
    fn the_pool_is_shared_and_bounded() {
        let pool = memory_pool();
        assert!(Arc::ptr_eq(&pool, &memory_pool()));
        assert!(set_memory_limit(memory_limit()).is_ok());
        assert!(set_memory_limit(memory_limit() + 1).is_err());
        assert!(set_memory_limit(1024).is_err());
        let r = MemoryConsumer::new("test window state").register(&pool);
        let err = r.try_grow(memory_limit() + 1).unwrap_err();
        assert!(
            matches!(
                err,
                datafusion::error::DataFusionError::ResourcesExhausted(_)
            ),
            "{err}"
        );
        assert!(err.to_string().contains("test window state"), "{err}");
        r.try_grow(1024).unwrap();
        assert!(pool.reserved() >= 1024);
    }
}
