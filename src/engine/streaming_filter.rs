//! A filter that never holds rows back. DataFusion's `FilterExec` coalesces small filtered
//! batches until it has a full batch, which is right for batch queries but would delay a
//! monitor's rows indefinitely (and break the watermark protocol, see
//! [`crate::engine::progress`]). This operator evaluates the same predicate and emits one
//! batch per input batch (skipping empty ones).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::cast::as_boolean_array;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{Stream, StreamExt};

/// Filter (with optional projection) emitting each input batch's surviving rows at once.
#[derive(Debug)]
pub struct StreamingFilterExec {
    input: Arc<dyn ExecutionPlan>,
    predicate: Arc<dyn PhysicalExpr>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl StreamingFilterExec {
    /// Filters `input` by `predicate`, then keeps the `projection` columns.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        predicate: Arc<dyn PhysicalExpr>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(input.schema().project(p)?),
            None => input.schema(),
        };
        let input_props = input.properties();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(input_props.partitioning.partition_count()),
            input_props.emission_type,
            input_props.boundedness,
        );
        Ok(Self {
            input,
            predicate,
            projection,
            schema,
            properties: Arc::new(properties),
        })
    }

    /// Replaces every DataFusion `FilterExec` in `plan` with a streaming filter.
    pub fn replace_filters(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let projection = filter.projection().as_ref().map(|p| p.to_vec());
            let exec = StreamingFilterExec::try_new(
                Arc::clone(filter.input()),
                Arc::clone(filter.predicate()),
                projection,
            )?;
            Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }
}

impl DisplayAs for StreamingFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StreamingFilterExec: {}", self.predicate)
    }
}

impl ExecutionPlan for StreamingFilterExec {
    fn name(&self) -> &str {
        "StreamingFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.predicate)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("StreamingFilterExec has one child");
        }
        Ok(Arc::new(Self::try_new(
            children.remove(0),
            Arc::clone(&self.predicate),
            self.projection.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(StreamingFilterStream {
            input: self.input.execute(partition, context)?,
            predicate: Arc::clone(&self.predicate),
            projection: self.projection.clone(),
            schema: Arc::clone(&self.schema),
        }))
    }
}

struct StreamingFilterStream {
    input: SendableRecordBatchStream,
    predicate: Arc<dyn PhysicalExpr>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
}

impl StreamingFilterStream {
    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mask = self
            .predicate
            .evaluate(batch)?
            .into_array(batch.num_rows())?;
        let mask = as_boolean_array(&mask)?;
        let filtered = arrow::compute::filter_record_batch(batch, mask)?;
        Ok(match &self.projection {
            Some(p) => filtered.project(p)?,
            None => filtered,
        })
    }
}

impl Stream for StreamingFilterStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => match self.apply(&batch) {
                    Ok(out) if out.num_rows() == 0 => continue,
                    other => return Poll::Ready(Some(other)),
                },
                other => return other,
            }
        }
    }
}

impl RecordBatchStream for StreamingFilterStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
