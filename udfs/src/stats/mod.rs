//! Window statistics without a baseline that DataFusion lacks:
//!
//! * `top_k(x, k)` → `List<Struct{value: Utf8, count: Int64}>`: the k most frequent
//!   non-NULL values of a categorical column (module `top_k`).
//! * `covariance_matrix(x1, …, xk)` / `correlation_matrix(x1, …, xk)` → `List<Float64>`:
//!   the k×k sample covariance / Pearson correlation matrix (row-major) of the complete rows
//!   (module `comoment`).
//!
//! Approximate distinct counts and sketch quantiles are DataFusion's `approx_distinct` and
//! `approx_percentile_cont` (FUNCTIONS.md states their measured error bounds).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::PhysicalExpr;

use crate::args::is_value_type;
use crate::group::EitherKernel;

mod comoment;
mod top_k;

use comoment::{MatrixKind, MomentsKernel};
use top_k::{is_top_k_value_type, top_k_type, TopKKernel};

/// Which statistic a [`StatsUdaf`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsKind {
    /// `top_k(x, k)`: the k most frequent values with their counts.
    TopK,
    /// `covariance_matrix(x1, …, xk)`: sample covariance matrix (ddof 1).
    CovarianceMatrix,
    /// `correlation_matrix(x1, …, xk)`: Pearson correlation matrix.
    CorrelationMatrix,
}

impl StatsKind {
    /// All kinds.
    pub const ALL: [StatsKind; 3] = [
        StatsKind::TopK,
        StatsKind::CovarianceMatrix,
        StatsKind::CorrelationMatrix,
    ];

    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            StatsKind::TopK => "top_k",
            StatsKind::CovarianceMatrix => "covariance_matrix",
            StatsKind::CorrelationMatrix => "correlation_matrix",
        }
    }
}

/// A window-statistic aggregate without a baseline (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StatsUdaf {
    kind: StatsKind,
    signature: Signature,
}

impl StatsUdaf {
    /// New aggregate of `kind`.
    pub fn new(kind: StatsKind) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The value of a positive integer literal, or a planning error naming `func`.
fn positive_int_literal(func: &str, e: &Arc<dyn PhysicalExpr>) -> Result<usize> {
    let v = e.downcast_ref::<Literal>().map(|l| l.value());
    let k = match v {
        Some(v) if v.data_type().is_integer() && !v.is_null() => {
            match v.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(k)) => Some(k),
                _ => None,
            }
        }
        _ => None,
    };
    match k {
        Some(k) if k >= 1 => usize::try_from(k).or_else(|_| plan_err!("{func}: k is too large")),
        _ => {
            plan_err!("{func}: k must be a positive integer literal (e.g. {func}(x, 10)), got {e}")
        }
    }
}

type Built = EitherKernel<TopKKernel, MomentsKernel>;

impl StatsUdaf {
    fn build(&self, args: &AccumulatorArgs) -> Result<Built> {
        let name = self.kind.name();
        let exprs = args.exprs;
        Ok(match self.kind {
            StatsKind::TopK => {
                if exprs.len() != 2 {
                    return plan_err!("{name} expects (x, k), got {} arguments", exprs.len());
                }
                Built::A(TopKKernel {
                    k: positive_int_literal(name, &exprs[1])?,
                })
            }
            StatsKind::CovarianceMatrix | StatsKind::CorrelationMatrix => {
                if exprs.len() < 2 {
                    return plan_err!("{name} expects at least 2 numeric columns");
                }
                Built::B(MomentsKernel {
                    k: exprs.len(),
                    kind: if self.kind == StatsKind::CovarianceMatrix {
                        MatrixKind::Covariance
                    } else {
                        MatrixKind::Correlation
                    },
                })
            }
        })
    }
}

impl AggregateUDFImpl for StatsUdaf {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        match self.kind {
            StatsKind::TopK => {
                if t.len() != 2 {
                    return plan_err!("{name} expects (x, k), got {} arguments", t.len());
                }
                if !is_top_k_value_type(&t[0]) {
                    return plan_err!(
                        "{name}: x must be a string, integer or boolean column, got {} \
                         (cast it, e.g. CAST(x AS VARCHAR))",
                        t[0]
                    );
                }
                if !(t[1].is_integer() || t[1].is_null()) {
                    return plan_err!(
                        "{name}: k must be a positive integer literal (e.g. {name}(x, 10)), \
                         got type {}",
                        t[1]
                    );
                }
            }
            StatsKind::CovarianceMatrix | StatsKind::CorrelationMatrix => {
                if t.len() < 2 {
                    return plan_err!(
                        "{name} expects at least 2 numeric columns, got {} arguments",
                        t.len()
                    );
                }
                if let Some(bad) = t.iter().find(|d| !is_value_type(d)) {
                    return plan_err!("{name}: arguments must be numeric, got {bad}");
                }
            }
        }
        Ok(t.to_vec())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            StatsKind::TopK => top_k_type(),
            _ => DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
        })
    }
    fn is_nullable(&self) -> bool {
        true
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let n = args.name;
        let list = |name: String, item: DataType| -> FieldRef {
            Arc::new(Field::new(
                name,
                DataType::List(Arc::new(Field::new_list_field(item, true))),
                true,
            ))
        };
        Ok(match self.kind {
            StatsKind::TopK => vec![
                list(format!("{n}[values]"), DataType::Utf8),
                list(format!("{n}[counts]"), DataType::Int64),
            ],
            _ => vec![
                Arc::new(Field::new(format!("{n}[count]"), DataType::Int64, true)),
                list(format!("{n}[shift]"), DataType::Float64),
                list(format!("{n}[mean]"), DataType::Float64),
                list(format!("{n}[comoment]"), DataType::Float64),
            ],
        })
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(self.build(&acc_args)?.accumulator())
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.build(&args)?.groups_accumulator())
    }
}

/// `top_k`, `covariance_matrix` and `correlation_matrix`.
pub fn stats_functions() -> Vec<AggregateUDF> {
    StatsKind::ALL
        .iter()
        .map(|k| AggregateUDF::new_from_impl(StatsUdaf::new(*k)))
        .collect()
}
