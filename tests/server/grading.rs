//! Participation events reach a real webhook receiver: signed (Standard
//! Webhooks), in order per session, every one of them, through refusals,
//! dead-lettering and redelivery, and across a `kill -9` of the server.

use crate::common::{TestServer, WAIT};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use hmac::{Hmac, Mac};
use lectern::config::WebhookSink;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLWxlY3Rlcm4tZ3JhZGluZw==";

#[derive(Default)]
struct Seen {
    /// Requests to refuse before accepting: (status, Retry-After).
    refuse: Vec<(u16, Option<&'static str>)>,
    /// Refuse everything while set.
    down: bool,
    requests: usize,
    bad_signatures: usize,
    /// Every event of every accepted request, in arrival order.
    events: Vec<Value>,
    /// webhook-id of each accepted request with its first and last event id.
    messages: Vec<(String, String, String)>,
}

/// A webhook receiver on 127.0.0.1:0 that checks signatures itself.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

async fn receive(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let mut s = seen.lock().unwrap();
    s.requests += 1;
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (t - lectern::protocol::Timestamp::now().millis() / 1000).abs() < 300);
    if sig != expected || !fresh {
        s.bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, HeaderMap::new()).into_response();
    }
    if s.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !s.refuse.is_empty() {
        let (status, retry) = s.refuse.remove(0);
        let mut h = HeaderMap::new();
        if let Some(r) = retry {
            h.insert("retry-after", r.parse().unwrap());
        }
        return (StatusCode::from_u16(status).unwrap(), h).into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "participation.batch");
    let events = v["data"]["events"].as_array().unwrap().clone();
    let first = events[0]["id"].as_str().unwrap().to_string();
    let last = events.last().unwrap()["id"].as_str().unwrap().to_string();
    s.messages.push((id, first, last));
    s.events.extend(events);
    StatusCode::NO_CONTENT.into_response()
}

impl Receiver {
    async fn start() -> Receiver {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            seen,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.seen.lock().unwrap().events.clone()
    }

    /// Waits until an event of `kind` for `session` has arrived.
    async fn wait_for(&self, session: &str, kind: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self
                .events()
                .iter()
                .any(|e| e["session_id"] == session && e["type"] == kind)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} for {session} within 20 s; got {:?}",
                self.events()
                    .iter()
                    .map(|e| e["type"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every event of a session arrived: numbers 1..=n without gaps, first
/// arrivals in order, a repeat only ever with the same id. Returns the
/// types in order.
fn check_complete(events: &[Value], session: &str) -> Vec<String> {
    let mut first_seen: Vec<(u64, String, String)> = Vec::new();
    for e in events.iter().filter(|e| e["session_id"] == session) {
        let seq = e["seq"].as_u64().unwrap();
        let id = e["id"].as_str().unwrap().to_string();
        assert_eq!(id, format!("{session}-{seq}"), "ids are stable: {e}");
        match first_seen.iter().find(|(s, _, _)| *s == seq) {
            Some((_, other, _)) => assert_eq!(other, &id, "a repeat keeps its id"),
            None => first_seen.push((seq, id, e["type"].as_str().unwrap().to_string())),
        }
    }
    let seqs: Vec<u64> = first_seen.iter().map(|(s, _, _)| *s).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every event, in order per session");
    first_seen.into_iter().map(|(_, _, t)| t).collect()
}

fn hook_config(url: &str, scale: f64) -> impl FnOnce(&mut lectern::config::Config) {
    let url = url.to_string();
    move |c| {
        c.grading.webhook = vec![WebhookSink {
            name: "grades".into(),
            url,
            secret: SECRET.into(),
        }];
        c.grading.retry_scale = scale;
    }
}

#[tokio::test]
async fn events_arrive_signed_in_order_through_refusals() {
    let rx = Receiver::start().await;
    rx.seen.lock().unwrap().refuse = vec![(503, Some("1")), (429, None), (500, None)];
    let s = TestServer::start_with(hook_config(&rx.url, 0.01)).await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    a.request(ClientMsg::ChatSend {
        text: "大家好".into(),
    })
    .await
    .unwrap();
    let q = a
        .request(ClientMsg::QuestionAsk {
            text: "How do we grade reading logs?".into(),
        })
        .await
        .unwrap();
    let qid = q["question_id"].as_i64().unwrap();
    b.request(ClientMsg::QuestionUpvote { question_id: qid })
        .await
        .unwrap();
    b.request(ClientMsg::QuestionReply {
        question_id: qid,
        text: "Weekly".into(),
    })
    .await
    .unwrap();
    b.request(ClientMsg::HandRaise).await.unwrap();
    host.request(ClientMsg::HandsClear).await.unwrap();
    host.request(ClientMsg::SessionEnd).await.unwrap();
    rx.wait_for(&id, "session.ended").await;

    let events = rx.events();
    let types = check_complete(&events, &id);
    assert_eq!(
        types,
        [
            "session.started",
            "participant.joined",
            "participant.joined",
            "participant.joined",
            "chat.posted",
            "question.asked",
            "upvote.given",
            "reply.posted",
            "hand.raised",
            "hand.lowered",
            "participant.left",
            "participant.left",
            "participant.left",
            "attendance.summary",
            "attendance.summary",
            "attendance.summary",
            "score.computed",
            "score.computed",
            "session.ended",
        ]
    );
    {
        let seen = rx.seen.lock().unwrap();
        assert_eq!(seen.bad_signatures, 0);
        assert!(seen.requests >= 4, "three refusals, then deliveries");
    }
    // Chat text stays on the server unless the setting says otherwise.
    let chat = events.iter().find(|e| e["type"] == "chat.posted").unwrap();
    assert_eq!(chat["identity"], "a");
    assert_eq!(chat["data"]["length"], 3);
    assert!(chat["data"].get("text").is_none());
    let score = events
        .iter()
        .find(|e| e["type"] == "score.computed" && e["identity"] == "a")
        .unwrap();
    let lines = score["data"]["breakdown"].as_array().unwrap();
    let questions = lines.iter().find(|l| l["item"] == "questions").unwrap();
    assert_eq!(questions["points"], 1.0);
    let lowered = events.iter().find(|e| e["type"] == "hand.lowered").unwrap();
    assert_eq!(
        (lowered["identity"].as_str(), lowered["data"]["by"].as_str()),
        (Some("b"), Some("host"))
    );

    // The delivery API: all delivered (marked once the receiver's answer
    // is back, a moment after it has the events); the first events took
    // several attempts.
    let path = format!("/api/v1/grading/sinks/grades/deliveries?session={id}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let rows = loop {
        let (status, rows) = s.api("GET", &path, None).await;
        assert_eq!(status, 200, "{rows}");
        let all = rows.as_array().unwrap().clone();
        if all.iter().all(|r| r["state"] == "delivered") {
            break all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "all delivered: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), types.len());
    assert!(rows.iter().all(|r| r["state"] == "delivered"));
    assert!(rows[0]["attempts"].as_u64().unwrap() >= 4, "{}", rows[0]);
    assert!(rows[0]["last_error"].is_null());

    // Redelivering a range sends those events again, with the same ids.
    let before = rx.events().len();
    let (status, r) = s
        .api(
            "POST",
            "/api/v1/grading/sinks/grades/redeliver",
            Some(json!({"session_id": id, "from_seq": 2, "to_seq": 4})),
        )
        .await;
    assert_eq!((status, r["redelivered"].as_u64()), (200, Some(3)));
    let deadline = tokio::time::Instant::now() + WAIT;
    while rx.events().len() < before + 3 {
        assert!(tokio::time::Instant::now() < deadline, "redelivery arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again: Vec<String> = rx.events()[before..]
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(again, [2, 3, 4].map(|n| format!("{id}-{n}")));
    check_complete(&rx.events(), &id);

    // Unknown sinks and bad ranges are refused clearly.
    let (status, _) = s
        .api("GET", "/api/v1/grading/sinks/nope/deliveries", None)
        .await;
    assert_eq!(status, 404);
    let (status, e) = s
        .api(
            "POST",
            "/api/v1/grading/sinks/grades/redeliver",
            Some(json!({"session_id": id, "from_seq": 5, "to_seq": 2})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test]
async fn a_receiver_down_for_long_dead_letters_then_redelivery_succeeds() {
    let rx = Receiver::start().await;
    rx.seen.lock().unwrap().down = true;
    // The 26-hour give-up time, scaled down to about two seconds.
    let s = TestServer::start_with(hook_config(&rx.url, 0.00002)).await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    a.request(ClientMsg::QuestionAsk {
        text: "still there?".into(),
    })
    .await
    .unwrap();
    let path = format!("/api/v1/grading/sinks/grades/deliveries?session={id}&state=dead");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let (_, rows) = s.api("GET", &path, None).await;
        if rows.as_array().map_or(0, Vec::len) >= 3 {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead-lettered: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(dead[0]["last_error"].as_str().unwrap().contains("503"));
    assert!(rx.events().is_empty());
    let (_, m) = s.api_text("GET", "/metrics", None).await;
    assert!(m.contains("lectern_grading_dead_total 3"), "{m}");

    rx.seen.lock().unwrap().down = false;
    let (status, _) = s
        .api(
            "POST",
            "/api/v1/grading/sinks/grades/redeliver",
            Some(json!({"session_id": id, "from_seq": 1, "to_seq": 3})),
        )
        .await;
    assert_eq!(status, 200);
    rx.wait_for(&id, "question.asked").await;
    assert_eq!(
        check_complete(&rx.events(), &id),
        ["session.started", "participant.joined", "question.asked"]
    );
}

#[tokio::test]
async fn kill_dash_nine_during_delivery_loses_nothing() {
    let rx = Receiver::start().await;
    rx.seen.lock().unwrap().down = true;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("lectern.toml");
    std::fs::write(
        &config,
        format!(
            "[grading]\nretry_scale = 0.01\n[[grading.webhook]]\nname = \"grades\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n",
            rx.url
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut server =
        crate::restart::spawn_server_with(&data, &["--config", config.to_str().unwrap()]);
    let s = server.as_test_server();
    let id = s.create_session(SessionKind::Seminar).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    for i in 0..5 {
        a.request(ClientMsg::ChatSend {
            text: format!("message {i}"),
        })
        .await
        .unwrap();
    }
    // Deliveries are being tried (and refused) when the process dies.
    let deadline = tokio::time::Instant::now() + WAIT;
    while rx.seen.lock().unwrap().requests < 2 {
        assert!(tokio::time::Instant::now() < deadline, "delivery was tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    a.wait_closed().await;

    rx.seen.lock().unwrap().down = false;
    let mut server =
        crate::restart::spawn_server_with(&data, &["--config", config.to_str().unwrap()]);
    // The restart closes the interval (server_restart); everything arrives.
    rx.wait_for(&id, "participant.left").await;
    let types = check_complete(&rx.events(), &id);
    assert_eq!(
        types,
        [
            "session.started",
            "participant.joined",
            "chat.posted",
            "chat.posted",
            "chat.posted",
            "chat.posted",
            "chat.posted",
            "participant.left",
        ]
    );
    let left = rx
        .events()
        .into_iter()
        .find(|e| e["type"] == "participant.left")
        .unwrap();
    assert_eq!(left["data"]["reason"], "server_restart");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn the_report_counts_participation_and_scores_participants() {
    let s = TestServer::start().await;
    let id = s
        .create_session_with(json!({
            "title": "评分 report",
            "kind": "seminar",
            "settings": {"rubric": {"attendance_points": 10, "question_points": 2, "question_max": 3, "poll_points": 0}}
        }))
        .await;
    // Tokens cannot be made once the session has ended.
    let other = s.create_session(SessionKind::Qa).await;
    let tokens = [
        (s.token(&id, "host", Role::Host).await, 200),
        (s.token(&id, "m", Role::Moderator).await, 200),
        (s.token(&id, "a", Role::Participant).await, 403),
        (s.token(&id, "o", Role::Observer).await, 403),
        (s.token(&other, "host", Role::Host).await, 403),
        ("not-a-token".to_string(), 401),
    ];
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    for i in 0..3 {
        a.request(ClientMsg::QuestionAsk {
            text: format!("q{i}"),
        })
        .await
        .unwrap();
    }
    a.request(ClientMsg::HandRaise).await.unwrap();
    host.request(ClientMsg::SessionEnd).await.unwrap();

    let (status, rows) = s
        .api("GET", &format!("/api/v1/sessions/{id}/report"), None)
        .await;
    assert_eq!(status, 200, "{rows}");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let host_row = &rows[0];
    assert_eq!(host_row["identity"], "host");
    assert!(host_row["score"].is_null(), "hosts are not scored");
    let a_row = &rows[1];
    assert_eq!(
        (a_row["questions"].as_u64(), a_row["hands"].as_u64()),
        (Some(3), Some(1))
    );
    let score = &a_row["score"];
    // 3 questions × 2, capped at 3; replies keep the default (1 each, at
    // most 6).
    let q = score["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["item"] == "questions")
        .unwrap();
    assert_eq!(q["points"], 3.0);
    assert_eq!(score["max"], 19.0);
    // (Attendance arithmetic is unit-tested in src/grading/rubric.rs; this
    // session lasts milliseconds, so only its bounds are checked here.)
    let att = &score["breakdown"][0];
    assert_eq!(att["item"], "attendance");
    assert!((0.0..=10.0).contains(&att["points"].as_f64().unwrap()));

    let (status, csv) = s
        .api_text(
            "GET",
            &format!("/api/v1/sessions/{id}/report?format=csv"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(csv.starts_with("\u{feff}identity,name,role,minutes_present"));
    assert!(csv.contains("\r\na,"));
    let (status, _) = s
        .api(
            "GET",
            &format!("/api/v1/sessions/{id}/report?format=xml"),
            None,
        )
        .await;
    assert_eq!(status, 400);

    // Staff of the session may read it with their own token; nobody else.
    let read = |token: String| {
        let url = format!("{}/api/v1/sessions/{id}/report", s.base);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for (token, status) in tokens {
        assert_eq!(read(token).await, status);
    }

    // A rubric that makes no sense is refused when the session is made.
    let (status, e) = s
        .api(
            "POST",
            "/api/v1/sessions",
            Some(json!({"title": "bad", "kind": "qa", "settings": {"rubric": {"question_points": -1}}})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}
