use crate::common::*;
use lectern::protocol::{Role, SessionKind};
use serde_json::json;

#[tokio::test]
async fn admin_api_needs_the_admin_key() {
    let s = TestServer::start().await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/api/v1/sessions", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = client
        .get(format!("{}/api/v1/sessions", s.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn sessions_are_created_listed_updated_and_ended() {
    let s = TestServer::start().await;
    let id = s
        .create_session_with(json!({
            "title": "初中数学 专家答疑",
            "kind": "qa",
            "scheduled_start": "2026-12-01T09:00:00+08:00",
            "scheduled_end": "2026-12-01T10:30:00+08:00",
            "settings": { "chat_max_length": 500 }
        }))
        .await;
    let (st, v) = s.api("GET", &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(v["title"], "初中数学 专家答疑");
    assert_eq!(v["status"], "scheduled");
    assert_eq!(v["scheduled_start"], "2026-12-01T01:00:00.000Z");
    assert_eq!(v["settings"]["chat_max_length"], 500);

    let (st, v) = s.api("GET", "/api/v1/sessions", None).await;
    assert_eq!(st, 200);
    assert_eq!(v.as_array().unwrap().len(), 1);

    let (st, v) = s
        .api(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some(json!({ "title": "改名 Renamed" })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["title"], "改名 Renamed");

    let (st, v) = s
        .api("POST", &format!("/api/v1/sessions/{id}/end"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ended");
    let (st, v) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{id}/tokens"),
            Some(json!({ "identity": "t1", "name": "王老师", "role": "participant" })),
        )
        .await;
    assert_eq!(st, 410, "no tokens for an ended session: {v}");
    assert_eq!(v["error"]["code"], "session_ended");
    let (st, _) = s
        .api(
            "PATCH",
            &format!("/api/v1/sessions/{id}"),
            Some(json!({ "title": "too late" })),
        )
        .await;
    assert_eq!(st, 410, "an ended session is not changed");
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let s = TestServer::start().await;
    for (body, needle) in [
        (json!({ "title": "", "kind": "qa" }), "title"),
        (json!({ "title": "x", "kind": "lecture" }), "kind"),
        (
            json!({ "title": "x", "kind": "qa", "settings": { "colour": 1 } }),
            "colour",
        ),
        (
            json!({ "title": "x", "kind": "qa", "scheduled_start": "2026-12-01T10:00:00Z", "scheduled_end": "2026-12-01T09:00:00Z" }),
            "scheduled_end",
        ),
        (
            json!({ "title": "x", "kind": "qa", "scheduled_start": "tomorrow" }),
            "RFC 3339",
        ),
    ] {
        let (st, v) = s.api("POST", "/api/v1/sessions", Some(body.clone())).await;
        assert_eq!(st, 400, "{body} -> {v}");
        assert_eq!(v["error"]["code"], "bad_request");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should mention {needle}");
    }
    let (st, _) = s.api("GET", "/api/v1/sessions/nope", None).await;
    assert_eq!(st, 404);
    let id = s.create_session(SessionKind::Seminar).await;
    let (st, v) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{id}/tokens"),
            Some(json!({ "identity": "", "name": "x", "role": "participant" })),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{id}/tokens"),
            Some(json!({ "identity": "a", "name": "x", "role": "superuser" })),
        )
        .await;
    assert_eq!(st, 400);
    s.stop().await;
}

#[tokio::test]
async fn tokens_come_with_a_join_url_and_openapi_lists_the_api() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let (st, v) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{id}/tokens"),
            Some(json!({ "identity": "t-1", "name": "张老师", "role": "participant", "ttl_seconds": 600 })),
        )
        .await;
    assert_eq!(st, 200);
    let token = v["token"].as_str().unwrap();
    assert_eq!(v["join_url"], format!("{}/join?token={token}", s.base));
    assert_eq!(token.split('.').count(), 3, "a compact JWT");

    let (st, doc) = s.api("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(st, 200);
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/sessions/{id}/end",
        "/api/v1/sessions/{id}/tokens",
        "/api/v1/sessions/{id}/participants",
        "/api/v1/sessions/{id}/chat",
        "/api/v1/sessions/{id}/questions",
        "/api/v1/sessions/{id}/events",
        "/api/v1/sessions/{id}/attendance",
        "/api/v1/sessions/{id}/report",
        "/api/v1/sessions/{id}/recordings",
        "/api/v1/sessions/{id}/recordings/{rid}/timeline",
        "/api/v1/sessions/{id}/recordings/{rid}/{file}",
        "/api/v1/sessions/{id}/recordings/{rid}/watched",
        "/api/v1/sessions/{id}/replay-tokens",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    assert!(doc["components"]["schemas"].get("SessionInfo").is_some());
    s.stop().await;
}

#[tokio::test]
async fn health_and_metrics_report_live_numbers() {
    let s = TestServer::start().await;
    let (st, v) = s.api("GET", "/healthz", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["status"], "ok");
    let id = s.create_session(SessionKind::Seminar).await;
    let mut a = s.join(&id, "a", Role::Host).await;
    let _b = s.join(&id, "b", Role::Participant).await;
    a.request(lectern::protocol::ClientMsg::ChatSend { text: "hi".into() })
        .await
        .unwrap();
    let (_, text) = s.api_text("GET", "/metrics", None).await;
    let metric = |name: &str| -> i64 {
        text.lines()
            .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    };
    assert_eq!(metric("lectern_connections"), 2);
    assert_eq!(metric("lectern_rooms"), 1);
    assert!(metric("lectern_messages_in_total") >= 1);
    assert!(metric("lectern_messages_out_total") >= 2);
    assert_eq!(metric("lectern_queue_drops_total"), 0);
    assert!(
        metric("process_resident_memory_bytes") > 1_000_000,
        "RSS is reported"
    );
    assert!(
        text.contains("\nprocess_cpu_seconds_total "),
        "CPU time is reported"
    );
    s.stop().await;
}
