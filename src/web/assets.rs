//! The page's files, bundled in the binary (`include_str!`): nothing is fetched from a CDN,
//! the page works without internet access. The vendored uPlot is described in
//! `src/web/assets/vendor/README.md`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// The login form (`<!--message-->` is replaced by the reason of a refusal).
pub const LOGIN_HTML: &str = include_str!("assets/login.html");

/// `(name, content type, content)` of every file under `/assets/`.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/vendor/uPlot.min.css"),
    ),
];

/// Headers every page answer carries: no framing by other sites, no sniffing, and a
/// content security policy that allows only this origin's scripts and styles.
fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

/// `GET /`: the page.
pub async fn index() -> Response {
    harden(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            INDEX_HTML,
        )
            .into_response(),
    )
}

/// `GET /assets/{file}`: one bundled file, 404 for any other name.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => harden(
            (
                [
                    (header::CONTENT_TYPE, *kind),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *body,
            )
                .into_response(),
        ),
        None => super::api::error(StatusCode::NOT_FOUND, format!("no asset '{file}'")),
    }
}

/// Adds the page's security headers to the login form.
pub fn hardened(r: Response) -> Response {
    harden(r)
}
