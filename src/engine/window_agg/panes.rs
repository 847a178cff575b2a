//! State of tumbling and hopping windows: rows are aggregated once into panes; a window is
//! emitted, exactly once, by merging the partial states of the panes it covers when the
//! watermark passes its end.
//!
//! Cost per emitted window is O(panes touched): the next window and the panes to drop follow
//! from the window arithmetic in O(1), and hopping windows of bounded-size states are merged
//! through aligned suffix/prefix folds ([`super::sliding`]) in amortised O(1) merges, so HOP 1 s / 1 h
//! does not merge 3600 panes per second. Aggregates whose state grows with the data (exact
//! value lists) merge the window's panes directly instead: suffixes of such
//! states would copy the window's values once per pane (quadratic memory and time).

use std::collections::BTreeMap;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, UInt32Array};
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::aggregates::{AggregateInputs, AggregateSet};
use super::group_keys::{GroupKeys, KeyCodec};
use super::layout::{constant_ts, Grouping, OutputLayout};
use super::sliding::{has_growing_state, BlockSliding, Merger, PartialState};
use super::usage::StateUsage;
use super::WindowState;
use crate::engine::snapshot::{
    check_columns, concat_parts, snapshot_batch, split_states, WindowSnapshot,
};
use crate::engine::window::{floor_div, WindowKind};

/// Bookkeeping columns of a pane snapshot.
const PANE_START: &str = "_pane_start";
const PANE_FROZEN: &str = "_frozen";

/// A pane still receiving rows.
struct OpenPane {
    keys: GroupKeys,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

/// A pane whose first window was emitted: its partial state, kept for later windows.
type FrozenPane = PartialState;

enum Pane {
    Open(OpenPane),
    Frozen(FrozenPane),
}

/// Tumbling or hopping window state.
pub struct PaneWindows {
    kind: WindowKind,
    grouping: Grouping,
    aggregates: AggregateSet,
    layout: OutputLayout,
    /// Row format of the group keys, shared by every pane, fold and merger.
    codec: KeyCodec,
    panes: BTreeMap<i64, Pane>,
    /// End of the last emitted window.
    emitted_until: i64,
    scratch: Vec<usize>,
    /// Window length and distance between window starts (`size` for tumbling windows).
    size: i64,
    slide: i64,
    /// Whether hopping windows go through `sliding` (bounded-size states only).
    use_sliding: bool,
    /// Merged states of the current window's panes; `None` until the first hopping window
    /// is emitted (and after a restore).
    sliding: Option<BlockSliding>,
    /// Bytes of the frozen panes' states.
    frozen_bytes: usize,
    /// Reused for every emitted hopping window (empty between windows).
    merger: Option<Merger>,
}

impl PaneWindows {
    /// Empty state for `kind` (tumble or hop).
    pub fn new(
        kind: WindowKind,
        grouping: Grouping,
        aggregates: AggregateSet,
        layout: OutputLayout,
    ) -> Result<Self> {
        let (size, slide) = match kind {
            WindowKind::Tumble { size } => (size, size),
            WindowKind::Hop { size, slide } => (size, slide),
            WindowKind::Session { .. } => {
                return datafusion::common::internal_err!("session windows have no panes")
            }
        };
        let use_sliding =
            matches!(kind, WindowKind::Hop { .. }) && !has_growing_state(&aggregates)?;
        let codec = KeyCodec::new(&grouping.key_types)?;
        Ok(Self {
            kind,
            codec,
            grouping,
            aggregates,
            layout,
            panes: BTreeMap::new(),
            emitted_until: i64::MIN,
            scratch: Vec::new(),
            size,
            slide,
            use_sliding,
            sliding: None,
            frozen_bytes: 0,
            merger: None,
        })
    }

    fn open_pane(&mut self, start: i64) -> Result<&mut OpenPane> {
        if !self.panes.contains_key(&start) {
            let pane = OpenPane {
                keys: self.codec.group_keys(),
                accumulators: self.aggregates.groups_accumulators()?,
            };
            self.panes.insert(start, Pane::Open(pane));
        }
        match self.panes.get_mut(&start) {
            Some(Pane::Open(p)) => Ok(p),
            _ => unreachable!("frozen panes are filtered out before update"),
        }
    }

    fn update_pane(
        &mut self,
        start: i64,
        keys: &[ArrayRef],
        inputs: &AggregateInputs,
        rows: usize,
    ) -> Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let pane = self.open_pane(start)?;
        pane.keys.intern(keys, rows, &mut scratch)?;
        let total = pane.keys.len();
        for (i, acc) in pane.accumulators.iter_mut().enumerate() {
            acc.update_batch(&inputs.args[i], &scratch, inputs.filters[i].as_ref(), total)?;
        }
        self.scratch = scratch;
        Ok(())
    }

    fn is_closed(&self, pane_start: i64) -> bool {
        self.kind.first_window_end(pane_start) <= self.emitted_until
    }

    fn freeze<'a>(pane: &'a mut Pane, frozen_bytes: &mut usize) -> Result<&'a FrozenPane> {
        if let Pane::Open(_) = pane {
            let Pane::Open(mut open) = std::mem::replace(pane, Pane::Frozen(FrozenPane::empty()))
            else {
                unreachable!("checked above");
            };
            let num_groups = open.keys.len();
            let states = open
                .accumulators
                .iter_mut()
                .map(|a| a.state(EmitTo::All))
                .collect::<Result<Vec<_>>>()?;
            // The keys stay in row format: merging needs no conversion.
            let frozen = FrozenPane {
                keys: open.keys.into_rows(),
                num_groups,
                states,
            };
            *frozen_bytes += frozen.bytes();
            *pane = Pane::Frozen(frozen);
        }
        match pane {
            Pane::Frozen(f) => Ok(f),
            Pane::Open(_) => unreachable!(),
        }
    }

    /// Drops the pane starting at `start` (every window of it was emitted).
    fn remove_pane(&mut self, start: i64) {
        if let Some(Pane::Frozen(f)) = self.panes.remove(&start) {
            self.frozen_bytes -= f.bytes();
        }
    }

    /// Emits the window [start, end) from the panes it covers.
    fn emit_window(&mut self, start: i64, end: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        if let WindowKind::Tumble { .. } = self.kind {
            // One pane per window: evaluate it directly, no state round trip.
            if let Some(Pane::Open(mut pane)) = self.panes.remove(&start) {
                self.evaluate(start, end, &pane.keys, &mut pane.accumulators, out)?;
            }
            return Ok(());
        }
        let mut merger = match self.merger.take() {
            Some(m) => m,
            None => Merger::new(&self.codec, &self.aggregates)?,
        };
        if !self.use_sliding {
            for (_, pane) in self.panes.range_mut(start..end) {
                merger.merge(Self::freeze(pane, &mut self.frozen_bytes)?)?;
            }
        } else {
            let mut sliding = match self.sliding.take() {
                Some(s) => s,
                None => BlockSliding::new(&self.codec, &self.aggregates)?,
            };
            // Freeze the panes entering the window (each once).
            for (_, pane) in self.panes.range_mut(sliding.frozen_until.max(start)..end) {
                Self::freeze(pane, &mut self.frozen_bytes)?;
            }
            sliding.frozen_until = end;
            let frozen = |range: std::ops::Range<i64>| {
                self.panes.range(range).filter_map(|(&p, pane)| match pane {
                    Pane::Frozen(f) => Some((p, f)),
                    Pane::Open(_) => None,
                })
            };
            // The window is the tail of block `block` from `start` and the head of the next
            // block up to `end`.
            let block = floor_div(start, self.size);
            let next = (block + 1) * self.size;
            if sliding.suffix_block != Some(block) {
                sliding.set_suffixes(block, frozen(start..next))?;
            }
            if let Some(suffix) = sliding.suffix_from(start) {
                merger.merge(suffix)?;
            }
            if end > next {
                sliding.prefix_of(block + 1, next);
                let from = sliding.prefix_until.max(next);
                for (_, pane) in frozen(from..end) {
                    sliding.extend_prefix(pane)?;
                }
                sliding.prefix_until = end;
                if let Some((prefix, _)) = &sliding.prefix {
                    merger.merge(prefix)?;
                }
            }
            self.sliding = Some(sliding);
        }
        self.evaluate(start, end, &merger.keys, &mut merger.accumulators, out)?;
        // Evaluating emptied the accumulators: the merger is ready for the next window.
        merger.clear_keys();
        self.merger = Some(merger);
        Ok(())
    }

    /// Evaluates the accumulators of window [start, end) into one output batch.
    fn evaluate(
        &self,
        start: i64,
        end: i64,
        keys: &GroupKeys,
        accumulators: &mut [Box<dyn GroupsAccumulator>],
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let n = keys.len();
        if n == 0 {
            return Ok(());
        }
        let values = accumulators
            .iter_mut()
            .map(|a| a.evaluate(EmitTo::All))
            .collect::<Result<Vec<_>>>()?;
        out.push(self.layout.batch(
            constant_ts(start, n),
            constant_ts(end, n),
            keys.key_columns()?,
            values,
        )?);
        Ok(())
    }
}

impl WindowState for PaneWindows {
    fn update(&mut self, batch: &RecordBatch) -> Result<u64> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(0);
        }
        let (starts, keys) = self.grouping.evaluate(batch)?;
        let inputs = self.aggregates.evaluate(batch)?;
        let values = starts.values();
        let (min, max) = values
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if min == max && starts.null_count() == 0 {
            if self.is_closed(min) {
                return Ok(rows as u64);
            }
            return self.update_pane(min, &keys, &inputs, rows).map(|_| 0);
        }
        // Several panes in one batch: split rows by pane (few distinct panes per batch).
        let mut by_pane: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut dropped = 0u64;
        // Rows of a pane come in runs: decide whether it is closed once per run.
        let mut run: Option<(i64, bool)> = None;
        for (i, start) in starts.iter().enumerate() {
            let Some(s) = start else {
                dropped += 1;
                continue;
            };
            let closed = match run {
                Some((p, closed)) if p == s => closed,
                _ => {
                    let closed = self.is_closed(s);
                    run = Some((s, closed));
                    closed
                }
            };
            if closed {
                dropped += 1;
            } else {
                by_pane.entry(s).or_default().push(i as u32);
            }
        }
        for (start, idx) in by_pane {
            let idx = UInt32Array::from(idx);
            let part_keys = keys
                .iter()
                .map(|k| arrow::compute::take(k, &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let part_inputs = inputs.take(&idx)?;
            self.update_pane(start, &part_keys, &part_inputs, idx.len())?;
        }
        Ok(dropped)
    }

    fn snapshot(&mut self) -> Result<WindowSnapshot> {
        let mut starts: Vec<i64> = Vec::new();
        let mut frozen_flags: Vec<bool> = Vec::new();
        let mut key_parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); self.grouping.key_types.len()];
        let mut state_parts: Vec<Vec<Vec<ArrayRef>>> = Vec::new();
        for (&start, pane) in self.panes.iter_mut() {
            let (keys, n, states, frozen) = match pane {
                Pane::Open(open) => {
                    let n = open.keys.len();
                    if n == 0 {
                        continue;
                    }
                    // `state` resets an accumulator: merge the state straight back into
                    // fresh ones so the live computation continues unchanged.
                    let states = open
                        .accumulators
                        .iter_mut()
                        .map(|a| a.state(EmitTo::All))
                        .collect::<Result<Vec<_>>>()?;
                    let mut fresh = self.aggregates.groups_accumulators()?;
                    let indices: Vec<usize> = (0..n).collect();
                    for (acc, state) in fresh.iter_mut().zip(&states) {
                        acc.merge_batch(state, &indices, n)?;
                    }
                    open.accumulators = fresh;
                    (open.keys.key_columns()?, n, states, false)
                }
                Pane::Frozen(f) => {
                    if f.num_groups == 0 {
                        continue;
                    }
                    let keys = self.codec.columns(f.keys.as_ref())?;
                    (keys, f.num_groups, f.states.clone(), true)
                }
            };
            starts.extend(std::iter::repeat_n(start, n));
            frozen_flags.extend(std::iter::repeat_n(frozen, n));
            for (part, key) in key_parts.iter_mut().zip(keys) {
                part.push(key);
            }
            state_parts.push(states);
        }
        if starts.is_empty() {
            return Ok(WindowSnapshot::empty(self.emitted_until));
        }
        let keys = key_parts
            .iter()
            .map(|p| concat_parts(p))
            .collect::<Result<Vec<_>>>()?;
        let mut states = Vec::with_capacity(self.aggregates.aggregates().len());
        for a in 0..self.aggregates.aggregates().len() {
            let width = state_parts[0][a].len();
            let mut columns = Vec::with_capacity(width);
            for f in 0..width {
                let parts: Vec<ArrayRef> =
                    state_parts.iter().map(|p| Arc::clone(&p[a][f])).collect();
                columns.push(concat_parts(&parts)?);
            }
            states.push(columns);
        }
        let batch = snapshot_batch(
            vec![
                (PANE_START, Arc::new(Int64Array::from(starts)) as ArrayRef),
                (
                    PANE_FROZEN,
                    Arc::new(BooleanArray::from(frozen_flags)) as ArrayRef,
                ),
            ],
            keys,
            states,
        )?;
        Ok(WindowSnapshot {
            emitted_until: self.emitted_until,
            state: Some(batch),
        })
    }

    fn restore(&mut self, snapshot: WindowSnapshot) -> Result<()> {
        self.panes.clear();
        self.sliding = None;
        self.frozen_bytes = 0;
        self.emitted_until = snapshot.emitted_until;
        let Some(batch) = snapshot.state else {
            return Ok(());
        };
        let num_keys = self.grouping.key_types.len();
        let widths = self.aggregates.state_widths()?;
        check_columns(&batch, 2, num_keys, &widths)?;
        let starts = batch.column(0).as_primitive::<Int64Type>().clone();
        let frozen = batch.column(1).as_boolean().clone();
        let mut begin = 0;
        while begin < batch.num_rows() {
            let start = starts.value(begin);
            let mut end = begin + 1;
            while end < batch.num_rows() && starts.value(end) == start {
                end += 1;
            }
            let part = batch.slice(begin, end - begin);
            let n = part.num_rows();
            let keys: Vec<ArrayRef> = part.columns()[2..2 + num_keys].to_vec();
            let states = split_states(&part.columns()[2 + num_keys..], &widths);
            let pane = if frozen.value(begin) {
                let (rows, distinct) = self.codec.distinct_rows(&keys, n)?;
                if !distinct {
                    return datafusion::common::exec_err!(
                        "window snapshot: frozen pane at {start} repeats a group key"
                    );
                }
                let pane = FrozenPane {
                    keys: rows,
                    num_groups: n,
                    states,
                };
                self.frozen_bytes += pane.bytes();
                Pane::Frozen(pane)
            } else {
                let mut group_keys = self.codec.group_keys();
                let mut indices = Vec::new();
                group_keys.intern(&keys, n, &mut indices)?;
                let total = group_keys.len();
                let mut accumulators = self.aggregates.groups_accumulators()?;
                for (acc, state) in accumulators.iter_mut().zip(&states) {
                    acc.merge_batch(state, &indices, total)?;
                }
                Pane::Open(OpenPane {
                    keys: group_keys,
                    accumulators,
                })
            };
            self.panes.insert(start, pane);
            begin = end;
        }
        Ok(())
    }

    fn emit(&mut self, limit: i64, out: &mut Vec<RecordBatch>) -> Result<usize> {
        let (size, slide) = (self.size, self.slide);
        let mut windows = 0;
        while let Some((&first, _)) = self.panes.first_key_value() {
            // The first window of the oldest pane not emitted yet: window starts are
            // multiples of `slide`; the smallest one holding the pane, and the smallest one
            // ending after `emitted_until`.
            let holding = self.kind.first_window_end(first) - size;
            let start = if self.emitted_until == i64::MIN {
                holding
            } else {
                holding.max(floor_div(self.emitted_until - size, slide) * slide + slide)
            };
            if start > first {
                // Every window of this pane was emitted: it is no longer needed.
                self.remove_pane(first);
                continue;
            }
            let end = start + size;
            if end > limit {
                break;
            }
            let before = out.len();
            self.emit_window(start, end, out)?;
            windows += out.len() - before;
            self.emitted_until = end;
            // Panes before the next window's start have had their last window emitted.
            while let Some((&p, _)) = self.panes.first_key_value() {
                if p >= start + slide {
                    break;
                }
                self.remove_pane(p);
            }
        }
        Ok(windows)
    }

    fn usage(&self) -> StateUsage {
        let mut usage = StateUsage {
            bytes: self.frozen_bytes + self.sliding.as_ref().map_or(0, |s| s.merged_bytes()),
            groups: 0,
            open_windows: self.panes.len(),
        };
        // Open panes are the newest ones (rows for panes before them are late).
        for pane in self.panes.values().rev() {
            let Pane::Open(open) = pane else { break };
            usage.bytes +=
                open.keys.size() + open.accumulators.iter().map(|a| a.size()).sum::<usize>();
            usage.groups = usage.groups.max(open.keys.len());
        }
        usage
    }
}

/// What the two stages of a cluster ([`crate::cluster`]) need from the pane state.
impl PaneWindows {
    /// Stage 1: removes every pane ending at or before `limit` and returns its partial
    /// state, in pane order. Only for tumbling state (stage 1 cuts a hopping window's input
    /// into tumbling panes); rows for a drained pane are dropped as late afterwards.
    pub(super) fn drain_panes(&mut self, limit: i64) -> Result<Vec<(i64, PartialState)>> {
        if !matches!(self.kind, WindowKind::Tumble { .. }) {
            return datafusion::common::internal_err!("only tumbling panes are drained");
        }
        let mut out = Vec::new();
        while let Some((&start, _)) = self.panes.first_key_value() {
            let end = start + self.size;
            if end > limit {
                break;
            }
            if let Some(mut pane) = self.panes.remove(&start) {
                Self::freeze(&mut pane, &mut self.frozen_bytes)?;
                if let Pane::Frozen(state) = pane {
                    self.frozen_bytes -= state.bytes();
                    out.push((start, state));
                }
            }
            self.emitted_until = end;
        }
        Ok(out)
    }

    /// Stage 2: adds the pane starting at `start`, already merged from its partials, as an
    /// open pane (it is frozen and merged into windows as if its rows had been aggregated
    /// here). Fails when the pane exists or its windows were already emitted.
    pub(super) fn insert_open_pane(&mut self, start: i64, merged: &mut Merger) -> Result<()> {
        if self.panes.contains_key(&start) || self.is_closed(start) {
            return datafusion::common::internal_err!("pane at {start} is already open or emitted");
        }
        let keys = std::mem::replace(&mut merged.keys, self.codec.group_keys());
        let accumulators = std::mem::replace(
            &mut merged.accumulators,
            self.aggregates.groups_accumulators()?,
        );
        self.panes
            .insert(start, Pane::Open(OpenPane { keys, accumulators }));
        Ok(())
    }

    /// Whether rows of the pane starting at `start` would be dropped as late.
    pub(super) fn pane_is_closed(&self, start: i64) -> bool {
        self.is_closed(start)
    }

    /// Whether a pane starting at `start` is held.
    pub(super) fn has_pane(&self, start: i64) -> bool {
        self.panes.contains_key(&start)
    }

    /// The key codec shared by every pane (partials merged elsewhere must use it).
    pub(super) fn codec(&self) -> &KeyCodec {
        &self.codec
    }

    /// The aggregates.
    pub(super) fn aggregate_set(&self) -> &AggregateSet {
        &self.aggregates
    }
}
