//! Browser sessions of the live page: a random id in an `HttpOnly; SameSite=Strict` cookie,
//! mapped to the identity that logged in, forgotten after [`SESSION_TTL`].
//!
//! A browser cannot send `authorization: Bearer` when it navigates to a page, so the login
//! form trades credentials for this cookie once; `SameSite=Strict` keeps other sites'
//! pages from using it (no cross-site request carries it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use driftwatch_flight::auth::Identity;

/// Name of the session cookie.
pub const COOKIE: &str = "driftwatch_session";
/// Lifetime of a session.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept; the oldest is forgotten beyond that.
pub const MAX_SESSIONS: usize = 10_000;

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl Sessions {
    /// Opens a session for `identity`; returns its id (the cookie value).
    pub fn open(&self, identity: Identity) -> String {
        let id = driftwatch_flight::auth::new_token();
        let now = Instant::now();
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, at)| now.duration_since(*at) < SESSION_TTL);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), (identity, now));
        id
    }

    /// The identity of a live session.
    pub fn get(&self, id: &str) -> Option<Identity> {
        let map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(id) {
            Some((identity, at)) if at.elapsed() < SESSION_TTL => Some(identity.clone()),
            _ => None,
        }
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// The session id in a `cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then_some(value)
    })
}

/// The `set-cookie` value that stores `id` (`Secure` when served over TLS).
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    )
}

/// The `set-cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let id = sessions.open(Identity::anonymous_admin());
        assert!(sessions.get(&id).is_some());
        assert!(sessions.get("nope").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn cookie_is_found_among_others() {
        assert_eq!(
            cookie_value("a=1; driftwatch_session=abc; b=2"),
            Some("abc")
        );
        assert_eq!(cookie_value("driftwatch_session="), None);
        assert_eq!(cookie_value("x=driftwatch_session"), None);
        let c = set_cookie("abc", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
    }
}
