//! The gRPC server: authentication of every call, the raw `follow:<monitor>` DoGet ticket,
//! `ListFlights` and path descriptors (tables as Flight datasets), TLS, and the bind rule. Everything else is delegated to [`SqlService`].
//!
//! Beside Flight, the port serves the standard gRPC health service (`grpc.health.v1.Health`,
//! from `tonic-health`): `Check` / `Watch` answer `SERVING` for the empty service name and
//! for `arrow.flight.protocol.FlightService` while the readiness given in [`ServeOptions`]
//! is true, `NOT_SERVING` otherwise. Health calls need no token (probes carry none).
#![allow(clippy::result_large_err)] // tonic::Status is the error type of every Flight call

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Identity as TlsIdentity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{AuthError, Authenticator, Identity, Role};
use crate::backend::Backend;
use crate::config::{ConfigError, FlightConfig};
use crate::limits::QueryLimits;
use crate::service::SqlService;
use crate::statement::parse_follow_ticket;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Invalid settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The auth file is invalid.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The address cannot be bound.
    #[error("Flight SQL cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("Flight SQL TLS: {0}")]
    Tls(String),
}

/// A running Flight SQL server.
#[derive(Debug)]
pub struct FlightServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
    /// The server task; ends after the shutdown signal.
    pub task: JoinHandle<()>,
}

/// Sees every Flight call: its method name (`do_get`, `get_flight_info`, …), whether it
/// succeeded, and how long it took (for streamed answers, until the last message).
pub type CallObserver = Arc<dyn Fn(&'static str, bool, Duration) + Send + Sync>;

/// What the server reports beside Flight.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Readiness for the gRPC health service (`None`: always `SERVING`).
    pub ready: Option<tokio::sync::watch::Receiver<bool>>,
    /// Sees every call's latency.
    pub observer: Option<CallObserver>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("ready", &self.ready.as_ref().map(|r| *r.borrow()))
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// The Flight service: checks the caller, then delegates to [`SqlService`].
pub struct DriftwatchFlight {
    inner: SqlService,
    auth: Option<Arc<Authenticator>>,
    observer: Option<CallObserver>,
}

impl DriftwatchFlight {
    /// A service over `backend`, with `auth` if given; queries run under `limits`.
    pub fn new(
        backend: Arc<dyn Backend>,
        auth: Option<Arc<Authenticator>>,
        limits: QueryLimits,
    ) -> Self {
        Self {
            inner: SqlService::new(backend, auth.is_some(), limits),
            auth,
            observer: None,
        }
    }

    /// Reports every call's latency to `observer`.
    pub fn with_observer(mut self, observer: Option<CallObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Reports a unary answer (or the start of a stream that failed) to the observer.
    fn observe<T>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        if let Some(observer) = &self.observer {
            observer(method, result.is_ok(), started.elapsed());
        }
        result
    }

    /// Reports a streamed answer once its last message was sent (or it failed or was
    /// dropped by the client).
    fn observe_stream<T: Send + 'static>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<Response<BoxStream<'static, Result<T, Status>>>, Status>,
    ) -> Result<Response<BoxStream<'static, Result<T, Status>>>, Status> {
        let Some(observer) = self.observer.clone() else {
            return result;
        };
        match result {
            Err(e) => {
                observer(method, false, started.elapsed());
                Err(e)
            }
            Ok(response) => {
                let (metadata, stream, extensions) = response.into_parts();
                let mut guard = StreamTimer {
                    observer,
                    method,
                    started,
                    ok: true,
                };
                // The closure owns the timer: it reports when the stream is dropped.
                let stream = stream
                    .map(move |item| {
                        guard.note(item.is_ok());
                        item
                    })
                    .boxed();
                Ok(Response::from_parts(metadata, stream, extensions))
            }
        }
    }

    /// Checks the bearer token and records the caller's identity in the request.
    fn authorize<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let Some(auth) = &self.auth else {
            return Ok(request);
        };
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let identity = auth.check(header).map_err(|e| {
            tracing::warn!(client = ?request.remote_addr(), error = %e, "Flight SQL call refused");
            Status::unauthenticated(e.to_string())
        })?;
        if identity.role == Role::Ingest {
            tracing::warn!(user = %identity.name, "Flight SQL call refused: ingest role");
            return Err(Status::permission_denied(format!(
                "'{}' has the ingest role: it may post rows to the HTTP ingest, not use Flight SQL",
                identity.name
            )));
        }
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

/// Reports a stream's latency when the stream is dropped (after its last message, an
/// error, or a client that went away).
struct StreamTimer {
    observer: CallObserver,
    method: &'static str,
    started: Instant,
    ok: bool,
}

impl StreamTimer {
    fn note(&mut self, ok: bool) {
        self.ok &= ok;
    }
}

impl Drop for StreamTimer {
    fn drop(&mut self) {
        (self.observer)(self.method, self.ok, self.started.elapsed());
    }
}

type Inner = SqlService;

#[tonic::async_trait]
impl FlightService for DriftwatchFlight {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let (token, identity) = match &self.auth {
            Some(auth) => {
                let header = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                let address = request.remote_addr().map(|a| a.ip());
                auth.handshake(header, address).await.map_err(|e| match e {
                    AuthError::Locked { .. } => Status::resource_exhausted(e.to_string()),
                    e => Status::unauthenticated(e.to_string()),
                })?
            }
            None => (String::new(), Identity::anonymous_admin()),
        };
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let stream: BoxStream<'static, Result<HandshakeResponse, Status>> =
            Box::pin(futures::stream::iter([Ok(reply)]));
        let mut response = Response::new(stream);
        if !token.is_empty() {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|e| Status::internal(e.to_string()))?;
            response.metadata_mut().insert("authorization", value);
        }
        tracing::debug!(user = %identity.name, "handshake");
        Ok(response)
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.inner
            .list_table_flights(self.authorize(request)?)
            .await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let started = Instant::now();
        let request = self.authorize(request)?;
        let result = if request.get_ref().r#type() == DescriptorType::Path {
            self.inner.path_flight_info(request).await
        } else {
            self.inner.get_flight_info(request).await
        };
        self.observe("get_flight_info", started, result)
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        self.inner.poll_flight_info(self.authorize(request)?).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        self.inner.get_schema(self.authorize(request)?).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let request = self.authorize(request)?;
        if let Some(monitor) = parse_follow_ticket(&request.get_ref().ticket) {
            // A live follow stream lasts as long as the client wants: not a query latency.
            return Ok(Response::new(self.inner.follow_stream(&monitor).await?));
        }
        let started = Instant::now();
        let result = self.inner.do_get(request).await;
        self.observe_stream("do_get", started, result)
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let started = Instant::now();
        let result = self.inner.do_put(self.authorize(request)?).await;
        self.observe("do_put", started, result)
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let started = Instant::now();
        let result = self.inner.do_action(self.authorize(request)?).await;
        self.observe("do_action", started, result)
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        self.inner.list_actions(self.authorize(request)?).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.inner.do_exchange(self.authorize(request)?).await
    }
}

/// Starts the Flight SQL server for `backend` with `config`; it stops when `shutdown`
/// resolves. Returns once the address is bound. The gRPC health service always answers
/// `SERVING`; see [`serve_with`] for readiness and call latencies.
pub async fn serve(
    config: &FlightConfig,
    backend: Arc<dyn Backend>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<FlightServer, ServeError> {
    serve_with(config, backend, ServeOptions::default(), shutdown).await
}

/// Like [`serve`], with the gRPC health service following `options.ready` and every call's
/// latency reported to `options.observer`.
pub async fn serve_with(
    config: &FlightConfig,
    backend: Arc<dyn Backend>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<FlightServer, ServeError> {
    config.validate()?;
    let auth = match (&config.auth, &config.auth_file) {
        (Some(auth), _) => Some(Arc::clone(auth)),
        (None, Some(path)) => Some(Arc::new(Authenticator::from_file(path, config.token_ttl)?)),
        (None, None) => None,
    };
    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ServeError::Tls(format!("{}: {e}", p.display())))
        };
        let identity = TlsIdentity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        let mut tls_config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &tls.client_ca {
            // Mutual TLS: a client without a certificate from this CA cannot connect.
            tls_config = tls_config.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        builder = builder
            .tls_config(tls_config)
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let auth_on = auth.is_some();
    let service = FlightServiceServer::new(
        DriftwatchFlight::new(backend, auth, config.limits).with_observer(options.observer),
    )
    .max_decoding_message_size(64 * 1024 * 1024);
    let health = health_service(options.ready).await;
    let tls = config.tls.is_some();
    tracing::info!(
        %addr,
        auth = auth_on,
        tls,
        mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        "Flight SQL listening ({}://{addr})",
        if tls { "grpc+tls" } else { "grpc" }
    );
    let task = tokio::spawn(async move {
        if let Err(e) = builder
            .add_service(health)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!(error = %e, "Flight SQL server stopped");
        }
    });
    Ok(FlightServer { addr, tls, task })
}

/// The `grpc.health.v1` service, following `ready` (always `SERVING` without it).
async fn health_service(
    ready: Option<tokio::sync::watch::Receiver<bool>>,
) -> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    let set = |reporter: tonic_health::server::HealthReporter, ready: bool| async move {
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        reporter
            .set_service_status(
                <FlightServiceServer<DriftwatchFlight> as tonic::server::NamedService>::NAME,
                status,
            )
            .await;
    };
    match ready {
        None => set(reporter, true).await,
        Some(mut ready) => {
            let now = *ready.borrow_and_update();
            set(reporter.clone(), now).await;
            tokio::spawn(async move {
                while ready.changed().await.is_ok() {
                    let now = *ready.borrow_and_update();
                    tracing::debug!(ready = now, "gRPC health");
                    set(reporter.clone(), now).await;
                }
            });
        }
    }
    service
}
