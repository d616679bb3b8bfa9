//! The browser client, embedded in the binary: `web-client/` is compiled in
//! with `include_bytes!`, so the single binary serves a working client with
//! no build step and no files beside it.
//!
//! Pages (`/`, `/join`, `/admin`, `/replay`) all serve the same `index.html`; the client
//! picks the page from the path. Assets live under `/app/`. Every response
//! carries an ETag and `Cache-Control: no-cache`, so a phone on a weak link
//! revalidates with a few bytes instead of downloading the client again.

use super::extract::ApiPath;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One embedded file: its URL path, content type and bytes.
struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:expr) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!("../../web-client/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("src/main.js", JS),
    asset!("src/i18n.js", JS),
    asset!("src/strings.js", JS),
    asset!("src/dom.js", JS),
    asset!("src/conn.js", JS),
    asset!("src/room.js", JS),
    asset!("src/media.js", JS),
    asset!("src/join.js", JS),
    asset!("src/classroom.js", JS),
    asset!("src/admin.js", JS),
    asset!("src/activities.js", JS),
    asset!("src/replay.js", JS),
    asset!("favicon.ico", "image/x-icon"),
];

/// Where the pages may load from and connect to: this server only.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
    media-src 'self' blob: mediastream:; img-src 'self' data:; \
    style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/join", get(page))
        .route("/admin", get(page))
        .route("/replay", get(page))
        .route("/app/{*file}", get(asset))
        // Browsers ask for it on every page whatever the page links.
        .route("/favicon.ico", get(favicon))
}

async fn favicon(headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == "favicon.ico") {
        Some(i) => serve(i, &headers),
        None => super::ApiError::not_found("file").into_response(),
    }
}

async fn page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(ApiPath(file): ApiPath<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == file) {
        Some(i) => serve(i, &headers),
        None => super::ApiError::not_found("file").into_response(),
    }
}

/// Strong ETags, computed once from the embedded bytes.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body);
                let hex: String = d[..10].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let a = &ASSETS[i];
    let tag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.mime)], a.body).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.path == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    res
}
