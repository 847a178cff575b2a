//! The fused aggregate: several drift statistics of several value columns, each column's
//! window kept once, and the columns sorted and evaluated in parallel. A column's state is
//! the list kernel's, including its bounded mode (a sketch above
//! [`crate::math::sketch::DEFAULT_SKETCH_ABOVE`] values; see `ListKernel`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{internal_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use rayon::prelude::*;

use crate::baseline::BaselineRegistry;
use crate::drift::list::ListGroup;
use crate::drift::udaf::{list_field, resolve};
use crate::drift::{DriftKind, ListKernel, ListStat};
use crate::group::{GroupedKernel, Groups, Kernel, Single};

/// Arguments per fused column: value, 'baseline', feature.
pub(super) const ARGS_PER_COLUMN: usize = 3;
/// State fields per fused column (the list kernel's: values, feature).
const STATE_PER_COLUMN: usize = 2;
/// Below this many values in all, columns are processed on the calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// Drift statistics of value columns against one baseline registry, computed from a single
/// copy of each column's window (see `FuseDriftAggregates`). Arguments are the columns'
/// `(value, 'baseline', feature)` triples back to back; the result is a struct with one
/// Float64 field per statistic, named `{column}_{position}_{statistic}`. Created by the
/// fusion rule; not callable by name.
#[derive(Debug)]
pub struct FusedDriftUdaf {
    columns: Vec<Vec<DriftKind>>,
    name: String,
    fields: Fields,
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
}

/// Name of the struct field holding statistic `i` of fused column `c`.
pub(super) fn field_name(c: usize, i: usize, kind: DriftKind) -> String {
    format!("{c}_{i}_{}", kind.name())
}

impl FusedDriftUdaf {
    /// Computes, for each column, its `kinds` (in this order) against `baselines`.
    pub fn new(columns: Vec<Vec<DriftKind>>, baselines: Arc<BaselineRegistry>) -> Self {
        let fields = columns
            .iter()
            .enumerate()
            .flat_map(|(c, kinds)| {
                kinds
                    .iter()
                    .enumerate()
                    .map(move |(i, k)| Field::new(field_name(c, i, *k), DataType::Float64, true))
            })
            .collect();
        let names: Vec<String> = columns
            .iter()
            .map(|kinds| kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","))
            .collect();
        Self {
            name: format!("drift_stats[{}]", names.join(";")),
            columns,
            fields,
            signature: Signature::user_defined(Volatility::Immutable),
            baselines,
        }
    }

    fn columns(&self, args: &AccumulatorArgs) -> Result<Columns> {
        if args.exprs.len() != ARGS_PER_COLUMN * self.columns.len() {
            return internal_err!("{}: {} arguments", self.name, args.exprs.len());
        }
        let kernels = self
            .columns
            .iter()
            .zip(args.exprs.chunks(ARGS_PER_COLUMN))
            .map(|(kinds, exprs)| {
                let a = resolve(&self.name, &self.baselines, exprs, 1)?;
                let kernel = ListKernel::against(ListStat::Drift(kinds[0]), a)?;
                Ok((kernel, kinds.clone()))
            })
            .collect::<Result<_>>()?;
        Ok(Columns {
            kernels,
            fields: self.fields.clone(),
        })
    }
}

crate::args::registry_bound_identity!(FusedDriftUdaf, columns);

impl AggregateUDFImpl for FusedDriftUdaf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    /// The arguments were already coerced for the aggregates this one replaces.
    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(types.to_vec())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.fields.clone()))
    }
    fn is_nullable(&self) -> bool {
        false
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let n = args.name;
        Ok((0..self.columns.len())
            .flat_map(|c| {
                [
                    list_field(format!("{n}[{c}][values]"), DataType::Float64),
                    Arc::new(Field::new(
                        format!("{n}[{c}][feature]"),
                        DataType::Utf8,
                        true,
                    )),
                ]
            })
            .collect())
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single::new(self.columns(&args)?)))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::new(self.columns(&args)?)))
    }
}

/// The fused columns: each a list kernel (its window's values) and the statistics asked of
/// it. State is column-major: `state[c][g]` is column `c` of group `g`.
#[derive(Debug)]
struct Columns {
    kernels: Vec<(ListKernel, Vec<DriftKind>)>,
    fields: Fields,
}

type ColumnState = Vec<ListGroup>;

impl Columns {
    /// Runs `f` on every column, in parallel when there are enough values to pay for it.
    fn each<R: Send>(
        &self,
        state: &mut [ColumnState],
        f: impl Fn(&ListKernel, &[DriftKind], &mut ColumnState) -> R + Sync + Send,
    ) -> Vec<R> {
        let values: usize = state
            .iter()
            .flat_map(|groups| groups.iter().map(|g| g.len()))
            .sum();
        if state.len() > 1 && values >= PARALLEL_MIN_VALUES {
            self.kernels
                .par_iter()
                .zip(state.par_iter_mut())
                .map(|((k, kinds), s)| f(k, kinds, s))
                .collect()
        } else {
            self.kernels
                .iter()
                .zip(state.iter_mut())
                .map(|((k, kinds), s)| f(k, kinds, s))
                .collect()
        }
    }
}

impl GroupedKernel for Columns {
    type Store = Vec<ColumnState>;

    fn resize(&self, store: &mut Self::Store, groups: usize) {
        store.resize_with(self.kernels.len(), Vec::new);
        for column in store.iter_mut() {
            column.resize_with(groups, Default::default);
        }
    }

    fn take(&self, store: &mut Self::Store, emit_to: EmitTo) -> Self::Store {
        store
            .iter_mut()
            .map(|column| emit_to.take_needed(column))
            .collect()
    }

    fn update(
        &self,
        state: &mut Self::Store,
        values: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        let mut bytes = 0;
        for (c, ((k, _), groups)) in self.kernels.iter().zip(state.iter_mut()).enumerate() {
            let args = &values[c * ARGS_PER_COLUMN..(c + 1) * ARGS_PER_COLUMN];
            bytes += Kernel::update(k, groups, args, idx, filter)?;
        }
        Ok(bytes)
    }

    fn merge(&self, state: &mut Self::Store, states: &[ArrayRef], idx: &[usize]) -> Result<isize> {
        if states.len() != STATE_PER_COLUMN * self.kernels.len() {
            return internal_err!("fused drift state has {} columns", states.len());
        }
        let mut bytes = 0;
        for (c, ((k, _), groups)) in self.kernels.iter().zip(state.iter_mut()).enumerate() {
            let s = &states[c * STATE_PER_COLUMN..(c + 1) * STATE_PER_COLUMN];
            bytes += Kernel::merge(k, groups, s, idx)?;
        }
        Ok(bytes)
    }

    /// State arrays of every column (each column sorts its groups' values: in parallel).
    fn state(&self, state: &mut Self::Store) -> Result<Vec<ArrayRef>> {
        let per_column = self.each(state, |k, _, groups| Kernel::state(k, groups));
        let mut out = Vec::with_capacity(STATE_PER_COLUMN * per_column.len());
        for arrays in per_column {
            out.extend(arrays?);
        }
        Ok(out)
    }

    /// The struct of every statistic, one row per group.
    fn evaluate(&self, state: &mut Self::Store) -> Result<ArrayRef> {
        let per_column = self.each(state, |k, kinds, groups| {
            let mut columns: Vec<Vec<Option<f64>>> =
                vec![Vec::with_capacity(groups.len()); kinds.len()];
            for g in groups.iter_mut() {
                let values = k.compute_group(kinds, g)?;
                for (c, v) in columns.iter_mut().zip(values) {
                    c.push(v);
                }
            }
            Ok::<_, datafusion::common::DataFusionError>(columns)
        });
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.fields.len());
        for columns in per_column {
            arrays.extend(
                columns?
                    .into_iter()
                    .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef),
            );
        }
        Ok(Arc::new(StructArray::try_new(
            self.fields.clone(),
            arrays,
            None,
        )?))
    }

    fn heap_size(&self, state: &Self::Store) -> usize {
        self.kernels
            .iter()
            .zip(state)
            .map(|((k, _), groups)| groups.iter().map(|g| k.group_size(g)).sum::<usize>())
            .sum()
    }

    fn layout_size(&self, state: &Self::Store) -> usize {
        state
            .iter()
            .map(|c| c.capacity() * std::mem::size_of::<ListGroup>())
            .sum()
    }
}
