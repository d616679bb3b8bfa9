//! REST API `/api/v1`: sessions, join tokens, reports. Admin key required.

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::ApiError;
use crate::auth::{constant_time_eq, Claims, TokenType};
use crate::protocol::{
    ErrorCode, Event, EventKind, Question, Role, SessionInfo, SessionKind, SessionSettings,
    SessionStatus, Timestamp,
};
use crate::room::attendance::{attendance, to_csv, AttendanceRow};
use crate::room::state::ClassState;
use crate::room::SessionPatch;
use crate::store::Write;
use crate::App;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{OpenApi, ToSchema};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/sessions", post(create_session).get(list_sessions))
        .route("/sessions/{id}", get(get_session).patch(update_session))
        .route("/sessions/{id}/end", post(end_session))
        .route("/sessions/{id}/tokens", post(create_token))
        .route("/sessions/{id}/participants", get(participants))
        .route("/sessions/{id}/chat", get(chat))
        .route("/sessions/{id}/questions", get(questions))
        .route("/sessions/{id}/events", get(events))
        .route("/sessions/{id}/attendance", get(attendance_report))
        .route("/token-info", get(token_info))
}

/// Requires `Authorization: Bearer <admin key>`.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Admin, ApiError> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "send the admin key as 'Authorization: Bearer <key>'",
                )
            })?;
        if constant_time_eq(given.trim().as_bytes(), app.admin_key.as_bytes()) {
            Ok(Admin)
        } else {
            Err(ApiError::new(ErrorCode::Unauthorized, "wrong admin key"))
        }
    }
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code from `docs/protocol.md`, e.g. `not_found`.
    code: String,
    message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub title: String,
    pub kind: SessionKind,
    pub scheduled_start: Option<Timestamp>,
    pub scheduled_end: Option<Timestamp>,
    #[serde(default)]
    pub settings: SessionSettings,
}

fn check_session(
    title: &str,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    settings: &SessionSettings,
) -> Result<(), ApiError> {
    let len = title.trim().chars().count();
    if len == 0 || len > 200 {
        return Err(ApiError::bad_request("title must have 1 to 200 characters"));
    }
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            return Err(ApiError::bad_request(
                "scheduled_end must be after scheduled_start",
            ));
        }
    }
    if let Some(r) = &settings.rubric {
        r.validate().map_err(ApiError::bad_request)?;
    }
    if let Some(p) = &settings.presence_checks {
        let ok = p.per_hour_min > 0.0
            && p.per_hour_max >= p.per_hour_min
            && p.per_hour_max <= 60.0
            && p.window_secs.is_none_or(|w| (10..=600).contains(&w));
        if !ok {
            return Err(ApiError::bad_request(
                "settings.presence_checks: 0 < per_hour_min <= per_hour_max <= 60, window_secs 10 to 600",
            ));
        }
    }
    if let Some(n) = settings.chat_max_length {
        if !(1..=10_000).contains(&n) {
            return Err(ApiError::bad_request(
                "settings.chat_max_length must be 1 to 10000",
            ));
        }
    }
    Ok(())
}

/// Creates and stores a session (also used for the demo sessions).
pub async fn create(app: &App, req: CreateSession) -> Result<SessionInfo, ApiError> {
    check_session(
        &req.title,
        req.scheduled_start,
        req.scheduled_end,
        &req.settings,
    )?;
    let session = SessionInfo {
        id: crate::ids::new_id(),
        title: req.title.trim().to_string(),
        kind: req.kind,
        status: SessionStatus::Scheduled,
        scheduled_start: req.scheduled_start,
        scheduled_end: req.scheduled_end,
        settings: req.settings,
        created_at: Timestamp::now(),
        started_at: None,
        ended_at: None,
    };
    app.store.apply(&[Write::Session(session.clone())]).await?;
    Ok(session)
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses((status = 201, body = SessionInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("admin_key" = [])))]
async fn create_session(
    _: Admin,
    State(app): State<App>,
    ApiJson(req): ApiJson<CreateSession>,
) -> Result<Response, ApiError> {
    let session = create(&app, req).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    responses((status = 200, body = Vec<SessionInfo>), (status = 401, body = ErrorBody)), security(("admin_key" = [])))]
async fn list_sessions(
    _: Admin,
    State(app): State<App>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    Ok(Json(app.store.list_sessions().await?))
}

async fn load_session(app: &App, id: &str) -> Result<SessionInfo, ApiError> {
    app.store
        .get_session(id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionInfo), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
async fn get_session(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    Ok(Json(load_session(&app, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    request_body = SessionPatch,
    responses((status = 200, body = SessionInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
async fn update_session(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<SessionPatch>,
) -> Result<Json<SessionInfo>, ApiError> {
    let mut preview = load_session(&app, &id).await?;
    if preview.status == SessionStatus::Ended {
        return Err(ApiError::new(
            ErrorCode::SessionEnded,
            "an ended session cannot be changed",
        ));
    }
    patch.apply_to(&mut preview);
    check_session(
        &preview.title,
        preview.scheduled_start,
        preview.scheduled_end,
        &preview.settings,
    )?;
    Ok(Json(app.rooms.update(&id, patch).await?))
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/end", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionInfo), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
async fn end_session(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionInfo>, ApiError> {
    load_session(&app, &id).await?;
    Ok(Json(app.rooms.end(&id, "admin").await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The teacher's id in the programme's own system; every report carries it.
    pub identity: String,
    /// Display name.
    pub name: String,
    pub role: Role,
    /// Lifetime in seconds (default from the server config, at most 30 days).
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub token: String,
    pub join_url: String,
    pub expires_at: Timestamp,
}

/// Signs a join token for a session (also used for the demo links).
pub fn issue_token(
    app: &App,
    session: &SessionInfo,
    req: &CreateToken,
) -> Result<TokenResponse, ApiError> {
    let identity = req.identity.trim();
    if identity.is_empty()
        || identity.chars().count() > 128
        || identity.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "identity must have 1 to 128 printable characters",
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must have 1 to 64 printable characters",
        ));
    }
    let ttl = req.ttl_seconds.unwrap_or(app.config.token_ttl_secs);
    if ttl == 0 || ttl > 30 * 24 * 3600 {
        return Err(ApiError::bad_request(
            "ttl_seconds must be 1 to 2592000 (30 days)",
        ));
    }
    let iat = Timestamp::now().millis() / 1000;
    let exp = iat + ttl as i64;
    let token = app.keys.sign(&Claims {
        sid: session.id.clone(),
        sub: identity.to_string(),
        name: name.to_string(),
        role: req.role,
        iat,
        exp,
        typ: TokenType::Join,
    });
    Ok(TokenResponse {
        join_url: format!("{}/join?token={token}", app.public_url),
        token,
        expires_at: Timestamp(exp * 1000),
    })
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/tokens", tag = "sessions", params(("id" = String, Path)),
    request_body = CreateToken,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 410, description = "The session has ended", body = ErrorBody)),
    security(("admin_key" = [])))]
async fn create_token(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<Json<TokenResponse>, ApiError> {
    let session = load_session(&app, &id).await?;
    if session.status == SessionStatus::Ended {
        return Err(ApiError::new(
            ErrorCode::SessionEnded,
            "this session has ended",
        ));
    }
    Ok(Json(issue_token(&app, &session, &req)?))
}

async fn load_events(app: &App, id: &str, kinds: &[&str]) -> Result<Vec<Event>, ApiError> {
    app.store
        .events(id, 0, None, kinds)
        .await?
        .into_iter()
        .map(|e| {
            serde_json::from_str(&e.frame).map_err(|err| {
                tracing::error!(session = %id, seq = e.seq, "corrupt event: {err}");
                ApiError::new(ErrorCode::Internal, "a stored event could not be read")
            })
        })
        .collect()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ParticipantRecord {
    pub identity: String,
    pub name: String,
    pub role: Role,
    /// Has an open attendance interval now.
    pub present: bool,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/participants", tag = "reports", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ParticipantRecord>), (status = 404, body = ErrorBody)), security(("admin_key" = [])))]
async fn participants(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<ParticipantRecord>>, ApiError> {
    let session = load_session(&app, &id).await?;
    let events = load_events(
        &app,
        &id,
        &["participant_joined", "participant_left", "media_reported"],
    )
    .await?;
    let present: HashMap<String, bool> = attendance(&session, &events, Timestamp::now())
        .into_iter()
        .map(|r| (r.identity, r.present))
        .collect();
    let rows = app.store.participants(&id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ParticipantRecord {
                present: present.get(&r.identity).copied().unwrap_or(false),
                identity: r.identity,
                name: r.name,
                role: r.role,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatRecord {
    pub id: i64,
    pub identity: String,
    pub name: String,
    pub text: String,
    pub sent_at: Timestamp,
    pub deleted: bool,
    pub deleted_by: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/chat", tag = "reports", params(("id" = String, Path)),
    responses((status = 200, description = "Every message, deleted ones marked", body = Vec<ChatRecord>), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
async fn chat(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<ChatRecord>>, ApiError> {
    load_session(&app, &id).await?;
    let mut out: Vec<ChatRecord> = Vec::new();
    for e in load_events(&app, &id, &["chat_message", "chat_deleted"]).await? {
        match e.kind {
            EventKind::ChatMessage { message: m } => out.push(ChatRecord {
                id: m.id,
                identity: m.identity,
                name: m.name,
                text: m.text,
                sent_at: m.sent_at,
                deleted: false,
                deleted_by: None,
            }),
            EventKind::ChatDeleted { message_id, by } => {
                if let Some(m) = out.iter_mut().find(|m| m.id == message_id) {
                    m.deleted = true;
                    m.deleted_by = Some(by);
                }
            }
            _ => {}
        }
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/questions", tag = "reports", params(("id" = String, Path)),
    responses((status = 200, description = "Every question with replies, dismissed ones included", body = Vec<Question>),
              (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
async fn questions(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Question>>, ApiError> {
    let session = load_session(&app, &id).await?;
    let kinds = [
        "question_asked",
        "question_upvoted",
        "question_replied",
        "question_status_changed",
        "question_pinned",
    ];
    let mut state = ClassState::new(session, 0, false);
    for e in load_events(&app, &id, &kinds).await? {
        state.apply(e.seq, e.at, &e.kind);
    }
    Ok(Json(state.questions.into_values().collect()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a larger `seq` (default 0).
    pub after_seq: Option<u64>,
    /// At most this many (default 1000, at most 10000).
    pub limit: Option<u64>,
}

/// Documents the shape shared by all timeline events; each `type` adds its own fields.
#[derive(Serialize, ToSchema)]
pub struct TimelineEvent {
    seq: u64,
    at: Timestamp,
    r#type: String,
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/events", tag = "reports", params(("id" = String, Path), EventsQuery),
    responses((status = 200, description = "The session timeline: the same frames that were broadcast", body = Vec<TimelineEvent>),
              (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
async fn events(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    load_session(&app, &id).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let rows = app
        .store
        .events(&id, q.after_seq.unwrap_or(0), Some(limit), &[])
        .await?;
    let mut body = String::from("[");
    for (i, e) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.frame);
    }
    body.push(']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttendanceQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/attendance", tag = "reports", params(("id" = String, Path), AttendanceQuery),
    responses((status = 200, description = "One row per participant (observers are not counted); `?format=csv` gives UTF-8 CSV with a BOM",
               body = Vec<AttendanceRow>), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
async fn attendance_report(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AttendanceQuery>,
) -> Result<Response, ApiError> {
    let session = load_session(&app, &id).await?;
    let events = load_events(
        &app,
        &id,
        &["participant_joined", "participant_left", "media_reported"],
    )
    .await?;
    let rows = attendance(&session, &events, Timestamp::now());
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(rows).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"attendance-{id}.csv\""),
                ),
            ],
            to_csv(&rows),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format {other:?}; use json or csv"
        ))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenInfoQuery {
    /// A join token.
    token: Option<String>,
}

/// What a join link is for, so the join page can greet the member and ask
/// for camera and microphone only when the role may publish. The token is
/// the credential: no admin key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub session: SessionInfo,
    pub identity: String,
    pub name: String,
    pub role: Role,
    pub expires_at: Timestamp,
}

#[utoipa::path(get, path = "/api/v1/token-info", tag = "join", params(TokenInfoQuery),
    responses((status = 200, body = TokenInfo),
              (status = 401, description = "Invalid or expired token (`unauthorized`, `token_expired`)", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 410, description = "The session has ended", body = ErrorBody)))]
async fn token_info(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<TokenInfoQuery>,
) -> Result<Json<TokenInfo>, ApiError> {
    let token = q
        .token
        .ok_or_else(|| ApiError::bad_request("give the join token: ?token=…"))?;
    let (claims, session) = crate::signal::check_token(&app, &token, TokenType::Join).await?;
    Ok(Json(TokenInfo {
        session,
        identity: claims.sub,
        name: claims.name,
        role: claims.role,
        expires_at: Timestamp(claims.exp * 1000),
    }))
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token of the session: a replay token, or a member's join or resume token",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Lectern API", description = "Sessions, join tokens, reports and recordings of the Lectern live classroom server. The WebSocket protocol is in docs/protocol.md."),
    paths(create_session, list_sessions, get_session, update_session, end_session, create_token,
          participants, chat, questions, events, attendance_report, token_info,
          super::grading_api::report, super::grading_api::sinks, super::grading_api::deliveries,
          super::grading_api::redeliver, super::recordings_api::list,
          super::recordings_api::timeline, super::recordings_api::file,
          super::recordings_api::replay_token, super::recordings_api::watched),
    components(schemas(ErrorBody, ErrorDetail, TimelineEvent)),
    modifiers(&SecurityAddon)
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
