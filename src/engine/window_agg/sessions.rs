//! State of session windows: per group key, sessions of rows whose event times are less than
//! `gap` apart. A session is emitted, exactly once, when the watermark passes its last row's
//! time plus the gap. Sessions that grow into each other are merged through the
//! accumulators' `state` / `merge_batch`.

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{filter, take};
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::Accumulator;
use hashbrown::HashMap;
use std::sync::Arc;

use super::aggregates::AggregateSet;
use super::layout::{Grouping, OutputLayout};
use super::WindowState;
use crate::engine::snapshot::{check_columns, snapshot_batch, split_states, WindowSnapshot};

/// Bookkeeping columns of a session snapshot.
const SESSION_START: &str = "_session_start";
const SESSION_END: &str = "_session_end";

struct Session {
    start: i64,
    /// Last row time plus the gap (exclusive end).
    end: i64,
    accumulators: Vec<Box<dyn Accumulator>>,
}

/// Session window state.
pub struct SessionWindows {
    gap: i64,
    grouping: Grouping,
    aggregates: AggregateSet,
    layout: OutputLayout,
    converter: Option<RowConverter>,
    sessions: HashMap<Box<[u8]>, Vec<Session>>,
    closed_until: i64,
}

impl SessionWindows {
    /// Empty state for sessions closed by `gap` ms of inactivity.
    pub fn new(
        gap: i64,
        grouping: Grouping,
        aggregates: AggregateSet,
        layout: OutputLayout,
    ) -> Result<Self> {
        let converter = if grouping.key_types.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                grouping
                    .key_types
                    .iter()
                    .cloned()
                    .map(SortField::new)
                    .collect(),
            )?)
        };
        Ok(Self {
            gap,
            grouping,
            aggregates,
            layout,
            converter,
            sessions: HashMap::new(),
            closed_until: i64::MIN,
        })
    }

    fn new_session(
        &self,
        start: i64,
        end: i64,
        rows: &[u32],
        args: &[Vec<ArrayRef>],
        filters: &[Option<BooleanArray>],
    ) -> Result<Session> {
        let idx = UInt32Array::from(rows.to_vec());
        let mut accumulators = self.aggregates.accumulators()?;
        for (i, acc) in accumulators.iter_mut().enumerate() {
            let mut values = args[i]
                .iter()
                .map(|a| take(a, &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if let Some(mask) = &filters[i] {
                let mask = take(mask, &idx, None)?;
                let mask = mask
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .expect("boolean mask");
                let mask = arrow::compute::prep_null_mask_filter(mask);
                values = values
                    .iter()
                    .map(|v| filter(v, &mask))
                    .collect::<std::result::Result<_, _>>()?;
            }
            acc.update_batch(&values)?;
        }
        Ok(Session {
            start,
            end,
            accumulators,
        })
    }
}

fn merge_into(target: &mut Session, other: &mut Session) -> Result<()> {
    target.start = target.start.min(other.start);
    target.end = target.end.max(other.end);
    for (t, o) in target
        .accumulators
        .iter_mut()
        .zip(other.accumulators.iter_mut())
    {
        let state = o
            .state()?
            .iter()
            .map(|v| v.to_array())
            .collect::<Result<Vec<_>>>()?;
        t.merge_batch(&state)?;
    }
    Ok(())
}

impl WindowState for SessionWindows {
    fn update(&mut self, batch: &RecordBatch) -> Result<u64> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(0);
        }
        let (times, keys): (TimestampMillisecondArray, Vec<ArrayRef>) =
            self.grouping.evaluate(batch)?;
        let inputs = self.aggregates.evaluate(batch)?;
        let key_rows = match &self.converter {
            Some(c) => Some(c.convert_columns(&keys)?),
            None => None,
        };
        let mut by_key: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        let mut dropped = 0u64;
        for i in 0..rows {
            if times.is_null(i) || times.value(i).saturating_add(self.gap) <= self.closed_until {
                dropped += 1;
                continue;
            }
            let key: &[u8] = key_rows.as_ref().map_or(&[], |r| r.row(i).data());
            match by_key.get_mut(key) {
                Some(v) => v.push(i as u32),
                None => {
                    by_key.insert(key.into(), vec![i as u32]);
                }
            }
        }
        for (key, mut idx) in by_key {
            idx.sort_by_key(|&i| times.value(i as usize));
            // Cut the key's rows into runs whose consecutive times are < gap apart.
            let mut runs: Vec<Session> = Vec::new();
            let mut begin = 0;
            for j in 1..=idx.len() {
                let split = j == idx.len()
                    || times.value(idx[j] as usize) >= times.value(idx[j - 1] as usize) + self.gap;
                if split {
                    let start = times.value(idx[begin] as usize);
                    let end = times.value(idx[j - 1] as usize) + self.gap;
                    runs.push(self.new_session(
                        start,
                        end,
                        &idx[begin..j],
                        &inputs.args,
                        &inputs.filters,
                    )?);
                    begin = j;
                }
            }
            let sessions = self.sessions.entry(key).or_default();
            for mut run in runs {
                let mut kept = Vec::with_capacity(sessions.len());
                for mut s in sessions.drain(..) {
                    if s.start < run.end && run.start < s.end {
                        merge_into(&mut run, &mut s)?;
                    } else {
                        kept.push(s);
                    }
                }
                kept.push(run);
                *sessions = kept;
            }
        }
        Ok(dropped)
    }

    fn snapshot(&mut self) -> Result<WindowSnapshot> {
        let num_aggs = self.aggregates.aggregates().len();
        let widths = self.aggregates.state_widths()?;
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut states: Vec<Vec<Vec<ScalarValue>>> =
            widths.iter().map(|w| vec![Vec::new(); *w]).collect();
        for (key, sessions) in self.sessions.iter_mut() {
            for session in sessions.iter_mut() {
                starts.push(session.start);
                ends.push(session.end);
                keys.push(key);
                // `state` consumes an accumulator's state: merge it back into a fresh one.
                let mut fresh = self.aggregates.accumulators()?;
                for (a, (acc, new)) in session
                    .accumulators
                    .iter_mut()
                    .zip(fresh.iter_mut())
                    .enumerate()
                {
                    let state = acc.state()?;
                    let arrays = state
                        .iter()
                        .map(|v| v.to_array())
                        .collect::<Result<Vec<_>>>()?;
                    new.merge_batch(&arrays)?;
                    for (f, v) in state.into_iter().enumerate() {
                        states[a][f].push(v);
                    }
                }
                session.accumulators = fresh;
            }
        }
        if starts.is_empty() {
            return Ok(WindowSnapshot::empty(self.closed_until));
        }
        let key_columns = match &self.converter {
            Some(c) => {
                let parser = c.parser();
                c.convert_rows(keys.iter().map(|k| parser.parse(k)))?
            }
            None => Vec::new(),
        };
        let state_columns = states
            .into_iter()
            .take(num_aggs)
            .map(|fields| {
                fields
                    .into_iter()
                    .map(ScalarValue::iter_to_array)
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = snapshot_batch(
            vec![
                (
                    SESSION_START,
                    Arc::new(Int64Array::from(starts)) as ArrayRef,
                ),
                (SESSION_END, Arc::new(Int64Array::from(ends)) as ArrayRef),
            ],
            key_columns,
            state_columns,
        )?;
        Ok(WindowSnapshot {
            emitted_until: self.closed_until,
            state: Some(batch),
        })
    }

    fn restore(&mut self, snapshot: WindowSnapshot) -> Result<()> {
        self.sessions.clear();
        self.closed_until = snapshot.emitted_until;
        let Some(batch) = snapshot.state else {
            return Ok(());
        };
        let num_keys = self.grouping.key_types.len();
        let widths = self.aggregates.state_widths()?;
        check_columns(&batch, 2, num_keys, &widths)?;
        let starts = batch.column(0).as_primitive::<Int64Type>().clone();
        let ends = batch.column(1).as_primitive::<Int64Type>().clone();
        let key_rows = match &self.converter {
            Some(c) => Some(c.convert_columns(&batch.columns()[2..2 + num_keys])?),
            None => None,
        };
        for i in 0..batch.num_rows() {
            let row = batch.slice(i, 1);
            let states = split_states(&row.columns()[2 + num_keys..], &widths);
            let mut accumulators = self.aggregates.accumulators()?;
            for (acc, state) in accumulators.iter_mut().zip(&states) {
                acc.merge_batch(state)?;
            }
            let key: Box<[u8]> = key_rows
                .as_ref()
                .map_or_else(|| Box::from(&[][..]), |r| r.row(i).data().into());
            self.sessions.entry(key).or_default().push(Session {
                start: starts.value(i),
                end: ends.value(i),
                accumulators,
            });
        }
        Ok(())
    }

    fn emit(&mut self, limit: i64, out: &mut Vec<RecordBatch>) -> Result<usize> {
        self.closed_until = self.closed_until.max(limit);
        let mut closed: Vec<(i64, i64, Box<[u8]>, Session)> = Vec::new();
        for (key, sessions) in self.sessions.iter_mut() {
            let mut i = 0;
            while i < sessions.len() {
                if sessions[i].end <= limit {
                    let s = sessions.swap_remove(i);
                    closed.push((s.end, s.start, key.clone(), s));
                } else {
                    i += 1;
                }
            }
        }
        self.sessions.retain(|_, s| !s.is_empty());
        if closed.is_empty() {
            return Ok(0);
        }
        closed.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        let n = closed.len();
        let starts: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            closed.iter().map(|c| c.1),
        ));
        let ends: ArrayRef = Arc::new(TimestampMillisecondArray::from_iter_values(
            closed.iter().map(|c| c.0),
        ));
        let keys = match &self.converter {
            Some(c) => {
                let parser = c.parser();
                c.convert_rows(closed.iter().map(|s| parser.parse(&s.2)))?
            }
            None => Vec::new(),
        };
        let num_aggs = self.aggregates.aggregates().len();
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(n); num_aggs];
        for (_, _, _, session) in closed.iter_mut() {
            for (i, acc) in session.accumulators.iter_mut().enumerate() {
                values[i].push(acc.evaluate()?);
            }
        }
        let values = values
            .into_iter()
            .zip(self.aggregates.aggregates())
            .map(|(v, agg)| {
                if v.is_empty() {
                    Ok(arrow::array::new_empty_array(agg.field().data_type()))
                } else {
                    ScalarValue::iter_to_array(v)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(self.layout.batch(starts, ends, keys, values)?);
        Ok(n)
    }
}
