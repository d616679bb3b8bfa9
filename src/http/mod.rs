//! The HTTP surface: REST API under `/api/v1`, the WebSocket endpoint,
//! health and metrics. Handlers translate; the rooms and the store decide.

pub mod api;
pub mod extract;
pub mod grading_api;
pub mod metrics;
pub mod recordings_api;
pub mod web;

use crate::protocol::ErrorCode;
use crate::App;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;

/// A REST error: `{"error": {"code", "message"}}` with a matching status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

/// Who sent a request, by its `Authorization: Bearer …` credential.
pub enum Caller {
    Admin,
    /// A valid (signed, unexpired) join, resume or replay token.
    Token(crate::auth::Claims),
}

/// Reads the bearer credential: the admin key, or a token this server signed.
pub fn caller(
    app: &App,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, crate::auth::TokenError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if crate::auth::constant_time_eq(given.as_bytes(), app.admin_key.as_bytes()) {
        return Ok(Caller::Admin);
    }
    app.keys
        .verify(given, crate::protocol::Timestamp::now())
        .map(Caller::Token)
}

impl ApiError {
    /// A refusal with `code`; its status comes from the code's one table
    /// ([`ErrorCode::http_status`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::with_status(status, code, message)
    }
    /// A refusal whose status is not the code's own: only the WebSocket
    /// version check (426 with `bad_request`, as RFC 6455 asks).
    pub fn with_status(
        status: StatusCode,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("no such {what}"))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::error!("storage: {e}");
        ApiError::new(ErrorCode::StorageUnavailable, "storage is unavailable")
    }
}

impl From<crate::room::RoomError> for ApiError {
    fn from(e: crate::room::RoomError) -> ApiError {
        ApiError::new(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

pub fn router(app: App) -> Router {
    Router::new()
        .nest(
            "/api/v1",
            api::routes()
                .merge(grading_api::routes())
                .merge(recordings_api::routes()),
        )
        .merge(web::routes())
        // Every method reaches the handler, which refuses what is not a
        // WebSocket handshake with the JSON body (docs/protocol.md §2.3).
        .route("/ws", any(crate::signal::ws_handler))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // Set after every route: it applies to the routes already added.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(app)
}

async fn healthz(axum::extract::State(app): axum::extract::State<App>) -> Response {
    if app.shutdown.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        )
            .into_response()
    } else {
        Json(json!({ "status": "ok" })).into_response()
    }
}

async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("page")
}

/// A path that exists, asked with a method it does not take. axum adds the
/// `Allow` header to this answer.
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this path does not take {method}; the Allow header lists what it takes"),
    )
}
