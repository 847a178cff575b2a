//! Server settings ([`FlightConfig`]) and the bind rule: without auth the server only listens
//! on loopback, unless `insecure_public` says otherwise explicitly.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Certificate and private key (PEM files) for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// Settings of the Flight SQL server.
#[derive(Debug, Clone)]
pub struct FlightConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Users and tokens file (TOML or JSON, see [`crate::auth`]); `None` disables auth.
    pub auth_file: Option<PathBuf>,
    /// TLS certificate and key; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Allow a non-loopback bind without auth.
    pub insecure_public: bool,
}

impl Default for FlightConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            auth_file: None,
            tls: None,
            insecure_public: false,
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
    /// Checks the bind rule: a non-loopback address needs auth or `insecure_public`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth_file.is_none() && !self.listen.ip().is_loopback() && !self.insecure_public {
            return Err(ConfigError::PublicWithoutAuth(self.listen));
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
        assert!(c.validate().is_ok());
        assert!(FlightConfig::default().validate().is_ok());
    }
}
