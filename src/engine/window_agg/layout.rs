//! Where the window bounds, group keys and aggregate values go in the operator's output,
//! and how the grouping expressions are evaluated on input batches.

use std::sync::Arc;

use arrow::array::{ArrayRef, TimestampMillisecondArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::{exec_err, Result};
use datafusion::physical_expr::PhysicalExpr;

/// The grouping of a windowed aggregate: the window column expressions plus other keys.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// Expression yielding each input row's pane start (the input's `window_start`).
    pub pane_start: Arc<dyn PhysicalExpr>,
    /// Other GROUP BY expressions.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Types of `keys`.
    pub key_types: Vec<DataType>,
}

impl Grouping {
    /// Evaluates pane starts and key columns on `batch`.
    pub fn evaluate(
        &self,
        batch: &RecordBatch,
    ) -> Result<(TimestampMillisecondArray, Vec<ArrayRef>)> {
        let n = batch.num_rows();
        let start = self.pane_start.evaluate(batch)?.into_array(n)?;
        let Some(start) = start.as_any().downcast_ref::<TimestampMillisecondArray>() else {
            return exec_err!(
                "window_start evaluated to {}, expected a timestamp",
                start.data_type()
            );
        };
        let keys = self
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        Ok((start.clone(), keys))
    }
}

/// Output positions of the operator's columns.
#[derive(Debug, Clone)]
pub struct OutputLayout {
    /// Output schema (identical to the DataFusion aggregate it replaces).
    pub schema: SchemaRef,
    /// Position of `window_start` among the group columns, if selected.
    pub start: Option<usize>,
    /// Position of `window_end` among the group columns, if selected.
    pub end: Option<usize>,
    /// Positions of the other keys among the group columns, in key order.
    pub keys: Vec<usize>,
    /// Number of group columns (aggregate values follow them).
    pub num_group_columns: usize,
}

impl OutputLayout {
    /// Assembles one output batch.
    pub fn batch(
        &self,
        starts: ArrayRef,
        ends: ArrayRef,
        keys: Vec<ArrayRef>,
        values: Vec<ArrayRef>,
    ) -> Result<RecordBatch> {
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.num_group_columns];
        if let Some(p) = self.start {
            columns[p] = Some(starts);
        }
        if let Some(p) = self.end {
            columns[p] = Some(ends);
        }
        for (pos, key) in self.keys.iter().zip(keys) {
            columns[*pos] = Some(key);
        }
        let mut out: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| c.expect("every group column is filled"))
            .collect();
        out.extend(values);
        // Types from accumulators can differ in nullability/metadata only; cast to be safe.
        let out = out
            .into_iter()
            .zip(self.schema.fields())
            .map(|(a, f)| {
                if a.data_type() == f.data_type() {
                    Ok(a)
                } else {
                    Ok(arrow::compute::cast(&a, f.data_type())?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), out)?)
    }
}

/// A constant timestamp column of `n` rows.
pub fn constant_ts(value: i64, n: usize) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(vec![value; n]))
}
