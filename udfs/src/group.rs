//! One implementation, two DataFusion interfaces: an aggregate's per-group state and logic
//! ([`Kernel`]) drives both a vectorised [`GroupsAccumulator`] ([`Groups`], used by
//! DataFusion's hash aggregation and the Driftwatch window operator) and a row
//! [`Accumulator`] ([`Single`], one group). Aggregates whose state is not one value per
//! group (the fused drift aggregate keeps one `Vec` per column) implement [`GroupedKernel`]
//! instead and get the same two interfaces.

use std::fmt::Debug;

use arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// Per-group state and evaluation of one aggregate.
pub(crate) trait Kernel: Send + Sync + Debug + 'static {
    /// State of one group.
    type Group: Default + Send + Sync + Debug;
    /// Adds the rows of `args` to `groups[idx[row]]` (rows failing `filter` are skipped);
    /// returns the change of the groups' heap bytes (capacity-based, as [`Self::group_size`]
    /// counts them; negative when state shrinks, e.g. values folded into a sketch). O(rows):
    /// implementations track allocations as they grow, they never re-measure a group.
    fn update(
        &self,
        groups: &mut [Self::Group],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize>;
    /// Merges partial states (rows of the state arrays) into `groups[idx[row]]`; returns the
    /// change of heap bytes as [`Self::update`].
    fn merge(
        &self,
        groups: &mut [Self::Group],
        states: &[ArrayRef],
        idx: &[usize],
    ) -> Result<isize>;
    /// State arrays, one row per group.
    fn state(&self, groups: &mut [Self::Group]) -> Result<Vec<ArrayRef>>;
    /// Final values, one row per group.
    fn evaluate(&self, groups: &mut [Self::Group]) -> Result<ArrayRef>;
    /// Heap bytes held by a group (allocated capacity, not length; shared Arrow buffers by
    /// the length referenced). The sum of [`Self::update`] / [`Self::merge`] deltas since a
    /// group was created equals this.
    fn group_size(&self, g: &Self::Group) -> usize;
}

/// Whether row `i` passes an aggregate FILTER.
#[inline]
pub(crate) fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

/// An aggregate's logic over the state of many groups, whatever that state's layout. Every
/// [`Kernel`] is one (its store is a `Vec` of per-group states); an aggregate whose natural
/// layout is different (the fused drift aggregate keeps one `Vec` per column) implements
/// this directly, and gets both DataFusion interfaces from [`Groups`] and [`Single`].
pub(crate) trait GroupedKernel: Send + Sync + Debug + 'static {
    /// State of all groups.
    type Store: Default + Send + Sync + Debug;
    /// Makes room for `groups` groups.
    fn resize(&self, store: &mut Self::Store, groups: usize);
    /// Removes and returns the groups `emit_to` asks for.
    fn take(&self, store: &mut Self::Store, emit_to: EmitTo) -> Self::Store;
    /// See [`Kernel::update`].
    fn update(
        &self,
        store: &mut Self::Store,
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize>;
    /// See [`Kernel::merge`].
    fn merge(&self, store: &mut Self::Store, states: &[ArrayRef], idx: &[usize]) -> Result<isize>;
    /// See [`Kernel::state`].
    fn state(&self, store: &mut Self::Store) -> Result<Vec<ArrayRef>>;
    /// See [`Kernel::evaluate`].
    fn evaluate(&self, store: &mut Self::Store) -> Result<ArrayRef>;
    /// Approximate heap size held by the groups' states (O(groups): called when groups are
    /// taken; in between, [`Groups`] adds what `update` / `merge` report).
    fn heap_size(&self, store: &Self::Store) -> usize;
    /// Size of the store's own allocation (O(1) or O(columns)).
    fn layout_size(&self, store: &Self::Store) -> usize;
}

impl<K: Kernel> GroupedKernel for K {
    type Store = Vec<K::Group>;

    fn resize(&self, store: &mut Self::Store, groups: usize) {
        store.resize_with(groups, Default::default);
    }
    fn take(&self, store: &mut Self::Store, emit_to: EmitTo) -> Self::Store {
        emit_to.take_needed(store)
    }
    fn update(
        &self,
        store: &mut Self::Store,
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        Kernel::update(self, store, args, idx, filter)
    }
    fn merge(&self, store: &mut Self::Store, states: &[ArrayRef], idx: &[usize]) -> Result<isize> {
        Kernel::merge(self, store, states, idx)
    }
    fn state(&self, store: &mut Self::Store) -> Result<Vec<ArrayRef>> {
        Kernel::state(self, store)
    }
    fn evaluate(&self, store: &mut Self::Store) -> Result<ArrayRef> {
        Kernel::evaluate(self, store)
    }
    fn heap_size(&self, store: &Self::Store) -> usize {
        store.iter().map(|g| self.group_size(g)).sum()
    }
    fn layout_size(&self, store: &Self::Store) -> usize {
        store.capacity() * std::mem::size_of::<K::Group>()
    }
}

/// [`GroupsAccumulator`] over a [`GroupedKernel`].
#[derive(Debug)]
pub(crate) struct Groups<K: GroupedKernel> {
    kernel: K,
    store: K::Store,
    bytes: usize,
}

impl<K: GroupedKernel> Groups<K> {
    pub(crate) fn new(kernel: K) -> Self {
        Self {
            kernel,
            store: K::Store::default(),
            bytes: 0,
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> K::Store {
        let taken = self.kernel.take(&mut self.store, emit_to);
        self.bytes = self.kernel.heap_size(&self.store);
        taken
    }
}

impl<K: GroupedKernel> GroupsAccumulator for Groups<K> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.kernel.resize(&mut self.store, total_num_groups);
        let delta = self
            .kernel
            .update(&mut self.store, values, group_indices, opt_filter)?;
        self.bytes = self.bytes.saturating_add_signed(delta);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut taken = self.take(emit_to);
        self.kernel.evaluate(&mut taken)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let mut taken = self.take(emit_to);
        self.kernel.state(&mut taken)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.kernel.resize(&mut self.store, total_num_groups);
        let delta = self.kernel.merge(&mut self.store, values, group_indices)?;
        self.bytes = self.bytes.saturating_add_signed(delta);
        Ok(())
    }

    /// Each input row as its own group's state.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let n = values.first().map_or(0, |a| a.len());
        let mut store = K::Store::default();
        self.kernel.resize(&mut store, n);
        let idx: Vec<usize> = (0..n).collect();
        self.kernel.update(&mut store, values, &idx, opt_filter)?;
        self.kernel.state(&mut store)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.kernel.layout_size(&self.store) + self.bytes
    }
}

/// Row [`Accumulator`] over a [`GroupedKernel`] (a single group).
#[derive(Debug)]
pub(crate) struct Single<K: GroupedKernel> {
    kernel: K,
    store: K::Store,
    zeros: Vec<usize>,
    bytes: usize,
}

impl<K: GroupedKernel> Single<K> {
    pub(crate) fn new(kernel: K) -> Self {
        let mut store = K::Store::default();
        kernel.resize(&mut store, 1);
        Self {
            kernel,
            store,
            zeros: Vec::new(),
            bytes: 0,
        }
    }

    fn zeros(&mut self, n: usize) {
        if self.zeros.len() < n {
            self.zeros.resize(n, 0);
        }
    }
}

impl<K: GroupedKernel> Accumulator for Single<K> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |a| a.len());
        self.zeros(n);
        let delta = self
            .kernel
            .update(&mut self.store, values, &self.zeros[..n], None)?;
        self.bytes = self.bytes.saturating_add_signed(delta);
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let arr = self.kernel.evaluate(&mut self.store)?;
        ScalarValue::try_from_array(&arr, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.zeros.capacity() * 8
            + self.kernel.layout_size(&self.store)
            + self.bytes
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.kernel
            .state(&mut self.store)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |a| a.len());
        self.zeros(n);
        let delta = self
            .kernel
            .merge(&mut self.store, states, &self.zeros[..n])?;
        self.bytes = self.bytes.saturating_add_signed(delta);
        Ok(())
    }
}

/// One of two kernels, chosen when the accumulator is created (e.g. by argument type), and
/// turned into either DataFusion interface.
#[derive(Debug)]
pub(crate) enum EitherKernel<A, B> {
    /// The first kernel.
    A(A),
    /// The second kernel.
    B(B),
}

impl<A: Kernel, B: Kernel> EitherKernel<A, B> {
    /// The row [`Accumulator`] over the chosen kernel.
    pub(crate) fn accumulator(self) -> Box<dyn Accumulator> {
        match self {
            EitherKernel::A(k) => Box::new(Single::new(k)),
            EitherKernel::B(k) => Box::new(Single::new(k)),
        }
    }

    /// The [`GroupsAccumulator`] over the chosen kernel.
    pub(crate) fn groups_accumulator(self) -> Box<dyn GroupsAccumulator> {
        match self {
            EitherKernel::A(k) => Box::new(Groups::new(k)),
            EitherKernel::B(k) => Box::new(Groups::new(k)),
        }
    }
}
