//! The aggregate expressions of a monitor: creation of DataFusion accumulators and
//! evaluation of their inputs on a batch.

use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::take;
use arrow::record_batch::RecordBatch;
use datafusion::common::{cast::as_boolean_array, Result};
use datafusion::logical_expr::{Accumulator, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

/// Inputs of every aggregate evaluated on one batch.
pub struct AggregateInputs {
    /// Argument arrays per aggregate.
    pub args: Vec<Vec<ArrayRef>>,
    /// FILTER (WHERE …) mask per aggregate.
    pub filters: Vec<Option<BooleanArray>>,
}

impl AggregateInputs {
    /// The inputs restricted to the rows at `indices`.
    pub fn take(&self, indices: &UInt32Array) -> Result<Self> {
        let args = self
            .args
            .iter()
            .map(|a| {
                a.iter()
                    .map(|c| take(c, indices, None))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| -> Result<BooleanArray> {
                        Ok(as_boolean_array(&take(f, indices, None)?)?.clone())
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { args, filters })
    }
}

/// A monitor's aggregate expressions with their argument and filter expressions.
#[derive(Debug, Clone)]
pub struct AggregateSet {
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
}

impl AggregateSet {
    /// Wraps DataFusion's aggregate expressions (raw-input mode).
    pub fn new(
        aggregates: Vec<Arc<AggregateFunctionExpr>>,
        filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    ) -> Self {
        let args = aggregates
            .iter()
            .map(|agg| {
                let mut exprs = agg.expressions();
                exprs.extend(agg.order_bys().iter().map(|o| Arc::clone(&o.expr)));
                exprs
            })
            .collect();
        Self {
            aggregates,
            args,
            filters,
        }
    }

    /// The aggregate expressions.
    pub fn aggregates(&self) -> &[Arc<AggregateFunctionExpr>] {
        &self.aggregates
    }

    /// A fresh vectorised accumulator per aggregate: DataFusion's `GroupsAccumulator` where
    /// the function has one, otherwise its row accumulator behind DataFusion's adapter.
    pub fn groups_accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.aggregates
            .iter()
            .map(|agg| -> Result<Box<dyn GroupsAccumulator>> {
                if agg.groups_accumulator_supported() {
                    agg.create_groups_accumulator()
                } else {
                    let agg = Arc::clone(agg);
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        agg.create_accumulator()
                    })))
                }
            })
            .collect()
    }

    /// Number of state columns of each aggregate, as snapshots store them.
    pub fn state_widths(&self) -> Result<Vec<usize>> {
        self.aggregates
            .iter()
            .map(|a| Ok(a.state_fields()?.len()))
            .collect()
    }

    /// A fresh row accumulator per aggregate (session windows).
    pub fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>> {
        self.aggregates
            .iter()
            .map(|agg| agg.create_accumulator())
            .collect()
    }

    /// Evaluates every aggregate's arguments and filter on `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<AggregateInputs> {
        let args = self
            .args
            .iter()
            .map(|exprs| {
                exprs
                    .iter()
                    .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let filters = self
            .filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| -> Result<BooleanArray> {
                        let a = f.evaluate(batch)?.into_array(batch.num_rows())?;
                        Ok(as_boolean_array(&a)?.clone())
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AggregateInputs { args, filters })
    }
}
