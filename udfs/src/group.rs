//! One implementation, two DataFusion interfaces: an aggregate's per-group state and logic
//! ([`Kernel`]) drives both a vectorised [`GroupsAccumulator`] ([`Groups`], used by
//! DataFusion's hash aggregation and the Driftwatch window operator) and a row
//! [`Accumulator`] ([`Single`], one group).

use std::fmt::Debug;

use arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// Per-group state and evaluation of one aggregate.
pub(crate) trait Kernel: Send + Sync + Debug + 'static {
    /// State of one group.
    type Group: Default + Send + Sync + Debug;
    /// Adds the rows of `args` to `groups[idx[row]]` (rows failing `filter` are skipped);
    /// returns the approximate number of bytes added.
    fn update(
        &self,
        groups: &mut [Self::Group],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<usize>;
    /// Merges partial states (rows of the state arrays) into `groups[idx[row]]`.
    fn merge(
        &self,
        groups: &mut [Self::Group],
        states: &[ArrayRef],
        idx: &[usize],
    ) -> Result<usize>;
    /// State arrays, one row per group.
    fn state(&self, groups: &mut [Self::Group]) -> Result<Vec<ArrayRef>>;
    /// Final values, one row per group.
    fn evaluate(&self, groups: &mut [Self::Group]) -> Result<ArrayRef>;
    /// Approximate heap size of a group.
    fn group_size(&self, g: &Self::Group) -> usize;
}

/// Whether row `i` passes an aggregate FILTER.
#[inline]
pub(crate) fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

/// [`GroupsAccumulator`] over a [`Kernel`].
#[derive(Debug)]
pub(crate) struct Groups<K: Kernel> {
    kernel: K,
    groups: Vec<K::Group>,
    bytes: usize,
}

impl<K: Kernel> Groups<K> {
    pub(crate) fn new(kernel: K) -> Self {
        Self {
            kernel,
            groups: Vec::new(),
            bytes: 0,
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<K::Group> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.bytes = self.groups.iter().map(|g| self.kernel.group_size(g)).sum();
        taken
    }
}

impl<K: Kernel> GroupsAccumulator for Groups<K> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Default::default);
        self.bytes += self
            .kernel
            .update(&mut self.groups, values, group_indices, opt_filter)?;
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut g = self.take(emit_to);
        self.kernel.evaluate(&mut g)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let mut g = self.take(emit_to);
        self.kernel.state(&mut g)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Default::default);
        self.bytes += self.kernel.merge(&mut self.groups, values, group_indices)?;
        Ok(())
    }

    /// Each input row as its own group's state.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let n = values.first().map_or(0, |a| a.len());
        let mut groups: Vec<K::Group> = (0..n).map(|_| K::Group::default()).collect();
        let idx: Vec<usize> = (0..n).collect();
        self.kernel.update(&mut groups, values, &idx, opt_filter)?;
        self.kernel.state(&mut groups)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.groups.capacity() * std::mem::size_of::<K::Group>()
            + self.bytes
    }
}

/// Row [`Accumulator`] over a [`Kernel`] (a single group).
#[derive(Debug)]
pub(crate) struct Single<K: Kernel> {
    kernel: K,
    group: [K::Group; 1],
    zeros: Vec<usize>,
    bytes: usize,
}

impl<K: Kernel> Single<K> {
    pub(crate) fn new(kernel: K) -> Self {
        Self {
            kernel,
            group: [K::Group::default()],
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

impl<K: Kernel> Accumulator for Single<K> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |a| a.len());
        self.zeros(n);
        self.bytes += self
            .kernel
            .update(&mut self.group, values, &self.zeros[..n], None)?;
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let arr = self.kernel.evaluate(&mut self.group)?;
        ScalarValue::try_from_array(&arr, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.zeros.capacity() * 8 + self.bytes
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.kernel
            .state(&mut self.group)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |a| a.len());
        self.zeros(n);
        self.bytes += self
            .kernel
            .merge(&mut self.group, states, &self.zeros[..n])?;
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
