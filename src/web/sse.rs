//! New results as server-sent events: `GET /api/events` (every monitor; the page opens one
//! stream, browsers allow few connections per host) and `GET /api/monitors/{name}/events`.
//!
//! Events, each `data` one line of JSON:
//! - `hello` `{"now_ms": …}` once, when the stream is subscribed;
//! - `result` `{"monitor": "…", "rows": [{…}]}`: one emitted batch, new rows only (first the
//!   recent ones of [`super::live`], which the page may already have from the store: it
//!   drops rows it has);
//! - `lagged` `{"skipped": n}`: the client read too slowly and `n` batches were dropped
//!   (the page reloads the history).
//!
//! At most [`MAX_STREAMS`] streams are open at once (503 beyond); a stream ends when the
//! system stops.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::WebState;
use crate::runtime::MonitorResult;

/// Most event streams open at once.
pub const MAX_STREAMS: usize = 64;

/// The `result` event of one batch (`None` if it cannot be encoded; logged).
pub fn result_event(result: &MonitorResult) -> Option<Event> {
    match super::json::monitor_rows(&result.monitor, std::slice::from_ref(&result.batch)) {
        Ok(body) => Some(
            Event::default()
                .event("result")
                .data(String::from_utf8_lossy(&body)),
        ),
        Err(e) => {
            tracing::warn!(monitor = %result.monitor, error = %e, "live page: result not encoded");
            None
        }
    }
}

struct Follow {
    rx: broadcast::Receiver<MonitorResult>,
    monitor: Option<String>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

/// The events for `monitor` (every monitor when `None`): hello, the recent tail, then live.
pub fn events(
    state: &WebState,
    monitor: Option<String>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    // Subscribe before taking the tail: a batch in between is sent twice, never missed.
    let rx = state.live.subscribe();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut head = vec![Event::default()
        .event("hello")
        .data(format!("{{\"now_ms\":{now_ms}}}"))];
    head.extend(
        state
            .live
            .tail(monitor.as_deref())
            .iter()
            .filter_map(result_event),
    );
    let follow = Follow {
        rx,
        monitor,
        stop: state.stop.clone(),
        _permit: permit,
    };
    let live = stream::unfold(follow, |mut f| async move {
        loop {
            let next = tokio::select! {
                r = f.rx.recv() => r,
                () = f.stop.cancelled() => return None,
            };
            match next {
                Ok(r) => {
                    if f.monitor.as_ref().is_some_and(|m| *m != r.monitor) {
                        continue;
                    }
                    if let Some(e) = result_event(&r) {
                        return Some((Ok(e), f));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let e = Event::default()
                        .event("lagged")
                        .data(format!("{{\"skipped\":{n}}}"));
                    return Some((Ok(e), f));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    stream::iter(head.into_iter().map(Ok)).chain(live)
}

fn open(state: &Arc<WebState>, monitor: Option<String>) -> Response {
    let Ok(permit) = Arc::clone(&state.streams).try_acquire_owned() else {
        return super::api::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams open (at most {MAX_STREAMS}); retry later"),
        );
    };
    Sse::new(events(state, monitor, permit))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /api/events`: every monitor's new results.
pub async fn all_events(State(state): State<Arc<WebState>>) -> Response {
    open(&state, None)
}

/// `GET /api/monitors/{name}/events`: one monitor's new results (404 if unknown).
pub async fn monitor_events(
    State(state): State<Arc<WebState>>,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = super::api::known_monitor(&state, &name) {
        return *r;
    }
    open(&state, Some(name))
}
