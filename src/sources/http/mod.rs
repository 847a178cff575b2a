//! The embedded HTTP ingest (`connector = 'http'`): one axum server shared by every HTTP
//! source. Model servers (or the KServe logger) POST inference logs; the answer is 200 only
//! once the rows are in the engine, so a client that got 200 knows nothing is lost.
//!
//! Routes:
//! - `POST /ingest/{source}`: rows for one source;
//! - `POST /`: rows for the only registered HTTP source (KServe logger `url` setting);
//! - `GET /metrics`, `GET /health` (alias `/healthz`), `GET /ready`: the operations
//!   endpoints of [`crate::ops`], served on this port whether or not an HTTP source exists.
//!
//! Who may post, body size, concurrency and time limits: [`settings`]. Accepted content
//! types and encodings (gzip, deflate, zstd, decoded under the body limit), 415 and 413:
//! [`body`]. Source options (`log_type`, `wal_sync`, `strict`): [`options`].
//!
//! Bodies are decoded by [`decode_http_body`] (envelopes, CloudEvents, KServe v1/v2, plain
//! rows). A body is taken whole or not at all: any bad instance or line answers 400 with a
//! message saying what and where, and the raw body is dead-lettered. All HTTP sources use
//! partition 0.
//!
//! Fields that match no column: a `strict = 'true'` source answers 400 naming the first
//! (where it was, the columns, the closest one) and stores nothing of the body; otherwise
//! they are ignored, counted in the source's `unknown_fields` counter (`system.sources`)
//! and logged once per field name. An envelope without a payload is refused in both modes.
//!
//! What a 2xx means: with checkpoints on (the default) the rows are in the source's
//! write-ahead log on disk ([`ingest_log`]) and in the engine; after a crash they are
//! replayed from the log, so every row answered 2xx is counted exactly once. A source with
//! no running monitor answers 503: nothing would process the rows. (A request that got no
//! answer — the connection broke — may or may not have been stored; clients that retry it
//! can count it twice.)

pub mod body;
pub mod ingest_log;
pub mod options;
pub mod settings;

pub use ingest_log::{IngestLog, SyncPolicy, WAL_DIR};
pub use options::{HttpSourceOptions, DEFAULT_WAL_SYNC_INTERVAL, HTTP_OPTIONS};
pub use settings::{HttpSettings, DEFAULT_BODY_LIMIT};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::connector::{Connector, ConnectorError, ConnectorSpec};
use super::decode::{decode_http_body, DecodedBody, HttpDecodeOptions, UnknownFields};
use super::feed::SourceFeed;
use super::position::SourcePosition;
use super::rejected::{PartitionId, RejectedRecord, MAX_RAW_LEN};
use crate::ops::Ops;
use crate::wal::WalEntry;

/// Bodies larger than this are decoded on a blocking thread.
const INLINE_DECODE_LIMIT: usize = 256 * 1024;

/// Distinct unknown field names logged per source; past this, one last warning says so.
const MAX_LOGGED_NAMES: usize = 1000;

#[derive(Clone)]
struct Registered {
    feed: SourceFeed,
    options: HttpDecodeOptions,
    /// Refuse bodies with fields that match no column (`strict = 'true'`).
    strict: bool,
    /// Unknown field names already logged (each is logged once).
    logged: Arc<Mutex<HashSet<String>>>,
    /// When set, validated bodies go there (e.g. a Kafka topic) instead of the feed.
    forward: Option<Arc<dyn BodyForwarder>>,
    /// When set, accepted rows go through this write-ahead log into the feed.
    log: Option<IngestLog>,
}

impl Registered {
    /// Counts a body's unknown fields and logs each new name once.
    fn note_unknown(&self, source: &str, unknown: &UnknownFields) {
        self.feed.metrics().unknown_fields(unknown.total);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        for name in unknown.names.keys() {
            if logged.len() > MAX_LOGGED_NAMES || logged.contains(name) {
                continue;
            }
            if logged.len() == MAX_LOGGED_NAMES {
                tracing::warn!(
                    source,
                    "more than {MAX_LOGGED_NAMES} distinct unknown field names; no longer                      logging new ones (system.sources.unknown_fields still counts them)"
                );
                logged.insert(String::new());
                continue;
            }
            tracing::warn!(
                source,
                field = name.as_str(),
                example = unknown.first.as_deref().unwrap_or_default(),
                "HTTP ingest: field matches no column and is ignored (counted in                  system.sources.unknown_fields; strict = 'true' refuses such bodies); logged                  once per field name"
            );
            logged.insert(name.clone());
        }
    }

    /// Keeps a rejected body: through the write-ahead log when there is one (so it survives
    /// a crash), else straight to the dead-letter writer.
    fn reject(&self, body: &[u8], reason: String) {
        match &self.log {
            Some(log) => {
                let entry = WalEntry::Rejected {
                    arrival_ms: chrono::Utc::now().timestamp_millis(),
                    raw: body[..body.len().min(MAX_RAW_LEN)].to_vec(),
                    reason,
                };
                let log = log.clone();
                tokio::spawn(async move {
                    if let Err(e) = log.append(entry).await {
                        tracing::error!(error = %e, "rejected body not kept");
                    }
                });
            }
            None => self
                .feed
                .reject(vec![RejectedRecord::new(0, None, body, reason)]),
        }
    }
}

/// Where a source's HTTP bodies go instead of the engine (a Kafka source with
/// `ingest = 'http'` writes them to its topic). The forwarder validates the body itself;
/// the answer is 200 only once `forward` resolved, i.e. the body is durably stored.
#[async_trait::async_trait]
pub trait BodyForwarder: Send + Sync {
    /// Validates and stores one body; returns the number of rows it holds.
    async fn forward(&self, headers: &HeaderMap, body: &[u8]) -> Result<usize, ForwardError>;
}

/// Why a forwarded body was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The body does not decode (answered 400, dead-lettered).
    #[error("{0}")]
    Invalid(String),
    /// The destination did not acknowledge it (answered 503).
    #[error("{0}")]
    Unavailable(String),
}

/// The shared HTTP ingest server: routes request bodies to the registered sources' feeds.
pub struct HttpIngest {
    sources: RwLock<HashMap<String, Registered>>,
    settings: HttpSettings,
    in_progress: Arc<tokio::sync::Semaphore>,
    ops: Arc<Ops>,
    /// Routes added by the embedding system (the live page), merged by [`Self::router`].
    extra: Mutex<Option<Router>>,
}

impl std::fmt::Debug for HttpIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpIngest")
            .field("sources", &self.source_names())
            .field("settings", &self.settings)
            .finish()
    }
}

impl HttpIngest {
    /// An ingest with no sources and the default settings (no tokens, default limits).
    pub fn new() -> Arc<Self> {
        Self::with_settings(HttpSettings::default())
    }

    /// An ingest with `settings` (see [`settings`]).
    pub fn with_settings(settings: HttpSettings) -> Arc<Self> {
        Arc::new(Self {
            sources: RwLock::new(HashMap::new()),
            in_progress: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent)),
            ops: Ops::new(settings.ops),
            extra: Mutex::new(None),
            settings,
        })
    }

    /// What the operations endpoints on this server report (see [`crate::ops`]).
    pub fn ops(&self) -> &Arc<Ops> {
        &self.ops
    }

    /// The server's settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// Checks the bearer token of a request for `source`: `None` when it may post.
    fn authorize(&self, headers: &HeaderMap, source: &str) -> Option<Response> {
        let auth = self.settings.auth.as_ref()?;
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let unauthorized = |message: String| {
            let mut r = error(StatusCode::UNAUTHORIZED, message);
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"driftwatch-ingest\""),
            );
            Some(r)
        };
        match auth.check(header) {
            Ok(id) if id.may_ingest(source) => None,
            Ok(id) => {
                tracing::warn!(user = %id.name, source, "HTTP ingest refused: role");
                Some(error(
                    StatusCode::FORBIDDEN,
                    format!(
                        "'{}' has the {} role and may not post to source '{source}'",
                        id.name,
                        id.role.name()
                    ),
                ))
            }
            Err(driftwatch_flight::AuthError::Missing) => unauthorized(
                "authentication required: send 'authorization: Bearer <token>' with a token of \
                 the ingest role"
                    .into(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, source, "HTTP ingest refused");
                unauthorized(e.to_string())
            }
        }
    }

    /// Registers a source with default decoding options (requests and responses).
    pub fn register(&self, source: &str, feed: SourceFeed) -> Result<(), ConnectorError> {
        self.register_with(source, feed, HttpDecodeOptions::default())
    }

    /// Registers a source; fails if a source of that name is already registered.
    pub fn register_with(
        &self,
        source: &str,
        feed: SourceFeed,
        options: HttpDecodeOptions,
    ) -> Result<(), ConnectorError> {
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        let key = source.to_ascii_lowercase();
        if sources.contains_key(&key) {
            return Err(ConnectorError::Config {
                source_name: source.to_string(),
                message: "an HTTP source of this name is already receiving".into(),
            });
        }
        sources.insert(
            key,
            Registered {
                feed,
                options,
                strict: false,
                logged: Arc::default(),
                forward: None,
                log: None,
            },
        );
        tracing::info!(
            source,
            "HTTP ingest: source registered at POST /ingest/{source}"
        );
        Ok(())
    }

    /// Registers a source whose validated bodies go to `forward` (rejected bodies still go
    /// to the feed's dead-letter table).
    pub fn register_forwarder(
        &self,
        source: &str,
        feed: SourceFeed,
        options: HttpDecodeOptions,
        forward: Arc<dyn BodyForwarder>,
    ) -> Result<(), ConnectorError> {
        self.register_with(source, feed, options)?;
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        if let Some(reg) = sources.get_mut(&source.to_ascii_lowercase()) {
            reg.forward = Some(forward);
        }
        Ok(())
    }

    /// Registers a source whose accepted rows go through `log` (see [`ingest_log`]).
    pub fn register_with_log(
        &self,
        source: &str,
        feed: SourceFeed,
        options: HttpDecodeOptions,
        log: IngestLog,
    ) -> Result<(), ConnectorError> {
        self.register_with(source, feed, options)?;
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        if let Some(reg) = sources.get_mut(&source.to_ascii_lowercase()) {
            reg.log = Some(log);
        }
        Ok(())
    }

    /// Registers a `connector = 'http'` source with its options (`strict`, `log_type`), its
    /// rows going through `log` when given.
    pub fn register_source(
        &self,
        source: &str,
        feed: SourceFeed,
        options: &HttpSourceOptions,
        log: Option<IngestLog>,
    ) -> Result<(), ConnectorError> {
        let decode = HttpDecodeOptions {
            log_type: options.log_type,
        };
        self.register_with(source, feed, decode)?;
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        if let Some(reg) = sources.get_mut(&source.to_ascii_lowercase()) {
            reg.strict = options.strict;
            reg.log = log;
        }
        Ok(())
    }

    /// Removes a source: its URL answers 404 from now on.
    pub fn unregister(&self, source: &str) {
        let mut sources = self.sources.write().unwrap_or_else(|e| e.into_inner());
        sources.remove(&source.to_ascii_lowercase());
    }

    /// Names of the registered sources, sorted.
    pub fn source_names(&self) -> Vec<String> {
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = sources.keys().cloned().collect();
        names.sort();
        names
    }

    fn lookup(&self, source: &str) -> Option<Registered> {
        let sources = self.sources.read().unwrap_or_else(|e| e.into_inner());
        sources.get(&source.to_ascii_lowercase()).cloned()
    }

    /// Adds routes served on this port next to the ingest and operations routes (the live
    /// page of [`crate::web`]); call before the server starts. Routes added earlier stay.
    pub fn add_routes(&self, routes: Router) {
        let mut extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        *extra = Some(match extra.take() {
            Some(earlier) => earlier.merge(routes),
            None => routes,
        });
    }

    /// The axum router with every ingest route, the operations routes and the routes of
    /// [`Self::add_routes`] (for embedding in a larger server).
    pub fn router(self: Arc<Self>) -> Router {
        let ops = crate::ops::http::router(Arc::clone(&self.ops), self.settings.auth.clone());
        let extra = self.extra.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // The handlers read the body themselves, under the size and time limits.
        let router = Router::new()
            .route("/ingest/{source}", post(ingest_named))
            .route("/", post(ingest_default))
            .layer(DefaultBodyLimit::disable())
            .with_state(self)
            .merge(ops);
        match extra {
            Some(extra) => router.merge(extra),
            None => router,
        }
    }

    /// Counts an answer in `driftwatch_http_requests_total` (unregistered names count as
    /// `-`, so a client probing names cannot grow the label set).
    fn count(&self, source: &str, answer: Response) -> Response {
        let label = self
            .lookup(source)
            .map_or_else(|| "-".to_string(), |_| source.to_ascii_lowercase());
        self.ops.count_http(&label, answer.status().as_u16());
        answer
    }

    /// Serves the ingest on `listener` until `shutdown` is cancelled (in-flight requests
    /// are completed), over TLS when the settings have a certificate.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let tls = self
            .settings
            .tls_config()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if let Ok(addr) = listener.local_addr() {
            tracing::debug!(%addr, tls = tls.is_some(), "HTTP server listening");
        }
        let Some(tls) = tls else {
            let service = self
                .router()
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            return axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
        };
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        axum_server::from_tcp_rustls(
            listener.into_std()?,
            axum_server::tls_rustls::RustlsConfig::from_config(tls),
        )
        .handle(handle)
        .serve(
            self.router()
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    }
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Reads a request body under the size limit; the error is the answer.
async fn read_body(body: Body, limit: usize, headers: &HeaderMap) -> Result<Bytes, Response> {
    let too_large = || body::too_large(limit, None);
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large()
        } else {
            error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        }
    })
}

/// Admission of one request: token, concurrency limit, then the body under the size and
/// time limits, then [`handle`].
async fn admit(
    ingest: Arc<HttpIngest>,
    source: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = ingest.authorize(&headers, &source) {
        return refused;
    }
    let Ok(_permit) = Arc::clone(&ingest.in_progress).try_acquire_owned() else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many requests in progress (at most {}, --http-max-concurrent); retry",
                ingest.settings.max_concurrent
            ),
        );
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return r;
    };
    let Some(reg) = ingest.lookup(&source) else {
        let known = ingest.source_names();
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown source '{source}' (HTTP sources: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        );
    };
    if let Err(answer) = body::check_content_type(&headers) {
        return *answer;
    }
    let codings = match body::content_codings(&headers) {
        Ok(c) => c,
        Err(answer) => return *answer,
    };
    let timeout = ingest.settings.request_timeout;
    let limit = ingest.settings.body_limit;
    let work = async {
        let received = match read_body(body, limit, &headers).await {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        let body = match decode_content(received, &codings, limit).await {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        handle(&source, reg, headers.clone(), body).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(answer) => answer,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request not completed within {} ms (--http-timeout); if the body was read, its \
                 rows may or may not have been stored",
                timeout.as_millis()
            ),
        ),
    }
}

/// Undoes the request's content codings under the body limit (on a blocking thread: the
/// cost of decompression is not known from the received size); the error is the answer.
async fn decode_content(
    received: Bytes,
    codings: &[body::Coding],
    limit: usize,
) -> Result<Bytes, Response> {
    if codings.is_empty() {
        return Ok(received);
    }
    let owned = codings.to_vec();
    let decoded =
        tokio::task::spawn_blocking(move || body::decode_body(&received, &owned, limit)).await;
    match decoded {
        Ok(Ok(bytes)) => Ok(Bytes::from(bytes)),
        Ok(Err(body::DecodeError::TooLarge(limit))) => Err(body::too_large(limit, Some(codings))),
        Ok(Err(body::DecodeError::Corrupt(reason))) => Err(error(StatusCode::BAD_REQUEST, reason)),
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error while decompressing the body (this is a bug)",
        )),
    }
}

async fn ingest_named(
    State(ingest): State<Arc<HttpIngest>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = admit(Arc::clone(&ingest), source.clone(), headers, body).await;
    ingest.count(&source, answer)
}

async fn ingest_default(
    State(ingest): State<Arc<HttpIngest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let names = ingest.source_names();
    let answer = match names.as_slice() {
        [] => error(StatusCode::NOT_FOUND, "no HTTP source is registered"),
        [only] => {
            let only = only.clone();
            let answer = admit(Arc::clone(&ingest), only.clone(), headers, body).await;
            return ingest.count(&only, answer);
        }
        several => error(
            StatusCode::BAD_REQUEST,
            format!(
                "several HTTP sources are registered ({}); POST to /ingest/<source>",
                several.join(", ")
            ),
        ),
    };
    ingest.count("-", answer)
}

async fn handle(source: &str, reg: Registered, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(forward) = &reg.forward {
        return match forward.forward(&headers, &body).await {
            Ok(rows) => (StatusCode::OK, Json(json!({ "forwarded": rows }))).into_response(),
            Err(ForwardError::Invalid(reason)) => {
                reg.reject(&body, reason.clone());
                error(StatusCode::BAD_REQUEST, reason)
            }
            Err(ForwardError::Unavailable(reason)) => {
                error(StatusCode::SERVICE_UNAVAILABLE, reason)
            }
        };
    }
    let schema = reg.feed.schema().clone();
    let options = reg.options;
    let decode = {
        let body = body.clone();
        move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decode_http_body(&schema, &headers, &body, &options)
            }))
        }
    };
    let decoded = if body.len() > INLINE_DECODE_LIMIT {
        match tokio::task::spawn_blocking(decode).await {
            Ok(r) => r,
            Err(_) => Err(Box::new("decoder task failed") as Box<dyn std::any::Any + Send>),
        }
    } else {
        decode()
    };
    let decoded: DecodedBody = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            let reason = e.to_string();
            tracing::debug!(source, %reason, "HTTP body rejected");
            reg.reject(&body, reason.clone());
            return error(StatusCode::BAD_REQUEST, reason);
        }
        Err(_) => {
            let reason = "internal error while decoding the body (this is a bug)".to_string();
            tracing::error!(source, "HTTP body decoder panicked");
            reg.reject(&body, reason.clone());
            return error(StatusCode::INTERNAL_SERVER_ERROR, reason);
        }
    };
    if !decoded.unknown.is_empty() && reg.strict {
        let first = decoded.unknown.first.as_deref().unwrap_or("unknown field");
        let more = decoded.unknown.total - 1;
        let tail = if more > 0 {
            format!(" (and {more} more unknown fields)")
        } else {
            String::new()
        };
        let reason =
            format!("{first}{tail}; source '{source}' is strict: nothing of this body was stored");
        tracing::debug!(source, %reason, "HTTP body rejected");
        reg.reject(&body, reason.clone());
        return error(StatusCode::BAD_REQUEST, reason);
    }
    let rows = decoded.batch.num_rows();
    if rows > 0 && reg.feed.is_finished() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("source '{source}' is shut down"),
        );
    }
    if rows > 0 && !reg.feed.has_subscribers() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("source '{source}' has no running monitor: nothing would process the rows"),
        );
    }
    if rows > 0 {
        let stored = match &reg.log {
            Some(log) => {
                log.append(WalEntry::Batch {
                    arrival_ms: chrono::Utc::now().timestamp_millis(),
                    batch: decoded.batch,
                })
                .await
            }
            None => reg
                .feed
                .push(0, decoded.batch)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = stored {
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    }
    let mut answer = json!({ "accepted": rows });
    if decoded.ignored > 0 {
        answer["ignored"] = json!(decoded.ignored);
    }
    if !decoded.unknown.is_empty() {
        reg.note_unknown(source, &decoded.unknown);
        answer["unknown_fields"] = json!(decoded.unknown.total);
    }
    (StatusCode::OK, Json(answer)).into_response()
}

/// Unbounded connector of a `connector = 'http'` source: registers the source's feed with
/// the shared [`HttpIngest`] while it runs.
#[derive(Debug)]
pub struct HttpConnector {
    name: String,
    ingest: Arc<HttpIngest>,
    options: HttpSourceOptions,
    /// Write-ahead log directory, when acknowledgements are durable.
    log_dir: Option<std::path::PathBuf>,
    /// The running log (for truncation after checkpoints).
    log: std::sync::Mutex<Option<IngestLog>>,
}

impl HttpConnector {
    /// Validates the options of an HTTP source (see [`options`]).
    pub fn from_spec(
        spec: &ConnectorSpec,
        ingest: Arc<HttpIngest>,
    ) -> Result<Self, ConnectorError> {
        let options = HttpSourceOptions::from_map(&spec.options).map_err(|message| {
            ConnectorError::Config {
                source_name: spec.schema.name.clone(),
                message,
            }
        })?;
        Self::with_options(spec, options, ingest)
    }

    /// Like [`Self::from_spec`], checking the options as written in `CREATE SOURCE`: an
    /// unknown option or a bad value is reported with its line and column.
    pub fn from_sql(
        sql_options: &driftwatch_sql::Options,
        spec: &ConnectorSpec,
        ingest: Arc<HttpIngest>,
    ) -> Result<Self, ConnectorError> {
        let options =
            HttpSourceOptions::from_sql(sql_options).map_err(|e| ConnectorError::Config {
                source_name: spec.schema.name.clone(),
                message: e.to_string(),
            })?;
        Self::with_options(spec, options, ingest)
    }

    fn with_options(
        spec: &ConnectorSpec,
        options: HttpSourceOptions,
        ingest: Arc<HttpIngest>,
    ) -> Result<Self, ConnectorError> {
        let name = spec.schema.name.clone();
        let log_dir = match spec.durable {
            true => Some(ingest_log::log_dir(&spec.data_dir, &name).map_err(|e| {
                ConnectorError::Config {
                    source_name: name.clone(),
                    message: e.to_string(),
                }
            })?),
            false => None,
        };
        Ok(Self {
            name,
            ingest,
            options,
            log_dir,
            log: std::sync::Mutex::new(None),
        })
    }
}

#[async_trait::async_trait]
impl Connector for HttpConnector {
    fn is_bounded(&self) -> bool {
        false
    }

    fn identity(&self) -> String {
        "http".to_string()
    }

    async fn run(
        self: Arc<Self>,
        feed: SourceFeed,
        shutdown: CancellationToken,
    ) -> Result<(), ConnectorError> {
        feed.register_partition(0);
        match &self.log_dir {
            Some(dir) => {
                let log = IngestLog::start(dir.clone(), self.options.sync, feed.clone())
                    .await
                    .map_err(|e| ConnectorError::Io {
                        source_name: self.name.clone(),
                        message: format!("write-ahead log: {e}"),
                    })?;
                *self.log.lock().unwrap_or_else(|e| e.into_inner()) = Some(log.clone());
                self.ingest
                    .register_source(&self.name, feed, &self.options, Some(log))?;
            }
            None => self
                .ingest
                .register_source(&self.name, feed, &self.options, None)?,
        }
        shutdown.cancelled().await;
        self.ingest.unregister(&self.name);
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    async fn on_checkpoint(
        &self,
        _committed: &std::collections::BTreeMap<PartitionId, SourcePosition>,
        oldest_kept: &std::collections::BTreeMap<PartitionId, SourcePosition>,
    ) {
        let lsn = oldest_kept.get(&0).and_then(SourcePosition::wal_lsn);
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let (Some(lsn), Some(log)) = (lsn, log) {
            log.truncate_before(lsn);
        }
    }
}
