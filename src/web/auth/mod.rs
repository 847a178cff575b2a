//! Who may see the live page: with an auth file on the HTTP side, the page and its API need
//! the credentials the rest of that port takes — `authorization: Bearer <token>` (a static
//! token of the file, or one issued by the Flight handshake), or the session cookie the
//! login form sets ([`session`]). Users of the `read` and `admin` roles may look; `ingest`
//! tokens may not (403). Without an auth file the page is open, as `/ingest` is.
//!
//! The login form checks `user` + `password` through the auth file's password check (the
//! argon2id hashes, its lockout of an address after repeated failures), or a `token`.

pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use base64::Engine;
use driftwatch_flight::auth::Identity;
use driftwatch_flight::{AuthError, Authenticator, Role};
use serde::Deserialize;

use super::WebState;
use crate::present::html::escape;
use session::Sessions;

/// Longest accepted user name, password or token in the login form.
const MAX_FIELD: usize = 4096;

/// The auth file's checks plus the page's sessions.
#[derive(Debug)]
pub struct WebAuth {
    auth: Arc<Authenticator>,
    sessions: Sessions,
    /// The port serves TLS: cookies get `Secure`.
    secure: bool,
}

impl WebAuth {
    /// Checks of `auth`; `secure` when the port serves HTTPS.
    pub fn new(auth: Arc<Authenticator>, secure: bool) -> Self {
        Self {
            auth,
            sessions: Sessions::default(),
            secure,
        }
    }

    /// The identity behind a request's bearer token or session cookie.
    fn identify(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        if let Some(bearer) = headers.get(header::AUTHORIZATION) {
            return self.auth.check(bearer.to_str().ok());
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::cookie_value);
        match cookie {
            Some(id) => self.sessions.get(id).ok_or(AuthError::BadToken),
            None => Err(AuthError::Missing),
        }
    }
}

fn may_view(identity: &Identity) -> bool {
    matches!(identity.role, Role::Read | Role::Admin)
}

/// Middleware of the page and its API: passes requests with credentials of a `read` or
/// `admin` identity; others get 401 (the login form for the page, JSON for the API) or 403.
pub async fn require(State(state): State<Arc<WebState>>, request: Request, next: Next) -> Response {
    let Some(auth) = &state.auth else {
        return next.run(request).await;
    };
    let page = !request.uri().path().starts_with("/api/");
    match auth.identify(request.headers()) {
        Ok(identity) if may_view(&identity) => next.run(request).await,
        Ok(identity) => {
            tracing::warn!(user = %identity.name, "live page refused: role");
            let message = format!(
                "'{}' has the {} role; the live page needs the read or admin role",
                identity.name,
                identity.role.name()
            );
            if page {
                (StatusCode::FORBIDDEN, login_html(Some(&message))).into_response()
            } else {
                super::api::error(StatusCode::FORBIDDEN, message)
            }
        }
        Err(e) => {
            let missing = matches!(e, AuthError::Missing);
            let message = match e {
                AuthError::Missing => "log in, or send 'authorization: Bearer <token>'".to_string(),
                AuthError::BadToken => "session or token invalid or expired; log in again".into(),
                other => other.to_string(),
            };
            let mut r = if page {
                let note = (!missing).then_some(message.as_str());
                (StatusCode::UNAUTHORIZED, login_html(note)).into_response()
            } else {
                super::api::error(StatusCode::UNAUTHORIZED, message)
            };
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"driftwatch-web\""),
            );
            r
        }
    }
}

/// Fields of the login form: `user` + `password`, or `token`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
}

/// `GET /login`: the form (or, without an auth file, the page itself).
pub async fn login_page(State(state): State<Arc<WebState>>) -> Response {
    if state.auth.is_none() {
        return Redirect::to("/").into_response();
    }
    Html(login_html(None)).into_response()
}

/// `POST /login`: checks the form's credentials; on success sets the session cookie and
/// redirects to the page, else answers the form again with why (401, 429 when locked).
pub async fn login(State(state): State<Arc<WebState>>, request: Request) -> Response {
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Form(form) = match Form::<LoginForm>::from_request(request, &()).await {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, login_html(Some(&e.body_text()))).into_response()
        }
    };
    if [&form.user, &form.password, &form.token]
        .iter()
        .any(|f| f.len() > MAX_FIELD)
    {
        return (
            StatusCode::BAD_REQUEST,
            login_html(Some("a field is too long")),
        )
            .into_response();
    }
    let checked = if !form.token.trim().is_empty() {
        auth.auth
            .check(Some(&format!("Bearer {}", form.token.trim())))
    } else if !form.user.is_empty() {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", form.user, form.password));
        auth.auth
            .handshake(Some(&format!("Basic {basic}")), address)
            .await
            .map(|(_, identity)| identity)
    } else {
        Err(AuthError::Missing)
    };
    match checked {
        Ok(identity) if may_view(&identity) => {
            tracing::info!(user = %identity.name, "live page: logged in");
            let id = auth.sessions.open(identity);
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, auth.secure)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(identity) => (
            StatusCode::FORBIDDEN,
            login_html(Some(&format!(
                "'{}' has the {} role; the live page needs the read or admin role",
                identity.name,
                identity.role.name()
            ))),
        )
            .into_response(),
        Err(e) => {
            let status = match e {
                AuthError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let message = match e {
                AuthError::Missing => "enter a user and password, or a token".to_string(),
                other => other.to_string(),
            };
            (status, login_html(Some(&message))).into_response()
        }
    }
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(State(state): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::cookie_value);
    if let Some(id) = cookie {
        auth.sessions.close(id);
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(auth.secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The login form, with `message` (HTML-escaped) above it.
fn login_html(message: Option<&str>) -> Html<String> {
    let note = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    Html(super::assets::LOGIN_HTML.replace("<!--message-->", &note))
}
