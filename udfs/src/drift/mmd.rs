//! `mmd(x1, …, xk, 'baseline')`: unbiased MMD² (RBF kernel, median-heuristic bandwidth) of
//! the window's complete rows against the baseline's row sample (see [`crate::math::mmd`]).
//!
//! * Reference: the baseline's [`crate::baseline::RowSample`] (≤ 1000 complete rows,
//!   deterministic), restricted to the named columns; σ = median pairwise distance of those
//!   rows (computed once per baseline and column set, then cached).
//! * Current: the window's complete rows (NULL / non-finite in any argument → row skipped);
//!   more than [`MAX_ROWS`] rows → the bottom-[`MAX_ROWS`] sample by row hash
//!   ([`HashSample`]); then sorted lexicographically.
//! * Fewer than 2 rows on either side → NULL. State: the sample's rows (`List<Float64>`,
//!   row-major, ≤ [`MAX_ROWS`] rows), so state is O(1000·k) whatever the window size, and
//!   partial states merge to exactly the single-pass sample.
//!
//! `mmd_pvalue(x1, …, xk, 'baseline' [, permutations])`: the permutation p-value of that
//! statistic, same rows and state (see [`crate::math::mmd::permutation_test`]; default
//! [`DEFAULT_PERMUTATIONS`], seed [`PERMUTATION_SEED`]).

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, Float64Type};
use datafusion::common::{internal_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::{
    lit, Accumulator, AggregateUDF, AggregateUDFImpl, Expr, GroupsAccumulator, Signature,
    Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::PhysicalExpr;

use super::list::list_array;
use super::udaf::{column_name, list_field, literal_str};
use crate::args::{is_string_type, is_value_type, lookup, map_columns};
use crate::baseline::{BaselineProfile, BaselineRegistry};
use crate::group::{passes, Groups, Kernel, Single};
use crate::math::mmd::{
    median_bandwidth, mmd2_unbiased, permutation_test, sorted_rows, within_sum, HashSample,
    DEFAULT_PERMUTATIONS, MAX_ROWS, PERMUTATION_SEED,
};
use crate::mem::delta;

/// What the aggregate returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    /// `mmd`: MMD²ᵤ.
    Statistic,
    /// `mmd_pvalue`: its permutation p-value.
    PValue,
}

impl Output {
    fn name(self) -> &'static str {
        match self {
            Output::Statistic => "mmd",
            Output::PValue => "mmd_pvalue",
        }
    }
    fn usage(self) -> &'static str {
        match self {
            Output::Statistic => "mmd expects (x1, …, xk, 'baseline')",
            Output::PValue => "mmd_pvalue expects (x1, …, xk, 'baseline' [, permutations])",
        }
    }
}

/// The `mmd_pvalue` aggregate bound to `baselines`.
pub fn mmd_pvalue_udaf(baselines: &Arc<BaselineRegistry>) -> AggregateUDF {
    AggregateUDF::new_from_impl(MmdUdaf::pvalue(Arc::clone(baselines)))
}

/// Whether `dt` may be the `permutations` argument of `mmd_pvalue`.
fn is_count_type(dt: &DataType) -> bool {
    dt.is_integer()
}

/// The `permutations` literal: an integer ≥ 1.
fn permutations_arg(e: &Arc<dyn PhysicalExpr>) -> Result<usize> {
    let v = e.downcast_ref::<Literal>().map(|l| l.value().clone());
    let n = v
        .as_ref()
        .filter(|v| v.data_type().is_integer())
        .and_then(|v| v.cast_to(&DataType::Int64).ok());
    match n {
        Some(ScalarValue::Int64(Some(n))) if n >= 1 => Ok(n as usize),
        _ => plan_err!(
            "mmd_pvalue: the number of permutations must be an integer literal >= 1, got {}",
            v.map_or_else(|| e.to_string(), |v| v.to_string())
        ),
    }
}

#[derive(Debug)]
struct Reference {
    profile: Arc<BaselineProfile>,
    cols: Vec<usize>,
    y: Arc<Vec<f64>>,
    sigma: f64,
    yy: f64,
}

/// The `mmd` and `mmd_pvalue` aggregates.
#[derive(Debug)]
pub struct MmdUdaf {
    output: Output,
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
    cache: Mutex<Vec<Arc<Reference>>>,
}

impl MmdUdaf {
    /// New `mmd` bound to `baselines`.
    pub fn new(baselines: Arc<BaselineRegistry>) -> Self {
        Self::with_output(Output::Statistic, baselines)
    }

    /// New `mmd_pvalue` bound to `baselines`.
    pub fn pvalue(baselines: Arc<BaselineRegistry>) -> Self {
        Self::with_output(Output::PValue, baselines)
    }

    fn with_output(output: Output, baselines: Arc<BaselineRegistry>) -> Self {
        Self {
            output,
            signature: Signature::user_defined(Volatility::Immutable),
            baselines,
            cache: Mutex::new(Vec::new()),
        }
    }

    fn reference(&self, profile: Arc<BaselineProfile>, cols: Vec<usize>) -> Arc<Reference> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache
            .iter()
            .find(|r| Arc::ptr_eq(&r.profile, &profile) && r.cols == cols)
        {
            return Arc::clone(r);
        }
        let rs = &profile.rows;
        let kk = rs.columns.len();
        let k = cols.len();
        let mut y = Vec::with_capacity(rs.len() * k);
        for row in rs.values.chunks_exact(kk.max(1)) {
            y.extend(cols.iter().map(|&c| row[c]));
        }
        let sigma = median_bandwidth(&y, k);
        let yy = within_sum(&y, k, sigma);
        let r = Arc::new(Reference {
            profile,
            cols,
            y: Arc::new(y),
            sigma,
            yy,
        });
        if cache.len() >= 16 {
            cache.remove(0);
        }
        cache.push(Arc::clone(&r));
        r
    }

    fn build(&self, args: &AccumulatorArgs) -> Result<RowsKernel> {
        let name = self.output.name();
        let mut exprs = args.exprs;
        let mut permutations = DEFAULT_PERMUTATIONS;
        if self.output == Output::PValue
            && args
                .expr_fields
                .last()
                .is_some_and(|f| is_count_type(f.data_type()))
        {
            let (last, rest) = exprs.split_last().expect("non-empty");
            permutations = permutations_arg(last)?;
            exprs = rest;
        }
        let k = args.expr_fields[..exprs.len()]
            .iter()
            .position(|f| is_string_type(f.data_type()) && !f.data_type().is_null())
            .unwrap_or(exprs.len());
        if k == 0 || k >= exprs.len() {
            return plan_err!("{}", self.output.usage());
        }
        let names: Vec<String> = if exprs.len() == 2 * k + 1 {
            exprs[k + 1..]
                .iter()
                .map(|e| match literal_str(e) {
                    Some(Some(s)) => Ok(s),
                    _ => plan_err!("{name}: column names must be string literals"),
                })
                .collect::<Result<_>>()?
        } else if exprs.len() == k + 1 {
            exprs[..k]
                .iter()
                .map(|e| {
                    column_name(e).ok_or_else(|| {
                        datafusion::common::DataFusionError::Plan(format!(
                            "{name}: cannot tell which baseline column '{e}' is; use plain columns"
                        ))
                    })
                })
                .collect::<Result<_>>()?
        } else {
            return plan_err!("{}", self.output.usage());
        };
        let Some(Some(baseline)) = literal_str(&exprs[k]) else {
            return plan_err!("{name}: the baseline name must be a string literal");
        };
        let profile = lookup(&self.baselines, &baseline)?;
        let Some(cols) = map_columns(&names, &profile.rows.columns) else {
            return plan_err!(
                "{name}: arguments must name numeric columns of baseline '{}' ({})",
                profile.name,
                profile.rows.columns.join(", ")
            );
        };
        Ok(RowsKernel {
            k,
            reference: self.reference(profile, cols),
            output: self.output,
            permutations,
        })
    }
}

crate::args::registry_bound_identity!(MmdUdaf, output);

impl AggregateUDFImpl for MmdUdaf {
    fn name(&self) -> &str {
        self.output.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let mut len = types.len();
        if self.output == Output::PValue && len > 2 && types.last().is_some_and(is_count_type) {
            len -= 1;
        }
        let k = types[..len]
            .iter()
            .position(|t| is_string_type(t) && !t.is_null())
            .unwrap_or(len);
        if k == 0
            || !(len == k + 1 || len == 2 * k + 1)
            || !types[..k].iter().all(is_value_type)
            || !types[k..len].iter().all(is_string_type)
        {
            return plan_err!(
                "{} with numeric x{}, got {types:?}",
                self.output.usage(),
                match self.output {
                    Output::Statistic => "",
                    Output::PValue => " and an integer number of permutations",
                }
            );
        }
        Ok(types.to_vec())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn is_nullable(&self) -> bool {
        true
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![list_field(
            format!("{}[rows]", args.name),
            DataType::Float64,
        )])
    }
    /// `mmd(x, y, 'b')` → `mmd(x, y, 'b', 'x', 'y')` for plain columns (and
    /// `mmd_pvalue(x, y, 'b', P)` → `mmd_pvalue(x, y, 'b', 'x', 'y', P)`).
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        let output = self.output;
        Some(Box::new(move |mut af: AggregateFunction, _info| {
            let args = &af.params.args;
            // a trailing non-string literal is `mmd_pvalue`'s number of permutations
            let end = match args.last() {
                Some(Expr::Literal(v, _))
                    if output == Output::PValue && v.data_type().is_integer() =>
                {
                    args.len() - 1
                }
                _ => args.len(),
            };
            if end >= 2 {
                let k = end - 1;
                let is_lit = matches!(&args[k], Expr::Literal(v, _) if v.try_as_str().is_some());
                let names: Option<Vec<String>> = args[..k]
                    .iter()
                    .map(|e| match e {
                        Expr::Column(c) => Some(c.name.clone()),
                        _ => None,
                    })
                    .collect();
                if let (true, Some(names)) = (is_lit, names) {
                    let tail = af.params.args.split_off(end);
                    af.params.args.extend(names.into_iter().map(lit));
                    af.params.args.extend(tail);
                }
            }
            Ok(Expr::AggregateFunction(af))
        }))
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single::new(self.build(&acc_args)?)))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::new(self.build(&args)?)))
    }
}

/// Kernel of `mmd` / `mmd_pvalue`: per-group complete rows.
#[derive(Debug)]
struct RowsKernel {
    k: usize,
    reference: Arc<Reference>,
    output: Output,
    permutations: usize,
}

impl Kernel for RowsKernel {
    type Group = HashSample;

    fn update(
        &self,
        groups: &mut [HashSample],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        let cols: Vec<ArrayRef> = args[..self.k]
            .iter()
            .map(|a| cast(a, &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        let cols: Vec<&Float64Array> = cols
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let mut row = vec![0.0; self.k];
        let mut added = 0isize;
        for (i, &g) in idx.iter().enumerate() {
            if passes(filter, i) && cols.iter().all(|c| c.is_valid(i) && c.value(i).is_finite()) {
                row.iter_mut().zip(&cols).for_each(|(r, c)| *r = c.value(i));
                let before = groups[g].heap_bytes();
                groups[g].push(&row, self.k, MAX_ROWS);
                added += delta(before, groups[g].heap_bytes());
            }
        }
        Ok(added)
    }

    fn merge(
        &self,
        groups: &mut [HashSample],
        states: &[ArrayRef],
        idx: &[usize],
    ) -> Result<isize> {
        if states.len() != 1 {
            return internal_err!("mmd state must have 1 column, got {}", states.len());
        }
        let lists = states[0].as_list::<i32>();
        let inner = cast(lists.values(), &DataType::Float64)?;
        let inner = inner.as_primitive::<Float64Type>().values();
        let offsets = lists.value_offsets();
        let mut added = 0isize;
        for (i, &g) in idx.iter().enumerate() {
            if lists.is_valid(i) {
                let s = &inner[offsets[i] as usize..offsets[i + 1] as usize];
                if s.len() % self.k != 0 {
                    return internal_err!("mmd state row has {} values, k = {}", s.len(), self.k);
                }
                let before = groups[g].heap_bytes();
                for row in s.chunks_exact(self.k) {
                    groups[g].push(row, self.k, MAX_ROWS);
                }
                added += delta(before, groups[g].heap_bytes());
            }
        }
        Ok(added)
    }

    fn state(&self, groups: &mut [HashSample]) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(list_array(
            groups
                .iter_mut()
                .map(|g| {
                    g.prune(self.k, MAX_ROWS);
                    g.rows().to_vec().into()
                })
                .collect(),
        ))])
    }

    fn evaluate(&self, groups: &mut [HashSample]) -> Result<ArrayRef> {
        let r = &self.reference;
        let out: Float64Array = groups
            .iter_mut()
            .map(|g| {
                if g.len() < 2 {
                    return None;
                }
                g.prune(self.k, MAX_ROWS);
                let x = sorted_rows(g.rows(), self.k);
                let v = match self.output {
                    Output::Statistic => mmd2_unbiased(&x, &r.y, self.k, r.sigma, r.yy),
                    Output::PValue => {
                        permutation_test(
                            &x,
                            &r.y,
                            self.k,
                            r.sigma,
                            self.permutations,
                            PERMUTATION_SEED,
                        )?
                        .pvalue
                    }
                };
                v.is_finite().then_some(v)
            })
            .collect();
        Ok(Arc::new(out))
    }

    fn group_size(&self, g: &HashSample) -> usize {
        g.heap_bytes()
    }
}
