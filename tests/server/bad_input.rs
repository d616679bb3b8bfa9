use crate::common::*;
use lectern::protocol::{close, ClientMsg, Role, SessionKind};
use std::time::Duration;

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_stays_up() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let mut other = s.join(&id, "other", Role::Participant).await;

    p.send_raw("{not json").await;
    assert_eq!(p.wait_type("error").await["code"], "malformed");
    p.send_raw("[1,2,3]").await;
    assert_eq!(p.wait_type("error").await["code"], "malformed");
    p.send_raw(r#"{"type":"teleport","req_id":"x1"}"#).await;
    let e = p.wait_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["req_id"].as_str()),
        (Some("unknown_type"), Some("x1"))
    );
    p.send_raw(r#"{"req_id":5}"#).await;
    assert_eq!(p.wait_type("error").await["code"], "unknown_type");
    p.send_raw(r#"{"type":"chat_send","text":42,"req_id":6}"#)
        .await;
    let e = p.wait_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["req_id"].as_i64()),
        (Some("invalid_message"), Some(6))
    );
    let big = format!(
        r#"{{"type":"chat_send","text":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    p.send_raw(&big).await;
    assert_eq!(p.wait_type("error").await["code"], "frame_too_large");
    p.ws_send_binary(vec![1, 2, 3]).await;
    assert_eq!(p.wait_type("error").await["code"], "malformed");

    // Still connected, and nobody else noticed.
    assert!(p
        .request(ClientMsg::ChatSend {
            text: "still here".into()
        })
        .await
        .is_ok());
    let m = other.wait_type("chat_message").await;
    assert_eq!(m["message"]["text"], "still here");
    assert!(!other.seen.iter().any(|f| f["type"] == "error"));
    p.send_raw(r#"{"type":"ping"}"#).await;
    p.wait_type("pong").await;
    s.stop().await;
}

#[tokio::test]
async fn floods_are_rate_limited_then_closed() {
    let s = TestServer::start_with(|c| {
        c.limits.frame_burst = 5;
        c.limits.frame_per_sec = 1.0;
        c.limits.abuse_threshold = 10;
    })
    .await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut flooder = s.join(&id, "f", Role::Participant).await;
    let mut calm = s.join(&id, "c", Role::Participant).await;
    for _ in 0..40 {
        flooder.send_raw(r#"{"type":"ping"}"#).await;
    }
    let e = flooder.wait(|f| f["type"] == "error").await;
    assert_eq!(e["code"], "rate_limited");
    assert_eq!(flooder.wait_closed().await, close::ABUSE);
    assert!(calm
        .request(ClientMsg::ChatSend {
            text: "unaffected".into()
        })
        .await
        .is_ok());
    s.stop().await;
}

#[tokio::test]
async fn frames_over_the_hard_cap_close_the_connection() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let huge = format!(
        r#"{{"type":"chat_send","text":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    let _ = p.try_send_raw(&huge).await;
    let code = p.wait_closed().await;
    assert!(
        code == close::MESSAGE_TOO_BIG || code == 1006,
        "closed with {code}"
    );
    let mut q = s.join(&id, "q", Role::Participant).await;
    assert!(q
        .request(ClientMsg::ChatSend {
            text: "server fine".into()
        })
        .await
        .is_ok());
    s.stop().await;
}

#[tokio::test]
async fn a_reader_that_stalls_is_closed_and_the_room_goes_on() {
    let s = TestServer::start_with(|c| {
        c.limits.send_queue = 300;
        c.limits.chat_burst = 100_000;
        c.limits.frame_burst = 100_000;
        c.limits.frame_per_sec = 100_000.0;
    })
    .await;
    let id = s
        .create_session_with(serde_json::json!({ "title": "t", "kind": "seminar", "settings": { "chat_max_length": 10000 } }))
        .await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let token = s.token(&id, "stalled", Role::Participant).await;
    let mut stalled =
        TestClient::connect_small_buffer(&format!("{}?token={token}", s.ws_url())).await;
    stalled.wait_type("welcome").await;
    // Stop reading; flood the room with large messages.
    let text = "长".repeat(3000);
    // The host keeps reading between batches so only the stalled one backs up.
    for _ in 0..15 {
        let mut last = 0;
        for _ in 0..100 {
            last = host.send(ClientMsg::ChatSend { text: text.clone() }).await;
        }
        host.wait(|f| f["type"] == "ack" && f["req_id"] == last)
            .await;
        host.forget_buffered();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, metrics) = s.api_text("GET", "/metrics", None).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("lectern_queue_drops_total ") && !l.ends_with(" 0")),
        "the stalled reader was dropped:\n{metrics}"
    );
    assert_eq!(stalled.wait_closed().await, close::SLOW_CONSUMER);
    assert!(host
        .request(ClientMsg::ChatSend {
            text: "room goes on".into()
        })
        .await
        .is_ok());
    s.stop().await;
}

/// Frames larger than a socket takes at once (to a reader with a tiny
/// receive buffer) wait in the connection's queue and still arrive whole
/// and in order, with a ping's pong after them; a welcome past 64 KiB (the
/// 8-byte length form) arrives whole too.
#[tokio::test]
async fn frames_too_big_for_the_socket_arrive_whole_and_in_order() {
    let s = TestServer::start_with(|c| {
        c.limits.max_frame_bytes = 64 * 1024;
        c.limits.max_sdp_bytes = 64 * 1024;
        c.limits.chat_max_length = 10_000;
        c.limits.chat_burst = 1_000;
        c.limits.frame_burst = 1_000;
    })
    .await;
    let id = s
        .create_session_with(serde_json::json!({ "title": "t", "kind": "seminar", "settings": { "chat_max_length": 10000 } }))
        .await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let token = s.token(&id, "far", Role::Participant).await;
    let mut far = TestClient::connect_small_buffer(&format!("{}?token={token}", s.ws_url())).await;
    far.wait_type("welcome").await;
    // 30 KB frames (2-byte length form) and small ones (1-byte form): more
    // than the kernel's largest send buffer here (4 MiB), so some must wait
    // in the server's queue.
    let texts: Vec<String> = (0..200)
        .map(|i| {
            if i % 10 != 9 {
                format!("{i}{}", "长".repeat(10_000 - 3))
            } else {
                format!("short {i}")
            }
        })
        .collect();
    for t in &texts {
        host.request(ClientMsg::ChatSend { text: t.clone() })
            .await
            .unwrap();
    }
    // About 5.4 MB are now on their way to a reader with a 4 KiB receive
    // buffer: some 1,350 round trips, each waiting for both ends to be
    // scheduled. Alone that is about 3 s; with the two cores busy it took 64
    // s once (three busy loops beside it). This is about order and
    // wholeness, not speed, so it waits long.
    let started = std::time::Instant::now();
    let pong = far
        .ping_within(b"after the chat", Duration::from_secs(300))
        .await;
    assert!(
        pong,
        "no pong after {:?}; closed: {:?}; {} frames read",
        started.elapsed(),
        far.closed,
        far.seen.len()
    );
    let got: Vec<String> = far
        .seen
        .iter()
        .filter(|f| f["type"] == "chat_message")
        .map(|f| f["message"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got.len(),
        texts.len(),
        "every message arrived before the pong"
    );
    assert!(got == texts, "the messages arrived whole and in order");
    // The welcome carries the recent chat: here, over 64 KiB in one frame.
    let late = s.join(&id, "late", Role::Participant).await;
    let recent: Vec<&str> = late.welcome["chat"]
        .as_array()
        .expect("welcome has the chat")
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(late.welcome.to_string().len() > 65_536);
    let tail = &texts[texts.len() - recent.len()..];
    assert_eq!(recent, tail.iter().map(String::as_str).collect::<Vec<_>>());
    s.stop().await;
}
