use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn resume_replays_exactly_the_missed_events() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    host.wait_type("participant_joined").await;
    host.request(ClientMsg::ChatSend {
        text: "before".into(),
    })
    .await
    .unwrap();
    p.wait_type("chat_message").await;
    let last = p.last_seq();
    let resume = p.resume_token();
    p.drop_connection().await;
    for i in 0..3 {
        host.request(ClientMsg::ChatSend {
            text: format!("missed {i}"),
        })
        .await
        .unwrap();
    }
    let url = format!("{}?resume={resume}&last_seq={last}", s.ws_url());
    let mut p = TestClient::connect(&url).await.unwrap();
    let r = p.wait_type("resumed").await;
    assert_eq!(r["from_seq"], last);
    assert_eq!(
        r["participant_count"], 2,
        "p is still present (grace period)"
    );
    assert_eq!(r["you"]["identity"], "p");
    let mut texts = Vec::new();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let m = p.wait_type("chat_message").await;
        texts.push(m["message"]["text"].as_str().unwrap().to_string());
        seqs.push(m["seq"].as_u64().unwrap());
    }
    assert_eq!(texts, ["missed 0", "missed 1", "missed 2"]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > last);
    assert!(
        !p.seen.iter().any(|f| f["type"] == "welcome"),
        "no snapshot when the buffer covers the gap"
    );
    // And the live stream continues after the replay, without duplicates.
    host.request(ClientMsg::ChatSend {
        text: "live".into(),
    })
    .await
    .unwrap();
    let m = p.wait_type("chat_message").await;
    assert_eq!(m["message"]["text"], "live");
    p.assert_none(Duration::from_millis(300), "a duplicate", |f| {
        f["type"] == "chat_message"
    })
    .await;
    host.assert_none(Duration::from_millis(100), "a rejoin", |f| {
        f["type"] == "participant_joined"
    })
    .await;
    let rows = s.attendance(&id).await;
    let row = rows.iter().find(|r| r["identity"] == "p").unwrap();
    assert_eq!(row["intervals"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_gap_older_than_the_buffer_gets_a_fresh_snapshot() {
    let s = TestServer::start_with(|c| {
        c.limits.resume_buffer = 2;
        c.limits.chat_burst = 100;
    })
    .await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let p = s.join(&id, "p", Role::Participant).await;
    let last = p.last_seq();
    let resume = p.resume_token();
    p.drop_connection().await;
    for i in 0..5 {
        host.request(ClientMsg::ChatSend {
            text: format!("m{i}"),
        })
        .await
        .unwrap();
    }
    let mut p = TestClient::connect(&format!("{}?resume={resume}&last_seq={last}", s.ws_url()))
        .await
        .unwrap();
    let w = p.wait_type("welcome").await;
    assert_eq!(w["chat"].as_array().unwrap().len(), 5);
    assert!(w["seq"].as_u64().unwrap() >= last + 5);
    s.stop().await;
}

#[tokio::test]
async fn a_gap_too_big_for_the_send_queue_gets_a_snapshot() {
    let s = TestServer::start_with(|c| {
        c.limits.send_queue = 16;
        c.limits.chat_burst = 100;
    })
    .await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let p = s.join(&id, "p", Role::Participant).await;
    let (last, resume) = (p.last_seq(), p.resume_token());
    p.drop_connection().await;
    for i in 0..9 {
        host.request(ClientMsg::ChatSend {
            text: format!("m{i}"),
        })
        .await
        .unwrap();
    }
    let mut p = TestClient::connect(&format!("{}?resume={resume}&last_seq={last}", s.ws_url()))
        .await
        .unwrap();
    let w = p.wait_type("welcome").await;
    assert_eq!(w["chat"].as_array().unwrap().len(), 9);
    s.stop().await;
}

#[tokio::test]
async fn resume_needs_a_resume_token() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let join_token = s.token(&id, "p", Role::Participant).await;
    match TestClient::connect(&format!("{}?resume={join_token}&last_seq=0", s.ws_url())).await {
        Err(ConnectError::Http(401, b)) => assert_eq!(b["error"]["code"], "unauthorized"),
        other => panic!("expected 401, got {:?}", other.err()),
    }
    let p = s.join(&id, "p", Role::Participant).await;
    let resume = p.resume_token();
    match TestClient::connect(&format!("{}?token={resume}", s.ws_url())).await {
        Err(ConnectError::Http(401, _)) => {}
        other => panic!("a resume token is not a join token: {:?}", other.err()),
    }
    s.stop().await;
}

#[tokio::test]
async fn an_audience_member_resuming_gets_the_vote_totals_it_missed() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut asker = s.join(&id, "asker", Role::Participant).await;
    let p = s.join(&id, "p", Role::Participant).await;
    let q = asker
        .request(ClientMsg::QuestionAsk { text: "?".into() })
        .await
        .unwrap()["question_id"]
        .as_i64()
        .unwrap();
    let (resume, last) = (p.resume_token(), p.last_seq() + 1);
    p.drop_connection().await;
    host.request(ClientMsg::QuestionUpvote { question_id: q })
        .await
        .unwrap();
    asker
        .request(ClientMsg::QuestionUpvote { question_id: q })
        .await
        .unwrap();
    let mut p = TestClient::connect(&format!("{}?resume={resume}&last_seq={last}", s.ws_url()))
        .await
        .unwrap();
    p.wait_type("resumed").await;
    let v = p.wait_type("question_votes").await;
    assert_eq!(
        v["votes"],
        serde_json::json!([{ "question_id": q, "upvotes": 2 }])
    );
    s.stop().await;
}

/// A drop within the grace period and the return are told to those who see
/// the roster, so nobody's page keeps calling a member "reconnecting" who is
/// back (the welcome's `connected` is only a snapshot).
#[tokio::test]
async fn drops_and_returns_within_the_grace_period_reach_the_roster() {
    let s = TestServer::start_with(|c| c.limits.grace_secs = 30).await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p2 = s.join(&id, "p2", Role::Participant).await;
    let p1 = s.join(&id, "p1", Role::Participant).await;
    let (last, resume) = (p1.last_seq(), p1.resume_token());
    p1.drop_connection().await;
    for c in [&mut host, &mut p2] {
        let e = c.wait_type("participant_connection").await;
        assert_eq!(
            (&e["identity"], &e["connected"]),
            (&json!("p1"), &json!(false))
        );
    }
    // Someone joining now sees p1 away, and everyone else connected.
    let mut p3 = s.join(&id, "p3", Role::Participant).await;
    let connected: Vec<(String, bool)> = p3.welcome["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["identity"].as_str().unwrap().into(),
                p["connected"] == true,
            )
        })
        .collect();
    assert_eq!(
        connected,
        [
            ("host".into(), true),
            ("p2".into(), true),
            ("p1".into(), false),
            ("p3".into(), true)
        ]
    );
    // p1 comes back: one event, no new attendance interval.
    let mut p1 = TestClient::connect(&format!("{}?resume={resume}&last_seq={last}", s.ws_url()))
        .await
        .unwrap();
    p1.wait_type("resumed").await;
    for c in [&mut host, &mut p2, &mut p3] {
        let e = c.wait_type("participant_connection").await;
        assert_eq!(
            (&e["identity"], &e["connected"]),
            (&json!("p1"), &json!(true))
        );
    }
    let joins = s
        .events(&id)
        .await
        .iter()
        .filter(|e| e["type"] == "participant_joined" && e["participant"]["identity"] == "p1")
        .count();
    assert_eq!(joins, 1, "one attendance interval");
    // A member who leaves is not "away": only participant_left is sent.
    p2.request(ClientMsg::Leave).await.unwrap();
    let e = host
        .wait(|f| f["type"] == "participant_left" || f["type"] == "participant_connection")
        .await;
    assert_eq!(e["type"], "participant_left");
    s.stop().await;
}

/// In audience mode nobody hears of drops and returns: a mass drop of
/// thousands would fill the resume buffer with them.
#[tokio::test]
async fn in_audience_mode_drops_are_not_announced() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p2 = s.join(&id, "p2", Role::Participant).await;
    let p1 = s.join(&id, "p1", Role::Participant).await;
    let (last, resume) = (p1.last_seq(), p1.resume_token());
    p1.drop_connection().await;
    let mut p1 = TestClient::connect(&format!("{}?resume={resume}&last_seq={last}", s.ws_url()))
        .await
        .unwrap();
    p1.wait_type("resumed").await;
    for c in [&mut host, &mut p2] {
        c.assert_none(Duration::from_millis(500), "a drop or return", |f| {
            f["type"] == "participant_connection"
        })
        .await;
    }
    s.stop().await;
}
