//! The page's JSON API (also for scripts):
//!
//! - `GET /api/monitors`: `{"now_ms", "monitors": [{name, source, status, error, windows,
//!   rows_out, rows_in, late_rows, last_window_end_ms, watermark_ms, lag_ms, baseline, shape}]}`
//!   — the figures of `system.monitors` / `system.sources`; `alerts`: its SQL has `WHERE` or
//!   `HAVING` (each row is an alert); `shape` is the roles of the result
//!   columns ([`ResultShape`], `null` before the first result); `baseline` the baseline the
//!   monitor's `histogram(…)` (else first quoted baseline name) reads;
//! - `GET /api/monitors/{name}/results?since=&limit=`: stored rows after `since` (epoch ms or
//!   RFC 3339; on the window end, or the event time of row-level monitors), the newest
//!   `limit` (default [`DEFAULT_LIMIT`], capped at [`MAX_LIMIT`]) in time order, timestamps
//!   as epoch ms: `{"monitor", "limit", "rows": […]}`;
//! - `GET /api/baselines/{name}/{feature}`: the bins and statistics of a baseline column.
//!
//! Unknown names answer 404 naming the known ones; bad parameters 400 saying which.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use datafusion::datasource::TableProvider;
use datafusion::prelude::{cast, col, lit, SessionContext};
use datafusion::scalar::ScalarValue;
use driftwatch_udfs::baseline::ColumnProfile;
use serde_json::json;

use super::WebState;
use crate::present::{definition, ResultShape, TimeColumns};
use crate::sinks::store::StoreTable;

/// Rows answered when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 500;
/// Most rows one answer holds (a larger `limit` is capped).
pub const MAX_LIMIT: usize = 5000;
/// How long `/api/monitors` waits for the control loop's snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn ms(v: i64) -> Option<i64> {
    (v != i64::MIN).then_some(v)
}

/// The result schema of `monitor`: from its last live result, else its stored table.
async fn schema_of(state: &WebState, monitor: &str) -> Option<SchemaRef> {
    if let Some(s) = state.live.schema(monitor) {
        return Some(s);
    }
    match StoreTable::open(&state.store, monitor).await {
        Ok(Some(t)) => Some(t.schema()),
        _ => None,
    }
}

/// The baseline a monitor reads: the one of its `histogram(…)` column, else the first baseline
/// it names.
fn baseline_of(sql: &str, shape: Option<&ResultShape>, baselines: &[String]) -> Option<String> {
    shape
        .and_then(|s| s.histogram.as_deref())
        .and_then(|column| definition::histogram_baseline(sql, column))
        .and_then(|name| {
            baselines
                .iter()
                .find(|b| b.eq_ignore_ascii_case(&name))
                .cloned()
        })
        .or_else(|| definition::first_baseline(sql, baselines))
}

/// `GET /api/monitors`.
pub async fn monitors(State(state): State<Arc<WebState>>) -> Response {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let sources: HashMap<String, _> = state.ops.source_list().into_iter().collect();
    let sql: HashMap<String, String> =
        match tokio::time::timeout(SNAPSHOT_TIMEOUT, state.control.snapshot()).await {
            Ok(Ok(snap)) => snap.monitors.into_iter().map(|m| (m.name, m.sql)).collect(),
            _ => HashMap::new(),
        };
    let baselines = state.baselines.names();
    let mut out = Vec::new();
    for (name, m) in state.ops.monitor_list() {
        let source = sources.get(&m.source);
        let watermark = source.and_then(|s| ms(s.watermark()));
        let shape = schema_of(&state, &name).await.map(|s| ResultShape::of(&s));
        let metrics = &m.metrics;
        out.push(json!({
            "name": name,
            "source": m.source,
            "status": metrics.health.health().as_str(),
            "error": metrics.health.error(),
            "windows": metrics.total_windows(),
            "rows_out": metrics.total_rows_out(),
            "late_rows": metrics.total_late(),
            "last_window_end_ms": ms(metrics.last_window_end()),
            "rows_in": source.map(|s| s.total_rows()),
            "watermark_ms": watermark,
            "lag_ms": watermark.map(|w| now_ms - w),
            "baseline": sql.get(&name).and_then(|s| baseline_of(s, shape.as_ref(), &baselines)),
            "alerts": sql.get(&name).is_some_and(|s| definition::filters_rows(s)),
            "shape": shape,
        }));
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "now_ms": now_ms, "monitors": out })),
    )
        .into_response()
}

/// Checks that `name` is a running monitor; the error is the 404 answer.
pub(super) fn known_monitor(state: &WebState, name: &str) -> Result<(), Box<Response>> {
    let names: Vec<String> = state
        .ops
        .monitor_list()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if names.iter().any(|n| n == name) {
        return Ok(());
    }
    let known = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    Err(Box::new(error(
        StatusCode::NOT_FOUND,
        format!("unknown monitor '{name}' (monitors: {known})"),
    )))
}

/// Parameters of `/results`.
#[derive(Debug, serde::Deserialize)]
pub struct ResultsQuery {
    since: Option<String>,
    limit: Option<String>,
}

/// Parses `since`: epoch milliseconds or an RFC 3339 time.
pub fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(v) = text.parse::<i64>() {
        return Ok(v);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!("bad 'since' {text:?}: expected epoch milliseconds or an RFC 3339 time ({e})")
        })
}

/// Parses `limit`: 1 or more, capped at [`MAX_LIMIT`].
pub fn parse_limit(text: Option<&str>) -> Result<usize, String> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("bad 'limit' {text:?}: expected a positive integer")),
        Ok(n) => Ok((n.min(MAX_LIMIT as u64)) as usize),
    }
}

/// `GET /api/monitors/{name}/results`.
pub async fn results(
    State(state): State<Arc<WebState>>,
    Path(name): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Response {
    if let Err(r) = known_monitor(&state, &name) {
        return *r;
    }
    let since = match q.since.as_deref().map(parse_since).transpose() {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let limit = match parse_limit(q.limit.as_deref()) {
        Ok(l) => l,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let batches = match stored_rows(&state, &name, since, limit).await {
        Ok(b) => b,
        Err(StoredError::NoTime) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("monitor '{name}' has no time column: 'since' cannot apply"),
            )
        }
        Err(StoredError::Query(m)) => {
            tracing::warn!(monitor = %name, error = %m, "live page: reading results failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading results: {m}"),
            );
        }
    };
    let mut body = Vec::new();
    body.extend_from_slice(format!("{{\"limit\":{limit},\"monitor\":").as_bytes());
    body.extend_from_slice(&serde_json::to_vec(&name).unwrap_or_default());
    body.extend_from_slice(b",\"rows\":");
    if let Err(e) = super::json::write_rows(&mut body, &batches) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    body.push(b'}');
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

enum StoredError {
    NoTime,
    Query(String),
}

/// The newest `limit` stored rows of `monitor` after `since`, in time order.
async fn stored_rows(
    state: &WebState,
    monitor: &str,
    since: Option<i64>,
    limit: usize,
) -> Result<Vec<RecordBatch>, StoredError> {
    let q = |e: datafusion::error::DataFusionError| StoredError::Query(e.to_string());
    let Some(table) = StoreTable::open(&state.store, monitor).await.map_err(q)? else {
        return Ok(Vec::new());
    };
    let schema = table.schema();
    let shape = ResultShape::of(&schema);
    let time = match &shape.time {
        TimeColumns::Window { end, .. } => Some(end.clone()),
        TimeColumns::Event { column } => Some(column.clone()),
        TimeColumns::None => None,
    };
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table)).map_err(q)?;
    let mut df = ctx.table("t").await.map_err(q)?;
    match (&time, since) {
        (None, Some(_)) => return Err(StoredError::NoTime),
        (Some(t), since) => {
            if let Some(since) = since {
                let ty = schema
                    .field_with_name(t)
                    .map(|f| f.data_type().clone())
                    .unwrap_or(DataType::Timestamp(TimeUnit::Millisecond, None));
                let bound = cast(
                    lit(ScalarValue::TimestampMillisecond(Some(since), None)),
                    ty,
                );
                df = df.filter(col(quoted(t)).gt(bound)).map_err(q)?;
            }
            df = df.sort(vec![col(quoted(t)).sort(false, true)]).map_err(q)?;
        }
        (None, None) => {}
    }
    let batches = df
        .limit(0, Some(limit))
        .map_err(q)?
        .collect()
        .await
        .map_err(q)?;
    if batches.is_empty() {
        return Ok(batches);
    }
    // Newest first from the query; the page wants time order.
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches)
        .map_err(|e| StoredError::Query(e.to_string()))?;
    let reversed = arrow::array::UInt32Array::from_iter_values((0..all.num_rows() as u32).rev());
    let columns = all
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, &reversed, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoredError::Query(e.to_string()))?;
    let out = RecordBatch::try_new(all.schema(), columns)
        .map_err(|e| StoredError::Query(e.to_string()))?;
    Ok(vec![out])
}

/// A column name as DataFusion's `col` reads it verbatim (case kept).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `GET /api/baselines/{name}/{feature}`.
pub async fn baseline(
    State(state): State<Arc<WebState>>,
    Path((name, feature)): Path<(String, String)>,
) -> Response {
    let Some(profile) = state.baselines.get(&name) else {
        let mut known = state.baselines.names();
        known.sort();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown baseline '{name}' (baselines: {known})"),
        );
    };
    let body = match profile.column(&feature) {
        Some(ColumnProfile::Numeric(p)) => json!({
            "baseline": profile.name,
            "feature": feature,
            "kind": "numeric",
            "count": p.count,
            "mean": p.mean,
            "std": p.std,
            "min": p.min,
            "max": p.max,
            "quantiles": p.quantiles,
            "bin_edges": p.bin_edges,
            "bin_counts": p.bin_counts,
        }),
        Some(ColumnProfile::Categorical(p)) => json!({
            "baseline": profile.name,
            "feature": feature,
            "kind": "categorical",
            "rows": p.rows,
            "frequencies": p.frequencies,
        }),
        None => {
            let columns: Vec<&str> = profile.columns.iter().map(|(c, _)| c.as_str()).collect();
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "baseline '{name}' has no column '{feature}' (columns: {})",
                    columns.join(", ")
                ),
            );
        }
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_limit_are_validated() {
        assert_eq!(parse_since("1000"), Ok(1000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(parse_since("yesterday").unwrap_err().contains("since"));
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("10")), Ok(10));
        assert_eq!(parse_limit(Some("999999999")), Ok(MAX_LIMIT));
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("-1")).is_err());
    }
}
