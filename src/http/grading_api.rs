//! Grading endpoints under `/api/v1` (admin key): the participation report
//! of a session, and the delivery state of each grading sink with
//! redelivery of a range.

use super::api::Admin;
use super::extract::{ApiPath, ApiQuery};
use super::ApiError;
use crate::grading::rubric::{self, Score};
use crate::protocol::{Event, Permission, Role, SessionStatus, Timestamp};
use crate::room::state::ClassState;
use crate::store::{DeliveryQuery, DeliveryRow, DeliveryState};
use crate::App;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/sessions/{id}/report", get(report))
        .route("/grading/sinks", get(sinks))
        .route("/grading/sinks/{sink}/deliveries", get(deliveries))
        .route("/grading/sinks/{sink}/redeliver", post(redeliver))
}

/// One member's participation in a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportRow {
    pub identity: String,
    pub name: String,
    pub role: Option<Role>,
    pub minutes_present: f64,
    /// Minutes between the scheduled start and the first join (`null`
    /// without a scheduled start).
    pub late_minutes: Option<f64>,
    pub presence_checks_passed: u32,
    pub presence_checks_missed: u32,
    /// Checks that started while the member was not present.
    pub presence_checks_absent: u32,
    /// Minutes with the page hidden while present (a signal, not proof).
    pub hidden_minutes: f64,
    pub chat_messages: u32,
    pub questions: u32,
    pub replies: u32,
    pub upvotes: u32,
    pub hands: u32,
    pub speaking_seconds: i64,
    pub stage_seconds: i64,
    pub poll_answers: u32,
    pub poll_correct: u32,
    /// Seconds of recordings watched in replay (stretches actually played).
    pub replay_seconds: u32,
    /// Participants only; hosts, moderators and observers are not scored.
    pub score: Option<Score>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The admin key, or a host's or moderator's own join or resume token for
/// this session (so the classroom can show the report to staff).
fn may_read_report(app: &App, headers: &HeaderMap, session: &str) -> Result<(), ApiError> {
    match super::caller(app, headers) {
        Ok(super::Caller::Admin) => Ok(()),
        Ok(super::Caller::Token(c))
            if c.sid == session
                && c.role.allows(Permission::RosterView)
                && c.role != Role::Observer =>
        {
            Ok(())
        }
        Ok(super::Caller::Token(_)) => Err(ApiError::new(crate::protocol::ErrorCode::Forbidden,
            "only hosts and moderators of this session may read its report",
        )),
        Err(_) => Err(ApiError::new(crate::protocol::ErrorCode::Unauthorized,
            "send the admin key, or a host's or moderator's token for this session, as 'Authorization: Bearer …'",
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/report", tag = "grading", params(("id" = String, Path), ReportQuery),
    responses((status = 200, description = "Per member, in order of first arrival", body = Vec<ReportRow>),
              (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody),
              (status = 404, body = super::api::ErrorBody)),
    description = "With the admin key, or a host's or moderator's own join or resume token for this session.",
    security(("admin_key" = [])))]
async fn report(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    may_read_report(&app, &headers, &id)?;
    let session = app
        .store
        .get_session(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    let mut state = ClassState::new(session, 0, false);
    for e in app.store.events(&id, 0, None, &[]).await? {
        let ev: Event = serde_json::from_str(&e.frame).map_err(|err| {
            tracing::error!(session = %id, seq = e.seq, "corrupt event: {err}");
            ApiError::new(
                crate::protocol::ErrorCode::Internal,
                "a stored event could not be read",
            )
        })?;
        state.apply(ev.seq, ev.at, &ev.kind);
    }
    // An ended session is scored as at its end; a live one as of now.
    let now = match state.session.status {
        SessionStatus::Ended => state.session.ended_at.unwrap_or_else(Timestamp::now),
        _ => Timestamp::now(),
    };
    let counts = state.tally.snapshot(now);
    let rubric = rubric::of(&state.session);
    let rows: Vec<ReportRow> = state
        .tally
        .in_order()
        .filter_map(|(identity, _)| counts.get(identity).map(|c| (identity, c)))
        .map(|(identity, c)| ReportRow {
            identity: identity.clone(),
            name: c.name.clone(),
            role: c.role,
            minutes_present: round1(c.present_ms as f64 / 60_000.0),
            late_minutes: match (state.session.scheduled_start, c.first_joined_at) {
                (Some(s), Some(f)) => {
                    Some(round1(((f.millis() - s.millis()).max(0)) as f64 / 60_000.0))
                }
                _ => None,
            },
            presence_checks_passed: c.checks_passed,
            presence_checks_missed: c.checks_missed,
            presence_checks_absent: c.checks_absent,
            hidden_minutes: round1(c.hidden_ms as f64 / 60_000.0),
            chat_messages: c.chat,
            questions: c.questions,
            replies: c.replies,
            upvotes: c.upvotes,
            hands: c.hands,
            speaking_seconds: c.speaking_ms / 1000,
            stage_seconds: c.stage_ms / 1000,
            poll_answers: c.poll_answers,
            poll_correct: c.poll_correct,
            replay_seconds: c.replay_seconds,
            score: (c.role == Some(Role::Participant))
                .then(|| rubric::score(&rubric, c, &state.session, now, state.tally.graded_polls)),
        })
        .collect();
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(rows).into_response()),
        Some("csv") => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"report-{id}.csv\""),
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

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn csv_field(s: &str) -> String {
    // Formula injection: a cell starting with these runs in spreadsheets.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CSV with a BOM (so spreadsheet programs read Chinese names as UTF-8).
fn to_csv(rows: &[ReportRow]) -> String {
    let mut out = String::from("\u{feff}identity,name,role,minutes_present,late_minutes,presence_checks_passed,presence_checks_missed,presence_checks_absent,hidden_minutes,chat_messages,questions,replies,upvotes,hands,speaking_seconds,stage_seconds,poll_answers,poll_correct,replay_seconds,score,score_max,score_breakdown\r\n");
    for r in rows {
        let role = r.role.map(|r| r.as_str()).unwrap_or("");
        let late = r.late_minutes.map(|v| v.to_string()).unwrap_or_default();
        let (score, max, breakdown) = match &r.score {
            Some(s) => (
                s.total.to_string(),
                s.max.to_string(),
                s.breakdown
                    .iter()
                    .map(|l| format!("{} {}/{}", l.item, l.points, l.max))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            None => Default::default(),
        };
        let fields = [
            csv_field(&r.identity),
            csv_field(&r.name),
            role.to_string(),
            r.minutes_present.to_string(),
            late,
            r.presence_checks_passed.to_string(),
            r.presence_checks_missed.to_string(),
            r.presence_checks_absent.to_string(),
            r.hidden_minutes.to_string(),
            r.chat_messages.to_string(),
            r.questions.to_string(),
            r.replies.to_string(),
            r.upvotes.to_string(),
            r.hands.to_string(),
            r.speaking_seconds.to_string(),
            r.stage_seconds.to_string(),
            r.poll_answers.to_string(),
            r.poll_correct.to_string(),
            r.replay_seconds.to_string(),
            score,
            max,
            csv_field(&breakdown),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SinkInfo {
    pub name: String,
}

#[utoipa::path(get, path = "/api/v1/grading/sinks", tag = "grading",
    responses((status = 200, body = Vec<SinkInfo>)), security(("admin_key" = [])))]
async fn sinks(_: Admin, State(app): State<App>) -> Json<Vec<SinkInfo>> {
    Json(
        app.grading
            .sinks
            .iter()
            .map(|n| SinkInfo { name: n.clone() })
            .collect(),
    )
}

fn known_sink(app: &App, sink: &str) -> Result<(), ApiError> {
    if app.grading.sinks.iter().any(|s| s == sink) {
        Ok(())
    } else {
        Err(ApiError::not_found("sink"))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only this session's deliveries.
    session: Option<String>,
    /// `pending`, `delivered` or `dead`.
    state: Option<String>,
    /// Paging: rows after this session id and seq.
    after_session: Option<String>,
    after_seq: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/grading/sinks/{sink}/deliveries", tag = "grading",
    params(("sink" = String, Path), DeliveriesQuery),
    responses((status = 200, description = "By session and seq", body = Vec<DeliveryRow>),
              (status = 404, body = super::api::ErrorBody)),
    security(("admin_key" = [])))]
async fn deliveries(
    _: Admin,
    State(app): State<App>,
    ApiPath(sink): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryRow>>, ApiError> {
    known_sink(&app, &sink)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            DeliveryState::parse(s)
                .ok_or_else(|| ApiError::bad_request("state must be pending, delivered or dead"))?,
        ),
    };
    let query = DeliveryQuery {
        session: q.session,
        state,
        after: q.after_session.map(|s| (s, q.after_seq.unwrap_or(0))),
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(app.store.list_deliveries(&sink, &query).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeliver {
    pub session_id: String,
    /// First and last participation `seq` to send again (inclusive).
    pub from_seq: u64,
    pub to_seq: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// How many deliveries are pending again.
    pub redelivered: u64,
}

#[utoipa::path(post, path = "/api/v1/grading/sinks/{sink}/redeliver", tag = "grading",
    params(("sink" = String, Path)), request_body = Redeliver,
    responses((status = 200, body = Redelivered), (status = 400, body = super::api::ErrorBody),
              (status = 404, body = super::api::ErrorBody)),
    security(("admin_key" = [])))]
async fn redeliver(
    _: Admin,
    State(app): State<App>,
    ApiPath(sink): ApiPath<String>,
    super::extract::ApiJson(r): super::extract::ApiJson<Redeliver>,
) -> Result<Json<Redelivered>, ApiError> {
    known_sink(&app, &sink)?;
    if r.from_seq == 0 || r.to_seq < r.from_seq {
        return Err(ApiError::bad_request(
            "from_seq must be at least 1 and to_seq at least from_seq",
        ));
    }
    let n = app
        .store
        .redeliver(&sink, &r.session_id, r.from_seq, r.to_seq, Timestamp::now())
        .await?;
    app.grading.wake();
    Ok(Json(Redelivered { redelivered: n }))
}
