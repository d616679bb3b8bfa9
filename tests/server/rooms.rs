//! Joining, the welcome snapshot, rosters, audience mode, ending a session.

use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use std::time::Duration;

#[tokio::test]
async fn bad_expired_and_foreign_tokens_are_refused_at_the_upgrade() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    match TestClient::connect(&format!("{}?token=not-a-token", s.ws_url())).await {
        Err(ConnectError::Http(401, body)) => assert_eq!(body["error"]["code"], "unauthorized"),
        other => panic!("expected 401, got {:?}", other.err()),
    }
    match TestClient::connect(&s.ws_url()).await {
        Err(ConnectError::Http(401, body)) => assert_eq!(body["error"]["code"], "unauthorized"),
        other => panic!("expected 401, got {:?}", other.err()),
    }
    // A token signed with the right key but already expired.
    let (_, v) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{id}/tokens"),
            Some(serde_json::json!({ "identity": "x", "name": "x", "role": "participant", "ttl_seconds": 1 })),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    match TestClient::connect(&format!(
        "{}?token={}",
        s.ws_url(),
        v["token"].as_str().unwrap()
    ))
    .await
    {
        Err(ConnectError::Http(401, body)) => assert_eq!(body["error"]["code"], "token_expired"),
        other => panic!("expected 401 token_expired, got {:?}", other.err()),
    }
    // A token from another server's key.
    let other = TestServer::start_with(|c| c.token_secret = Some("another secret".into())).await;
    let oid = other.create_session(SessionKind::Seminar).await;
    let foreign = other.token(&oid, "x", Role::Host).await;
    match TestClient::connect(&format!("{}?token={foreign}", s.ws_url())).await {
        Err(ConnectError::Http(401, _)) => {}
        other => panic!("expected 401, got {:?}", other.err()),
    }
    other.stop().await;
    s.stop().await;
}

/// Sends `request` on a fresh TCP connection; returns the status, the
/// head (lower-cased) and the body of the answer, read until the connection
/// ends or, for a 101, until the head is complete.
async fn raw_http(s: &TestServer, request: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s
        .ws_url()
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if n == 0 || (text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n")) {
            break;
        }
    }
    let text = String::from_utf8(got).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_lowercase(), body.to_string())
}

#[tokio::test]
async fn the_opening_handshake_is_checked_and_answered() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let token = s.token(&id, "p", Role::Participant).await;
    let ask = |headers: &str| {
        format!("GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n")
    };
    // An upgrade request with the given version and key.
    let upgrade = |version: u8, key: &str| {
        ask(&format!(
            "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: {version}\r\nSec-WebSocket-Key: {key}\r\n"
        ))
    };
    let sample_key = "dGhlIHNhbXBsZSBub25jZQ==";
    let json_code = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["error"]["code"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // A plain request to the WebSocket endpoint.
    let (status, _, body) = raw_http(&s, &ask("")).await;
    assert_eq!((status, json_code(&body).as_str()), (400, "bad_request"));
    // A version other than 13: 426, naming the one spoken.
    let (status, head, body) = raw_http(&s, &upgrade(8, sample_key)).await;
    assert_eq!((status, json_code(&body).as_str()), (426, "bad_request"));
    assert!(head.contains("sec-websocket-version: 13"), "{head}");
    // A key that is not 16 bytes of base64.
    let (status, _, body) = raw_http(&s, &upgrade(13, "c2hvcnQ=")).await;
    assert_eq!((status, json_code(&body).as_str()), (400, "bad_request"));
    // The sample handshake of RFC 6455 §1.3, with its known answer.
    let (status, head, _) = raw_http(&s, &upgrade(13, sample_key)).await;
    assert_eq!(status, 101, "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    s.stop().await;
}

#[tokio::test]
async fn welcome_has_the_whole_room() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    host.request(ClientMsg::ChatSend {
        text: "欢迎大家".into(),
    })
    .await
    .unwrap();
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    p1.request(ClientMsg::HandRaise).await.unwrap();
    p1.request(ClientMsg::QuestionAsk {
        text: "如何设计分层作业？".into(),
    })
    .await
    .unwrap();

    let p2 = s.join(&id, "p2", Role::Participant).await;
    let w = &p2.welcome;
    assert_eq!(w["session"]["id"], id.as_str());
    assert_eq!(w["session"]["status"], "live");
    assert_eq!(w["you"]["identity"], "p2");
    assert_eq!(w["you"]["role"], "participant");
    assert_eq!(w["you"]["can_publish"], true, "seminar members may publish");
    let perms: Vec<&str> = w["you"]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        perms.contains(&"chat.post") && !perms.contains(&"chat.moderate"),
        "{perms:?}"
    );
    let roster: Vec<&str> = w["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    assert_eq!(roster, ["host", "p1", "p2"]);
    // Everyone is connected, the joining member included: its own entry was
    // once built before it was registered, and its page said "reconnecting".
    for p in w["roster"].as_array().unwrap() {
        assert_eq!(p["connected"], true, "{p}");
    }
    assert_eq!(w["participant_count"], 3);
    assert_eq!(w["hands"][0]["identity"], "p1");
    assert_eq!(w["questions"][0]["text"], "如何设计分层作业？");
    assert_eq!(w["chat"][0]["text"], "欢迎大家");
    assert!(w["resume_token"].as_str().unwrap().len() > 20);
    assert!(w["seq"].as_u64().unwrap() >= 5);
    s.stop().await;
}

#[tokio::test]
async fn seminar_members_see_each_other_join_and_leave() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let j = host.wait_type("participant_joined").await;
    assert_eq!(j["participant"]["identity"], "a");
    let b = s.join(&id, "b", Role::Participant).await;
    let j = a.wait_type("participant_joined").await;
    assert_eq!(j["participant"]["identity"], "b");
    let mut b = b;
    b.request(ClientMsg::Leave).await.unwrap();
    for c in [&mut host, &mut a] {
        let l = c.wait_type("participant_left").await;
        assert_eq!(l["identity"], "b");
        assert_eq!(l["reason"], "left");
    }
    assert_eq!(b.wait_closed().await, 1000);
    s.stop().await;
}

#[tokio::test]
async fn observers_are_hidden_and_uncounted() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let obs = s.join(&id, "inspector", Role::Observer).await;
    assert!(obs.welcome["roster"].is_array(), "observers see the roster");
    assert_eq!(obs.welcome["you"]["can_publish"], false);
    let p = s.join(&id, "p", Role::Participant).await;
    let roster: Vec<&str> = p.welcome["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["identity"].as_str().unwrap())
        .collect();
    assert_eq!(roster, ["host", "p"], "the observer is not listed");
    assert_eq!(p.welcome["participant_count"], 2);
    host.wait(|f| f["type"] == "participant_joined" && f["participant"]["identity"] == "p")
        .await;
    let seen_obs = host
        .seen
        .iter()
        .any(|f| f["type"] == "participant_joined" && f["participant"]["identity"] == "inspector");
    assert!(!seen_obs, "no join event for an observer");
    let rows = s.attendance(&id).await;
    assert!(rows.iter().all(|r| r["identity"] != "inspector"));
    s.stop().await;
}

#[tokio::test]
async fn audience_mode_sends_participants_a_count_not_the_roster() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut p1 = s.join(&id, "p1", Role::Participant).await;
    assert!(p1.welcome["roster"].is_null(), "no roster for the audience");
    assert_eq!(p1.welcome["participant_count"], 2);
    let _p2 = s.join(&id, "p2", Role::Participant).await;
    let _p3 = s.join(&id, "p3", Role::Participant).await;
    // The host sees every join.
    for who in ["p1", "p2", "p3"] {
        host.wait_for(&format!("join of {who}"), |f| {
            f["type"] == "participant_joined" && f["participant"]["identity"] == who
        })
        .await;
    }
    // p1 gets counts, at most about once a second, ending at 4.
    p1.wait_for("count of 4", |f| {
        f["type"] == "participant_count" && f["count"] == 4
    })
    .await;
    p1.assert_none(Duration::from_millis(300), "join event", |f| {
        f["type"] == "participant_joined"
    })
    .await;
    assert!(!p1.seen.iter().any(|f| f["type"] == "participant_joined"));
    // Chat still reaches everyone.
    host.request(ClientMsg::ChatSend {
        text: "大家好".into(),
    })
    .await
    .unwrap();
    let m = p1.wait_type("chat_message").await;
    assert_eq!(m["message"]["text"], "大家好");
    s.stop().await;
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut first = s.join(&id, "t", Role::Participant).await;
    host.wait_type("participant_joined").await;
    let _second = s.join(&id, "t", Role::Participant).await;
    assert_eq!(
        first.wait_closed().await,
        lectern::protocol::close::REPLACED
    );
    host.assert_none(
        Duration::from_millis(500),
        "a second join or a leave",
        |f| f["type"] == "participant_left" || f["type"] == "participant_joined",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn ending_a_session_closes_everyone_and_refuses_new_joins() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    assert_eq!(
        p.request(ClientMsg::SessionEnd).await,
        Err("forbidden".into())
    );
    host.request(ClientMsg::SessionEnd).await.unwrap();
    let e = p.wait_type("session_ended").await;
    assert_eq!(e["by"], "host");
    assert_eq!(
        p.wait_closed().await,
        lectern::protocol::close::SESSION_ENDED
    );
    let token = s.token_err(&id).await;
    assert_eq!(token, 410);
    let rows = s.attendance(&id).await;
    assert!(rows.iter().all(|r| r["present"] == false));
    assert!(rows
        .iter()
        .all(|r| r["intervals"][0]["reason"] == "session_ended"));
    s.stop().await;
}

impl TestServer {
    async fn token_err(&self, sid: &str) -> u16 {
        self.api(
            "POST",
            &format!("/api/v1/sessions/{sid}/tokens"),
            Some(serde_json::json!({ "identity": "late", "name": "x", "role": "participant" })),
        )
        .await
        .0
    }
}

#[tokio::test]
async fn coming_back_with_another_role_ends_the_old_attendance() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let _p = s.join(&id, "x", Role::Participant).await;
    host.wait_type("participant_joined").await;
    let obs = s.join(&id, "x", Role::Observer).await;
    let left = host.wait_type("participant_left").await;
    assert_eq!(
        (left["identity"].as_str(), left["reason"].as_str()),
        (Some("x"), Some("left"))
    );
    let roster: Vec<&str> = obs.welcome["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["identity"].as_str().unwrap())
        .collect();
    assert_eq!(roster, ["host"]);
    let rows = s.attendance(&id).await;
    let x = rows.iter().find(|r| r["identity"] == "x").unwrap();
    assert_eq!(x["present"], false);
    s.stop().await;
}

/// A client that closes its TCP connection without a close frame (a killed
/// app), and one that closes with a close frame (a closed tab), are both
/// released at once: the server answers the close frame, and holds no
/// socket for them. (Their media sessions stay for a resume, through the
/// grace period; they used to keep the connection's writer waiting until
/// then, or until a ping failed, 20–40 s.)
#[tokio::test]
async fn closed_connections_are_released_at_once() {
    // A grace period longer than the wait below: what is released must not
    // wait for the end of the grace period.
    let s = TestServer::start_with(|c| c.limits.grace_secs = 120).await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let vanished = s.join(&id, "p1", Role::Participant).await;
    let closing = s.join(&id, "p2", Role::Participant).await;
    let connections = || async {
        let (_, text) = s.api_text("GET", "/metrics", None).await;
        text.lines()
            .find_map(|l| l.strip_prefix("lectern_connections "))
            .and_then(|v| v.parse::<i64>().ok())
            .expect("lectern_connections")
    };
    assert_eq!(connections().await, 3);
    vanished.drop_connection().await;
    let answered = closing.close_handshake().await;
    assert_eq!(answered, Some(1000), "the server answers a close frame");
    let deadline = tokio::time::Instant::now() + WAIT;
    while connections().await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed connections still held after {WAIT:?}: {}",
            connections().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The class goes on for the one still here.
    host.request(ClientMsg::ChatSend {
        text: "still here".into(),
    })
    .await
    .unwrap();
    s.stop().await;
}
