//! Event-time watermarks: per-partition maximum event time minus the declared delay,
//! combined as the minimum over active partitions, with idle detection.
//!
//! Rules (documented for users in README "Time and watermarks"):
//! - a partition's watermark is `max event time seen − delay`;
//! - the source watermark is the minimum over *active* partitions; a partition that has not
//!   delivered a row for `idle_timeout` *and* has consumed everything its source holds
//!   (Kafka: position at the high watermark; see [`WatermarkTracker::set_caught_up`]) stops
//!   holding it back — idle means caught up, not merely silent;
//! - when every partition is idle, event time follows processing time: the watermark becomes
//!   `max event time seen − delay + time since the last row arrived`, so the last windows close
//!   even when traffic stops;
//! - the watermark never goes backwards.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::PartitionId;

/// Watermark value before any row was seen.
pub const NO_WATERMARK: i64 = i64::MIN;

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    max_event_ms: Option<i64>,
    last_seen: Instant,
    /// Whether the partition has nothing left to read (only caught-up partitions go idle).
    caught_up: bool,
}

impl PartitionClock {
    fn new(now: Instant) -> Self {
        Self {
            max_event_ms: None,
            last_seen: now,
            caught_up: true,
        }
    }
}

/// Progress of one partition on its own, as a cluster's stage 1 judges lateness by it
/// (see [`crate::cluster`]): the partition's watermark and whether it is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    /// `max event time seen − delay` for this partition ([`NO_WATERMARK`] before a row).
    pub watermark: i64,
    /// Caught up with its source and silent for the idle timeout.
    pub idle: bool,
}

/// What a checkpoint keeps of a tracker: event-time progress, not processing-time clocks
/// (idle timers start afresh after a restore).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkState {
    /// The watermark (epoch ms; `i64::MIN` before data).
    pub current: i64,
    /// Largest event time seen over all partitions.
    pub max_event_ms: Option<i64>,
    /// Largest event time seen per partition.
    pub partitions: BTreeMap<PartitionId, Option<i64>>,
}

/// Tracks the watermark of one source across its partitions.
#[derive(Debug)]
pub struct WatermarkTracker {
    delay_ms: i64,
    idle_timeout: Option<Duration>,
    partitions: HashMap<PartitionId, PartitionClock>,
    max_event_ms: Option<i64>,
    last_row: Option<Instant>,
    current: i64,
}

impl WatermarkTracker {
    /// A tracker for a source with the given watermark delay and optional idle timeout.
    pub fn new(delay_ms: i64, idle_timeout: Option<Duration>) -> Self {
        Self {
            delay_ms,
            idle_timeout,
            partitions: HashMap::new(),
            max_event_ms: None,
            last_row: None,
            current: NO_WATERMARK,
        }
    }

    /// The current watermark in epoch milliseconds ([`NO_WATERMARK`] before any data).
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Declares a partition before it delivers data, so the watermark waits for it.
    pub fn register(&mut self, partition: PartitionId, now: Instant) {
        self.partitions
            .entry(partition)
            .or_insert_with(|| PartitionClock::new(now));
    }

    /// Says whether `partition` has consumed everything its source holds; a partition that
    /// is behind never counts as idle. Partitions are caught up unless told otherwise.
    pub fn set_caught_up(&mut self, partition: PartitionId, caught_up: bool) {
        if let Some(clock) = self.partitions.get_mut(&partition) {
            clock.caught_up = caught_up;
        }
    }

    /// The event-time state a checkpoint keeps.
    pub fn state(&self) -> WatermarkState {
        WatermarkState {
            current: self.current,
            max_event_ms: self.max_event_ms,
            partitions: self
                .partitions
                .iter()
                .map(|(p, c)| (*p, c.max_event_ms))
                .collect(),
        }
    }

    /// Continues from a checkpoint's state; idle timers start at `now`.
    pub fn restore(&mut self, state: &WatermarkState, now: Instant) {
        self.current = self.current.max(state.current);
        self.max_event_ms = state.max_event_ms;
        self.last_row = state.max_event_ms.map(|_| now);
        for (p, max) in &state.partitions {
            let clock = self
                .partitions
                .entry(*p)
                .or_insert_with(|| PartitionClock::new(now));
            clock.max_event_ms = *max;
            clock.last_seen = now;
        }
    }

    /// The partitions known to the tracker, in ascending order.
    pub fn partitions(&self) -> Vec<PartitionId> {
        let mut out: Vec<PartitionId> = self.partitions.keys().copied().collect();
        out.sort_unstable();
        out
    }

    /// `partition`'s own progress at processing time `now` (`None` when unknown).
    pub fn partition_progress(
        &self,
        partition: PartitionId,
        now: Instant,
    ) -> Option<PartitionProgress> {
        let clock = self.partitions.get(&partition)?;
        Some(PartitionProgress {
            watermark: clock
                .max_event_ms
                .map_or(NO_WATERMARK, |m| m.saturating_sub(self.delay_ms)),
            idle: self.is_idle(clock, now),
        })
    }

    /// Forgets a partition (revoked by a rebalance, or a finished file).
    pub fn unregister(&mut self, partition: PartitionId, now: Instant) -> Option<i64> {
        self.partitions.remove(&partition);
        self.advance(now)
    }

    /// Records that `partition` delivered rows whose largest event time is `max_event_ms`.
    /// Returns the new watermark when it advanced.
    pub fn observe(
        &mut self,
        partition: PartitionId,
        max_event_ms: Option<i64>,
        now: Instant,
    ) -> Option<i64> {
        let clock = self
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionClock::new(now));
        clock.last_seen = now;
        if let Some(ts) = max_event_ms {
            clock.max_event_ms = Some(clock.max_event_ms.map_or(ts, |m| m.max(ts)));
            self.max_event_ms = Some(self.max_event_ms.map_or(ts, |m| m.max(ts)));
            self.last_row = Some(now);
        }
        self.advance(now)
    }

    /// Re-evaluates idleness at processing time `now`; returns the new watermark when it
    /// advanced.
    pub fn tick(&mut self, now: Instant) -> Option<i64> {
        self.advance(now)
    }

    fn is_idle(&self, clock: &PartitionClock, now: Instant) -> bool {
        clock.caught_up
            && self
                .idle_timeout
                .is_some_and(|t| now.saturating_duration_since(clock.last_seen) >= t)
    }

    fn candidate(&self, now: Instant) -> Option<i64> {
        let mut min_active: Option<i64> = None;
        let mut any_active = false;
        for clock in self.partitions.values() {
            if self.is_idle(clock, now) {
                continue;
            }
            any_active = true;
            match clock.max_event_ms {
                // An active partition that has not delivered event time yet holds the
                // watermark back until it does or goes idle.
                None => return None,
                Some(ts) => min_active = Some(min_active.map_or(ts, |m| m.min(ts))),
            }
        }
        if any_active {
            return min_active.map(|ts| ts.saturating_sub(self.delay_ms));
        }
        // Every partition is idle: event time follows processing time.
        let (max, last_row) = (self.max_event_ms?, self.last_row?);
        let idle_ms = now.saturating_duration_since(last_row).as_millis() as i64;
        Some(max.saturating_sub(self.delay_ms).saturating_add(idle_ms))
    }

    fn advance(&mut self, now: Instant) -> Option<i64> {
        let candidate = self.candidate(now)?;
        if candidate > self.current {
            self.current = candidate;
            Some(candidate)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_partitions_minus_delay() {
        let now = Instant::now();
        let mut t = WatermarkTracker::new(6_000, None);
        t.register(0, now);
        t.register(1, now);
        assert_eq!(
            t.observe(0, Some(20_000), now),
            None,
            "partition 1 holds it back"
        );
        assert_eq!(t.observe(1, Some(10_000), now), Some(4_000));
        assert_eq!(t.observe(1, Some(30_000), now), Some(14_000));
        assert_eq!(t.current(), 14_000);
    }

    #[test]
    fn never_goes_backwards() {
        let now = Instant::now();
        let mut t = WatermarkTracker::new(0, None);
        t.observe(0, Some(10_000), now);
        assert_eq!(t.observe(0, Some(5_000), now), None);
        assert_eq!(t.current(), 10_000);
    }

    #[test]
    fn idle_partition_stops_holding_back() {
        let start = Instant::now();
        let mut t = WatermarkTracker::new(1_000, Some(Duration::from_secs(10)));
        t.observe(0, Some(5_000), start);
        t.observe(1, Some(50_000), start);
        assert_eq!(t.current(), 4_000);
        let later = start + Duration::from_secs(11);
        t.observe(1, Some(60_000), later);
        assert_eq!(t.current(), 59_000, "partition 0 went idle");
    }

    #[test]
    fn a_partition_behind_its_source_is_never_idle() {
        let start = Instant::now();
        let mut t = WatermarkTracker::new(0, Some(Duration::from_secs(1)));
        t.observe(0, Some(5_000), start);
        t.set_caught_up(0, false);
        assert_eq!(
            t.tick(start + Duration::from_secs(5)),
            None,
            "data still waits"
        );
        t.set_caught_up(0, true);
        assert_eq!(t.tick(start + Duration::from_secs(5)), Some(10_000));
    }

    #[test]
    fn state_round_trips_event_time_and_never_goes_back() {
        let now = Instant::now();
        let mut t = WatermarkTracker::new(1_000, None);
        t.observe(0, Some(10_000), now);
        t.observe(1, Some(20_000), now);
        let state = t.state();
        assert_eq!(state.current, 9_000);
        let mut r = WatermarkTracker::new(1_000, None);
        r.restore(&state, now);
        assert_eq!(r.current(), 9_000);
        assert_eq!(r.observe(0, Some(12_000), now), Some(11_000));
        assert_eq!(r.state().partitions[&1], Some(20_000));
    }

    #[test]
    fn partition_progress_is_each_partitions_own() {
        let start = Instant::now();
        let mut t = WatermarkTracker::new(1_000, Some(Duration::from_secs(2)));
        t.register(2, start);
        t.observe(0, Some(5_000), start);
        t.observe(1, Some(50_000), start);
        assert_eq!(t.partitions(), vec![0, 1, 2]);
        let own = |t: &WatermarkTracker, p, at| t.partition_progress(p, at).unwrap();
        assert_eq!(
            own(&t, 1, start),
            PartitionProgress {
                watermark: 49_000,
                idle: false
            },
            "not held back by partition 0, unlike the source watermark"
        );
        assert_eq!(own(&t, 2, start).watermark, NO_WATERMARK);
        t.set_caught_up(0, false);
        let later = start + Duration::from_secs(3);
        assert!(!own(&t, 0, later).idle, "behind its source: never idle");
        assert!(own(&t, 1, later).idle);
        assert_eq!(t.partition_progress(7, later), None);
    }

    #[test]
    fn all_idle_follows_processing_time() {
        let start = Instant::now();
        let mut t = WatermarkTracker::new(6_000, Some(Duration::from_secs(2)));
        t.observe(0, Some(100_000), start);
        assert_eq!(t.current(), 94_000);
        assert_eq!(t.tick(start + Duration::from_secs(1)), None, "not idle yet");
        assert_eq!(t.tick(start + Duration::from_secs(3)), Some(97_000));
    }
}
