//! The `system` schema: what runs, with its counters, as tables built from a
//! [`SystemSnapshot`].
//!
//! - `system.sources (name, sql, rows_in, rejected, unknown_fields, watermark, lag_ms,
//!   status, error)`: `unknown_fields` counts ignored fields that matched no column;
//!   `lag_ms` is how far the watermark trails the wall clock (NULL before data); `status` is
//!   `running`, `retrying` (a transient error is retried with backoff, see `error`),
//!   `finished` or `failed`;
//! - `system.monitors (name, sql, source, windows, rows_out, late_rows, last_window_end,
//!   status, error, last_error, failed_at)`: `status` is `running`, `retrying` (a sink is
//!   retried), `finished` (bounded input ended) or `failed` (its plan returned an error, e.g.
//!   a crossed `max_state` / `max_groups` / `max_open_windows`: it stopped, the others keep
//!   running); `error` explains the current status, `last_error` is the most recent error
//!   even after a recovery, `failed_at` when it failed;
//! - `system.baselines (name)`;
//! - `system.missing_features (baseline, feature, null_results)`: long-form features (a
//!   per-row feature such as `features(src)`'s) that name no column of the baseline, with the
//!   number of NULL results they caused (per row for row-level functions, per window group for
//!   aggregates); the monitor keeps running;
//! - `system.checkpoints (id, restored, completed, abandoned, duration_ms, max_stall_us,
//!   max_copy_us, bytes)`: the last checkpoint written by this process and the one restored at start;
//! - `system.counters (kind, name, counter, value)`: every counter above in long form
//!   (`baseline`, name, `missing_feature_nulls`: the sum of a baseline's `null_results`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::runtime::SystemSnapshot;
use crate::sources::EVENT_TIME_TYPE;

/// Schema holding the system tables.
pub const SYSTEM_SCHEMA: &str = "system";

fn ts(ms: i64) -> Option<i64> {
    (ms != i64::MIN).then_some(ms)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn strings<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

/// Every system table as `(name, batch)`.
pub fn system_tables(
    snap: &SystemSnapshot,
    now_ms: i64,
) -> Result<Vec<(&'static str, RecordBatch)>, ArrowError> {
    let s = &snap.sources;
    let sources = batch(
        vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("sql", DataType::Utf8, false),
            Field::new("rows_in", DataType::UInt64, false),
            Field::new("rejected", DataType::UInt64, false),
            Field::new("unknown_fields", DataType::UInt64, false),
            Field::new("watermark", EVENT_TIME_TYPE, true),
            Field::new("lag_ms", DataType::Int64, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ],
        vec![
            strings(s.iter().map(|x| x.name.as_str())),
            Arc::new(StringArray::from_iter_values(
                s.iter().map(|x| driftwatch_sql::redact_secrets(&x.sql)),
            )),
            Arc::new(UInt64Array::from_iter_values(s.iter().map(|x| x.rows_in))),
            Arc::new(UInt64Array::from_iter_values(s.iter().map(|x| x.rejected))),
            Arc::new(UInt64Array::from_iter_values(
                s.iter().map(|x| x.unknown_fields),
            )),
            Arc::new(TimestampMillisecondArray::from_iter(
                s.iter().map(|x| ts(x.watermark_ms)),
            )),
            Arc::new(Int64Array::from_iter(
                s.iter().map(|x| ts(x.watermark_ms).map(|w| now_ms - w)),
            )),
            strings(s.iter().map(|x| x.status.as_str())),
            Arc::new(StringArray::from_iter(s.iter().map(|x| x.error.as_deref()))),
        ],
    )?;
    let m = &snap.monitors;
    let monitors = batch(
        vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("sql", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("windows", DataType::UInt64, false),
            Field::new("rows_out", DataType::UInt64, false),
            Field::new("late_rows", DataType::UInt64, false),
            Field::new("last_window_end", EVENT_TIME_TYPE, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
            Field::new("last_error", DataType::Utf8, true),
            Field::new("failed_at", EVENT_TIME_TYPE, true),
        ],
        vec![
            strings(m.iter().map(|x| x.name.as_str())),
            Arc::new(StringArray::from_iter_values(
                m.iter().map(|x| driftwatch_sql::redact_secrets(&x.sql)),
            )),
            strings(m.iter().map(|x| x.source.as_str())),
            Arc::new(UInt64Array::from_iter_values(m.iter().map(|x| x.windows))),
            Arc::new(UInt64Array::from_iter_values(m.iter().map(|x| x.rows_out))),
            Arc::new(UInt64Array::from_iter_values(m.iter().map(|x| x.late_rows))),
            Arc::new(TimestampMillisecondArray::from_iter(
                m.iter().map(|x| ts(x.last_window_end_ms)),
            )),
            strings(m.iter().map(|x| x.status.as_str())),
            Arc::new(StringArray::from_iter(m.iter().map(|x| x.error.as_deref()))),
            Arc::new(StringArray::from_iter(
                m.iter().map(|x| x.last_error.as_deref()),
            )),
            Arc::new(TimestampMillisecondArray::from_iter(
                m.iter().map(|x| x.failed_at_ms),
            )),
        ],
    )?;
    let c = &snap.checkpoint;
    let checkpoints = batch(
        vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("restored", DataType::UInt64, false),
            Field::new("completed", DataType::UInt64, false),
            Field::new("abandoned", DataType::UInt64, false),
            Field::new("duration_ms", DataType::UInt64, false),
            Field::new("max_stall_us", DataType::UInt64, false),
            Field::new("max_copy_us", DataType::UInt64, false),
            Field::new("bytes", DataType::UInt64, false),
        ],
        vec![
            Arc::new(UInt64Array::from(vec![c.id])),
            Arc::new(UInt64Array::from(vec![c.restored])),
            Arc::new(UInt64Array::from(vec![c.completed])),
            Arc::new(UInt64Array::from(vec![c.abandoned])),
            Arc::new(UInt64Array::from(vec![c.duration.as_millis() as u64])),
            Arc::new(UInt64Array::from(vec![c.max_stall.as_micros() as u64])),
            Arc::new(UInt64Array::from(vec![c.max_copy.as_micros() as u64])),
            Arc::new(UInt64Array::from(vec![c.bytes])),
        ],
    )?;
    let baselines = batch(
        vec![Field::new("name", DataType::Utf8, false)],
        vec![strings(snap.baselines.iter().map(String::as_str))],
    )?;
    let mf = &snap.missing_features;
    let missing_features = batch(
        vec![
            Field::new("baseline", DataType::Utf8, false),
            Field::new("feature", DataType::Utf8, false),
            Field::new("null_results", DataType::UInt64, false),
        ],
        vec![
            strings(mf.iter().map(|x| x.0.as_str())),
            strings(mf.iter().map(|x| x.1.as_str())),
            Arc::new(UInt64Array::from_iter_values(mf.iter().map(|x| x.2))),
        ],
    )?;
    let mut rows: Vec<(&str, &str, &str, i64)> = Vec::new();
    for x in s {
        rows.push(("source", &x.name, "rows_in", x.rows_in as i64));
        rows.push(("source", &x.name, "rejected", x.rejected as i64));
        rows.push(("source", &x.name, "unknown_fields", x.unknown_fields as i64));
        if let Some(w) = ts(x.watermark_ms) {
            rows.push(("source", &x.name, "watermark_ms", w));
        }
    }
    for x in m {
        rows.push(("monitor", &x.name, "windows", x.windows as i64));
        rows.push(("monitor", &x.name, "rows_out", x.rows_out as i64));
        rows.push(("monitor", &x.name, "late_rows", x.late_rows as i64));
        if let Some(w) = ts(x.last_window_end_ms) {
            rows.push(("monitor", &x.name, "last_window_end_ms", w));
        }
    }
    let mut missing_by_baseline: Vec<(&str, i64)> = Vec::new();
    for (b, _, n) in mf {
        match missing_by_baseline.last_mut() {
            Some((last, total)) if *last == b.as_str() => *total += *n as i64,
            _ => missing_by_baseline.push((b.as_str(), *n as i64)),
        }
    }
    for (b, n) in missing_by_baseline {
        rows.push(("baseline", b, "missing_feature_nulls", n));
    }
    let counters = batch(
        vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("counter", DataType::Utf8, false),
            Field::new("value", DataType::Int64, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.0)),
            strings(rows.iter().map(|r| r.1)),
            strings(rows.iter().map(|r| r.2)),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )?;
    Ok(vec![
        ("sources", sources),
        ("monitors", monitors),
        ("baselines", baselines),
        ("missing_features", missing_features),
        ("counters", counters),
        ("checkpoints", checkpoints),
    ])
}
