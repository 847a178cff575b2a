//! Streaming change detectors: `page_hinkley_stream`, `ddm_stream`, `cusum_stream` and
//! `adwin_stream(x, ts [, key [, params…]])`, whose state carries across the rows (and
//! micro-batches) of a row-level monitor, one detector per key.
//!
//! Each call site owns a [`StreamDetectors`] store shared with the engine, which snapshots
//! it at checkpoint barriers ([`StreamDetectors::snapshot`]) and restores it after a restart
//! ([`StreamDetectors::restore`]). Per row:
//!
//! - rows are taken in arrival order; a row whose event time `ts` is NULL or earlier than
//!   the last row of its key that the detector took is *skipped* (not fed, not counted,
//!   NULL result; counted in [`StreamDetectors::skipped`] and logged), so every detector
//!   sees its key's rows in event-time order (ties in arrival order);
//! - a row with a missing value (NULL / NaN) counts as a row of its key but is not fed;
//! - the detector is updated exactly as River's `update` (and as the list forms in
//!   [`crate::detect`]), resetting on the value after a detection, so each change is
//!   reported once: on the detecting row the result is the struct `{position, row,
//!   event_time, detection}`, NULL on every other row.
//!
//! At most [`MAX_KEYS`] keys are kept per detector; a new key beyond that evicts the
//! least recently updated tenth (logged, counted in [`StreamDetectors::evicted`]); an
//! evicted key that returns starts afresh.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Float64Type, Int64Type, Schema, UInt64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{Config, Kind};
use crate::math::adwin::AdwinState;
use crate::math::detectors::{CusumState, DdmState, PageHinkleyState};

/// Keys kept per streaming detector (see the module docs for the eviction rule).
pub const MAX_KEYS: usize = 10_000;

/// Names of the streaming detector functions.
pub const STREAM_FUNCTIONS: [&str; 4] = [
    "page_hinkley_stream",
    "ddm_stream",
    "cusum_stream",
    "adwin_stream",
];

const KINDS: [Kind; 4] = [Kind::PageHinkley, Kind::Ddm, Kind::Cusum, Kind::Adwin];

/// A detector's state: typed once its parameters are known, raw numbers when restored from
/// a checkpoint and not used since.
#[derive(Debug, Clone)]
enum Det {
    Raw(Vec<f64>),
    PageHinkley(PageHinkleyState),
    Ddm(DdmState),
    Cusum(CusumState),
    Adwin(Box<AdwinState>),
}

impl Det {
    fn fresh(cfg: &Config) -> Self {
        match cfg {
            Config::PageHinkley(_) => Det::PageHinkley(PageHinkleyState::default()),
            Config::Ddm(_) => Det::Ddm(DdmState::default()),
            Config::Cusum(_) => Det::Cusum(CusumState::default()),
            Config::Adwin(p) => Det::Adwin(Box::new(AdwinState::new(p))),
        }
    }

    fn values(&self) -> Vec<f64> {
        match self {
            Det::Raw(v) => v.clone(),
            Det::PageHinkley(s) => s.to_values(),
            Det::Ddm(s) => s.to_values(),
            Det::Cusum(s) => s.to_values(),
            Det::Adwin(s) => s.to_values(),
        }
    }

    /// Feeds `x`; a restored raw state is read back first.
    fn update(&mut self, x: f64, cfg: &Config) -> Result<bool> {
        if let Det::Raw(v) = self {
            let typed = match cfg {
                Config::PageHinkley(_) => PageHinkleyState::from_values(v).map(Det::PageHinkley),
                Config::Ddm(_) => DdmState::from_values(v).map(Det::Ddm),
                Config::Cusum(_) => CusumState::from_values(v).map(Det::Cusum),
                Config::Adwin(p) => AdwinState::from_values(v, p).map(|s| Det::Adwin(s.into())),
            };
            match typed {
                Some(t) => *self = t,
                None => {
                    return exec_err!(
                        "checkpointed detector state does not fit this detector ({} numbers)",
                        v.len()
                    )
                }
            }
        }
        Ok(match (self, cfg) {
            (Det::PageHinkley(s), Config::PageHinkley(p)) => s.update(x, p),
            (Det::Ddm(s), Config::Ddm(p)) => s.update(x, p),
            (Det::Cusum(s), Config::Cusum(p)) => s.update(x, p),
            (Det::Adwin(s), Config::Adwin(_)) => s.update(x),
            _ => return exec_err!("detector state of another kind"),
        })
    }
}

/// One key's detector and its counters.
#[derive(Debug, Clone)]
struct KeyState {
    /// Rows of the key taken so far (missing values included): the list forms' position.
    rows: i64,
    /// Values fed since the detector last reset (River's sample count).
    since_reset: i64,
    /// Changes reported so far.
    detections: i64,
    /// The previous value signalled a change: the detector resets before the next one.
    reset_pending: bool,
    /// Event time of the last row taken.
    last_ts: Option<i64>,
    /// Arrival sequence number of the last row taken (for eviction).
    seq: u64,
    det: Det,
}

/// The keys of one detector function.
#[derive(Debug, Default)]
struct Slot {
    keyed: HashMap<String, KeyState>,
    /// Rows without a key (no key argument, or a NULL key).
    unkeyed: Option<KeyState>,
    seq: u64,
    warned_skip: bool,
}

impl Slot {
    fn len(&self) -> usize {
        self.keyed.len() + usize::from(self.unkeyed.is_some())
    }

    /// Drops the least recently updated tenth of the keys.
    fn evict(&mut self, name: &str) -> u64 {
        let mut seqs: Vec<u64> = self.keyed.values().map(|k| k.seq).collect();
        seqs.extend(self.unkeyed.as_ref().map(|k| k.seq));
        seqs.sort_unstable();
        let n = (seqs.len() / 10).max(1);
        let cutoff = seqs[n - 1];
        self.keyed.retain(|_, k| k.seq > cutoff);
        if self.unkeyed.as_ref().is_some_and(|k| k.seq <= cutoff) {
            self.unkeyed = None;
        }
        tracing::warn!(
            detector = name,
            evicted = n,
            limit = MAX_KEYS,
            "streaming detector key limit reached: least recently updated keys dropped"
        );
        n as u64
    }
}

/// The state of every streaming detector of one monitor plan, shared by its functions and
/// the engine operator that checkpoints it.
#[derive(Debug, Default)]
pub struct StreamDetectors {
    slots: Mutex<BTreeMap<String, Slot>>,
    skipped: AtomicU64,
    evicted: AtomicU64,
}

fn snapshot_schema() -> Schema {
    Schema::new(vec![
        Field::new("_detector", DataType::Utf8, false),
        Field::new("_key", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, false),
        Field::new("since_reset", DataType::Int64, false),
        Field::new("detections", DataType::Int64, false),
        Field::new("reset_pending", DataType::Boolean, false),
        Field::new("last_ts", DataType::Int64, true),
        Field::new("seq", DataType::UInt64, false),
        Field::new(
            "state",
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            false,
        ),
    ])
}

impl StreamDetectors {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rows skipped so far (NULL or out-of-order event time).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Keys evicted so far (key limit).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Keys held, over every detector.
    pub fn keys(&self) -> usize {
        self.lock().values().map(Slot::len).sum()
    }

    /// The state of every detector and key, one row per (detector, key); `None` when empty.
    pub fn snapshot(&self) -> Result<Option<RecordBatch>> {
        let slots = self.lock();
        let mut det = Vec::new();
        let mut key: Vec<Option<&str>> = Vec::new();
        let (mut rows, mut since, mut dets, mut pending, mut last, mut seq) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let mut lens = Vec::new();
        let mut values: Vec<f64> = Vec::new();
        for (name, slot) in slots.iter() {
            let keyed = slot.keyed.iter().map(|(k, s)| (Some(k.as_str()), s));
            for (k, s) in keyed.chain(slot.unkeyed.iter().map(|s| (None, s))) {
                det.push(name.as_str());
                key.push(k);
                rows.push(s.rows);
                since.push(s.since_reset);
                dets.push(s.detections);
                pending.push(s.reset_pending);
                last.push(s.last_ts);
                seq.push(s.seq);
                let v = s.det.values();
                lens.push(v.len());
                values.extend(v);
            }
        }
        if det.is_empty() {
            return Ok(None);
        }
        let state = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::from_lengths(lens),
            Arc::new(Float64Array::from(values)),
            None,
        );
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(det)),
            Arc::new(StringArray::from(key)),
            Arc::new(Int64Array::from(rows)),
            Arc::new(Int64Array::from(since)),
            Arc::new(Int64Array::from(dets)),
            Arc::new(BooleanArray::from(pending)),
            Arc::new(Int64Array::from(last)),
            Arc::new(UInt64Array::from(seq)),
            Arc::new(state),
        ];
        Ok(Some(RecordBatch::try_new(
            Arc::new(snapshot_schema()),
            columns,
        )?))
    }

    /// Replaces the state with a [`Self::snapshot`].
    pub fn restore(&self, batch: &RecordBatch) -> Result<()> {
        let want = snapshot_schema();
        let fits = batch.num_columns() == want.fields().len()
            && batch
                .schema()
                .fields()
                .iter()
                .zip(want.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !fits {
            return exec_err!(
                "checkpointed state is not streaming-detector state (columns {:?})",
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
            );
        }
        let c = |i: usize| batch.column(i);
        let det = c(0).as_string::<i32>();
        let key = c(1).as_string::<i32>();
        let rows = c(2).as_primitive::<Int64Type>();
        let since = c(3).as_primitive::<Int64Type>();
        let dets = c(4).as_primitive::<Int64Type>();
        let pending = c(5).as_boolean();
        let last = c(6).as_primitive::<Int64Type>();
        let seq = c(7).as_primitive::<UInt64Type>();
        let state = c(8).as_list::<i32>();
        let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
        for i in 0..batch.num_rows() {
            let name = det.value(i);
            if !STREAM_FUNCTIONS.contains(&name) {
                return exec_err!("checkpointed state of an unknown detector '{name}'");
            }
            let values = state.value(i);
            let s = KeyState {
                rows: rows.value(i),
                since_reset: since.value(i),
                detections: dets.value(i),
                reset_pending: pending.value(i),
                last_ts: last.is_valid(i).then(|| last.value(i)),
                seq: seq.value(i),
                det: Det::Raw(values.as_primitive::<Float64Type>().values().to_vec()),
            };
            let slot = slots.entry(name.to_string()).or_default();
            slot.seq = slot.seq.max(s.seq);
            if key.is_valid(i) {
                slot.keyed.insert(key.value(i).to_string(), s);
            } else {
                slot.unkeyed = Some(s);
            }
        }
        *self.lock() = slots;
        Ok(())
    }
}

/// A streaming change detector bound to its plan's [`StreamDetectors`].
#[derive(Debug)]
pub struct StreamDetectorUdf {
    kind: Kind,
    name: &'static str,
    store: Arc<StreamDetectors>,
    signature: Signature,
}

impl PartialEq for StreamDetectorUdf {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.store, &other.store)
    }
}
impl Eq for StreamDetectorUdf {}
impl Hash for StreamDetectorUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        (Arc::as_ptr(&self.store) as usize).hash(state);
    }
}

/// The result fields; each is NULL where the struct is (so `change['row']` is NULL on rows
/// without a detection).
fn out_fields(ts: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("position", DataType::Int64, true),
        Field::new("row", DataType::Int64, true),
        Field::new("event_time", ts.clone(), true),
        Field::new("detection", DataType::Int64, true),
    ])
}

fn is_time(d: &DataType) -> bool {
    matches!(d, DataType::Timestamp(..)) || d.is_integer()
}

impl ScalarUDFImpl for StreamDetectorUdf {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let key_ok = |d: &DataType| {
            d.is_null()
                || d.is_numeric()
                || matches!(
                    d,
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Boolean
                        | DataType::Date32
                        | DataType::Date64
                        | DataType::Timestamp(..)
                        | DataType::Dictionary(..)
                )
        };
        let ok = (2..=3 + self.kind.max_params()).contains(&t.len())
            && (t[0].is_numeric() || t[0].is_null())
            && is_time(&t[1])
            && t.get(2).is_none_or(key_ok)
            && t.iter().skip(3).all(|d| d.is_numeric() || d.is_null());
        if !ok {
            return plan_err!(
                "{} expects (value, event time [, key [, up to {} numeric parameters]]), \
                 got {t:?}; pass NULL as the key to give parameters to a single stream",
                self.name,
                self.kind.max_params()
            );
        }
        let mut out = vec![DataType::Float64, t[1].clone()];
        if t[1].is_integer() {
            out[1] = DataType::Int64;
        }
        if let Some(k) = t.get(2) {
            out.push(if k.is_null() {
                DataType::Utf8
            } else {
                k.clone()
            });
        }
        out.extend(t.iter().skip(3).map(|_| DataType::Float64));
        Ok(out)
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(out_fields(&arg_types[1])))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let mut params = Vec::new();
        for (i, a) in args.args.iter().enumerate().skip(3) {
            match a {
                ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Float64)? {
                    ScalarValue::Float64(Some(v)) => params.push(v),
                    _ => params.push(f64::NAN),
                },
                ColumnarValue::Array(_) => {
                    return plan_err!("{}: parameter {} must be a constant", self.name, i + 1)
                }
            }
        }
        let cfg = self.kind.config(&params)?;
        let x = cast(&args.args[0].to_array(n)?, &DataType::Float64)?;
        let x = x.as_primitive::<Float64Type>();
        let ts_type = args.args[1].data_type();
        let ts = cast(&args.args[1].to_array(n)?, &DataType::Int64)?;
        let ts = ts.as_primitive::<Int64Type>();
        let key = match args.args.get(2) {
            Some(k) => Some(cast(&k.to_array(n)?, &DataType::Utf8)?),
            None => None,
        };
        let key = key.as_ref().map(|k| k.as_string::<i32>());
        let mut valid = vec![false; n];
        let (mut position, mut row, mut time, mut detection) =
            (vec![0i64; n], vec![0i64; n], vec![0i64; n], vec![0i64; n]);
        let mut skipped = 0u64;
        let mut evicted = 0u64;
        {
            let mut slots = self.store.lock();
            let slot = slots.entry(self.name.to_string()).or_default();
            for i in 0..n {
                let k = key.and_then(|k| k.is_valid(i).then(|| k.value(i)));
                let Some(t) = ts.is_valid(i).then(|| ts.value(i)) else {
                    skipped += 1;
                    continue;
                };
                let known = match k {
                    Some(k) => slot.keyed.contains_key(k),
                    None => slot.unkeyed.is_some(),
                };
                if !known && slot.len() >= MAX_KEYS {
                    evicted += slot.evict(self.name);
                }
                slot.seq += 1;
                let seq = slot.seq;
                let fresh = || KeyState {
                    rows: 0,
                    since_reset: 0,
                    detections: 0,
                    reset_pending: false,
                    last_ts: None,
                    seq,
                    det: Det::fresh(&cfg),
                };
                let s = match k {
                    Some(k) => {
                        if !known {
                            slot.keyed.insert(k.to_string(), fresh());
                        }
                        slot.keyed.get_mut(k).expect("the key was just inserted")
                    }
                    None => slot.unkeyed.get_or_insert_with(fresh),
                };
                if s.last_ts.is_some_and(|last| t < last) {
                    skipped += 1;
                    continue;
                }
                s.last_ts = Some(t);
                s.seq = seq;
                s.rows += 1;
                let Some(v) = x.is_valid(i).then(|| x.value(i)).filter(|v| !v.is_nan()) else {
                    continue;
                };
                if s.reset_pending {
                    s.since_reset = 0;
                    s.reset_pending = false;
                }
                s.since_reset += 1;
                if s.det.update(v, &cfg)? {
                    s.detections += 1;
                    s.reset_pending = true;
                    valid[i] = true;
                    position[i] = s.since_reset;
                    row[i] = s.rows;
                    time[i] = t;
                    detection[i] = s.detections;
                }
            }
            if skipped > 0 && !slot.warned_skip {
                slot.warned_skip = true;
                tracing::warn!(
                    detector = self.name,
                    skipped,
                    "rows with a NULL or out-of-order event time skipped by a streaming \
                     detector (each key is detected in event-time order)"
                );
            }
        }
        self.store.skipped.fetch_add(skipped, Ordering::Relaxed);
        self.store.evicted.fetch_add(evicted, Ordering::Relaxed);
        let nulls = NullBuffer::from(valid);
        let int = |v: Vec<i64>| Int64Array::new(v.into(), Some(nulls.clone()));
        let time = cast(&int(time), &ts_type)?;
        let out = StructArray::try_new(
            out_fields(&ts_type),
            vec![
                Arc::new(int(position)),
                Arc::new(int(row)),
                time,
                Arc::new(int(detection)),
            ],
            Some(nulls.clone()),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The streaming detector functions of one plan, sharing `store`.
pub fn stream_detector_functions(store: &Arc<StreamDetectors>) -> Vec<ScalarUDF> {
    KINDS
        .into_iter()
        .zip(STREAM_FUNCTIONS)
        .map(|(kind, name)| {
            ScalarUDF::new_from_impl(StreamDetectorUdf {
                kind,
                name,
                store: Arc::clone(store),
                signature: Signature::user_defined(Volatility::Volatile),
            })
        })
        .collect()
}
