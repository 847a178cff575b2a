//! Authentication and roles.
//!
//! Users, passwords, static tokens and roles come from a file, TOML or JSON (by extension):
//!
//! ```toml
//! [[users]]
//! name = "alice"
//! password = "s3cret"
//! role = "admin"      # admin: queries and DDL
//!
//! [[users]]
//! name = "dashboard"
//! password = "view-only"
//! role = "read"       # read: queries, metadata and follow streams only
//!
//! [[tokens]]          # static bearer tokens, e.g. for services
//! token = "0123456789abcdef"
//! name = "grafana"
//! role = "read"
//! ```
//!
//! A client does the Flight handshake with HTTP Basic credentials
//! (`authorization: Basic base64(user:password)`) and receives a bearer token in the
//! response's `authorization` header (and payload); every later call carries
//! `authorization: Bearer <token>`. Issued tokens live in memory for [`TOKEN_TTL`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use serde::Deserialize;

/// How long a token issued by the handshake stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most live issued tokens kept; the oldest are forgotten beyond that.
const MAX_TOKENS: usize = 10_000;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries, metadata and follow streams.
    Read,
    /// Everything, including DDL.
    Admin,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User or token name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl Identity {
    /// The identity used when auth is off: everyone may do everything.
    pub fn anonymous_admin() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Admin,
        }
    }
}

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header.
    #[error("authentication required: do the Flight handshake with Basic credentials, then send 'authorization: Bearer <token>'")]
    Missing,
    /// The header is malformed.
    #[error("malformed authorization header: {0}")]
    Malformed(String),
    /// Wrong user or password.
    #[error("invalid user name or password")]
    BadCredentials,
    /// Unknown or expired token.
    #[error("invalid or expired token")]
    BadToken,
    /// The auth file is unreadable or invalid.
    #[error("auth file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
struct UserEntry {
    name: String,
    password: String,
    role: Role,
}

#[derive(Debug, Deserialize)]
struct TokenEntry {
    token: String,
    #[serde(default)]
    name: Option<String>,
    role: Role,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    users: Vec<UserEntry>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// Checks credentials and tokens; issues tokens on handshake.
#[derive(Debug)]
pub struct Authenticator {
    users: HashMap<String, (String, Role)>,
    static_tokens: HashMap<String, Identity>,
    issued: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl Authenticator {
    /// Loads users and tokens from a TOML or JSON file (JSON when the name ends in `.json`).
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let err = |message: String| AuthError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: AuthFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| err(e.to_string()))?
        };
        if file.users.is_empty() && file.tokens.is_empty() {
            return Err(err("no users and no tokens defined".into()));
        }
        let auth = Self::new(
            file.users.into_iter().map(|u| (u.name, u.password, u.role)),
            file.tokens.into_iter().map(|t| {
                let name = t.name.unwrap_or_else(|| "token".into());
                (t.token, name, t.role)
            }),
        );
        tracing::info!(
            users = auth.users.len(),
            tokens = auth.static_tokens.len(),
            file = %path.display(),
            "Flight SQL auth enabled"
        );
        Ok(auth)
    }

    /// An authenticator over `(name, password, role)` users and `(token, name, role)` tokens.
    pub fn new(
        users: impl IntoIterator<Item = (String, String, Role)>,
        tokens: impl IntoIterator<Item = (String, String, Role)>,
    ) -> Self {
        Self {
            users: users.into_iter().map(|(n, p, r)| (n, (p, r))).collect(),
            static_tokens: tokens
                .into_iter()
                .map(|(t, name, role)| (t, Identity { name, role }))
                .collect(),
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `Basic` credentials from an `authorization` header value and issues a token.
    pub fn handshake(&self, header: Option<&str>) -> Result<(String, Identity), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let encoded = strip_scheme(header, "Basic").ok_or_else(|| {
            AuthError::Malformed("expected 'Basic <base64(user:password)>'".into())
        })?;
        // Padding optional: Go clients (ADBC) send unpadded base64.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine
            .decode(encoded.trim())
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        let text = String::from_utf8(decoded).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| AuthError::Malformed("expected user:password".into()))?;
        let (expected, role) = self.users.get(user).ok_or(AuthError::BadCredentials)?;
        if !constant_time_eq(expected.as_bytes(), password.as_bytes()) {
            return Err(AuthError::BadCredentials);
        }
        let identity = Identity {
            name: user.to_string(),
            role: *role,
        };
        let token = new_token();
        let mut issued = self.issued.lock().expect("token map lock");
        let now = Instant::now();
        issued.retain(|_, (_, at)| now.duration_since(*at) < TOKEN_TTL);
        if issued.len() >= MAX_TOKENS {
            if let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                issued.remove(&oldest);
            }
        }
        issued.insert(token.clone(), (identity.clone(), now));
        tracing::info!(user, role = ?role, "Flight SQL handshake: token issued");
        Ok((token, identity))
    }

    /// Checks a `Bearer` token from an `authorization` header value.
    pub fn check(&self, header: Option<&str>) -> Result<Identity, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = strip_scheme(header, "Bearer")
            .ok_or_else(|| AuthError::Malformed("expected 'Bearer <token>'".into()))?
            .trim();
        if let Some(identity) = self.static_tokens.get(token) {
            return Ok(identity.clone());
        }
        let issued = self.issued.lock().expect("token map lock");
        match issued.get(token) {
            Some((identity, at)) if at.elapsed() < TOKEN_TTL => Ok(identity.clone()),
            _ => Err(AuthError::BadToken),
        }
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    fn auth() -> Authenticator {
        Authenticator::new(
            [
                ("alice".into(), "pw".into(), Role::Admin),
                ("bob".into(), "pw2".into(), Role::Read),
            ],
            [("static".into(), "svc".into(), Role::Read)],
        )
    }

    #[test]
    fn handshake_issues_tokens_with_roles() {
        let a = auth();
        let (token, id) = a.handshake(Some(&basic("alice", "pw"))).unwrap();
        assert_eq!(id.role, Role::Admin);
        let checked = a.check(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(checked.name, "alice");
        let (token, _) = a.handshake(Some(&basic("bob", "pw2"))).unwrap();
        assert_eq!(
            a.check(Some(&format!("bearer {token}"))).unwrap().role,
            Role::Read
        );
        assert_eq!(a.check(Some("Bearer static")).unwrap().name, "svc");
    }

    #[test]
    fn bad_credentials_and_tokens_are_refused() {
        let a = auth();
        assert!(matches!(
            a.handshake(Some(&basic("alice", "nope"))),
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            a.handshake(Some(&basic("eve", "pw"))),
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(a.handshake(None), Err(AuthError::Missing)));
        assert!(matches!(
            a.check(Some("Bearer wrong")),
            Err(AuthError::BadToken)
        ));
        assert!(matches!(
            a.check(Some("Token x")),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn files_parse_as_toml_and_json() {
        let dir = std::env::temp_dir().join(format!("dw-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("users.toml");
        std::fs::write(
            &toml_path,
            "[[users]]\nname = \"a\"\npassword = \"p\"\nrole = \"admin\"\n",
        )
        .unwrap();
        assert!(Authenticator::from_file(&toml_path).is_ok());
        let json_path = dir.join("users.json");
        std::fs::write(
            &json_path,
            r#"{"tokens": [{"token": "t", "role": "read"}]}"#,
        )
        .unwrap();
        let a = Authenticator::from_file(&json_path).unwrap();
        assert_eq!(a.check(Some("Bearer t")).unwrap().role, Role::Read);
        std::fs::write(
            &json_path,
            r#"{"users": [{"name": "x", "password": "y", "role": "root"}]}"#,
        )
        .unwrap();
        assert!(Authenticator::from_file(&json_path).is_err());
    }
}
