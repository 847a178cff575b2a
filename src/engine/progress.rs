//! State shared between a monitor's input, its window operator and the task running the
//! monitor: the watermark that covers every row already handed to the plan, whether input
//! has ended, and the alignment of checkpoint barriers.
//!
//! Only pass-through operators (projections, filters) sit between the input and the window
//! operator, and the input publishes a watermark only when it is polled *after* yielding the
//! batches the watermark covers, so whenever the window operator reads the watermark every
//! row it covers has already reached the operator. See [`crate::engine::planner`] for the
//! check that enforces the pass-through rule.
//!
//! # Checkpoint barriers
//!
//! A barrier travels in the source feed between batches. When the input reads one it
//! *parks*: it stops reading the feed until the barrier is released. Everything before the
//! barrier has then been yielded and, the plan being polled synchronously, has reached the
//! window operator. The window operator, when its input reports `Pending` while parked,
//! applies the watermark (emitting the windows it closes), takes its [`WindowSnapshot`] and,
//! once it has handed every emitted window on, marks the barrier *drained*. A row-level plan
//! (no window operator) is drained as soon as the input parks. The task running the monitor
//! waits for [`StreamProgress::drained`], persists what was emitted before the barrier,
//! takes the snapshot and [`StreamProgress::release`]s the input. Rows after the barrier are
//! never seen by the snapshot and rows before it are never missing from it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::Waker;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::snapshot::WindowSnapshot;
use crate::sources::watermark::NO_WATERMARK;

#[derive(Debug, Default)]
struct BarrierSlot {
    /// Barrier the input is parked at, and since when.
    parked: Option<u64>,
    parked_at: Option<Instant>,
    /// Whether the window operator took its snapshot for the parked barrier.
    snapshotted: bool,
    /// Whether everything before the parked barrier left the plan.
    drained: bool,
    snapshot: Option<WindowSnapshot>,
    /// How long taking the snapshot took (the state copy).
    snapshot_time: Duration,
    input_waker: Option<Waker>,
    /// State after bounded input ended and every window was flushed.
    final_snapshot: Option<WindowSnapshot>,
    /// State to start from (restored from a checkpoint), taken by the window operator.
    restore: Option<WindowSnapshot>,
}

/// Watermark, end-of-input flag and barrier alignment of one monitor's input.
#[derive(Debug)]
pub struct StreamProgress {
    watermark: AtomicI64,
    ended: AtomicBool,
    late_rows: AtomicU64,
    windowed: bool,
    barrier: Mutex<BarrierSlot>,
    drained: Notify,
    /// When the watermark reached each value (bounded), for the emit-delay metric.
    clock: Mutex<WatermarkClock>,
}

/// Wall-clock instants of the last [`WATERMARK_CLOCK_LEN`] watermark advances, and of the
/// end of bounded input.
#[derive(Debug, Default)]
struct WatermarkClock {
    reached: std::collections::VecDeque<(i64, Instant)>,
    ended_at: Option<Instant>,
}

/// Watermark advances remembered for [`StreamProgress::closable_since`].
const WATERMARK_CLOCK_LEN: usize = 1024;

impl StreamProgress {
    /// Progress of a plan with a window operator (`windowed`) or a row-level plan.
    pub fn new(windowed: bool) -> Self {
        Self {
            watermark: AtomicI64::new(NO_WATERMARK),
            ended: AtomicBool::new(false),
            late_rows: AtomicU64::new(0),
            windowed,
            barrier: Mutex::new(BarrierSlot::default()),
            drained: Notify::new(),
            clock: Mutex::new(WatermarkClock::default()),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, BarrierSlot> {
        self.barrier.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watermark covering every row delivered so far (epoch ms).
    pub fn watermark(&self) -> i64 {
        self.watermark.load(Ordering::Acquire)
    }
    /// Advances the watermark (never backwards).
    pub fn advance(&self, wm: i64) {
        let before = self.watermark.fetch_max(wm, Ordering::AcqRel);
        if wm > before {
            let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
            if clock.reached.len() == WATERMARK_CLOCK_LEN {
                clock.reached.pop_front();
            }
            clock.reached.push_back((wm, Instant::now()));
        }
    }
    /// Marks the end of bounded input: every window may be flushed.
    pub fn end(&self) {
        self.clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ended_at = Some(Instant::now());
        self.ended.store(true, Ordering::Release);
    }
    /// When the watermark first reached `threshold` (or bounded input ended, whichever came
    /// first): the moment a window closed by `threshold` could first be emitted. Only the
    /// last 1024 advances are remembered; an older moment is reported as the oldest one
    /// remembered. `None` while neither happened.
    pub fn closable_since(&self, threshold: i64) -> Option<Instant> {
        let clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        let first = clock.reached.partition_point(|(wm, _)| *wm < threshold);
        let by_watermark = clock.reached.get(first).map(|(_, at)| *at);
        match (by_watermark, clock.ended_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    /// Whether bounded input has ended.
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
    /// Counts late rows.
    pub fn add_late(&self, n: u64) {
        self.late_rows.fetch_add(n, Ordering::Relaxed);
    }
    /// Late rows so far.
    pub fn late_rows(&self) -> u64 {
        self.late_rows.load(Ordering::Relaxed)
    }

    /// Input side: parks at barrier `id`; `waker` is woken on release.
    pub fn park(&self, id: u64, waker: &Waker) {
        let mut slot = self.slot();
        slot.parked = Some(id);
        slot.parked_at = Some(Instant::now());
        slot.snapshotted = false;
        slot.drained = false;
        slot.snapshot = None;
        slot.input_waker = Some(waker.clone());
        if !self.windowed {
            slot.drained = true;
            drop(slot);
            self.drained.notify_one();
        }
    }

    /// Input side: whether the input is parked at a barrier (refreshing its waker).
    pub fn is_parked(&self, waker: &Waker) -> bool {
        let mut slot = self.slot();
        if slot.parked.is_some() {
            slot.input_waker = Some(waker.clone());
            true
        } else {
            false
        }
    }

    /// Window-operator side: the barrier whose snapshot is still to be taken.
    pub fn barrier_to_snapshot(&self) -> Option<u64> {
        let slot = self.slot();
        slot.parked.filter(|_| !slot.snapshotted)
    }

    /// Window-operator side: hands over the snapshot for the parked barrier, and how long
    /// copying the state took.
    pub fn deposit(&self, snapshot: WindowSnapshot, took: Duration) {
        let mut slot = self.slot();
        slot.snapshot = Some(snapshot);
        slot.snapshot_time = took;
        slot.snapshotted = true;
    }

    /// Monitor-task side: how long the window operator took to copy its state for the
    /// drained barrier (zero for row-level plans).
    pub fn snapshot_time(&self) -> Duration {
        self.slot().snapshot_time
    }

    /// Window-operator side: everything emitted before the parked barrier has been handed
    /// on (called when the operator is about to return `Pending` with nothing ready).
    pub fn mark_drained(&self) {
        let mut slot = self.slot();
        if slot.parked.is_some() && slot.snapshotted && !slot.drained {
            slot.drained = true;
            drop(slot);
            self.drained.notify_one();
        }
    }

    /// Monitor-task side: resolves once the parked barrier is drained; returns its id.
    pub async fn drained(&self) -> u64 {
        loop {
            {
                let slot = self.slot();
                if let (Some(id), true) = (slot.parked, slot.drained) {
                    return id;
                }
            }
            self.drained.notified().await;
        }
    }

    /// Monitor-task side: the snapshot of the drained barrier (None for row-level plans).
    pub fn take_snapshot(&self) -> Option<WindowSnapshot> {
        self.slot().snapshot.take()
    }

    /// Monitor-task side: lets the input read past the barrier; returns how long the
    /// input stood still.
    pub fn release(&self) -> Option<Duration> {
        let (waker, parked_at) = {
            let mut slot = self.slot();
            slot.parked = None;
            slot.snapshotted = false;
            slot.drained = false;
            slot.snapshot = None;
            slot.snapshot_time = Duration::ZERO;
            (slot.input_waker.take(), slot.parked_at.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        parked_at.map(|t| t.elapsed())
    }

    /// Window-operator side: the state after bounded input ended and everything was flushed.
    pub fn deposit_final(&self, snapshot: WindowSnapshot) {
        self.slot().final_snapshot = Some(snapshot);
    }

    /// Monitor-task side: the final state, once the plan ended.
    pub fn take_final(&self) -> Option<WindowSnapshot> {
        self.slot().final_snapshot.take()
    }

    /// Sets the state the window operator starts from (a restored checkpoint).
    pub fn set_restore(&self, snapshot: WindowSnapshot) {
        self.slot().restore = Some(snapshot);
    }

    /// Window-operator side: the state to start from, if any.
    pub fn take_restore(&self) -> Option<WindowSnapshot> {
        self.slot().restore.take()
    }

    /// Whether the plan has a window operator.
    pub fn is_windowed(&self) -> bool {
        self.windowed
    }
}
