//! Server settings ([`FlightConfig`]) and the bind rules: without auth the server only listens
//! on loopback, unless `insecure_public` says otherwise explicitly; with auth on a
//! non-loopback address it needs TLS (passwords and tokens would cross the network in
//! clear), unless `insecure_plaintext` says otherwise explicitly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use crate::auth::{Authenticator, TOKEN_TTL};
use crate::limits::QueryLimits;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Certificate and private key (PEM files) for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) that client certificates must chain to; when set, every
    /// client must present one (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Settings of the Flight SQL server.
#[derive(Debug, Clone)]
pub struct FlightConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Users and tokens file (TOML or JSON, see [`crate::auth`]); `None` disables auth.
    pub auth_file: Option<PathBuf>,
    /// The authenticator of `auth_file`, when the caller loaded it already (to share it with
    /// the HTTP ingest); loaded from `auth_file` otherwise.
    pub auth: Option<Arc<Authenticator>>,
    /// TLS certificate and key; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Allow a non-loopback bind without auth.
    pub insecure_public: bool,
    /// Allow auth without TLS on a non-loopback address.
    pub insecure_plaintext: bool,
    /// How long a token issued by the handshake stays valid.
    pub token_ttl: Duration,
    /// Memory, time and thread limits of client queries.
    pub limits: QueryLimits,
}

impl Default for FlightConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            auth_file: None,
            auth: None,
            tls: None,
            insecure_public: false,
            insecure_plaintext: false,
            token_ttl: TOKEN_TTL,
            limits: QueryLimits::default(),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Public bind without auth.
    #[error(
        "refusing to serve Flight SQL on {0} without authentication: give --auth-file, \
         listen on loopback (127.0.0.1), or pass --insecure-public to accept the risk"
    )]
    PublicWithoutAuth(SocketAddr),
    /// Public bind with auth but without TLS.
    #[error(
        "refusing to serve Flight SQL with authentication on {0} without TLS: passwords and \
         tokens would cross the network in clear. Give --tls-cert and --tls-key, listen on \
         loopback (127.0.0.1), or pass --insecure-plaintext to accept the risk"
    )]
    AuthWithoutTls(SocketAddr),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl FlightConfig {
    /// Checks the bind rules: a non-loopback address needs auth or `insecure_public`, and
    /// auth there needs TLS or `insecure_plaintext`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let public = !self.listen.ip().is_loopback();
        let auth = self.auth_file.is_some() || self.auth.is_some();
        if !auth && public && !self.insecure_public {
            return Err(ConfigError::PublicWithoutAuth(self.listen));
        }
        if auth && public && self.tls.is_none() && !self.insecure_plaintext {
            return Err(ConfigError::AuthWithoutTls(self.listen));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_bind_needs_auth_or_explicit_flag() {
        let mut c = FlightConfig {
            listen: "0.0.0.0:50051".parse().unwrap(),
            ..FlightConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PublicWithoutAuth(_))
        ));
        c.insecure_public = true;
        assert!(c.validate().is_ok());
        c.insecure_public = false;
        c.auth_file = Some("users.toml".into());
        assert!(matches!(c.validate(), Err(ConfigError::AuthWithoutTls(_))));
        c.insecure_plaintext = true;
        assert!(c.validate().is_ok());
        c.insecure_plaintext = false;
        c.tls = Some(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            client_ca: None,
        });
        assert!(c.validate().is_ok());
        assert!(FlightConfig::default().validate().is_ok());
    }
}
