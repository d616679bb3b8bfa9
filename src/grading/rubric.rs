//! The scoring rubric: points for attendance, questions, replies, upvotes,
//! hands, speaking and polls, with caps; computed per participant at session
//! end (and on demand for the report). A session's `settings.rubric`
//! replaces the server's default (`[grading.rubric]` in the config file).

use super::Counts;
use crate::protocol::{SessionInfo, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Points per kind of participation. Every `*_points` is given per item, up
/// to its `*_max` total; a `*_max` of 0 turns the item off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Rubric {
    /// Points for attendance, given in full from `attendance_threshold`.
    pub attendance_points: f64,
    /// Share of the planned time (0–1) a member must be present for full
    /// attendance points; below it, points are proportional.
    pub attendance_threshold: f64,
    /// Whether each missed presence check removes its share of the
    /// attendance points (one check of four missed: a quarter).
    pub missed_checks_reduce_attendance: bool,
    pub question_points: f64,
    pub question_max: f64,
    pub reply_points: f64,
    pub reply_max: f64,
    pub upvote_points: f64,
    pub upvote_max: f64,
    pub hand_points: f64,
    pub hand_max: f64,
    /// Points per minute of speaking (anywhere in the session: on stage, or
    /// in a seminar where everyone may speak).
    pub speaking_points_per_minute: f64,
    pub speaking_max: f64,
    /// Points for quiz correctness: `poll_points` × correct answers / quizzes
    /// opened in the session (a skipped quiz counts as not correct). Left
    /// out of the score when the session had no quiz.
    pub poll_points: f64,
}

impl Default for Rubric {
    fn default() -> Self {
        Rubric {
            attendance_points: 15.0,
            attendance_threshold: 0.8,
            missed_checks_reduce_attendance: true,
            question_points: 1.0,
            question_max: 4.0,
            reply_points: 1.0,
            reply_max: 6.0,
            upvote_points: 0.0,
            upvote_max: 0.0,
            hand_points: 0.0,
            hand_max: 0.0,
            speaking_points_per_minute: 0.0,
            speaking_max: 0.0,
            poll_points: 10.0,
        }
    }
}

impl Rubric {
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            self.attendance_points,
            self.question_points,
            self.question_max,
            self.reply_points,
            self.reply_max,
            self.upvote_points,
            self.upvote_max,
            self.hand_points,
            self.hand_max,
            self.speaking_points_per_minute,
            self.speaking_max,
            self.poll_points,
        ];
        if all
            .iter()
            .any(|v| !v.is_finite() || *v < 0.0 || *v > 10_000.0)
        {
            return Err("rubric points must be numbers from 0 to 10000".into());
        }
        if !(self.attendance_threshold > 0.0 && self.attendance_threshold <= 1.0) {
            return Err("rubric.attendance_threshold must be above 0 and at most 1".into());
        }
        Ok(())
    }
}

/// One line of a score.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Line {
    pub item: &'static str,
    pub points: f64,
    pub max: f64,
    /// How the points came about, e.g. `"5 questions × 1, at most 4"`.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Score {
    pub total: f64,
    pub max: f64,
    pub breakdown: Vec<Line>,
}

/// The rubric that applies to a session.
pub fn of(session: &SessionInfo) -> Rubric {
    session
        .settings
        .rubric
        .clone()
        .unwrap_or_else(|| default_rubric().clone())
}

static DEFAULT: std::sync::OnceLock<Rubric> = std::sync::OnceLock::new();

/// Sets the server's default rubric once, at start-up (from the config).
pub fn set_default(r: Rubric) {
    let _ = DEFAULT.set(r);
}

fn default_rubric() -> &'static Rubric {
    DEFAULT.get_or_init(Rubric::default)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn capped(item: &'static str, n: u32, per: f64, max: f64, what: &str) -> Option<Line> {
    (max > 0.0 && per > 0.0).then(|| Line {
        item,
        points: round2((n as f64 * per).min(max)),
        max,
        detail: format!("{n} {what} × {per}, at most {max}"),
    })
}

/// Scores one member. The planned time is the scheduled length, or, for a
/// session without a schedule, from its start to its end (or `now`).
/// `quizzes` is how many polls with correct answers the session opened.
pub fn score(r: &Rubric, c: &Counts, session: &SessionInfo, now: Timestamp, quizzes: u32) -> Score {
    let mut lines = Vec::new();
    if r.attendance_points > 0.0 {
        let planned_ms = match (session.scheduled_start, session.scheduled_end) {
            (Some(s), Some(e)) => e.millis() - s.millis(),
            _ => {
                let start = session.started_at.unwrap_or(now);
                session.ended_at.unwrap_or(now).millis() - start.millis()
            }
        };
        let present = c.present_ms_at(now);
        let share = if planned_ms > 0 {
            present as f64 / planned_ms as f64
        } else {
            0.0
        };
        let mut points = if share >= r.attendance_threshold {
            r.attendance_points
        } else {
            r.attendance_points * share / r.attendance_threshold
        };
        let checks = c.checks_passed + c.checks_missed;
        let mut detail = format!(
            "present {:.0}% of {} min (full points from {:.0}%)",
            share * 100.0,
            planned_ms / 60_000,
            r.attendance_threshold * 100.0
        );
        if r.missed_checks_reduce_attendance && checks > 0 {
            points *= c.checks_passed as f64 / checks as f64;
            detail.push_str(&format!(
                "; presence checks {} of {checks} passed",
                c.checks_passed
            ));
        }
        lines.push(Line {
            item: "attendance",
            points: round2(points.max(0.0)),
            max: r.attendance_points,
            detail,
        });
    }
    lines.extend(capped(
        "questions",
        c.questions,
        r.question_points,
        r.question_max,
        "questions",
    ));
    lines.extend(capped(
        "replies",
        c.replies,
        r.reply_points,
        r.reply_max,
        "replies",
    ));
    lines.extend(capped(
        "upvotes",
        c.upvotes,
        r.upvote_points,
        r.upvote_max,
        "upvotes",
    ));
    lines.extend(capped(
        "hands",
        c.hands,
        r.hand_points,
        r.hand_max,
        "hands raised",
    ));
    if r.speaking_points_per_minute > 0.0 && r.speaking_max > 0.0 {
        let minutes = c.speaking_ms_at(now) as f64 / 60_000.0;
        lines.push(Line {
            item: "speaking",
            points: round2((minutes * r.speaking_points_per_minute).min(r.speaking_max)),
            max: r.speaking_max,
            detail: format!(
                "{minutes:.1} min × {}, at most {}",
                r.speaking_points_per_minute, r.speaking_max
            ),
        });
    }
    if r.poll_points > 0.0 && quizzes > 0 {
        let correct = c.poll_correct.min(quizzes);
        lines.push(Line {
            item: "polls",
            points: round2(r.poll_points * correct as f64 / quizzes as f64),
            max: r.poll_points,
            detail: format!("{correct} of {quizzes} quizzes correct"),
        });
    }
    Score {
        total: round2(lines.iter().map(|l| l.points).sum()),
        max: round2(lines.iter().map(|l| l.max).sum()),
        breakdown: lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{SessionKind, SessionSettings, SessionStatus};

    const MIN: i64 = 60_000;

    fn session(planned_min: i64) -> SessionInfo {
        SessionInfo {
            id: "s".into(),
            title: "t".into(),
            kind: SessionKind::Seminar,
            status: SessionStatus::Ended,
            scheduled_start: Some(Timestamp(0)),
            scheduled_end: Some(Timestamp(planned_min * MIN)),
            settings: SessionSettings::default(),
            created_at: Timestamp(0),
            started_at: Some(Timestamp(0)),
            ended_at: Some(Timestamp(planned_min * MIN)),
        }
    }

    fn line<'a>(s: &'a Score, item: &str) -> &'a Line {
        s.breakdown.iter().find(|l| l.item == item).unwrap()
    }

    #[test]
    fn zero_attendance_scores_zero_and_nothing_divides_by_zero() {
        let s = score(
            &Rubric::default(),
            &Counts::default(),
            &session(60),
            Timestamp(60 * MIN),
            1,
        );
        assert_eq!(line(&s, "attendance").points, 0.0);
        assert_eq!(line(&s, "polls").points, 0.0);
        assert_eq!(s.total, 0.0);
        assert_eq!(s.max, 15.0 + 4.0 + 6.0 + 10.0);
        // A session of no length at all.
        let s = score(
            &Rubric::default(),
            &Counts::default(),
            &session(0),
            Timestamp(0),
            0,
        );
        assert_eq!(s.total, 0.0);
    }

    #[test]
    fn attendance_is_full_from_the_threshold_and_proportional_below() {
        let r = Rubric::default();
        let mut c = Counts {
            present_ms: 48 * MIN,
            ..Default::default()
        };
        assert_eq!(
            line(
                &score(&r, &c, &session(60), Timestamp(60 * MIN), 0),
                "attendance"
            )
            .points,
            15.0
        );
        c.present_ms = 24 * MIN; // 40 %, half of the 80 % threshold
        assert_eq!(
            line(
                &score(&r, &c, &session(60), Timestamp(60 * MIN), 0),
                "attendance"
            )
            .points,
            7.5
        );
        // An open interval counts up to the scoring time.
        let c = Counts {
            present_ms: 0,
            open_since: Some(Timestamp(0)),
            ..Default::default()
        };
        assert_eq!(
            line(
                &score(&r, &c, &session(60), Timestamp(60 * MIN), 0),
                "attendance"
            )
            .points,
            15.0
        );
    }

    #[test]
    fn a_reconnect_inside_the_grace_period_is_one_interval_and_loses_nothing() {
        // The room reports one unbroken interval for a reconnect within the
        // grace period, so the tally sees 60 minutes in one piece.
        let c = Counts {
            present_ms: 60 * MIN,
            intervals: 1,
            ..Default::default()
        };
        let s = score(&Rubric::default(), &c, &session(60), Timestamp(60 * MIN), 4);
        assert_eq!(line(&s, "attendance").points, 15.0);
    }

    #[test]
    fn caps_hold() {
        let c = Counts {
            questions: 9,
            replies: 2,
            ..Default::default()
        };
        let s = score(&Rubric::default(), &c, &session(60), Timestamp(60 * MIN), 4);
        assert_eq!(line(&s, "questions").points, 4.0);
        assert_eq!(line(&s, "replies").points, 2.0);
        assert_eq!(line(&s, "questions").detail, "9 questions × 1, at most 4");
    }

    #[test]
    fn each_missed_check_removes_its_share_of_attendance() {
        let mut c = Counts {
            present_ms: 60 * MIN,
            checks_passed: 3,
            checks_missed: 1,
            ..Default::default()
        };
        let r = Rubric::default();
        assert_eq!(
            line(
                &score(&r, &c, &session(60), Timestamp(60 * MIN), 0),
                "attendance"
            )
            .points,
            11.25
        );
        c.checks_passed = 0;
        c.checks_missed = 4;
        assert_eq!(
            line(
                &score(&r, &c, &session(60), Timestamp(60 * MIN), 0),
                "attendance"
            )
            .points,
            0.0
        );
        let lenient = Rubric {
            missed_checks_reduce_attendance: false,
            ..Rubric::default()
        };
        assert_eq!(
            line(
                &score(&lenient, &c, &session(60), Timestamp(60 * MIN), 0),
                "attendance"
            )
            .points,
            15.0
        );
    }

    #[test]
    fn poll_points_follow_correctness_of_graded_polls() {
        let c = Counts {
            poll_answers: 5,
            polls_gradable: 4,
            poll_correct: 3,
            ..Default::default()
        };
        // 3 right of the 4 quizzes the session opened: a skipped one counts
        // as not right.
        let s = score(&Rubric::default(), &c, &session(60), Timestamp(60 * MIN), 4);
        assert_eq!(line(&s, "polls").points, 7.5);
        assert_eq!(line(&s, "polls").detail, "3 of 4 quizzes correct");
        // Without quizzes, polls are left out of the score and its maximum.
        let s = score(&Rubric::default(), &c, &session(60), Timestamp(60 * MIN), 0);
        assert!(s.breakdown.iter().all(|l| l.item != "polls"));
        assert_eq!(s.max, 15.0 + 4.0 + 6.0);
    }

    #[test]
    fn nonsense_rubrics_are_refused() {
        assert!(Rubric::default().validate().is_ok());
        assert!(Rubric {
            question_points: -1.0,
            ..Rubric::default()
        }
        .validate()
        .is_err());
        assert!(Rubric {
            attendance_threshold: 0.0,
            ..Rubric::default()
        }
        .validate()
        .is_err());
        assert!(Rubric {
            poll_points: f64::NAN,
            ..Rubric::default()
        }
        .validate()
        .is_err());
    }
}
