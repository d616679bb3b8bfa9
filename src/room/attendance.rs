//! Attendance reports, folded from the timeline's join and leave events.
//!
//! A member's attendance is a list of intervals. A reconnect within the grace
//! period never produces a leave, so it never splits an interval. Observers
//! are never in the timeline's joins, so they are never counted.

use crate::protocol::{Event, EventKind, LeaveReason, MediaHealth, Role, SessionInfo, Timestamp};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Interval {
    pub joined_at: Timestamp,
    /// `null` while the member is present.
    pub left_at: Option<Timestamp>,
    pub reason: Option<LeaveReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttendanceRow {
    pub identity: String,
    pub name: String,
    pub role: Role,
    pub first_joined_at: Timestamp,
    pub last_left_at: Option<Timestamp>,
    pub present: bool,
    /// Sum of all intervals; an open interval counts up to now.
    pub total_seconds: i64,
    /// Seconds between `scheduled_start` and the first join; 0 when on time,
    /// `null` when the session has no scheduled start.
    pub late_seconds: Option<i64>,
    pub intervals: Vec<Interval>,
    /// How many times the member's client reported that its media could
    /// not connect (`media_report`): a present member who saw and heard
    /// nothing is not the same as one who did.
    pub media_failures: u32,
}

/// Builds one row per member, in order of first arrival.
pub fn attendance(session: &SessionInfo, events: &[Event], now: Timestamp) -> Vec<AttendanceRow> {
    let mut rows: Vec<AttendanceRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for e in events {
        match &e.kind {
            EventKind::ParticipantJoined { participant: p } => {
                let i = *index.entry(p.identity.clone()).or_insert_with(|| {
                    rows.push(AttendanceRow {
                        identity: p.identity.clone(),
                        name: p.name.clone(),
                        role: p.role,
                        first_joined_at: p.joined_at,
                        last_left_at: None,
                        present: false,
                        total_seconds: 0,
                        late_seconds: None,
                        intervals: Vec::new(),
                        media_failures: 0,
                    });
                    rows.len() - 1
                });
                let row = &mut rows[i];
                row.name = p.name.clone();
                row.role = p.role;
                row.present = true;
                row.intervals.push(Interval {
                    joined_at: p.joined_at,
                    left_at: None,
                    reason: None,
                });
            }
            EventKind::ParticipantLeft {
                identity,
                reason,
                left_at,
            } => {
                if let Some(row) = index.get(identity).map(|i| &mut rows[*i]) {
                    if let Some(open) = row.intervals.last_mut().filter(|iv| iv.left_at.is_none()) {
                        open.left_at = Some((*left_at).max(open.joined_at));
                        open.reason = Some(*reason);
                    }
                    row.present = false;
                    row.last_left_at = Some(*left_at);
                }
            }
            EventKind::MediaReported {
                identity,
                state: MediaHealth::Failed,
                ..
            } => {
                if let Some(row) = index.get(identity).map(|i| &mut rows[*i]) {
                    row.media_failures += 1;
                }
            }
            _ => {}
        }
    }
    for row in &mut rows {
        row.total_seconds = row
            .intervals
            .iter()
            .map(|iv| (iv.left_at.unwrap_or(now).millis() - iv.joined_at.millis()).max(0))
            .sum::<i64>()
            / 1000;
        row.late_seconds = session
            .scheduled_start
            .map(|start| ((row.first_joined_at.millis() - start.millis()) / 1000).max(0));
    }
    rows
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The report as CSV for spreadsheets: UTF-8 with a byte-order mark (so Excel
/// reads Chinese names correctly), CRLF line ends, one row per member.
pub fn to_csv(rows: &[AttendanceRow]) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str("identity,name,role,first_joined_at,last_left_at,present,total_seconds,total_minutes,late_seconds,intervals,leave_reasons,media_failures\r\n");
    for r in rows {
        let reasons: Vec<&str> = r
            .intervals
            .iter()
            .filter_map(|iv| iv.reason)
            .map(|x| match x {
                LeaveReason::Left => "left",
                LeaveReason::Kicked => "kicked",
                LeaveReason::Timeout => "timeout",
                LeaveReason::ServerShutdown => "server_shutdown",
                LeaveReason::ServerRestart => "server_restart",
                LeaveReason::SessionEnded => "session_ended",
            })
            .collect();
        let fields = [
            csv_field(&r.identity),
            csv_field(&r.name),
            r.role.as_str().to_string(),
            r.first_joined_at.to_rfc3339(),
            r.last_left_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            r.present.to_string(),
            r.total_seconds.to_string(),
            format!("{:.1}", r.total_seconds as f64 / 60.0),
            r.late_seconds.map(|s| s.to_string()).unwrap_or_default(),
            r.intervals.len().to_string(),
            reasons.join(";"),
            r.media_failures.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ParticipantInfo, SessionKind, SessionSettings, SessionStatus};

    fn joined(seq: u64, id: &str, at: i64) -> Event {
        Event {
            seq,
            at: Timestamp(at),
            kind: EventKind::ParticipantJoined {
                participant: ParticipantInfo {
                    identity: id.into(),
                    name: format!("老师 {id}"),
                    role: Role::Participant,
                    joined_at: Timestamp(at),
                    connected: true,
                    chat_muted: false,
                },
            },
        }
    }

    fn left(seq: u64, id: &str, at: i64, reason: LeaveReason) -> Event {
        Event {
            seq,
            at: Timestamp(at + 30_000),
            kind: EventKind::ParticipantLeft {
                identity: id.into(),
                reason,
                left_at: Timestamp(at),
            },
        }
    }

    #[test]
    fn sums_intervals_and_measures_lateness() {
        let session = SessionInfo {
            id: "s".into(),
            title: "t".into(),
            kind: SessionKind::Seminar,
            status: SessionStatus::Live,
            scheduled_start: Some(Timestamp(0)),
            scheduled_end: None,
            settings: SessionSettings::default(),
            created_at: Timestamp(0),
            started_at: None,
            ended_at: None,
        };
        let events = vec![
            joined(1, "a", 60_000),
            left(2, "a", 120_000, LeaveReason::Timeout),
            joined(3, "a", 180_000),
            joined(4, "b", 0),
        ];
        let rows = attendance(&session, &events, Timestamp(240_000));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].identity, "a");
        assert_eq!(rows[0].total_seconds, 60 + 60);
        assert_eq!(rows[0].late_seconds, Some(60));
        assert_eq!(rows[0].intervals.len(), 2);
        assert!(rows[0].present);
        assert_eq!(rows[1].late_seconds, Some(0));
        let csv = to_csv(&rows);
        assert!(csv.starts_with('\u{feff}'));
        assert!(csv.contains("a,老师 a,participant,"));
        assert_eq!(csv.lines().count(), 3);
    }
}
