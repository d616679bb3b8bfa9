//! Recordings of a session (admin key): the list, and each track's WebM
//! file served with HTTP range requests, so players can seek.

use super::api::Admin;
use super::extract::ApiJson;
use super::extract::{ApiPath, ApiQuery};
use super::ApiError;
use crate::auth::{Claims, TokenType};
use crate::protocol::{Role, Timestamp};
use crate::App;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/sessions/{id}/replay-tokens",
            axum::routing::post(replay_token),
        )
        .route(
            "/sessions/{id}/recordings/{rid}/watched",
            axum::routing::post(watched),
        )
        .route("/sessions/{id}/recordings", get(list))
        .route("/sessions/{id}/recordings/{rid}/timeline", get(timeline))
        .route("/sessions/{id}/recordings/{rid}/{file}", get(file))
}

/// The recorded stretches of a recording, from its events: (start, end) in
/// session time (ms since the epoch); the last one open while it runs.
pub fn stretches(events: &[crate::protocol::Event], rid: &str) -> Vec<(i64, Option<i64>)> {
    use crate::protocol::EventKind as K;
    let mut out: Vec<(i64, Option<i64>)> = Vec::new();
    for e in events {
        let at = e.at.millis();
        match &e.kind {
            K::RecordingStarted { recording_id, .. } | K::RecordingResumed { recording_id, .. }
                if recording_id == rid =>
            {
                out.push((at, None));
            }
            K::RecordingPaused { recording_id, .. } | K::RecordingStopped { recording_id, .. }
                if recording_id == rid =>
            {
                if let Some(last) = out.last_mut().filter(|l| l.1.is_none()) {
                    last.1 = Some(at);
                }
            }
            _ => {}
        }
    }
    out
}

/// Where a moment of the session falls in the recording: recorded time
/// before it, or `None` when nothing was being recorded then.
pub fn offset(stretches: &[(i64, Option<i64>)], at: i64) -> Option<i64> {
    let mut before = 0;
    for (s, e) in stretches {
        let end = e.unwrap_or(i64::MAX);
        if at < *s {
            return None;
        }
        if at <= end {
            return Some(before + at - s);
        }
        before += end - s;
    }
    None
}

/// What the replay shows beside the video.
const REPLAYED: &[&str] = &[
    "chat_message",
    "chat_deleted",
    "question_asked",
    "question_upvoted",
    "question_replied",
    "question_status_changed",
    "question_pinned",
    "hand_raised",
    "hand_lowered",
    "hands_cleared",
    "stage_joined",
    "stage_left",
    "speaking",
    "participant_joined",
    "participant_left",
    "track_published",
    "track_unpublished",
    "poll_opened",
    "poll_closed",
];

/// The session's events during a recording, each with `offset_ms` from the
/// recording's start; events in paused stretches are left out, like the
/// media.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/recordings/{rid}/timeline", tag = "recordings",
    params(("id" = String, Path), ("rid" = String, Path)),
    responses((status = 200, description = "Stored events (as on the WebSocket), each with `offset_ms`", body = Vec<Object>),
              (status = 401, body = super::api::ErrorBody),
              (status = 403, body = super::api::ErrorBody),
              (status = 404, body = super::api::ErrorBody)),
    security(("admin_key" = []), ("session_token" = [])))]
async fn timeline(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath((id, rid)): ApiPath<(String, String)>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let (id, rid) = (safe(&id)?.to_string(), safe(&rid)?.to_string());
    viewer(&app, &headers, &id)?;
    let stored = app.store.events(&id, 0, None, &[]).await?;
    let events: Vec<crate::protocol::Event> = stored
        .iter()
        .filter_map(|e| serde_json::from_str(&e.frame).ok())
        .collect();
    let spans = stretches(&events, &rid);
    if spans.is_empty() {
        return Err(ApiError::not_found("recording"));
    }
    let mut out = Vec::new();
    for (e, raw) in events.iter().zip(stored.iter()) {
        if !REPLAYED.contains(&e.kind.type_name()) {
            continue;
        }
        if let Some(off) = offset(&spans, e.at.millis()) {
            let mut v: Value = serde_json::from_str(&raw.frame).unwrap_or(Value::Null);
            v["offset_ms"] = Value::from(off);
            out.push(v);
        }
    }
    Ok(Json(out))
}

/// Ids and file names come from URLs: letters, digits, `-`, `_` and `.` only.
fn safe(s: &str) -> Result<&str, ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 100
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then_some(s)
        .ok_or_else(|| ApiError::not_found("recording"))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Listed {
    id: String,
    /// Whether the recording was finished (a crash leaves it unfinished,
    /// its files playable up to their last frame).
    finished: bool,
    duration_ms: Option<i64>,
    /// Finished: the manifest's tracks (`track_id`, `owner`, `source`,
    /// `kind`, `file`, `frames`, `start_ms`, `end_ms`, `bytes`) with `url`
    /// and the owner's `role` in the session (`null` if unknown);
    /// unfinished: `file`, `bytes` and `url` of each file.
    #[schema(value_type = Vec<Object>)]
    tracks: Vec<Value>,
}

/// Who may watch: the admin key, or a token for this session (a replay
/// token, or a member's join or resume token). `Some` claims for a token.
fn viewer(app: &App, headers: &HeaderMap, session: &str) -> Result<Option<Claims>, ApiError> {
    match super::caller(app, headers) {
        Ok(super::Caller::Admin) => Ok(None),
        Ok(super::Caller::Token(c)) if c.sid == session => Ok(Some(c)),
        Ok(super::Caller::Token(_)) => Err(ApiError::new(
            crate::protocol::ErrorCode::Forbidden,
            "this token is for another session",
        )),
        Err(crate::auth::TokenError::Expired) => Err(ApiError::new(
            crate::protocol::ErrorCode::TokenExpired,
            "your replay link has expired; ask the organiser for a new one",
        )),
        Err(_) => Err(ApiError::new(
            crate::protocol::ErrorCode::Unauthorized,
            "send the admin key or a replay token as 'Authorization: Bearer …'",
        )),
    }
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayTokenRequest {
    /// The teacher, as the programme identifies them (1–128 characters).
    identity: String,
    /// Display name (1–64 characters).
    name: String,
    /// How long the link works: 1 to 7,776,000 s; default 30 days.
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayLink {
    /// A replay token: reads this session's recordings and reports watched time.
    token: String,
    /// The replay page with the token.
    replay_url: String,
    #[schema(value_type = String)]
    expires_at: Timestamp,
}

/// A replay link for one teacher (admin key). Works for ended sessions too.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/replay-tokens", tag = "recordings",
    params(("id" = String, Path)), request_body = ReplayTokenRequest,
    responses((status = 200, body = ReplayLink),
              (status = 400, body = super::api::ErrorBody),
              (status = 401, body = super::api::ErrorBody),
              (status = 404, body = super::api::ErrorBody)),
    security(("admin_key" = [])))]
async fn replay_token(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<ReplayTokenRequest>,
) -> Result<Json<ReplayLink>, ApiError> {
    let session = app
        .store
        .get_session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let (identity, name) = (r.identity.trim(), r.name.trim());
    let printable = |s: &str, max: usize| {
        !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
    };
    if !printable(identity, 128) || !printable(name, 64) {
        return Err(ApiError::bad_request(
            "identity (1-128) and name (1-64) must be printable characters",
        ));
    }
    let ttl = r.ttl_seconds.unwrap_or(30 * 24 * 3600);
    if ttl == 0 || ttl > 90 * 24 * 3600 {
        return Err(ApiError::bad_request(
            "ttl_seconds must be 1 to 7776000 (90 days)",
        ));
    }
    let iat = Timestamp::now().millis() / 1000;
    let token = app.keys.sign(&Claims {
        sid: session.id.clone(),
        sub: identity.to_string(),
        name: name.to_string(),
        role: Role::Observer,
        iat,
        exp: iat + ttl as i64,
        typ: TokenType::Replay,
    });
    Ok(Json(ReplayLink {
        replay_url: format!(
            "{}/replay?session={}&token={token}",
            app.public_url, session.id
        ),
        token,
        expires_at: Timestamp((iat + ttl as i64) * 1000),
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Watched {
    /// Newly watched stretches, `[start, end]` in seconds of the recording
    /// (1 to 100 pairs).
    #[schema(value_type = Vec<Vec<f64>>)]
    ranges: Vec<[f64; 2]>,
}

/// Stretches of a replay the token's holder watched; becomes the
/// participation event `replay.watched`. Answers `{"seconds": n}`.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/recordings/{rid}/watched", tag = "recordings",
    params(("id" = String, Path), ("rid" = String, Path)), request_body = Watched,
    responses((status = 200, description = "The merged length counted, `{\"seconds\": 486}`", body = Object),
              (status = 400, body = super::api::ErrorBody),
              (status = 401, body = super::api::ErrorBody),
              (status = 403, body = super::api::ErrorBody),
              (status = 404, body = super::api::ErrorBody)),
    security(("session_token" = [])))]
async fn watched(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath((id, rid)): ApiPath<(String, String)>,
    ApiJson(w): ApiJson<Watched>,
) -> Result<Json<Value>, ApiError> {
    let (id, rid) = (safe(&id)?.to_string(), safe(&rid)?.to_string());
    let Some(claims) = viewer(&app, &headers, &id)? else {
        return Err(ApiError::bad_request(
            "watched time is per person: send it with a replay token, not the admin key",
        ));
    };
    let manifest = tokio::fs::read(
        app.config
            .data_dir
            .join("recordings")
            .join(&id)
            .join(&rid)
            .join("recording.json"),
    )
    .await
    .ok()
    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    .ok_or_else(|| ApiError::not_found("recording"))?;
    let length = manifest["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let ok = !w.ranges.is_empty()
        && w.ranges.len() <= 100
        && w.ranges.iter().all(|[a, b]| {
            a.is_finite() && b.is_finite() && *a >= 0.0 && a < b && *b <= length + 5.0
        });
    if !ok {
        return Err(ApiError::bad_request(
            "ranges: 1 to 100 [start, end] pairs of seconds within the recording, start < end",
        ));
    }
    // Overlaps within one report count once.
    let mut r = w.ranges.clone();
    r.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let mut merged: Vec<[f64; 2]> = Vec::new();
    for x in r {
        match merged.last_mut() {
            Some(last) if x[0] <= last[1] => last[1] = last[1].max(x[1]),
            _ => merged.push(x),
        }
    }
    let seconds = merged.iter().map(|[a, b]| b - a).sum::<f64>().round() as u32;
    app.rooms
        .replay_watched(&id, &rid, &claims.sub, &claims.name, seconds, merged)
        .await?;
    Ok(Json(serde_json::json!({ "seconds": seconds })))
}

/// The session's recordings, sorted by id.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/recordings", tag = "recordings",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<Listed>),
              (status = 401, body = super::api::ErrorBody),
              (status = 403, body = super::api::ErrorBody),
              (status = 404, body = super::api::ErrorBody)),
    security(("admin_key" = []), ("session_token" = [])))]
async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Listed>>, ApiError> {
    let id = safe(&id)?.to_string();
    viewer(&app, &headers, &id)?;
    app.store
        .get_session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let dir = app.config.data_dir.join("recordings").join(&id);
    let mut out = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
        return Ok(Json(out));
    };
    // Each owner's role in the session, so a replay can put the expert on
    // the main stage as the live Q&A does.
    let roles: std::collections::HashMap<String, Role> = app
        .store
        .participants(&id)
        .await?
        .into_iter()
        .map(|p| (p.identity, p.role))
        .collect();
    while let Ok(Some(e)) = entries.next_entry().await {
        let rid = e.file_name().to_string_lossy().to_string();
        let manifest = tokio::fs::read(e.path().join("recording.json"))
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let url = |f: &str| format!("/api/v1/sessions/{id}/recordings/{rid}/{f}");
        let listed = match manifest {
            Some(m) => Listed {
                id: rid.clone(),
                finished: true,
                duration_ms: m["duration_ms"].as_i64(),
                tracks: m["tracks"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut t| {
                        let f = t["file"].as_str().unwrap_or_default().to_string();
                        t["url"] = Value::String(url(&f));
                        let role = t["owner"].as_str().and_then(|o| roles.get(o));
                        t["role"] = serde_json::to_value(role).unwrap_or(Value::Null);
                        t
                    })
                    .collect(),
            },
            None => {
                let mut tracks = Vec::new();
                if let Ok(mut files) = tokio::fs::read_dir(e.path()).await {
                    while let Ok(Some(f)) = files.next_entry().await {
                        let name = f.file_name().to_string_lossy().to_string();
                        let bytes = f.metadata().await.map_or(0, |m| m.len());
                        tracks.push(
                            serde_json::json!({ "file": name, "bytes": bytes, "url": url(&name) }),
                        );
                    }
                }
                Listed {
                    id: rid.clone(),
                    finished: false,
                    duration_ms: None,
                    tracks,
                }
            }
        };
        out.push(listed);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(out))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `len` bytes.
fn range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.strip_prefix("bytes=")?.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len.checked_sub(1)?
        } else {
            b.parse::<u64>().ok()?.min(len.checked_sub(1)?)
        };
        (start, end)
    };
    (start <= end && end < len).then_some((start, end))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// A token of the session (never the admin key), for `<video src>`,
    /// which cannot send headers.
    token: Option<String>,
}

/// Who may read a file: the `Authorization` header as for every endpoint
/// here, or else a session token (never the admin key) in `?token=`.
fn file_viewer(
    app: &App,
    headers: &HeaderMap,
    q: &FileQuery,
    session: &str,
) -> Result<(), ApiError> {
    match &q.token {
        Some(t) if !headers.contains_key(header::AUTHORIZATION) => {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                h.insert(header::AUTHORIZATION, v);
            }
            // The admin key does not go into URLs (they end up in logs).
            if crate::auth::constant_time_eq(t.trim().as_bytes(), app.admin_key.as_bytes()) {
                return Err(ApiError::new(
                    crate::protocol::ErrorCode::Unauthorized,
                    "the admin key is accepted only as 'Authorization: Bearer …', not in the URL",
                ));
            }
            viewer(app, &h, session).map(|_| ()).map_err(|e| {
                if e.status == StatusCode::UNAUTHORIZED
                    && e.code == crate::protocol::ErrorCode::Unauthorized
                {
                    ApiError::new(
                        crate::protocol::ErrorCode::Unauthorized,
                        "the token in the link is not valid; open the replay link again",
                    )
                } else {
                    e
                }
            })
        }
        _ => viewer(app, headers, session).map(|_| ()),
    }
}

/// One track's WebM file, whole or by a byte range (`Range: bytes=…`),
/// streamed from disk.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/recordings/{rid}/{file}", tag = "recordings",
    params(("id" = String, Path), ("rid" = String, Path), ("file" = String, Path), FileQuery),
    responses((status = 200, description = "The whole file", content_type = "video/webm"),
              (status = 206, description = "The range asked for, with Content-Range", content_type = "video/webm"),
              (status = 401, body = super::api::ErrorBody),
              (status = 403, body = super::api::ErrorBody),
              (status = 404, body = super::api::ErrorBody),
              (status = 416, description = "The range does not fit the file")),
    security(("admin_key" = []), ("session_token" = [])))]
async fn file(
    State(app): State<App>,
    ApiPath((id, rid, name)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<FileQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    file_viewer(&app, &headers, &q, &id)?;
    let path = app
        .config
        .data_dir
        .join("recordings")
        .join(safe(&id)?)
        .join(safe(&rid)?)
        .join(safe(&name)?);
    if !name.ends_with(".webm") {
        return Err(ApiError::not_found("recording"));
    }
    let mut f = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found("recording"))?;
    let len = f
        .metadata()
        .await
        .map_err(|_| ApiError::not_found("recording"))?
        .len();
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match asked {
        Some(h) => match range(h, len) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(r);
            }
        },
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    f.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|_| ApiError::not_found("recording"))?;
    // A file still being written grows; the answer is what was there when
    // it was asked for.
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        f.take(count),
        64 * 1024,
    ));
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn offsets_skip_paused_stretches() {
        use super::offset;
        // Recorded 0–10 s and 15–20 s (paused 10–15 s).
        let spans = [(0, Some(10_000)), (15_000, Some(20_000))];
        assert_eq!(offset(&spans, 4_000), Some(4_000));
        assert_eq!(offset(&spans, 12_000), None, "paused");
        assert_eq!(offset(&spans, 16_000), Some(11_000));
        assert_eq!(offset(&spans, 21_000), None, "after the stop");
        assert_eq!(
            offset(&[(5_000, None)], 9_000),
            Some(4_000),
            "still recording"
        );
    }

    #[test]
    fn ranges_are_read_like_rfc_9110() {
        assert_eq!(range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(range("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(range("bytes=1000-", 1000), None);
        assert_eq!(range("items=0-1", 1000), None);
        assert_eq!(range("bytes=5-2", 1000), None);
    }
}
