//! Event-time watermarks: per-partition maximum event time minus the declared delay,
//! combined as the minimum over active partitions, with idle detection.
//!
//! Rules (documented for users in README "Time and watermarks"):
//! - a partition's watermark is `max event time seen − delay`;
//! - the source watermark is the minimum over *active* partitions; a partition that has not
//!   delivered a row for `idle_timeout` stops holding it back;
//! - when every partition is idle, event time follows processing time: the watermark becomes
//!   `max event time seen − delay + time since the last row arrived`, so the last windows close
//!   even when traffic stops;
//! - the watermark never goes backwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::sources::PartitionId;

/// Watermark value before any row was seen.
pub const NO_WATERMARK: i64 = i64::MIN;

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    max_event_ms: Option<i64>,
    last_seen: Instant,
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
        self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_ms: None,
            last_seen: now,
        });
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
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_ms: None,
            last_seen: now,
        });
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
        self.idle_timeout
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
    fn all_idle_follows_processing_time() {
        let start = Instant::now();
        let mut t = WatermarkTracker::new(6_000, Some(Duration::from_secs(2)));
        t.observe(0, Some(100_000), start);
        assert_eq!(t.current(), 94_000);
        assert_eq!(t.tick(start + Duration::from_secs(1)), None, "not idle yet");
        assert_eq!(t.tick(start + Duration::from_secs(3)), Some(97_000));
    }
}
