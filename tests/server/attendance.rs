use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_reconnect_within_grace_keeps_one_interval() {
    let s = TestServer::start_with(|c| c.limits.grace_secs = 3).await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let p = s.join(&id, "p", Role::Participant).await;
    host.wait_type("participant_joined").await;
    p.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _p = s.join(&id, "p", Role::Participant).await;
    host.assert_none(Duration::from_millis(3500), "a leave or second join", |f| {
        f["type"] == "participant_left"
            || (f["type"] == "participant_joined" && f["participant"]["identity"] == "p")
    })
    .await;
    let rows = s.attendance(&id).await;
    let row = rows.iter().find(|r| r["identity"] == "p").unwrap();
    assert_eq!(row["intervals"].as_array().unwrap().len(), 1, "{row}");
    assert_eq!(row["present"], true);
    s.stop().await;
}

#[tokio::test]
async fn a_drop_past_grace_closes_attendance_at_the_drop() {
    let s = TestServer::start_with(|c| c.limits.grace_secs = 1).await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let p = s.join(&id, "p", Role::Participant).await;
    host.wait_type("participant_joined").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    p.drop_connection().await;
    let left = host.wait_type("participant_left").await;
    assert_eq!(left["reason"], "timeout");
    let left_at = lectern::protocol::Timestamp::parse(left["left_at"].as_str().unwrap()).unwrap();
    let at = lectern::protocol::Timestamp::parse(left["at"].as_str().unwrap()).unwrap();
    assert!(
        at.millis() - left_at.millis() >= 900,
        "left_at is the drop, not the end of grace"
    );
    let rows = s.attendance(&id).await;
    let row = rows.iter().find(|r| r["identity"] == "p").unwrap();
    assert_eq!(row["present"], false);
    assert!(row["total_seconds"].as_i64().unwrap() >= 1);
    // Coming back later opens a second interval.
    let _p = s.join(&id, "p", Role::Participant).await;
    let rows = s.attendance(&id).await;
    let row = rows.iter().find(|r| r["identity"] == "p").unwrap();
    assert_eq!(row["intervals"].as_array().unwrap().len(), 2);
    s.stop().await;
}

/// Hundreds dropping together (a regional outage) are stored a few at a
/// time when their grace ends (here 150 a second); every one still leaves
/// once, at the time of its own drop.
#[tokio::test]
async fn a_mass_drop_leaves_everyone_at_their_own_drop() {
    let s = TestServer::start_with(|c| {
        c.limits.grace_secs = 1;
        c.limits.leaves_per_sec = 150;
    })
    .await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let n = 450; // more than two chunks of leaves
    let mut members = Vec::new();
    for i in 0..n {
        members.push(s.join(&id, &format!("t{i:03}"), Role::Participant).await);
    }
    let dropped_at = lectern::protocol::Timestamp::now();
    for m in members {
        m.drop_connection().await;
    }
    let mut left = std::collections::HashSet::new();
    let mut stored_at = Vec::new();
    while left.len() < n {
        let f = host.wait_type("participant_left").await;
        assert_eq!(f["reason"], "timeout");
        let at = lectern::protocol::Timestamp::parse(f["left_at"].as_str().unwrap()).unwrap();
        assert!(
            (at.millis() - dropped_at.millis()).abs() < 1000,
            "left_at is the drop: {f}"
        );
        assert!(
            left.insert(f["identity"].as_str().unwrap().to_string()),
            "once: {f}"
        );
        stored_at.push(lectern::protocol::Timestamp::parse(f["at"].as_str().unwrap()).unwrap());
    }
    let spread = stored_at.iter().map(|t| t.millis()).max().unwrap()
        - stored_at.iter().map(|t| t.millis()).min().unwrap();
    assert!(
        spread >= 1000,
        "450 leaves at 150 a second are stored over several ticks, not at once ({spread} ms)"
    );
    let rows = s.attendance(&id).await;
    let gone = rows
        .iter()
        .filter(|r| r["identity"].as_str().unwrap().starts_with('t'))
        .filter(|r| r["present"] == false && r["intervals"].as_array().unwrap().len() == 1)
        .count();
    assert_eq!(gone, n, "every one has one closed interval");
    s.stop().await;
}

/// How many batches the server has stored so far (from `/metrics`).
async fn commits(s: &TestServer) -> u64 {
    let (_, m) = s.api_text("GET", "/metrics", None).await;
    m.lines()
        .find_map(|l| l.strip_prefix("lectern_store_commit_seconds_count "))
        .expect("the commit histogram is exported")
        .trim()
        .parse()
        .unwrap()
}

/// Ending a class of hundreds stores their leaves in several transactions
/// (one for thousands would hold every room's sending); each still leaves
/// once, with `session_ended`, and everyone hears all of it before their
/// connection closes.
#[tokio::test]
async fn ending_a_large_session_closes_everyone_in_several_commits() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let n = 450; // more than two chunks of 200
    let mut members = Vec::new();
    for i in 0..n {
        members.push(s.join(&id, &format!("t{i:03}"), Role::Participant).await);
    }
    let before = commits(&s).await;
    let (st, v) = s
        .api("POST", &format!("/api/v1/sessions/{id}/end"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ended");
    let stored = commits(&s).await - before;
    assert!(
        stored >= 3,
        "450 leaves and the end are stored in at least three commits, not {stored}"
    );
    // The host sees every leave, then the end.
    let mut left = std::collections::HashSet::new();
    loop {
        let f = host
            .wait(|f| f["type"] == "participant_left" || f["type"] == "session_ended")
            .await;
        if f["type"] == "session_ended" {
            break;
        }
        if f["identity"] != "host" {
            assert_eq!(f["reason"], "session_ended", "{f}");
            assert!(
                left.insert(f["identity"].as_str().unwrap().to_string()),
                "once: {f}"
            );
        }
    }
    assert_eq!(left.len(), n, "every member left before session_ended");
    let rows = s.attendance(&id).await;
    let closed = rows
        .iter()
        .filter(|r| r["identity"].as_str().unwrap().starts_with('t'))
        .filter(|r| r["present"] == false && r["intervals"].as_array().unwrap().len() == 1)
        .filter(|r| r["intervals"][0]["reason"] == "session_ended")
        .count();
    assert_eq!(closed, n, "every one has one interval, closed by the end");
    // Everyone hears of the end before their connection closes (members
    // of the first commit as well as of the last); the connections close
    // a few hundred at a time, all of them.
    for m in &mut members {
        m.wait_type("session_ended").await;
        assert_eq!(m.wait_closed().await, 4000);
    }
    s.stop().await;
}

#[tokio::test]
async fn report_has_lateness_reasons_and_a_csv_for_excel() {
    let s = TestServer::start().await;
    let start =
        lectern::protocol::Timestamp(lectern::protocol::Timestamp::now().millis() - 120_000);
    let id = s
        .create_session_with(
            json!({ "title": "t", "kind": "seminar", "scheduled_start": start.to_rfc3339() }),
        )
        .await;
    let mut a = s.join(&id, "t-001", Role::Participant).await;
    let _b = s.join(&id, "t-002", Role::Participant).await;
    let _o = s.join(&id, "staff", Role::Observer).await;
    a.request(ClientMsg::Leave).await.unwrap();
    let rows = s.attendance(&id).await;
    assert_eq!(rows.len(), 2, "observers are not counted: {rows:?}");
    let a_row = &rows[0];
    assert_eq!(a_row["identity"], "t-001");
    assert_eq!(a_row["intervals"][0]["reason"], "left");
    let late = a_row["late_seconds"].as_i64().unwrap();
    assert!(
        (119..=130).contains(&late),
        "late by about two minutes, got {late}"
    );

    let (st, csv) = s
        .api_text(
            "GET",
            &format!("/api/v1/sessions/{id}/attendance?format=csv"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(csv.starts_with('\u{feff}'), "BOM for Excel");
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("identity,name,role,"));
    assert!(lines[1].starts_with("t-001,t-001 老师,participant,"));
    assert!(lines[1].ends_with(",left,0"), "{}", lines[1]);
    let (st, v) = s
        .api(
            "GET",
            &format!("/api/v1/sessions/{id}/attendance?format=xml"),
            None,
        )
        .await;
    assert_eq!(st, 400, "{v}");

    let (_, parts) = s
        .api("GET", &format!("/api/v1/sessions/{id}/participants"), None)
        .await;
    let parts = parts.as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts.iter().find(|p| p["identity"] == "t-001").unwrap()["present"],
        false
    );
    assert_eq!(
        parts.iter().find(|p| p["identity"] == "t-002").unwrap()["present"],
        true
    );
    s.stop().await;
}
