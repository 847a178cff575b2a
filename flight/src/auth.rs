//! Authentication and roles.
//!
//! Users, static tokens and roles come from a file, TOML or JSON (by extension). It holds
//! **hashes only**: argon2id PHC strings for passwords, BLAKE3 digests for static tokens.
//! `driftwatch passwd` writes both; a plaintext `password` or `token` is refused at startup
//! with that hint (whoever can read the file must not become an admin by it).
//!
//! ```toml
//! [[users]]
//! name = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! role = "admin"      # admin: queries, follow streams and DDL
//!
//! [[users]]
//! name = "dashboard"
//! password_hash = "$argon2id$…"
//! role = "read"       # read: queries, metadata and follow streams only
//!
//! [[tokens]]          # static bearer tokens, e.g. for services
//! token_hash = "blake3:9f2c…"
//! name = "model-server"
//! role = "ingest"     # ingest: POST to the HTTP ingest only
//! sources = ["iris"]  # optional: only these HTTP sources (default: all)
//! ```
//!
//! A Flight client does the handshake with HTTP Basic credentials
//! (`authorization: Basic base64(user:password)`) and receives a bearer token in the
//! response's `authorization` header (and payload); every later call carries
//! `authorization: Bearer <token>`. Issued tokens expire after the configured TTL.
//!
//! Guessing is expensive: password checks are argon2id (about 20 ms each in a release build),
//! run on blocking threads two at a time; an unknown user costs the same check as a wrong
//! password (against a dummy hash), and an address with [`MAX_FAILURES`] failed handshakes
//! within [`FAILURE_WINDOW`] is refused until the window has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;

/// Default lifetime of a token issued by the handshake.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most live issued tokens kept; the oldest are forgotten beyond that.
const MAX_TOKENS: usize = 10_000;
/// Failed handshakes from one address that lock it out for the rest of [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// Window over which failed handshakes are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Password checks that may run at once (each takes a core for ~20 ms).
const CONCURRENT_CHECKS: usize = 2;
/// Prefix of a static token digest in the auth file.
pub const TOKEN_HASH_PREFIX: &str = "blake3:";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries, metadata and follow streams.
    Read,
    /// Everything, including DDL.
    Admin,
    /// Posting rows to the HTTP ingest; nothing on Flight SQL.
    Ingest,
}

impl Role {
    /// The role's name in the auth file.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
            Role::Ingest => "ingest",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User or token name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// HTTP sources an ingest token may post to (`None`: all).
    pub sources: Option<Vec<String>>,
}

impl Identity {
    /// The identity used when auth is off: everyone may do everything.
    pub fn anonymous_admin() -> Self {
        Self {
            name: "anonymous".into(),
            role: Role::Admin,
            sources: None,
        }
    }

    /// Whether this caller may post rows to the HTTP source `source` (names compare
    /// case-insensitively, as source names do in SQL).
    pub fn may_ingest(&self, source: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Ingest => self
                .sources
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x.eq_ignore_ascii_case(source))),
            Role::Read => false,
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
    /// Too many failed handshakes from this address.
    #[error("too many failed logins from {address}; retry in {retry_secs} s")]
    Locked {
        /// The client address.
        address: IpAddr,
        /// Seconds until it may try again.
        retry_secs: u64,
    },
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
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    #[serde(default)]
    password_hash: Option<String>,
    /// Only to refuse it with a hint.
    #[serde(default)]
    password: Option<toml::Value>,
    role: Role,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    #[serde(default)]
    token_hash: Option<String>,
    /// Only to refuse it with a hint.
    #[serde(default)]
    token: Option<toml::Value>,
    #[serde(default)]
    name: Option<String>,
    role: Role,
    #[serde(default)]
    sources: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    users: Vec<UserEntry>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// Argon2id with the crate's defaults (OWASP's minimum: 19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// The argon2id PHC string of `password` with a fresh random salt (what `driftwatch passwd`
/// writes as `password_hash`).
///
/// ```
/// let h = driftwatch_flight::auth::hash_password("s3cret");
/// assert!(h.starts_with("$argon2id$"));
/// ```
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

/// The `token_hash` of a static token: `blake3:<hex>`. Tokens are random and long, so a
/// fast digest suffices (as for API keys); a password needs [`hash_password`].
pub fn hash_token(token: &str) -> String {
    format!(
        "{TOKEN_HASH_PREFIX}{}",
        blake3::hash(token.as_bytes()).to_hex()
    )
}

/// A fresh random token (32 hex bytes of entropy).
pub fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct User {
    hash: String,
    role: Role,
}

/// Failed handshakes per client address.
#[derive(Debug, Default)]
struct Failures {
    by_address: HashMap<IpAddr, (u32, Instant)>,
}

impl Failures {
    fn check(&mut self, address: IpAddr, now: Instant) -> Result<(), AuthError> {
        if let Some((count, since)) = self.by_address.get(&address) {
            let age = now.duration_since(*since);
            if age >= FAILURE_WINDOW {
                self.by_address.remove(&address);
            } else if *count >= MAX_FAILURES {
                return Err(AuthError::Locked {
                    address,
                    retry_secs: (FAILURE_WINDOW - age).as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    fn record(&mut self, address: IpAddr, now: Instant) {
        if self.by_address.len() > MAX_TOKENS {
            self.by_address
                .retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        }
        let entry = self.by_address.entry(address).or_insert((0, now));
        entry.0 += 1;
    }
}

/// Checks credentials and tokens; issues tokens on handshake.
pub struct Authenticator {
    users: HashMap<String, User>,
    /// Static tokens by digest.
    static_tokens: HashMap<String, Identity>,
    issued: Mutex<HashMap<String, (Identity, Instant)>>,
    failures: Mutex<Failures>,
    /// Checked for unknown users, so they cost what a wrong password costs.
    dummy_hash: String,
    checks: Arc<tokio::sync::Semaphore>,
    token_ttl: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .field("static_tokens", &self.static_tokens.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads users and tokens from a TOML or JSON file (JSON when the name ends in `.json`);
    /// warns when the file is readable by others.
    pub fn from_file(path: &Path, token_ttl: Duration) -> Result<Self, AuthError> {
        let err = |message: String| AuthError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        warn_if_shared(path);
        let file: AuthFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| err(e.to_string()))?
        };
        if file.users.is_empty() && file.tokens.is_empty() {
            return Err(err("no users and no tokens defined".into()));
        }
        let mut users = Vec::new();
        for u in file.users {
            if u.password.is_some() {
                return Err(err(format!(
                    "user '{}' has a plaintext `password`; plaintext passwords are refused. \
                     Replace it with `password_hash = \"…\"` as printed by `driftwatch passwd \
                     --user {}` (or let `driftwatch passwd --file {} --user {} --role {}` \
                     rewrite the entry)",
                    u.name,
                    u.name,
                    path.display(),
                    u.name,
                    u.role.name()
                )));
            }
            let hash = u
                .password_hash
                .ok_or_else(|| err(format!("user '{}' has no `password_hash`", u.name)))?;
            PasswordHash::new(&hash).map_err(|e| {
                err(format!(
                    "user '{}': `password_hash` is not a PHC hash string ({e}); make one with \
                     `driftwatch passwd`",
                    u.name
                ))
            })?;
            users.push((u.name, hash, u.role));
        }
        let mut tokens = Vec::new();
        for t in file.tokens {
            let name = t.name.unwrap_or_else(|| "token".into());
            if t.token.is_some() {
                return Err(err(format!(
                    "token '{name}' is stored in plaintext (`token`); store `token_hash = \
                     \"blake3:…\"` instead, as printed by `driftwatch passwd --token`"
                )));
            }
            let hash = t
                .token_hash
                .ok_or_else(|| err(format!("token '{name}' has no `token_hash`")))?;
            let hex = hash.strip_prefix(TOKEN_HASH_PREFIX).unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(format!(
                    "token '{name}': `token_hash` must be `blake3:` and 64 hex digits (see \
                     `driftwatch passwd --token`)"
                )));
            }
            tokens.push((hash.to_ascii_lowercase(), name, t.role, t.sources));
        }
        let auth = Self::from_hashes(users, tokens, token_ttl);
        tracing::info!(
            users = auth.users.len(),
            tokens = auth.static_tokens.len(),
            file = %path.display(),
            "authentication enabled"
        );
        Ok(auth)
    }

    /// An authenticator over `(name, argon2 PHC hash, role)` users and
    /// `(token digest, name, role, sources)` static tokens.
    pub fn from_hashes(
        users: impl IntoIterator<Item = (String, String, Role)>,
        tokens: impl IntoIterator<Item = (String, String, Role, Option<Vec<String>>)>,
        token_ttl: Duration,
    ) -> Self {
        Self {
            users: users
                .into_iter()
                .map(|(n, hash, role)| (n, User { hash, role }))
                .collect(),
            static_tokens: tokens
                .into_iter()
                .map(|(digest, name, role, sources)| {
                    (
                        digest,
                        Identity {
                            name,
                            role,
                            sources,
                        },
                    )
                })
                .collect(),
            issued: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
            dummy_hash: hash_password(&new_token()),
            checks: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_CHECKS)),
            token_ttl,
        }
    }

    /// Checks `Basic` credentials from an `authorization` header value of a client at
    /// `address` and issues a token.
    pub async fn handshake(
        &self,
        header: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<(String, Identity), AuthError> {
        let now = Instant::now();
        if let Some(a) = address {
            self.failures.lock().expect("failures lock").check(a, now)?;
        }
        let result = self.verify_basic(header).await;
        match &result {
            Ok((_, id)) => {
                tracing::info!(user = %id.name, role = id.role.name(), "handshake: token issued")
            }
            Err(e) => {
                if let Some(a) = address {
                    self.failures.lock().expect("failures lock").record(a, now);
                }
                tracing::warn!(client = ?address, error = %e, "handshake refused");
            }
        }
        result
    }

    async fn verify_basic(&self, header: Option<&str>) -> Result<(String, Identity), AuthError> {
        let (user, password) = parse_basic(header)?;
        let (hash, role) = match self.users.get(&user) {
            Some(u) => (u.hash.clone(), Some(u.role)),
            None => (self.dummy_hash.clone(), None),
        };
        let _permit = self
            .checks
            .acquire()
            .await
            .map_err(|_| AuthError::BadCredentials)?;
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    hasher()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let role = match (matches, role) {
            (true, Some(role)) => role,
            _ => return Err(AuthError::BadCredentials),
        };
        let identity = Identity {
            name: user,
            role,
            sources: None,
        };
        let token = new_token();
        let mut issued = self.issued.lock().expect("token map lock");
        let now = Instant::now();
        let ttl = self.token_ttl;
        issued.retain(|_, (_, at)| now.duration_since(*at) < ttl);
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
        Ok((token, identity))
    }

    /// Checks a `Bearer` token from an `authorization` header value: a static token from the
    /// file or one issued by a handshake that has not expired.
    pub fn check(&self, header: Option<&str>) -> Result<Identity, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = strip_scheme(header, "Bearer")
            .ok_or_else(|| AuthError::Malformed("expected 'Bearer <token>'".into()))?
            .trim();
        if let Some(identity) = self.static_tokens.get(&hash_token(token)) {
            return Ok(identity.clone());
        }
        let issued = self.issued.lock().expect("token map lock");
        match issued.get(token) {
            Some((identity, at)) if at.elapsed() < self.token_ttl => Ok(identity.clone()),
            _ => Err(AuthError::BadToken),
        }
    }
}

/// `(user, password)` of a `Basic` header.
fn parse_basic(header: Option<&str>) -> Result<(String, String), AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let encoded = strip_scheme(header, "Basic")
        .ok_or_else(|| AuthError::Malformed("expected 'Basic <base64(user:password)>'".into()))?;
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
    Ok((user.to_string(), password.to_string()))
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Warns when a file holding secrets can be read or written by group or others.
pub fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{mode:o}"),
                    "file with credentials is accessible to other users: chmod 600 it"
                );
            }
        }
    }
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
        Authenticator::from_hashes(
            [
                ("alice".into(), hash_password("pw"), Role::Admin),
                ("bob".into(), hash_password("pw2"), Role::Read),
            ],
            [
                (hash_token("static"), "svc".into(), Role::Read, None),
                (
                    hash_token("ingest"),
                    "model".into(),
                    Role::Ingest,
                    Some(vec!["iris".into()]),
                ),
            ],
            TOKEN_TTL,
        )
    }

    #[tokio::test]
    async fn handshake_issues_tokens_with_roles() {
        let a = auth();
        let (token, id) = a
            .handshake(Some(&basic("alice", "pw")), None)
            .await
            .unwrap();
        assert_eq!(id.role, Role::Admin);
        let checked = a.check(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(checked.name, "alice");
        let (token, _) = a.handshake(Some(&basic("bob", "pw2")), None).await.unwrap();
        assert_eq!(
            a.check(Some(&format!("bearer {token}"))).unwrap().role,
            Role::Read
        );
        assert_eq!(a.check(Some("Bearer static")).unwrap().name, "svc");
        let ingest = a.check(Some("Bearer ingest")).unwrap();
        assert!(ingest.may_ingest("iris") && !ingest.may_ingest("other"));
        // Source names are case-insensitive, as in SQL.
        assert!(ingest.may_ingest("IRIS"));
    }

    #[tokio::test]
    async fn bad_credentials_and_tokens_are_refused() {
        let a = auth();
        assert!(matches!(
            a.handshake(Some(&basic("alice", "nope")), None).await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            a.handshake(Some(&basic("eve", "pw")), None).await,
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            a.handshake(None, None).await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            a.check(Some("Bearer wrong")),
            Err(AuthError::BadToken)
        ));
        assert!(matches!(
            a.check(Some("Token x")),
            Err(AuthError::Malformed(_))
        ));
        // The digest is not a token.
        assert!(a
            .check(Some(&format!("Bearer {}", hash_token("static"))))
            .is_err());
    }

    #[tokio::test]
    async fn issued_tokens_expire() {
        let a = Authenticator::from_hashes(
            [("alice".into(), hash_password("pw"), Role::Admin)],
            [],
            Duration::from_millis(50),
        );
        let (token, _) = a
            .handshake(Some(&basic("alice", "pw")), None)
            .await
            .unwrap();
        assert!(a.check(Some(&format!("Bearer {token}"))).is_ok());
        std::thread::sleep(Duration::from_millis(80));
        assert!(matches!(
            a.check(Some(&format!("Bearer {token}"))),
            Err(AuthError::BadToken)
        ));
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_address_out() {
        let a = auth();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                a.handshake(Some(&basic("alice", "guess")), Some(ip)).await,
                Err(AuthError::BadCredentials)
            ));
        }
        // Even the right password is refused now, from that address only.
        assert!(matches!(
            a.handshake(Some(&basic("alice", "pw")), Some(ip)).await,
            Err(AuthError::Locked { .. })
        ));
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        assert!(a
            .handshake(Some(&basic("alice", "pw")), Some(other))
            .await
            .is_ok());
    }

    #[test]
    fn plaintext_secrets_in_the_file_are_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(
            &path,
            "[[users]]\nname = \"a\"\npassword = \"p\"\nrole = \"admin\"\n",
        )
        .unwrap();
        let e = Authenticator::from_file(&path, TOKEN_TTL)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plaintext") && e.contains("driftwatch passwd"),
            "{e}"
        );
        std::fs::write(&path, "[[tokens]]\ntoken = \"t\"\nrole = \"read\"\n").unwrap();
        let e = Authenticator::from_file(&path, TOKEN_TTL)
            .unwrap_err()
            .to_string();
        assert!(e.contains("plaintext") && e.contains("--token"), "{e}");
    }

    #[test]
    fn files_parse_as_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("users.toml");
        std::fs::write(
            &toml_path,
            format!(
                "[[users]]\nname = \"a\"\npassword_hash = \"{}\"\nrole = \"admin\"\n",
                hash_password("p")
            ),
        )
        .unwrap();
        assert!(Authenticator::from_file(&toml_path, TOKEN_TTL).is_ok());
        let json_path = dir.path().join("users.json");
        std::fs::write(
            &json_path,
            format!(
                r#"{{"tokens": [{{"token_hash": "{}", "role": "read"}}]}}"#,
                hash_token("t")
            ),
        )
        .unwrap();
        let a = Authenticator::from_file(&json_path, TOKEN_TTL).unwrap();
        assert_eq!(a.check(Some("Bearer t")).unwrap().role, Role::Read);
        std::fs::write(
            &json_path,
            r#"{"users": [{"name": "x", "password_hash": "nothash", "role": "admin"}]}"#,
        )
        .unwrap();
        assert!(Authenticator::from_file(&json_path, TOKEN_TTL).is_err());
        std::fs::write(
            &json_path,
            format!(
                r#"{{"users": [{{"name": "x", "password_hash": "{}", "role": "root"}}]}}"#,
                hash_password("p")
            ),
        )
        .unwrap();
        assert!(Authenticator::from_file(&json_path, TOKEN_TTL).is_err());
    }
}
