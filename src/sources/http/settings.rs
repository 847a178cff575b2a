//! Settings of the HTTP ingest server ([`HttpSettings`]): who may post, how much, how many at
//! once and for how long, and the bind rules.
//!
//! - **Tokens.** With an authenticator (the `--auth-file` shared with Flight SQL), every
//!   POST needs `authorization: Bearer <token>` of a static token with the `ingest` or
//!   `admin` role (an `ingest` token may be limited to some sources). Missing or wrong: 401;
//!   a token for other sources: 403.
//! - **TLS** with `--http-tls-cert` / `--http-tls-key` (rustls; handshakes time out after
//!   10 s, so a slow handshake cannot hold a connection).
//! - **Bind rules**, as for Flight SQL: a non-loopback address needs tokens or
//!   `--insecure-public`; tokens on a non-loopback address need TLS unless
//!   `--insecure-plaintext` accepts that they cross the network in clear.
//! - **Limits.** Bodies over `body_limit` are answered 413; more than `max_concurrent`
//!   requests in progress are answered 503 at once (clients retry); a request not finished
//!   within `request_timeout` (a slow body included) is answered 408.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use driftwatch_flight::Authenticator;

/// Default largest accepted request body: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Default most requests in progress at once.
pub const DEFAULT_MAX_CONCURRENT: usize = 512;
/// Default longest time for one request, reading its body included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the HTTP ingest server (see the module docs).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Most requests in progress at once.
    pub max_concurrent: usize,
    /// Longest time for one request.
    pub request_timeout: Duration,
    /// Bearer-token check; `None` accepts every request.
    pub auth: Option<Arc<Authenticator>>,
    /// Allow a non-loopback bind without tokens.
    pub insecure_public: bool,
    /// Allow tokens over plain HTTP on a non-loopback address.
    pub insecure_plaintext: bool,
    /// Certificate chain and private key (PEM) to serve HTTPS; `None` serves plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Operations endpoints on the same port (`/metrics`, `/health`, `/ready`).
    pub ops: crate::ops::OpsSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            auth: None,
            insecure_public: false,
            insecure_plaintext: false,
            tls: None,
            ops: crate::ops::OpsSettings::default(),
        }
    }
}

impl HttpSettings {
    /// Checks the bind rules for `listen` and that the limits are usable.
    pub fn validate(&self, listen: SocketAddr) -> Result<(), String> {
        if self.body_limit == 0 || self.max_concurrent == 0 || self.request_timeout.is_zero() {
            return Err(
                "HTTP ingest limits must be positive (--http-body-limit, --http-max-concurrent, \
                 --http-timeout)"
                    .into(),
            );
        }
        let public = !listen.ip().is_loopback();
        if public && self.auth.is_none() && !self.insecure_public {
            return Err(format!(
                "refusing to serve the HTTP ingest on {listen} without authentication: anyone \
                 could post rows. Give --auth-file with an ingest token, listen on loopback \
                 (127.0.0.1), or pass --insecure-public to accept the risk"
            ));
        }
        if public && self.auth.is_some() && self.tls.is_none() && !self.insecure_plaintext {
            return Err(format!(
                "refusing to accept ingest tokens over plain HTTP on {listen}: they would cross \
                 the network in clear. Give --http-tls-cert and --http-tls-key, listen on \
                 loopback, or pass --insecure-plaintext to accept the risk"
            ));
        }
        Ok(())
    }

    /// The rustls server configuration of [`Self::tls`] (ring provider, TLS 1.2 and 1.3),
    /// read now so that a bad certificate fails at startup.
    pub fn tls_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let Some((cert, key)) = &self.tls else {
            return Ok(None);
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("HTTP TLS certificate {}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "HTTP TLS certificate {}: no certificate in it",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("HTTP TLS key {}: {e}", key.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("HTTP TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("HTTP TLS: {e}"))?;
        Ok(Some(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_rules() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut s = HttpSettings::default();
        assert!(s.validate(local).is_ok());
        assert!(s
            .validate(public)
            .unwrap_err()
            .contains("--insecure-public"));
        s.insecure_public = true;
        assert!(s.validate(public).is_ok());
        s.insecure_public = false;
        s.auth = Some(Arc::new(Authenticator::from_hashes(
            [],
            [],
            Duration::from_secs(1),
        )));
        assert!(s
            .validate(public)
            .unwrap_err()
            .contains("--insecure-plaintext"));
        s.tls = Some(("c.pem".into(), "k.pem".into()));
        assert!(s.validate(public).is_ok());
        assert!(s.tls_config().unwrap_err().contains("c.pem"));
        s.tls = None;
        s.insecure_plaintext = true;
        assert!(s.validate(public).is_ok());
        s.body_limit = 0;
        assert!(s.validate(local).is_err());
    }
}
