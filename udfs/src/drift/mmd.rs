//! `mmd(x1, …, xk, 'baseline')`: unbiased MMD² (RBF kernel, median-heuristic bandwidth) of
//! the window's complete rows against the baseline's row sample (see [`crate::math::mmd`]).
//!
//! * Reference: the baseline's [`crate::baseline::RowSample`] (≤ 1000 complete rows,
//!   deterministic), restricted to the named columns; σ = median pairwise distance of those
//!   rows (computed once per baseline and column set, then cached).
//! * Current: the window's complete rows (NULL / non-finite in any argument → row skipped),
//!   sorted lexicographically; more than [`MAX_ROWS`] rows → the stratified subsample at
//!   ranks ⌊(i + ½)·m / 1000⌋.
//! * Fewer than 2 rows on either side → NULL. State: the rows (`List<Float64>`, row-major).

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, Float64Type};
use datafusion::common::{internal_err, plan_err, Result};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::{
    lit, Accumulator, AggregateUDFImpl, Expr, GroupsAccumulator, Signature, Volatility,
};

use super::list::list_array;
use super::udaf::{column_name, list_field, literal_str};
use crate::args::{is_string_type, is_value_type, lookup, map_columns};
use crate::baseline::{BaselineProfile, BaselineRegistry};
use crate::group::{passes, Groups, Kernel, Single};
use crate::math::mmd::{median_bandwidth, mmd2_unbiased, stratified_rows, within_sum, MAX_ROWS};

#[derive(Debug)]
struct Reference {
    profile: Arc<BaselineProfile>,
    cols: Vec<usize>,
    y: Arc<Vec<f64>>,
    sigma: f64,
    yy: f64,
}

/// The `mmd` aggregate.
#[derive(Debug)]
pub struct MmdUdaf {
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
    cache: Mutex<Vec<Arc<Reference>>>,
}

impl MmdUdaf {
    /// New `mmd` bound to `baselines`.
    pub fn new(baselines: Arc<BaselineRegistry>) -> Self {
        Self {
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
        let exprs = args.exprs;
        let k = args
            .expr_fields
            .iter()
            .position(|f| is_string_type(f.data_type()) && !f.data_type().is_null())
            .unwrap_or(exprs.len());
        if k == 0 || k >= exprs.len() {
            return plan_err!("mmd expects (x1, …, xk, 'baseline')");
        }
        let names: Vec<String> = if exprs.len() == 2 * k + 1 {
            exprs[k + 1..]
                .iter()
                .map(|e| match literal_str(e) {
                    Some(Some(s)) => Ok(s),
                    _ => plan_err!("mmd: column names must be string literals"),
                })
                .collect::<Result<_>>()?
        } else if exprs.len() == k + 1 {
            exprs[..k]
                .iter()
                .map(|e| {
                    column_name(e).ok_or_else(|| {
                        datafusion::common::DataFusionError::Plan(format!(
                            "mmd: cannot tell which baseline column '{e}' is; use plain columns"
                        ))
                    })
                })
                .collect::<Result<_>>()?
        } else {
            return plan_err!("mmd expects (x1, …, xk, 'baseline')");
        };
        let Some(Some(baseline)) = literal_str(&exprs[k]) else {
            return plan_err!("mmd: the baseline name must be a string literal");
        };
        let profile = lookup(&self.baselines, &baseline)?;
        let Some(cols) = map_columns(&names, &profile.rows.columns) else {
            return plan_err!(
                "mmd: arguments must name numeric columns of baseline '{}' ({})",
                profile.name,
                profile.rows.columns.join(", ")
            );
        };
        Ok(RowsKernel {
            k,
            reference: self.reference(profile, cols),
        })
    }
}

impl PartialEq for MmdUdaf {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.baselines, &o.baselines)
    }
}
impl Eq for MmdUdaf {}
impl Hash for MmdUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "mmd".hash(state);
        (Arc::as_ptr(&self.baselines) as usize).hash(state);
    }
}

impl AggregateUDFImpl for MmdUdaf {
    fn name(&self) -> &str {
        "mmd"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let len = types.len();
        let k = types
            .iter()
            .position(|t| is_string_type(t) && !t.is_null())
            .unwrap_or(len);
        if k == 0
            || !(len == k + 1 || len == 2 * k + 1)
            || !types[..k].iter().all(is_value_type)
            || !types[k..].iter().all(is_string_type)
        {
            return plan_err!("mmd expects (x1, …, xk, 'baseline') with numeric x, got {types:?}");
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
    /// `mmd(x, y, 'b')` → `mmd(x, y, 'b', 'x', 'y')` for plain columns.
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        Some(Box::new(|mut af: AggregateFunction, _info| {
            let args = &af.params.args;
            if args.len() >= 2 {
                let k = args.len() - 1;
                let is_lit = matches!(&args[k], Expr::Literal(v, _) if v.try_as_str().is_some());
                let names: Option<Vec<String>> = args[..k]
                    .iter()
                    .map(|e| match e {
                        Expr::Column(c) => Some(c.name.clone()),
                        _ => None,
                    })
                    .collect();
                if let (true, Some(names)) = (is_lit, names) {
                    af.params.args.extend(names.into_iter().map(lit));
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

/// Kernel of `mmd`: per-group complete rows.
#[derive(Debug)]
struct RowsKernel {
    k: usize,
    reference: Arc<Reference>,
}

impl Kernel for RowsKernel {
    type Group = Vec<f64>;

    fn update(
        &self,
        groups: &mut [Vec<f64>],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<usize> {
        let cols: Vec<ArrayRef> = args[..self.k]
            .iter()
            .map(|a| cast(a, &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        let cols: Vec<&Float64Array> = cols
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let mut added = 0;
        for (i, &g) in idx.iter().enumerate() {
            if passes(filter, i) && cols.iter().all(|c| c.is_valid(i) && c.value(i).is_finite()) {
                groups[g].extend(cols.iter().map(|c| c.value(i)));
                added += self.k * 8;
            }
        }
        Ok(added)
    }

    fn merge(&self, groups: &mut [Vec<f64>], states: &[ArrayRef], idx: &[usize]) -> Result<usize> {
        if states.len() != 1 {
            return internal_err!("mmd state must have 1 column, got {}", states.len());
        }
        let lists = states[0].as_list::<i32>();
        let inner = cast(lists.values(), &DataType::Float64)?;
        let inner = inner.as_primitive::<Float64Type>().values();
        let offsets = lists.value_offsets();
        let mut added = 0;
        for (i, &g) in idx.iter().enumerate() {
            if lists.is_valid(i) {
                let s = &inner[offsets[i] as usize..offsets[i + 1] as usize];
                if s.len() % self.k != 0 {
                    return internal_err!("mmd state row has {} values, k = {}", s.len(), self.k);
                }
                groups[g].extend_from_slice(s);
                added += s.len() * 8;
            }
        }
        Ok(added)
    }

    fn state(&self, groups: &mut [Vec<f64>]) -> Result<Vec<ArrayRef>> {
        Ok(vec![Arc::new(list_array(groups.iter().cloned()))])
    }

    fn evaluate(&self, groups: &mut [Vec<f64>]) -> Result<ArrayRef> {
        let r = &self.reference;
        let out: Float64Array = groups
            .iter()
            .map(|g| {
                if g.len() < 2 * self.k {
                    return None;
                }
                let x = stratified_rows(g, self.k, MAX_ROWS);
                let v = mmd2_unbiased(&x, &r.y, self.k, r.sigma, r.yy);
                v.is_finite().then_some(v)
            })
            .collect();
        Ok(Arc::new(out))
    }

    fn group_size(&self, g: &Vec<f64>) -> usize {
        g.capacity() * 8
    }
}
