//! The serialisable state of a window operator, taken at a checkpoint barrier and restored
//! after a restart.
//!
//! State is DataFusion accumulator state (`GroupsAccumulator::state` /
//! `Accumulator::state`) in Arrow arrays — the same partial state that hopping windows merge
//! and that scale-out moves between instances — in one [`RecordBatch`] per monitor:
//!
//! - tumbling and hopping windows: one row per (pane, group): `_pane_start`, `_frozen`
//!   (the pane's first window was already emitted), the group key columns, then every
//!   aggregate's state columns;
//! - session windows: one row per (session, group key): `_session_start`, `_session_end`,
//!   the key columns, then the state columns.
//!
//! Taking state out of an accumulator resets it, so the operator merges the state straight
//! back into fresh accumulators (`merge_batch`): the live computation goes on where it was.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Result;

/// State of one monitor's window operator at a barrier.
#[derive(Debug, Clone)]
pub struct WindowSnapshot {
    /// Panes: end of the last emitted window; sessions: the largest time closed so far.
    pub emitted_until: i64,
    /// Open state (see the module docs), `None` when no window is open.
    pub state: Option<RecordBatch>,
}

impl WindowSnapshot {
    /// A snapshot with nothing open.
    pub fn empty(emitted_until: i64) -> Self {
        Self {
            emitted_until,
            state: None,
        }
    }

    /// Rows of open state (0 when nothing is open).
    pub fn rows(&self) -> usize {
        self.state.as_ref().map_or(0, |b| b.num_rows())
    }

    /// Memory held by the state arrays.
    pub fn bytes(&self) -> usize {
        self.state.as_ref().map_or(0, |b| b.get_array_memory_size())
    }
}

/// Assembles a snapshot batch from its columns: `leading` bookkeeping columns, the group
/// key columns (`_key<i>`), then each aggregate's state columns (`_s<aggregate>_<field>`,
/// so two aggregates never clash). Field types are taken from the arrays themselves.
pub fn snapshot_batch(
    leading: Vec<(&str, ArrayRef)>,
    keys: Vec<ArrayRef>,
    states: Vec<Vec<ArrayRef>>,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (name, a) in leading {
        fields.push(Field::new(name, a.data_type().clone(), false));
        columns.push(a);
    }
    for (i, a) in keys.into_iter().enumerate() {
        fields.push(Field::new(format!("_key{i}"), a.data_type().clone(), true));
        columns.push(a);
    }
    for (i, agg) in states.into_iter().enumerate() {
        for (j, a) in agg.into_iter().enumerate() {
            fields.push(Field::new(
                format!("_s{i}_{j}"),
                a.data_type().clone(),
                true,
            ));
            columns.push(a);
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Concatenates the same column of several parts (one per pane or session).
pub fn concat_parts(parts: &[ArrayRef]) -> Result<ArrayRef> {
    let refs: Vec<&dyn arrow::array::Array> = parts.iter().map(|a| a.as_ref()).collect();
    Ok(arrow::compute::concat(&refs)?)
}

/// Checks that a snapshot batch has the columns a window operator expects: `leading`
/// bookkeeping columns, `num_keys` key columns and `widths` state columns per aggregate (a
/// checkpoint of another monitor definition does not fit).
pub fn check_columns(
    batch: &RecordBatch,
    leading: usize,
    num_keys: usize,
    widths: &[usize],
) -> Result<()> {
    let expected = leading + num_keys + widths.iter().sum::<usize>();
    if batch.num_columns() != expected {
        return datafusion::common::exec_err!(
            "checkpointed window state has {} columns, this monitor needs {expected}",
            batch.num_columns()
        );
    }
    Ok(())
}

/// Splits the state columns of a snapshot batch into one `Vec` per aggregate, `widths`
/// columns each.
pub fn split_states(columns: &[ArrayRef], widths: &[usize]) -> Vec<Vec<ArrayRef>> {
    let mut out = Vec::with_capacity(widths.len());
    let mut at = 0;
    for w in widths {
        out.push(columns[at..at + w].to_vec());
        at += w;
    }
    out
}
