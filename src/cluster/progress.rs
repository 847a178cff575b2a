//! Stage 2's view of the shuffle, kept per repartition partition: the watermark over the
//! source partitions ([`ShuffleWatermark`]), which partial chunks arrived and which are
//! duplicates ([`PartialLedger`]), and the repartition-topic offset a restarted stage-2 task
//! must re-read from ([`RetainedOffsets`]).
//!
//! A restarted task re-reads from [`RetainedOffsets::commit_offset`] and rebuilds all three
//! from what it reads. Marks read before that offset are not seen again, so until every
//! source partition has published a new mark the rebuilt watermark holds back (never too
//! early, at worst late by one mark interval).

use std::collections::{BTreeMap, BTreeSet};

use super::exchange::{PartialPane, WatermarkMark};
use crate::sources::watermark::NO_WATERMARK;

/// Input stage 2 cannot account for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgressError {
    /// A mark or partial from a source partition the monitor's source does not have.
    #[error("source partition {partition} is outside 0..{partitions}")]
    UnknownPartition {
        /// The partition in the record.
        partition: i32,
        /// Number of source partitions.
        partitions: usize,
    },
    /// A chunk whose index and count contradict each other or earlier chunks of its pane:
    /// the producers did not publish the same content.
    #[error(
        "pane {pane_start} of source partition {partition}: chunk {chunk_index} of \
         {chunk_count} contradicts {expected} chunk(s)"
    )]
    ChunkMismatch {
        /// Source partition.
        partition: i32,
        /// Pane start (epoch ms).
        pane_start: i64,
        /// Chunk index of the record.
        chunk_index: u32,
        /// Chunk count of the record.
        chunk_count: u32,
        /// Chunk count of the pane's earlier chunks (the record's own count if none).
        expected: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct SourceClock {
    watermark: i64,
    idle: bool,
}

/// The watermark of the shuffle as one repartition partition sees it, over the monitor's N
/// source partitions.
///
/// The rule is the one [`crate::sources::watermark`] applies to the partitions of one
/// instance, with each source partition's own watermark (published by stage 1) in place of
/// its event time:
/// - per source partition, the largest watermark any mark carried (a stale mark, e.g. from
///   the previous owner of a partition that moved, never moves it back) and the idle flag of
///   the latest mark in topic order;
/// - the shuffle watermark is the minimum over the source partitions that are not idle; a
///   partition never heard from counts as not idle with no watermark ([`NO_WATERMARK`]), so
///   it holds everything back until its first mark;
/// - when every partition is idle, it is the maximum of their watermarks (an idle stage-1
///   task already advances its watermark with processing time before publishing it);
/// - it never goes backwards (a partition that stops being idle holds it where it is).
#[derive(Debug, Clone)]
pub struct ShuffleWatermark {
    sources: Vec<SourceClock>,
    current: i64,
}

impl ShuffleWatermark {
    /// A watermark over `source_partitions` partitions (numbered `0..source_partitions`),
    /// none heard from yet.
    pub fn new(source_partitions: usize) -> Self {
        Self {
            sources: vec![
                SourceClock {
                    watermark: NO_WATERMARK,
                    idle: false,
                };
                source_partitions
            ],
            current: NO_WATERMARK,
        }
    }

    /// Number of source partitions.
    pub fn source_partitions(&self) -> usize {
        self.sources.len()
    }

    /// Takes in a mark; returns the new shuffle watermark when it advanced.
    pub fn observe(&mut self, mark: &WatermarkMark) -> Result<Option<i64>, ProgressError> {
        let partitions = self.sources.len();
        let clock = usize::try_from(mark.source_partition)
            .ok()
            .and_then(|p| self.sources.get_mut(p))
            .ok_or(ProgressError::UnknownPartition {
                partition: mark.source_partition,
                partitions,
            })?;
        clock.watermark = clock.watermark.max(mark.watermark);
        clock.idle = mark.idle;
        let candidate = self.candidate();
        if candidate > self.current {
            self.current = candidate;
            Ok(Some(candidate))
        } else {
            Ok(None)
        }
    }

    /// The shuffle watermark (epoch ms; [`NO_WATERMARK`] until every partition that holds
    /// it back has published one).
    pub fn current(&self) -> i64 {
        self.current
    }

    /// A source partition's (largest watermark, idle flag), `None` outside the range.
    pub fn partition(&self, source_partition: i32) -> Option<(i64, bool)> {
        let clock = self.sources.get(usize::try_from(source_partition).ok()?)?;
        Some((clock.watermark, clock.idle))
    }

    fn candidate(&self) -> i64 {
        let active = self.sources.iter().filter(|c| !c.idle).map(|c| c.watermark);
        match active.min() {
            Some(min) => min,
            None => self
                .sources
                .iter()
                .map(|c| c.watermark)
                .max()
                .unwrap_or(NO_WATERMARK),
        }
    }
}

#[derive(Debug, Clone)]
struct PaneChunks {
    count: u32,
    received: BTreeSet<u32>,
}

/// Which chunks of which (source partition, pane) arrived.
///
/// A partition that moved to another instance may be published again from its last
/// checkpoint; its partials are content-identical (a pane's state depends only on the
/// partition's records), so the second copy of a chunk is dropped.
#[derive(Debug, Clone)]
pub struct PartialLedger {
    /// Keyed by (pane start, source partition), so forgetting old panes is a split.
    panes: BTreeMap<(i64, i32), PaneChunks>,
    /// Panes before this were forgotten: their chunks are duplicates of emitted state.
    horizon: i64,
}

impl Default for PartialLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self {
            panes: BTreeMap::new(),
            horizon: i64::MIN,
        }
    }

    /// Records a chunk. `Ok(true)`: new, merge it; `Ok(false)`: a duplicate (or a chunk of a
    /// pane already forgotten), drop it. Fails when its index and count contradict each
    /// other or the pane's earlier chunks.
    pub fn accept(&mut self, pane: &PartialPane) -> Result<bool, ProgressError> {
        let mismatch = |expected| ProgressError::ChunkMismatch {
            partition: pane.source_partition,
            pane_start: pane.pane_start,
            chunk_index: pane.chunk_index,
            chunk_count: pane.chunk_count,
            expected,
        };
        if pane.chunk_index >= pane.chunk_count {
            return Err(mismatch(pane.chunk_count));
        }
        if pane.pane_start < self.horizon {
            return Ok(false);
        }
        let entry = self
            .panes
            .entry((pane.pane_start, pane.source_partition))
            .or_insert_with(|| PaneChunks {
                count: pane.chunk_count,
                received: BTreeSet::new(),
            });
        if entry.count != pane.chunk_count {
            return Err(mismatch(entry.count));
        }
        Ok(entry.received.insert(pane.chunk_index))
    }

    /// Whether every chunk of `source_partition`'s pane at `pane_start` arrived (false for
    /// a pane never seen or already forgotten).
    pub fn pane_complete(&self, source_partition: i32, pane_start: i64) -> bool {
        self.panes
            .get(&(pane_start, source_partition))
            .is_some_and(|c| c.received.len() as u64 == u64::from(c.count))
    }

    /// Drops the bookkeeping of panes starting before `pane_start` (all their windows were
    /// emitted); their chunks are refused from now on.
    pub fn forget_before(&mut self, pane_start: i64) {
        if pane_start > self.horizon {
            self.horizon = pane_start;
            self.panes = self.panes.split_off(&(pane_start, i32::MIN));
        }
    }

    /// Number of (source partition, pane) entries kept.
    pub fn len(&self) -> usize {
        self.panes.len()
    }

    /// Whether no pane is tracked.
    pub fn is_empty(&self) -> bool {
        self.panes.is_empty()
    }
}

/// The repartition-topic offset at which each retained pane's first record was read, so the
/// task commits no further than the oldest state it could not rebuild otherwise.
#[derive(Debug, Clone)]
pub struct RetainedOffsets {
    first: BTreeMap<i64, i64>,
    horizon: i64,
}

impl Default for RetainedOffsets {
    fn default() -> Self {
        Self::new()
    }
}

impl RetainedOffsets {
    /// Nothing retained.
    pub fn new() -> Self {
        Self {
            first: BTreeMap::new(),
            horizon: i64::MIN,
        }
    }

    /// Records that a record of the pane at `pane_start` was read at `offset` (the smallest
    /// offset per pane is kept; panes already released are ignored).
    pub fn record(&mut self, pane_start: i64, offset: i64) {
        if pane_start < self.horizon {
            return;
        }
        self.first
            .entry(pane_start)
            .and_modify(|o| *o = (*o).min(offset))
            .or_insert(offset);
    }

    /// The offset to commit: the smallest offset still needed by a retained pane, else
    /// `next_offset_read` (never more than `next_offset_read`).
    pub fn commit_offset(&self, next_offset_read: i64) -> i64 {
        self.first
            .values()
            .copied()
            .min()
            .map_or(next_offset_read, |o| o.min(next_offset_read))
    }

    /// Releases the panes starting before `pane_start` (all their windows were emitted).
    pub fn release_before(&mut self, pane_start: i64) {
        if pane_start > self.horizon {
            self.horizon = pane_start;
            self.first = self.first.split_off(&pane_start);
        }
    }

    /// Number of retained panes.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    /// Whether no pane is retained.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use std::sync::Arc;

    use super::*;

    fn mark(partition: i32, watermark: i64, idle: bool) -> WatermarkMark {
        WatermarkMark {
            monitor: "m".into(),
            plan_fingerprint: 1,
            source_partition: partition,
            watermark,
            idle,
            source_offset: 0,
        }
    }

    fn chunk(partition: i32, pane_start: i64, index: u32, count: u32) -> PartialPane {
        let rows: ArrayRef = Arc::new(Int64Array::from(vec![pane_start]));
        PartialPane {
            monitor: "m".into(),
            plan_fingerprint: 1,
            source_partition: partition,
            pane_start,
            chunk_index: index,
            chunk_count: count,
            batch: RecordBatch::try_from_iter([("_pane_start", rows)]).unwrap(),
        }
    }

    #[test]
    fn unheard_partitions_hold_the_watermark() {
        let mut w = ShuffleWatermark::new(3);
        assert_eq!(w.observe(&mark(0, 100, false)), Ok(None));
        assert_eq!(w.observe(&mark(2, 80, false)), Ok(None));
        assert_eq!(w.current(), NO_WATERMARK);
        assert_eq!(w.observe(&mark(1, 90, false)), Ok(Some(80)));
        assert_eq!(w.partition(1), Some((90, false)));
        assert_eq!(w.partition(3), None);
    }

    #[test]
    fn watermark_is_min_over_active_and_max_when_all_idle() {
        let mut w = ShuffleWatermark::new(3);
        w.observe(&mark(0, 100, false)).unwrap();
        w.observe(&mark(1, 50, false)).unwrap();
        w.observe(&mark(2, 70, false)).unwrap();
        assert_eq!(w.current(), 50);
        // An idle partition stops holding the others back.
        assert_eq!(w.observe(&mark(1, 50, true)), Ok(Some(70)));
        w.observe(&mark(2, 70, true)).unwrap();
        assert_eq!(w.current(), 100);
        assert_eq!(w.observe(&mark(0, 120, true)), Ok(Some(120)));
        // Every partition idle: the largest watermark, even when it is an idle one.
        assert_eq!(w.observe(&mark(1, 130, true)), Ok(Some(130)));
        // A partition that wakes up behind does not move the watermark back.
        assert_eq!(w.observe(&mark(2, 75, false)), Ok(None));
        assert_eq!(w.current(), 130);
        // ...and holds it until it catches up.
        assert_eq!(w.observe(&mark(1, 200, true)), Ok(None));
        assert_eq!(w.observe(&mark(2, 140, false)), Ok(Some(140)));
    }

    #[test]
    fn stale_marks_never_regress_a_partition() {
        let mut w = ShuffleWatermark::new(2);
        w.observe(&mark(0, 100, false)).unwrap();
        w.observe(&mark(1, 100, false)).unwrap();
        // Out of order / from the previous owner: lower watermark, same partition.
        assert_eq!(w.observe(&mark(0, 40, false)), Ok(None));
        assert_eq!(w.partition(0), Some((100, false)));
        assert_eq!(w.current(), 100);
        // The idle flag is the latest one, whatever its watermark.
        w.observe(&mark(0, 10, true)).unwrap();
        assert_eq!(w.partition(0), Some((100, true)));
        w.observe(&mark(0, 10, false)).unwrap();
        assert_eq!(w.partition(0), Some((100, false)));
    }

    #[test]
    fn marks_of_unknown_partitions_are_errors() {
        let mut w = ShuffleWatermark::new(2);
        for p in [-1, 2] {
            assert!(matches!(
                w.observe(&mark(p, 1, false)),
                Err(ProgressError::UnknownPartition { .. })
            ));
        }
        assert_eq!(ShuffleWatermark::new(0).current(), NO_WATERMARK);
    }

    #[test]
    fn ledger_completes_panes_out_of_order_and_drops_duplicates() {
        let mut l = PartialLedger::new();
        assert_eq!(l.accept(&chunk(1, 60, 2, 3)), Ok(true));
        assert_eq!(l.accept(&chunk(0, 60, 0, 1)), Ok(true));
        assert_eq!(l.accept(&chunk(1, 60, 0, 3)), Ok(true));
        assert!(l.pane_complete(0, 60));
        assert!(!l.pane_complete(1, 60));
        assert_eq!(l.accept(&chunk(1, 60, 2, 3)), Ok(false));
        assert_eq!(l.accept(&chunk(1, 0, 0, 1)), Ok(true));
        assert!(!l.pane_complete(1, 60));
        assert_eq!(l.accept(&chunk(1, 60, 1, 3)), Ok(true));
        assert!(l.pane_complete(1, 60));
        assert!(!l.pane_complete(2, 60));
        // A re-published partition repeats everything: all duplicates.
        for i in 0..3 {
            assert_eq!(l.accept(&chunk(1, 60, i, 3)), Ok(false));
        }
    }

    #[test]
    fn ledger_rejects_contradicting_chunks() {
        let mut l = PartialLedger::new();
        l.accept(&chunk(0, 60, 0, 2)).unwrap();
        assert!(matches!(
            l.accept(&chunk(0, 60, 1, 3)),
            Err(ProgressError::ChunkMismatch { expected: 2, .. })
        ));
        assert!(l.accept(&chunk(0, 120, 3, 3)).is_err());
    }

    #[test]
    fn ledger_forgets_old_panes_and_refuses_them() {
        let mut l = PartialLedger::new();
        for pane in [0, 60, 120] {
            l.accept(&chunk(0, pane, 0, 1)).unwrap();
            l.accept(&chunk(1, pane, 0, 2)).unwrap();
        }
        assert_eq!(l.len(), 6);
        l.forget_before(120);
        assert_eq!(l.len(), 2);
        assert!(!l.pane_complete(0, 60));
        assert!(l.pane_complete(0, 120));
        // A late re-publication of an emitted pane is a duplicate, not a new pane.
        assert_eq!(l.accept(&chunk(1, 60, 1, 2)), Ok(false));
        assert_eq!(l.len(), 2);
        // Forgetting never goes back.
        l.forget_before(0);
        assert_eq!(l.accept(&chunk(0, 60, 0, 1)), Ok(false));
        assert_eq!(l.accept(&chunk(1, 120, 1, 2)), Ok(true));
        l.forget_before(i64::MAX);
        assert!(l.is_empty());
    }

    #[test]
    fn commit_offset_is_the_oldest_retained_pane() {
        let mut r = RetainedOffsets::new();
        assert_eq!(r.commit_offset(10), 10);
        r.record(120, 40);
        r.record(60, 42);
        r.record(60, 45);
        assert_eq!(r.commit_offset(50), 40);
        // A pane first met later at a smaller offset (records out of pane order).
        r.record(180, 30);
        assert_eq!(r.commit_offset(50), 30);
        r.release_before(120);
        assert_eq!(r.len(), 2);
        assert_eq!(r.commit_offset(50), 30);
        r.release_before(181);
        assert!(r.is_empty());
        assert_eq!(r.commit_offset(77), 77);
        // A duplicate of a released pane does not hold the offset back again.
        r.record(60, 12);
        assert_eq!(r.commit_offset(80), 80);
        r.record(240, 79);
        r.release_before(100);
        assert_eq!(r.commit_offset(80), 79);
        assert_eq!(r.commit_offset(60), 60);
    }
}
