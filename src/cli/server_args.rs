//! Flags of the serving commands (`run`, `demo`): data dir, HTTP ingest, Flight SQL,
//! authentication, TLS, query limits and the directories Flight DDL may read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use driftwatch::serve::{DdlPolicy, FlightConfig, TlsFiles};
use driftwatch::sources::http::settings::{HttpSettings, DEFAULT_MAX_CONCURRENT};
#[cfg(test)]
use driftwatch::sources::http::settings::{DEFAULT_BODY_LIMIT, DEFAULT_REQUEST_TIMEOUT};
#[cfg(test)]
use driftwatch_flight::limits::{DEFAULT_QUERY_MEMORY, DEFAULT_QUERY_TIMEOUT};
use driftwatch_flight::{Authenticator, QueryLimits};

/// Flags shared by `run` and `demo`.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Data dir: result tables and baselines.
    #[arg(long, env = "DRIFTWATCH_DATA_DIR", default_value = "driftwatch-data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP port: the ingest of HTTP sources and /metrics, /health, /ready.
    #[arg(long, env = "DRIFTWATCH_HTTP", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub flight: FlightArgs,
    /// Users, password hashes, tokens and roles (TOML, or JSON by extension), made with
    /// `driftwatch passwd`: Flight SQL logins and HTTP ingest tokens.
    #[arg(long, env = "DRIFTWATCH_AUTH_FILE", alias = "flight-auth-file")]
    pub auth_file: Option<PathBuf>,
    /// Lifetime of a token issued by the Flight SQL handshake (e.g. `12h`, `30m`).
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Allow serving on a non-loopback address without --auth-file (Flight SQL and HTTP).
    #[arg(long)]
    pub insecure_public: bool,
    /// Allow passwords and tokens over plaintext on a non-loopback address.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Memory all monitors' window state may take together (e.g. `1GiB`, `512MiB`); a monitor
    /// whose state would exceed it fails (see `system.monitors`), the others keep running.
    /// Default: half the machine's (or container's) memory, at most 1 GiB.
    #[arg(long, env = "DRIFTWATCH_MEMORY_LIMIT", value_parser = parse_size)]
    pub memory_limit: Option<usize>,
}

/// HTTP ingest limits.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Largest accepted HTTP request body (e.g. `16MiB`, `512KiB`).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub http_body_limit: usize,
    /// Most HTTP requests in progress at once; more are answered 503.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT)]
    pub http_max_concurrent: usize,
    /// Longest time for one HTTP request, reading its body included (e.g. `30s`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub http_timeout: Duration,
    /// TLS certificate chain (PEM) for the HTTP ingest; needs --http-tls-key.
    #[arg(long, requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the HTTP ingest; needs --http-tls-cert.
    #[arg(long, requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// Do not serve /metrics, /health and /ready on the HTTP port (it is then opened only
    /// for HTTP sources).
    #[arg(long)]
    pub no_ops: bool,
    /// /metrics needs a bearer token of --auth-file (any role); /health and /ready never do.
    #[arg(long, requires = "auth_file")]
    pub metrics_auth: bool,
}

/// Arrow Flight SQL server settings (`run` and `demo` serve queries, DDL and live follow).
#[derive(Debug, clap::Args)]
pub struct FlightArgs {
    /// Address of the Arrow Flight SQL server.
    #[arg(long, env = "DRIFTWATCH_FLIGHT", default_value = driftwatch_flight::config::DEFAULT_LISTEN)]
    pub flight_listen: SocketAddr,
    /// Do not start the Flight SQL server.
    #[arg(long)]
    pub no_flight: bool,
    /// TLS certificate chain (PEM) for Flight SQL; needs --tls-key.
    #[arg(long, env = "DRIFTWATCH_FLIGHT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for Flight SQL; needs --tls-cert.
    #[arg(long, env = "DRIFTWATCH_FLIGHT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) for client certificates: with it, Flight SQL clients must
    /// present a certificate signed by this CA (mutual TLS). Needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Memory cap of one Flight SQL query (e.g. `512MiB`, `2GiB`); over it the query fails.
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    pub query_memory_limit: usize,
    /// Time limit of one Flight SQL query (e.g. `5m`, `30s`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub query_timeout: Duration,
    /// Threads for Flight SQL queries, apart from the engine's (0: half the cores).
    #[arg(long, default_value_t = 0)]
    pub query_threads: usize,
    /// Directory DDL sent over Flight SQL may read files from (repeatable; default: the data
    /// dir and the monitor file's directory).
    #[arg(long = "allow-dir")]
    pub allow_dirs: Vec<PathBuf>,
}

/// The servers' settings, resolved from the flags.
pub struct Serving {
    /// Flight SQL, or `None` with `--no-flight`.
    pub flight: Option<FlightConfig>,
    /// Which files Flight DDL may read.
    pub policy: DdlPolicy,
    /// The HTTP ingest.
    pub http: HttpSettings,
}

impl Common {
    /// Loads the auth file (once, shared by both servers) and checks the bind rules of both.
    /// `monitor_file` is the file run, whose directory Flight DDL may read by default.
    /// Also sizes the process's monitor memory pool (`--memory-limit`, see
    /// [`driftwatch::engine::memory`]) before any monitor is planned.
    pub fn serving(&self, monitor_file: Option<&Path>) -> anyhow::Result<Serving> {
        let memory_limit = self
            .memory_limit
            .unwrap_or_else(driftwatch::engine::memory::default_memory_limit);
        driftwatch::engine::memory::set_memory_limit(memory_limit).map_err(anyhow::Error::msg)?;
        tracing::info!(
            memory_limit = %driftwatch_sql::format_size(memory_limit),
            "monitor memory pool"
        );
        let auth = match &self.auth_file {
            Some(path) => Some(Arc::new(
                Authenticator::from_file(path, self.token_ttl)
                    .with_context(|| format!("loading --auth-file {}", path.display()))?,
            )),
            None => None,
        };
        let f = &self.flight;
        let flight = (!f.no_flight).then(|| FlightConfig {
            listen: f.flight_listen,
            auth_file: self.auth_file.clone(),
            auth: auth.clone(),
            tls: match (&f.tls_cert, &f.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: f.tls_client_ca.clone(),
                }),
                _ => None,
            },
            insecure_public: self.insecure_public,
            insecure_plaintext: self.insecure_plaintext,
            token_ttl: self.token_ttl,
            limits: QueryLimits {
                memory: f.query_memory_limit,
                timeout: f.query_timeout,
                threads: f.query_threads,
            },
        });
        if let Some(config) = &flight {
            config.validate()?;
        }
        let http = HttpSettings {
            body_limit: self.http.http_body_limit,
            max_concurrent: self.http.http_max_concurrent,
            request_timeout: self.http.http_timeout,
            auth,
            insecure_public: self.insecure_public,
            insecure_plaintext: self.insecure_plaintext,
            tls: self
                .http
                .http_tls_cert
                .clone()
                .zip(self.http.http_tls_key.clone()),
            ops: driftwatch::ops::OpsSettings {
                enabled: !self.http.no_ops,
                metrics_auth: self.http.metrics_auth,
            },
        };
        let dirs = if f.allow_dirs.is_empty() {
            let mut dirs = vec![self.data_dir.clone()];
            if let Some(dir) = monitor_file.and_then(Path::parent) {
                dirs.push(if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir.to_path_buf()
                });
            }
            dirs
        } else {
            f.allow_dirs.clone()
        };
        Ok(Serving {
            flight,
            policy: DdlPolicy::new(dirs),
            http,
        })
    }
}

/// Parses a duration such as `30s`, `5m`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. '30s', '5m', '250ms')"))
}

/// Parses a size such as `512MiB`, `2GiB`, `64KiB`, `1000000` (bytes; `KB`/`MB`/`GB` are
/// powers of 1000): [`driftwatch_sql::parse_size`], shared with `WITH (max_state = …)`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    driftwatch_sql::parse_size(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        assert_eq!(parse_size("16MiB").unwrap(), DEFAULT_BODY_LIMIT);
        assert_eq!(parse_size("512MiB").unwrap(), DEFAULT_QUERY_MEMORY);
        assert_eq!(parse_duration("30s").unwrap(), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(parse_duration("5m").unwrap(), DEFAULT_QUERY_TIMEOUT);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("16777216").unwrap(), 16 << 20);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }
}
