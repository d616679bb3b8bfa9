//! Presence checks, page visibility and polls, across several clients and
//! from the wrong roles, and what they add to the participation report.

use crate::common::TestServer;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use serde_json::{json, Value};
use std::time::Duration;

fn report_row<'a>(rows: &'a Value, identity: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["identity"] == identity)
        .unwrap_or_else(|| panic!("{identity} in the report: {rows}"))
}

#[tokio::test]
async fn a_presence_check_asks_present_participants_and_records_each_result() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    let mut p2 = s.join(&id, "p2", Role::Participant).await;
    let mut gone = s.join(&id, "gone", Role::Participant).await;
    gone.request(ClientMsg::Leave).await.unwrap();
    let mut obs = s.join(&id, "obs", Role::Observer).await;

    // Wrong roles: participants cannot start one, windows are bounded.
    assert_eq!(
        p1.request(ClientMsg::PresenceCheckStart { window_secs: None })
            .await,
        Err("forbidden".into())
    );
    assert_eq!(
        host.request(ClientMsg::PresenceCheckStart {
            window_secs: Some(5)
        })
        .await,
        Err("invalid_message".into())
    );
    let r = host
        .request(ClientMsg::PresenceCheckStart {
            window_secs: Some(10),
        })
        .await
        .unwrap();
    let check_id = r["check_id"].as_i64().unwrap();
    assert_eq!(
        host.request(ClientMsg::PresenceCheckStart {
            window_secs: Some(10)
        })
        .await,
        Err("invalid_state".into()),
        "one at a time"
    );
    for c in [&mut p1, &mut p2, &mut obs] {
        let started = c.wait_type("presence_check_started").await;
        assert_eq!(started["check"]["id"], check_id);
        assert_eq!(started["check"]["by"], "host");
    }

    let r = p1
        .request(ClientMsg::PresenceConfirm { check_id })
        .await
        .unwrap();
    assert!(r["response_ms"].as_i64().unwrap() >= 0);
    // A second confirmation changes nothing; hosts and observers have nothing to confirm.
    assert_eq!(
        p1.request(ClientMsg::PresenceConfirm { check_id })
            .await
            .unwrap()["response_ms"],
        Value::Null
    );
    assert_eq!(
        host.request(ClientMsg::PresenceConfirm { check_id }).await,
        Err("forbidden".into())
    );
    assert_eq!(
        obs.request(ClientMsg::PresenceConfirm { check_id }).await,
        Err("forbidden".into())
    );
    // Staff see the confirmation; the other participant does not.
    let c = host.wait_type("presence_confirmed").await;
    assert_eq!(c["identity"], "p1");
    p2.assert_none(
        Duration::from_millis(300),
        "someone else's confirmation",
        |f| f["type"] == "presence_confirmed",
    )
    .await;
    // Someone arriving during the check was not asked.
    let mut late = s.join(&id, "late", Role::Participant).await;
    let w = late.welcome.clone();
    assert_eq!(w["presence_check"]["id"], check_id);
    assert_eq!(w["presence_confirmed"], false);
    assert_eq!(
        late.request(ClientMsg::PresenceConfirm { check_id }).await,
        Err("invalid_state".into())
    );

    tokio::time::sleep(Duration::from_secs(10)).await;
    let ended = p2.wait_type("presence_check_ended").await;
    assert_eq!(
        (ended["passed"].as_u64(), ended["missed"].as_u64()),
        (Some(1), Some(1))
    );
    // Too late now.
    assert_eq!(
        p2.request(ClientMsg::PresenceConfirm { check_id }).await,
        Err("invalid_state".into())
    );

    let (_, rows) = s
        .api("GET", &format!("/api/v1/sessions/{id}/report"), None)
        .await;
    let row = |who| {
        let r = report_row(&rows, who);
        (
            r["presence_checks_passed"].as_u64().unwrap(),
            r["presence_checks_missed"].as_u64().unwrap(),
            r["presence_checks_absent"].as_u64().unwrap(),
        )
    };
    assert_eq!(row("p1"), (1, 0, 0));
    assert_eq!(row("p2"), (0, 1, 0));
    assert_eq!(row("gone"), (0, 0, 1));
    assert_eq!(row("late"), (0, 0, 0));
}

#[tokio::test]
async fn page_visibility_reaches_staff_only() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    let mut p2 = s.join(&id, "p2", Role::Participant).await;
    p1.request(ClientMsg::Visibility { hidden: true })
        .await
        .unwrap();
    let v = host.wait_type("visibility_changed").await;
    assert_eq!(
        (v["identity"].as_str(), v["hidden"].as_bool()),
        (Some("p1"), Some(true))
    );
    p2.assert_none(Duration::from_millis(300), "another's visibility", |f| {
        f["type"] == "visibility_changed"
    })
    .await;
    // The same state again is nothing new; staff visibility is not tracked.
    p1.request(ClientMsg::Visibility { hidden: true })
        .await
        .unwrap();
    host.request(ClientMsg::Visibility { hidden: true })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    p1.request(ClientMsg::Visibility { hidden: false })
        .await
        .unwrap();
    let events = s.events(&id).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "visibility_changed")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_quiz_is_drafted_opened_answered_once_and_closed_with_results() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    let mut p2 = s.join(&id, "p2", Role::Participant).await;

    let create = |correct: Option<Vec<u32>>| ClientMsg::PollCreate {
        question: "《草房子》的作者是谁？".into(),
        options: vec!["曹文轩".into(), "沈石溪".into(), "杨红樱".into()],
        multiple: false,
        correct,
        time_limit_secs: None,
    };
    assert_eq!(p1.request(create(None)).await, Err("forbidden".into()));
    assert_eq!(
        host.request(create(Some(vec![0, 1]))).await,
        Err("invalid_message".into()),
        "single choice has one correct option"
    );
    let bad = ClientMsg::PollCreate {
        question: "?".into(),
        options: vec!["only one".into()],
        multiple: false,
        correct: None,
        time_limit_secs: None,
    };
    assert_eq!(host.request(bad).await, Err("invalid_message".into()));
    let poll_id = host.request(create(Some(vec![0]))).await.unwrap()["poll_id"]
        .as_i64()
        .unwrap();
    // The draft, with its answer, is for staff only.
    let draft = host.wait_type("poll_created").await;
    assert_eq!(draft["poll"]["correct"], json!([0]));
    p1.assert_none(Duration::from_millis(300), "a draft poll", |f| {
        f["type"] == "poll_created"
    })
    .await;
    assert_eq!(
        p1.request(ClientMsg::PollAnswer {
            poll_id,
            choices: vec![0]
        })
        .await,
        Err("not_found".into()),
        "a draft cannot be answered"
    );

    host.request(ClientMsg::PollOpen { poll_id }).await.unwrap();
    for c in [&mut p1, &mut p2] {
        let opened = c.wait_type("poll_opened").await;
        assert_eq!(opened["poll"]["status"], "open");
        assert!(opened["poll"].get("correct").is_none(), "{opened}");
        assert_eq!(opened["poll"]["graded"], true);
    }
    p1.request(ClientMsg::PollAnswer {
        poll_id,
        choices: vec![0],
    })
    .await
    .unwrap();
    assert_eq!(
        p1.request(ClientMsg::PollAnswer {
            poll_id,
            choices: vec![1]
        })
        .await,
        Err("already_voted".into())
    );
    assert_eq!(
        p2.request(ClientMsg::PollAnswer {
            poll_id,
            choices: vec![0, 1]
        })
        .await,
        Err("invalid_message".into())
    );
    assert_eq!(
        p2.request(ClientMsg::PollAnswer {
            poll_id,
            choices: vec![7]
        })
        .await,
        Err("invalid_message".into())
    );
    assert_eq!(
        host.request(ClientMsg::PollAnswer {
            poll_id,
            choices: vec![0]
        })
        .await,
        Err("forbidden".into())
    );
    p2.request(ClientMsg::PollAnswer {
        poll_id,
        choices: vec![1],
    })
    .await
    .unwrap();
    // Answers go to staff and the one who answered.
    let a = host.wait_type("poll_answered").await;
    assert_eq!(a["identity"], "p1");
    p2.assert_none(Duration::from_millis(300), "p1's answer", |f| {
        f["type"] == "poll_answered" && f["identity"] == "p1"
    })
    .await;
    // A reconnecting participant sees the open poll and their answer.
    let mut again = s.join(&id, "p2", Role::Participant).await;
    let w = again.welcome.clone();
    assert_eq!(w["polls"][0]["id"], poll_id);
    assert!(w["polls"][0].get("correct").is_none());
    assert_eq!(
        w["my_poll_answers"],
        json!([{"poll_id": poll_id, "choices": [1]}])
    );

    assert_eq!(
        p1.request(ClientMsg::PollClose { poll_id }).await,
        Err("forbidden".into())
    );
    host.request(ClientMsg::PollClose { poll_id })
        .await
        .unwrap();
    let closed = p1.wait_type("poll_closed").await;
    assert_eq!(closed["poll"]["counts"], json!([1, 1, 0]));
    assert_eq!(closed["poll"]["correct"], json!([0]));
    assert_eq!(closed["poll"]["answers"], 2);
    assert_eq!(
        again
            .request(ClientMsg::PollAnswer {
                poll_id,
                choices: vec![0]
            })
            .await,
        Err("invalid_state".into())
    );

    let (_, rows) = s
        .api("GET", &format!("/api/v1/sessions/{id}/report"), None)
        .await;
    let r1 = report_row(&rows, "p1");
    let r2 = report_row(&rows, "p2");
    assert_eq!(
        (r1["poll_answers"].as_u64(), r1["poll_correct"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (r2["poll_answers"].as_u64(), r2["poll_correct"].as_u64()),
        (Some(1), Some(0))
    );
    let polls = |r: &Value| {
        r["score"]["breakdown"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["item"] == "polls")
            .unwrap()["points"]
            .as_f64()
    };
    assert_eq!((polls(r1), polls(r2)), (Some(10.0), Some(0.0)));
}

#[tokio::test]
async fn a_timed_poll_closes_itself_and_refuses_late_answers() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    let poll_id = host
        .request(ClientMsg::PollCreate {
            question: "Which do you use?".into(),
            options: vec!["A".into(), "B".into(), "C".into()],
            multiple: true,
            correct: None,
            time_limit_secs: Some(5),
        })
        .await
        .unwrap()["poll_id"]
        .as_i64()
        .unwrap();
    host.request(ClientMsg::PollOpen { poll_id }).await.unwrap();
    let opened = p1.wait_type("poll_opened").await;
    assert!(opened["poll"]["closes_at"].is_string());
    p1.request(ClientMsg::PollAnswer {
        poll_id,
        choices: vec![2, 0],
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let closed = p1.wait_type("poll_closed").await;
    assert_eq!(closed["by"], "timer");
    assert_eq!(closed["poll"]["counts"], json!([1, 0, 1]));
    assert!(closed["poll"].get("correct").is_none(), "not a quiz");
    assert_eq!(
        p1.request(ClientMsg::PollAnswer {
            poll_id,
            choices: vec![1]
        })
        .await,
        Err("invalid_state".into())
    );
}

#[tokio::test]
async fn ending_the_session_closes_a_running_check_and_open_polls_first() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    let poll_id = host
        .request(ClientMsg::PollCreate {
            question: "Untimed".into(),
            options: vec!["yes".into(), "no".into()],
            multiple: false,
            correct: None,
            time_limit_secs: None,
        })
        .await
        .unwrap()["poll_id"]
        .as_i64()
        .unwrap();
    host.request(ClientMsg::PollOpen { poll_id }).await.unwrap();
    host.request(ClientMsg::PresenceCheckStart { window_secs: None })
        .await
        .unwrap();
    host.request(ClientMsg::SessionEnd).await.unwrap();
    let ended = p1.wait_type("presence_check_ended").await;
    assert_eq!(ended["missed"], 1);
    let closed = p1.wait_type("poll_closed").await;
    assert_eq!(
        (closed["by"].as_str(), closed["poll"]["status"].as_str()),
        (Some("host"), Some("closed"))
    );
    let types: Vec<String> = s
        .events(&id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    let pos = |t: &str| types.iter().position(|x| x == t).unwrap();
    assert!(pos("poll_closed") < pos("session_ended"));
    assert!(pos("presence_check_ended") < pos("participant_left"));
}

#[tokio::test]
async fn media_failures_reach_staff_and_the_attendance_report() {
    use lectern::protocol::{MediaHealth, MediaProblem};
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut md = s.join(&id, "md", Role::Moderator).await;
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    let mut p2 = s.join(&id, "p2", Role::Participant).await;
    let mut obs = s.join(&id, "obs", Role::Observer).await;
    let failed = |reason| ClientMsg::MediaReport {
        state: MediaHealth::Failed,
        reason: Some(reason),
    };

    p1.request(failed(MediaProblem::IceFailed)).await.unwrap();
    for staff in [&mut host, &mut md] {
        let e = staff.wait_type("media_reported").await;
        assert_eq!(
            (&e["identity"], &e["state"], &e["reason"]),
            (&json!("p1"), &json!("failed"), &json!("ice_failed"))
        );
    }
    // Other participants do not see it; an observer's own report counts too.
    p2.assert_none(Duration::from_millis(300), "another's media report", |f| {
        f["type"] == "media_reported"
    })
    .await;
    obs.request(failed(MediaProblem::Timeout)).await.unwrap();
    let e = host.wait_type("media_reported").await;
    assert_eq!(
        (&e["identity"], &e["reason"]),
        (&json!("obs"), &json!("timeout"))
    );

    // The same state again is nothing new; `ok` after a failure is.
    p1.request(failed(MediaProblem::IceFailed)).await.unwrap();
    p1.request(ClientMsg::MediaReport {
        state: MediaHealth::Ok,
        reason: None,
    })
    .await
    .unwrap();
    let e = host.wait_type("media_reported").await;
    assert_eq!((&e["identity"], &e["state"]), (&json!("p1"), &json!("ok")));
    assert!(e["reason"].is_null());
    p1.request(failed(MediaProblem::Timeout)).await.unwrap();
    host.wait_type("media_reported").await;

    // A reason the protocol does not name is refused.
    p2.send_raw(r#"{"type":"media_report","state":"failed","reason":"gremlins","req_id":9}"#)
        .await;
    let e = p2.wait_type("error").await;
    assert_eq!(e["code"], "invalid_message");

    let events = s.events(&id).await;
    let reported: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["type"] == "media_reported")
        .map(|e| {
            (
                e["identity"].as_str().unwrap(),
                e["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reported,
        [
            ("p1", "failed"),
            ("obs", "failed"),
            ("p1", "ok"),
            ("p1", "failed")
        ]
    );
    let rows = s.attendance(&id).await;
    let rows = Value::Array(rows);
    assert_eq!(report_row(&rows, "p1")["media_failures"], 2);
    assert_eq!(report_row(&rows, "p2")["media_failures"], 0);
    let (_, csv) = s
        .api_text(
            "GET",
            &format!("/api/v1/sessions/{id}/attendance?format=csv"),
            None,
        )
        .await;
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",media_failures"), "{header}");
    let p1_line = csv.lines().find(|l| l.starts_with("p1,")).unwrap();
    assert!(p1_line.ends_with(",2"), "{p1_line}");
    s.stop().await;
}
