//! The operations routes, merged into the HTTP server on the HTTP port:
//!
//! - `GET /metrics`: Prometheus text format ([`super::prometheus`]); with
//!   [`OpsSettings::metrics_auth`](super::OpsSettings::metrics_auth) and an auth file it
//!   needs `authorization: Bearer <token>` of any user of the file (any role), else 401;
//! - `GET /health` and its alias `GET /healthz`: 200 `{"live": true, …}` while the process
//!   and its control loop run, 503 when the loop stalled ([`super::health`]);
//! - `GET /ready`: 200 `{"ready": true, …}` when sources are connected and state restored,
//!   503 with `not_ready` listing what is missing otherwise.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use driftwatch_flight::Authenticator;

use super::Ops;

#[derive(Clone)]
struct OpsState {
    ops: Arc<Ops>,
    auth: Option<Arc<Authenticator>>,
}

/// The operations routes over `ops`; `auth` checks `/metrics` tokens when
/// `metrics_auth` is set.
pub fn router(ops: Arc<Ops>, auth: Option<Arc<Authenticator>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/ready", get(ready))
        .with_state(OpsState { ops, auth })
}

async fn metrics(State(state): State<OpsState>, headers: HeaderMap) -> Response {
    if let (true, Some(auth)) = (state.ops.settings().metrics_auth, &state.auth) {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(e) = auth.check(token) {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                format!("/metrics needs a bearer token (--metrics-auth): {e}\n"),
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"driftwatch-metrics\""),
            );
            return r;
        }
    }
    match super::prometheus::render(&state.ops) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(super::prometheus::CONTENT_TYPE),
            )],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed (this is a bug)\n",
        )
            .into_response(),
    }
}

async fn health(State(state): State<OpsState>) -> Response {
    let live = state.ops.liveness();
    let status = if live.live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(live)).into_response()
}

async fn ready(State(state): State<OpsState>) -> Response {
    let ready = state.ops.readiness();
    let status = if ready.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ready)).into_response()
}
