//! The live page: a web console served by `driftwatch run` and `demo` on the HTTP port
//! (default <http://127.0.0.1:8080/>), next to `/ingest`, `/metrics` and `/health`.
//!
//! - `GET /`: the page ([`assets`]: HTML, JS, CSS and the vendored uPlot, all bundled in
//!   the binary; nothing is fetched from elsewhere);
//! - `GET /api/monitors`: every monitor with its status and counters (the figures of
//!   `system.monitors`) and the roles of its result columns ([`crate::present::ResultShape`]);
//! - `GET /api/monitors/{name}/results?since=&limit=`: stored results ([`api`]);
//! - `GET /api/events`, `GET /api/monitors/{name}/events`: new results as server-sent
//!   events ([`sse`]);
//! - `GET /api/baselines/{name}/{feature}`: a baseline column's bins and statistics;
//! - `GET|POST /login`, `POST /logout`: the session cookie when the HTTP side has an auth
//!   file ([`auth`]).
//!
//! The routes are handed to the HTTP server by [`install`] before the system starts
//! (`sources` knows nothing of this module: it merges a router it is given).

pub mod api;
pub mod assets;
pub mod auth;
pub mod json;
pub mod live;
pub mod sse;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use driftwatch_udfs::BaselineRegistry;
use tokio_util::sync::CancellationToken;

use crate::ops::Ops;
use crate::runtime::{ControlHandle, Driftwatch};
use crate::sinks::ResultStore;

/// What the page's handlers share.
pub struct WebState {
    /// Stored results (history of the charts).
    pub store: ResultStore,
    /// Baselines (bins of the histograms).
    pub baselines: Arc<BaselineRegistry>,
    /// Counters of sources and monitors (lock-free, no round trip to the control loop).
    pub ops: Arc<Ops>,
    /// SQL text and status of monitors (the control loop's snapshot).
    pub control: ControlHandle,
    /// Recent results and result schemas, and the live stream.
    pub live: Arc<live::Live>,
    /// Credentials and sessions; `None`: the page is open (as `/ingest` is).
    pub auth: Option<auth::WebAuth>,
    /// Cancelled when the system stops: event streams end.
    pub stop: CancellationToken,
    /// Permits of open event streams ([`sse::MAX_STREAMS`]).
    pub streams: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("store", &self.store.root())
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// Adds the live page's routes to `system`'s HTTP server; call after `Driftwatch::open`
/// and before `start` (needs a tokio runtime: it starts the task that follows results).
pub fn install(system: &Driftwatch) {
    let state = Arc::new(state_of(system));
    system.http().add_routes(router(state));
}

/// The page's state for `system`.
pub fn state_of(system: &Driftwatch) -> WebState {
    let settings = system.http().settings();
    WebState {
        store: system.store().clone(),
        baselines: Arc::clone(system.baselines()),
        ops: Arc::clone(system.ops()),
        control: system.control(),
        live: live::Live::start(system.subscribe_results()),
        auth: settings
            .auth
            .clone()
            .map(|a| auth::WebAuth::new(a, settings.tls.is_some())),
        stop: system.shutdown_token(),
        streams: Arc::new(tokio::sync::Semaphore::new(sse::MAX_STREAMS)),
    }
}

/// The page's routes over `state`: the API behind the credential check, the login routes
/// and the static assets open.
pub fn router(state: Arc<WebState>) -> Router {
    let guarded = Router::new()
        .route("/", get(assets::index))
        .route("/index.html", get(assets::index))
        .route("/api/monitors", get(api::monitors))
        .route("/api/monitors/{name}/results", get(api::results))
        .route("/api/monitors/{name}/events", get(sse::monitor_events))
        .route("/api/events", get(sse::all_events))
        .route("/api/baselines/{name}/{feature}", get(api::baseline))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require,
        ));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{file}", get(assets::asset))
        .merge(guarded)
        .with_state(state)
}
