//! [`Live`]: follows every monitor's results for the page — keeps each monitor's result
//! schema and its most recent batches, and hands out subscriptions to the live stream.
//!
//! Why a tail: result files reach the store at checkpoints (every few seconds), so a page
//! that loads the stored history and then subscribes would miss the windows emitted in
//! between. A new event stream starts with the tail (the page drops rows it already has).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use tokio::sync::broadcast;

use crate::runtime::MonitorResult;

/// Batches kept per monitor for new subscribers.
pub const TAIL_BATCHES: usize = 64;
/// Rows kept per monitor for new subscribers (older batches are dropped first).
pub const TAIL_ROWS: usize = 20_000;

#[derive(Default)]
struct Tail {
    schema: Option<SchemaRef>,
    batches: VecDeque<RecordBatch>,
    rows: usize,
}

/// Result schemas, recent batches and the live stream of a running system.
pub struct Live {
    tails: Mutex<HashMap<String, Tail>>,
    /// Kept to make new receivers ([`broadcast::Receiver::resubscribe`]).
    results: Mutex<broadcast::Receiver<MonitorResult>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    /// Follows `results` on a task of its own until the system drops its sender.
    pub fn start(results: broadcast::Receiver<MonitorResult>) -> Arc<Self> {
        let follower = results.resubscribe();
        let live = Arc::new(Self {
            tails: Mutex::new(HashMap::new()),
            results: Mutex::new(results),
        });
        let weak = Arc::downgrade(&live);
        tokio::spawn(async move {
            let mut rx = follower;
            loop {
                match rx.recv().await {
                    Ok(result) => match weak.upgrade() {
                        Some(live) => live.record(&result),
                        None => return,
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "live page: result tail skipped batches");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        live
    }

    /// Keeps `result` in its monitor's tail.
    pub fn record(&self, result: &MonitorResult) {
        let mut tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        let tail = match tails.get_mut(&result.monitor) {
            Some(t) => t,
            None => tails.entry(result.monitor.clone()).or_default(),
        };
        let schema = result.batch.schema();
        if tail.schema.as_ref() != Some(&schema) {
            // A redefined monitor: its earlier rows do not fit the new columns.
            tail.batches.clear();
            tail.rows = 0;
            tail.schema = Some(schema);
        }
        if result.batch.num_rows() == 0 {
            return;
        }
        tail.rows += result.batch.num_rows();
        tail.batches.push_back(result.batch.clone());
        while tail.batches.len() > TAIL_BATCHES || (tail.rows > TAIL_ROWS && tail.batches.len() > 1)
        {
            if let Some(old) = tail.batches.pop_front() {
                tail.rows -= old.num_rows();
            }
        }
    }

    /// The schema of `monitor`'s last result seen by this process.
    pub fn schema(&self, monitor: &str) -> Option<SchemaRef> {
        let tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        tails.get(monitor).and_then(|t| t.schema.clone())
    }

    /// The recent batches of `monitor` (all monitors when `None`), oldest first.
    pub fn tail(&self, monitor: Option<&str>) -> Vec<MonitorResult> {
        let tails = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (name, tail) in tails.iter() {
            if monitor.is_some_and(|m| m != name) {
                continue;
            }
            out.extend(tail.batches.iter().map(|b| MonitorResult {
                monitor: name.clone(),
                batch: b.clone(),
            }));
        }
        out
    }

    /// A new receiver of the live stream (from now on).
    pub fn subscribe(&self) -> broadcast::Receiver<MonitorResult> {
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resubscribe()
    }
}
