//! State of session windows: per group key, sessions of rows whose event times are less than
//! `gap` apart. A session is emitted, exactly once, when the watermark passes its last row's
//! time plus the gap. Sessions that grow into each other are merged through the
//! accumulators' `state` / `merge_batch`.
//!
//! Cost is O(batch): a batch's rows for a key extend the key's open session in place
//! (`update_batch` on its accumulators, no state round trip); only when a run of rows bridges
//! several sessions are they merged, the smaller ones into the largest. Closable sessions
//! are found through an index ordered by session end, not by scanning every key.

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
use std::collections::BTreeMap;
use std::sync::Arc;

use super::aggregates::AggregateSet;
use super::layout::{Grouping, OutputLayout};
use super::usage::StateUsage;
use super::WindowState;
use crate::engine::snapshot::{check_columns, snapshot_batch, split_states, WindowSnapshot};

/// Bookkeeping columns of a session snapshot.
const SESSION_START: &str = "_session_start";
const SESSION_END: &str = "_session_end";

struct Session {
    /// Identifies the session in the `by_end` index.
    id: u64,
    start: i64,
    /// Last row time plus the gap (exclusive end).
    end: i64,
    accumulators: Vec<Box<dyn Accumulator>>,
    /// Accumulator bytes as last measured (kept in `SessionWindows::bytes`).
    bytes: usize,
}

impl Session {
    fn measure(&self) -> usize {
        self.accumulators.iter().map(|a| a.size()).sum()
    }
}

/// Session window state.
pub struct SessionWindows {
    gap: i64,
    grouping: Grouping,
    aggregates: AggregateSet,
    layout: OutputLayout,
    converter: Option<RowConverter>,
    /// Open sessions per group key (disjoint, usually one).
    sessions: HashMap<Box<[u8]>, Vec<Session>>,
    /// Every open session by `(end, id)`, to its key: what a watermark closes.
    by_end: BTreeMap<(i64, u64), Box<[u8]>>,
    next_id: u64,
    /// Accumulator bytes of every open session plus their keys.
    bytes: usize,
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
            by_end: BTreeMap::new(),
            next_id: 0,
            bytes: 0,
            closed_until: i64::MIN,
        })
    }

    /// Adds the rows at `rows` to `accumulators`.
    fn update_rows(
        accumulators: &mut [Box<dyn Accumulator>],
        rows: &[u32],
        args: &[Vec<ArrayRef>],
        filters: &[Option<BooleanArray>],
    ) -> Result<()> {
        let idx = UInt32Array::from(rows.to_vec());
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
        Ok(())
    }

    /// Adds a run of rows `[start, end)` (end = last row + gap) of `key` to its sessions:
    /// in place when it overlaps one session, a new session when none, else the sessions it
    /// bridges merged into the largest of them.
    fn add_run(
        &mut self,
        key: &[u8],
        start: i64,
        end: i64,
        rows: &[u32],
        args: &[Vec<ArrayRef>],
        filters: &[Option<BooleanArray>],
    ) -> Result<()> {
        let list = match self.sessions.get_mut(key) {
            Some(list) => list,
            None => {
                self.bytes += key.len();
                self.sessions.entry(key.into()).or_default()
            }
        };
        let overlapping: Vec<usize> = (0..list.len())
            .filter(|&i| list[i].start < end && start < list[i].end)
            .collect();
        let (target, old_end) = match overlapping.as_slice() {
            [] => {
                let id = self.next_id;
                self.next_id += 1;
                list.push(Session {
                    id,
                    start,
                    end,
                    accumulators: self.aggregates.accumulators()?,
                    bytes: 0,
                });
                self.by_end.insert((end, id), key.into());
                self.bytes += key.len();
                (list.len() - 1, end)
            }
            [one] => (*one, list[*one].end),
            many => {
                let largest = *many
                    .iter()
                    .max_by_key(|&&i| list[i].bytes)
                    .expect("several");
                let largest_id = list[largest].id;
                // Take the others out (highest index first so the lower indices stay valid).
                let mut others = Vec::with_capacity(many.len() - 1);
                for &i in many.iter().rev() {
                    if i != largest {
                        others.push(list.swap_remove(i));
                    }
                }
                let t = list
                    .iter()
                    .position(|s| s.id == largest_id)
                    .expect("the largest session is kept");
                let old_end = list[t].end;
                for mut other in others {
                    self.by_end.remove(&(other.end, other.id));
                    self.bytes -= other.bytes + key.len();
                    merge_into(&mut list[t], &mut other)?;
                }
                (t, old_end)
            }
        };
        let session = &mut list[target];
        Self::update_rows(&mut session.accumulators, rows, args, filters)?;
        session.start = session.start.min(start);
        session.end = session.end.max(end);
        if session.end != old_end {
            if let Some(k) = self.by_end.remove(&(old_end, session.id)) {
                self.by_end.insert((session.end, session.id), k);
            }
        }
        let measured = session.measure();
        self.bytes = self.bytes + measured - session.bytes;
        session.bytes = measured;
        Ok(())
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
            let mut begin = 0;
            for j in 1..=idx.len() {
                let split = j == idx.len()
                    || times.value(idx[j] as usize) >= times.value(idx[j - 1] as usize) + self.gap;
                if split {
                    let start = times.value(idx[begin] as usize);
                    let end = times.value(idx[j - 1] as usize) + self.gap;
                    self.add_run(
                        &key,
                        start,
                        end,
                        &idx[begin..j],
                        &inputs.args,
                        &inputs.filters,
                    )?;
                    begin = j;
                }
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
                let measured = session.measure();
                self.bytes = self.bytes + measured - session.bytes;
                session.bytes = measured;
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
        self.by_end.clear();
        self.bytes = 0;
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
            let id = self.next_id;
            self.next_id += 1;
            let mut session = Session {
                id,
                start: starts.value(i),
                end: ends.value(i),
                accumulators,
                bytes: 0,
            };
            session.bytes = session.measure();
            self.bytes += session.bytes + key.len();
            self.by_end.insert((session.end, id), key.clone());
            let list = match self.sessions.get_mut(&key) {
                Some(list) => list,
                None => {
                    self.bytes += key.len();
                    self.sessions.entry(key).or_default()
                }
            };
            list.push(session);
        }
        Ok(())
    }

    fn emit(&mut self, limit: i64, out: &mut Vec<RecordBatch>) -> Result<usize> {
        self.closed_until = self.closed_until.max(limit);
        let mut closed: Vec<(i64, i64, Box<[u8]>, Session)> = Vec::new();
        while let Some(entry) = self.by_end.first_entry() {
            if entry.key().0 > limit {
                break;
            }
            let ((_, id), key) = entry.remove_entry();
            let Some(list) = self.sessions.get_mut(&key) else {
                continue;
            };
            let Some(i) = list.iter().position(|s| s.id == id) else {
                continue;
            };
            let s = list.swap_remove(i);
            self.bytes -= s.bytes + key.len();
            if list.is_empty() {
                self.sessions.remove(&key);
                self.bytes -= key.len();
            }
            closed.push((s.end, s.start, key, s));
        }
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

    fn usage(&self) -> StateUsage {
        StateUsage {
            bytes: self.bytes,
            groups: self.sessions.len(),
            open_windows: self.by_end.len(),
        }
    }
}
