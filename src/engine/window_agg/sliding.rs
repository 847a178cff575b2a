//! Sliding-window aggregation over pane partial states, so that emitting a hopping window
//! costs amortised O(panes touched) merges instead of `size / slide`.
//!
//! A window is the merge of the partial states of the panes it covers. The pane timeline is
//! cut into *blocks* one window length long, aligned to the epoch; a window `[w, w + size)`
//! then covers the tail of one block (from `w`) and the head of the next (up to `w + size`).
//! For the block holding the window start the operator keeps every *suffix* (the merge of a
//! pane and all later panes of the block: a right fold, computed once per block when its
//! first window is emitted, one merge per pane), and for the next block a running *prefix*
//! (a left fold, one merge per pane as panes enter windows). A window is `suffix ⊕ prefix`:
//! one merge. Every pane is merged a constant number of times over its life, whatever
//! `size / slide` is; this is the Two-Stacks algorithm with the stacks flipped at fixed,
//! aligned points.
//!
//! Flipping at aligned points makes the association of the merges a function of the window
//! alone, not of the stream's history: a run restored from a checkpoint (which rebuilds the
//! structure from the panes) emits bit-identical values to an uninterrupted run. Merges keep
//! first-seen key order (older panes' keys first), as a left-to-right merge of the panes
//! does, so rows come in the same order; floating-point sums are associated differently
//! from a plain left-to-right merge, which can change the last bits of a `sum`/`avg` of
//! non-integral values.
//!
//! Only for aggregates whose partial state has a bounded size per group: a suffix of a
//! list-valued state (exact sample lists) copies every value of the rest of the block, so
//! suffixes would cost O(block²) memory and time; those keep the plain per-window merge.
//!
//! The structure is derived: panes (open/frozen) stay the checkpointed truth, and the
//! structure starts empty after a restore and fills on the next window emitted.

use std::collections::VecDeque;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow::row::Rows;
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::aggregates::AggregateSet;
use super::group_keys::{GroupKeys, KeyCodec};

/// Partial state of one or more panes: group keys (row format) and every aggregate's state
/// arrays, one row per group.
#[derive(Clone)]
pub(super) struct PartialState {
    /// Group keys in row format (of the operator's [`KeyCodec`]), in group order; `None`
    /// without key columns.
    pub keys: Option<Rows>,
    /// Number of groups (rows of every array).
    pub num_groups: usize,
    /// State arrays per aggregate (`GroupsAccumulator::state`).
    pub states: Vec<Vec<ArrayRef>>,
}

impl PartialState {
    /// Memory held by the arrays.
    pub fn bytes(&self) -> usize {
        self.keys.as_ref().map_or(0, Rows::size)
            + self
                .states
                .iter()
                .flatten()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }

    /// No groups (a placeholder while a pane is frozen).
    pub fn empty() -> Self {
        Self {
            keys: None,
            num_groups: 0,
            states: Vec::new(),
        }
    }
}

/// Keys and accumulators that partial states are merged into. Reusable: [`Merger::take`]
/// (or evaluating every accumulator with `EmitTo::All` and [`Merger::clear_keys`]) leaves
/// it empty with its buffers kept, so a window or fold costs no accumulator creation.
pub(super) struct Merger {
    pub keys: GroupKeys,
    pub accumulators: Vec<Box<dyn GroupsAccumulator>>,
    indices: Vec<usize>,
}

impl Merger {
    /// Empty merger for `aggregates` grouped by keys in the format of `codec`.
    pub fn new(codec: &KeyCodec, aggregates: &AggregateSet) -> Result<Self> {
        Ok(Self {
            keys: codec.group_keys(),
            accumulators: aggregates.groups_accumulators()?,
            indices: Vec::new(),
        })
    }

    /// Merges `part` in (its new keys after the ones seen so far).
    pub fn merge(&mut self, part: &PartialState) -> Result<()> {
        if part.num_groups == 0 {
            return Ok(());
        }
        self.keys
            .intern_rows(part.keys.as_ref(), part.num_groups, &mut self.indices)?;
        let total = self.keys.len();
        for (acc, state) in self.accumulators.iter_mut().zip(&part.states) {
            acc.merge_batch(state, &self.indices, total)?;
        }
        Ok(())
    }

    /// The merged partial state; leaves the merger empty for the next use.
    pub fn take(&mut self) -> Result<PartialState> {
        let states = self
            .accumulators
            .iter_mut()
            .map(|a| a.state(EmitTo::All))
            .collect::<Result<Vec<_>>>()?;
        let num_groups = self.keys.len();
        Ok(PartialState {
            keys: self.keys.take_rows(),
            num_groups,
            states,
        })
    }

    /// Forgets the keys after the accumulators were evaluated with `EmitTo::All` (which
    /// empties them), making the merger ready for the next window.
    pub fn clear_keys(&mut self) {
        self.keys.clear();
    }
}

/// Whether an aggregate set's partial state can grow with the data (list or binary state
/// fields, e.g. exact value lists): such states are not kept as sliding suffixes.
pub(super) fn has_growing_state(aggregates: &AggregateSet) -> Result<bool> {
    for agg in aggregates.aggregates() {
        for field in agg.state_fields()? {
            if matches!(
                field.data_type(),
                DataType::List(_)
                    | DataType::LargeList(_)
                    | DataType::ListView(_)
                    | DataType::LargeListView(_)
                    | DataType::FixedSizeList(_, _)
                    | DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
            ) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Merged states of the current window's panes, in blocks of one window length aligned to
/// the epoch (see the module docs). Derived from the panes; rebuilt lazily.
pub(super) struct BlockSliding {
    /// Block (index) whose suffixes are held.
    pub suffix_block: Option<i64>,
    /// `(pane start, merge of this pane and every later pane of the block, bytes counted)`,
    /// ascending by start; the last entry is the pane's own state (counted 0). Consumed
    /// from the front as windows move on.
    pub suffixes: VecDeque<(i64, PartialState, usize)>,
    /// Block (index) of `prefix`.
    pub prefix_block: Option<i64>,
    /// Left fold of the panes of `prefix_block` before `prefix_until`, bytes counted.
    pub prefix: Option<(PartialState, usize)>,
    /// Panes of the prefix block before this were folded into `prefix`.
    pub prefix_until: i64,
    /// Every pane starting before this was frozen.
    pub frozen_until: i64,
    /// Bytes of the merged states; pane states themselves are shared with the panes and
    /// counted there.
    merged_bytes: usize,
    /// Reused for every suffix and prefix fold.
    fold: Merger,
}

impl BlockSliding {
    /// Nothing derived yet.
    pub fn new(codec: &KeyCodec, aggregates: &AggregateSet) -> Result<Self> {
        Ok(Self {
            suffix_block: None,
            suffixes: VecDeque::new(),
            prefix_block: None,
            prefix: None,
            prefix_until: i64::MIN,
            frozen_until: i64::MIN,
            merged_bytes: 0,
            fold: Merger::new(codec, aggregates)?,
        })
    }

    /// Bytes held by merged states.
    pub fn merged_bytes(&self) -> usize {
        self.merged_bytes
    }

    /// Replaces the suffixes with those of `block`, from `panes` (its panes from the
    /// window start on, ascending): a right fold, newest first.
    pub fn set_suffixes<'a>(
        &mut self,
        block: i64,
        panes: impl DoubleEndedIterator<Item = (i64, &'a PartialState)>,
    ) -> Result<()> {
        for (_, _, counted) in self.suffixes.drain(..) {
            self.merged_bytes -= counted;
        }
        for (start, pane) in panes.rev() {
            if pane.num_groups == 0 {
                continue;
            }
            let (merged, counted) = match self.suffixes.front() {
                None => (pane.clone(), 0),
                Some((_, newer, _)) => {
                    self.fold.merge(pane)?;
                    self.fold.merge(newer)?;
                    let merged = self.fold.take()?;
                    let bytes = merged.bytes();
                    (merged, bytes)
                }
            };
            self.merged_bytes += counted;
            self.suffixes.push_front((start, merged, counted));
        }
        self.suffix_block = Some(block);
        Ok(())
    }

    /// Drops the suffixes of panes starting before `start`; returns the merge of the
    /// block's panes from `start` on, if any.
    pub fn suffix_from(&mut self, start: i64) -> Option<&PartialState> {
        while self.suffixes.front().is_some_and(|(s, _, _)| *s < start) {
            if let Some((_, _, counted)) = self.suffixes.pop_front() {
                self.merged_bytes -= counted;
            }
        }
        self.suffixes.front().map(|(_, s, _)| s)
    }

    /// Starts the prefix of `block` (beginning at `block_start`) if it is not the current one.
    pub fn prefix_of(&mut self, block: i64, block_start: i64) {
        if self.prefix_block != Some(block) {
            if let Some((_, counted)) = self.prefix.take() {
                self.merged_bytes -= counted;
            }
            self.prefix_block = Some(block);
            self.prefix_until = block_start;
        }
    }

    /// Folds `pane` into the prefix (panes in start order).
    pub fn extend_prefix(&mut self, pane: &PartialState) -> Result<()> {
        if pane.num_groups == 0 {
            return Ok(());
        }
        let next = match self.prefix.take() {
            None => (pane.clone(), 0),
            Some((prefix, counted)) => {
                self.merged_bytes -= counted;
                self.fold.merge(&prefix)?;
                self.fold.merge(pane)?;
                let merged = self.fold.take()?;
                let bytes = merged.bytes();
                (merged, bytes)
            }
        };
        self.merged_bytes += next.1;
        self.prefix = Some(next);
        Ok(())
    }
}
