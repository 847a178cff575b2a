//! The fused aggregate: several drift statistics of several value columns, each column's
//! window kept once, and the columns sorted and evaluated in parallel.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use rayon::prelude::*;

use crate::args::numeric_column;
use crate::baseline::BaselineRegistry;
use crate::drift::list::ListGroup;
use crate::drift::udaf::{list_field, resolve};
use crate::drift::{compute_many, DriftKind, ListKernel, ListStat};
use crate::group::Kernel;

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
                if let Some(f) = &a.feature {
                    numeric_column(&a.profile, f)?;
                }
                let kernel = ListKernel {
                    stat: ListStat::Drift(kinds[0]),
                    profile: Some(a.profile),
                    feature: a.feature,
                    feature_arg: a.feature_arg,
                };
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
        let columns = self.columns(&args)?;
        let state = (0..columns.kernels.len())
            .map(|_| vec![ListGroup::default()])
            .collect();
        Ok(Box::new(FusedSingle {
            columns,
            state,
            zeros: Vec::new(),
        }))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let columns = self.columns(&args)?;
        let state = (0..columns.kernels.len()).map(|_| Vec::new()).collect();
        Ok(Box::new(FusedGroups {
            columns,
            state,
            bytes: 0,
        }))
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
            .flat_map(|groups| groups.iter().map(|g| g.values.len()))
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

    fn update(
        &self,
        state: &mut [ColumnState],
        values: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<usize> {
        let mut bytes = 0;
        for (c, ((k, _), groups)) in self.kernels.iter().zip(state.iter_mut()).enumerate() {
            groups.resize_with(total_groups, Default::default);
            let args = &values[c * ARGS_PER_COLUMN..(c + 1) * ARGS_PER_COLUMN];
            bytes += k.update(groups, args, idx, filter)?;
        }
        Ok(bytes)
    }

    fn merge(
        &self,
        state: &mut [ColumnState],
        states: &[ArrayRef],
        idx: &[usize],
        total_groups: usize,
    ) -> Result<usize> {
        if states.len() != STATE_PER_COLUMN * self.kernels.len() {
            return internal_err!("fused drift state has {} columns", states.len());
        }
        let mut bytes = 0;
        for (c, ((k, _), groups)) in self.kernels.iter().zip(state.iter_mut()).enumerate() {
            groups.resize_with(total_groups, Default::default);
            let s = &states[c * STATE_PER_COLUMN..(c + 1) * STATE_PER_COLUMN];
            bytes += k.merge(groups, s, idx)?;
        }
        Ok(bytes)
    }

    /// State arrays of every column (each column sorts its groups' values: in parallel).
    fn state(&self, state: &mut [ColumnState]) -> Result<Vec<ArrayRef>> {
        let per_column = self.each(state, |k, _, groups| k.state(groups));
        let mut out = Vec::with_capacity(STATE_PER_COLUMN * per_column.len());
        for arrays in per_column {
            out.extend(arrays?);
        }
        Ok(out)
    }

    /// The struct of every statistic, one row per group.
    fn evaluate(&self, state: &mut [ColumnState]) -> Result<ArrayRef> {
        let per_column = self.each(state, |k, kinds, groups| {
            let mut columns: Vec<Vec<Option<f64>>> =
                vec![Vec::with_capacity(groups.len()); kinds.len()];
            for g in groups.iter_mut() {
                let values = match k.column(g.feature.as_deref())? {
                    Some(col) => compute_many(kinds, g.values.sorted(), col),
                    None => vec![None; kinds.len()],
                };
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

    fn size(&self, state: &[ColumnState]) -> usize {
        self.kernels
            .iter()
            .zip(state)
            .map(|((k, _), groups)| groups.iter().map(|g| k.group_size(g)).sum::<usize>())
            .sum()
    }
}

/// [`GroupsAccumulator`] of the fused aggregate.
#[derive(Debug)]
struct FusedGroups {
    columns: Columns,
    state: Vec<ColumnState>,
    bytes: usize,
}

impl FusedGroups {
    fn take(&mut self, emit_to: EmitTo) -> Vec<ColumnState> {
        let taken = self
            .state
            .iter_mut()
            .map(|groups| emit_to.take_needed(groups))
            .collect();
        self.bytes = self.columns.size(&self.state);
        taken
    }
}

impl GroupsAccumulator for FusedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.bytes += self.columns.update(
            &mut self.state,
            values,
            group_indices,
            opt_filter,
            total_num_groups,
        )?;
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut taken = self.take(emit_to);
        self.columns.evaluate(&mut taken)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let mut taken = self.take(emit_to);
        self.columns.state(&mut taken)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.bytes +=
            self.columns
                .merge(&mut self.state, values, group_indices, total_num_groups)?;
        Ok(())
    }

    /// Each input row as its own group's state.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let n = values.first().map_or(0, |a| a.len());
        let idx: Vec<usize> = (0..n).collect();
        let mut state: Vec<ColumnState> = (0..self.columns.kernels.len())
            .map(|_| Vec::new())
            .collect();
        self.columns
            .update(&mut state, values, &idx, opt_filter, n)?;
        self.columns.state(&mut state)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes
    }
}

/// Row [`Accumulator`] of the fused aggregate (one group).
#[derive(Debug)]
struct FusedSingle {
    columns: Columns,
    state: Vec<ColumnState>,
    zeros: Vec<usize>,
}

impl FusedSingle {
    /// Makes `zeros` (the group index of every row) at least `n` long.
    fn zeros(&mut self, n: usize) {
        if self.zeros.len() < n {
            self.zeros.resize(n, 0);
        }
    }
}

impl Accumulator for FusedSingle {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |a| a.len());
        self.zeros(n);
        self.columns
            .update(&mut self.state, values, &self.zeros[..n], None, 1)?;
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let arr = self.columns.evaluate(&mut self.state)?;
        ScalarValue::try_from_array(&arr, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.zeros.capacity() * 8 + self.columns.size(&self.state)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.columns
            .state(&mut self.state)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |a| a.len());
        self.zeros(n);
        self.columns
            .merge(&mut self.state, states, &self.zeros[..n], 1)?;
        Ok(())
    }
}
