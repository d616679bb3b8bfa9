//! Durability: clean shutdown, restart on the same data dir, and a crash.

use crate::common::*;
use lectern::protocol::{close, ClientMsg, Role, SessionKind};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

#[tokio::test]
async fn a_clean_restart_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    p.request(ClientMsg::ChatSend {
        text: "第一条".into(),
    })
    .await
    .unwrap();
    let q = p
        .request(ClientMsg::QuestionAsk {
            text: "重启后还在吗？".into(),
        })
        .await
        .unwrap()["question_id"]
        .as_i64()
        .unwrap();
    host.request(ClientMsg::QuestionUpvote { question_id: q })
        .await
        .unwrap();
    p.request(ClientMsg::HandRaise).await.unwrap();
    host.request(ClientMsg::ChatMute {
        identity: "p".into(),
        muted: true,
    })
    .await
    .unwrap();
    let events_before = s.events(&id).await.len();

    let stopping = tokio::spawn(async move { s.stop().await });
    let bye = p.wait_type("server_shutdown").await;
    assert!(bye["retry_after_ms"].as_u64().unwrap() > 0);
    assert_eq!(p.wait_closed().await, close::SERVER_SHUTDOWN);
    assert_eq!(host.wait_closed().await, close::SERVER_SHUTDOWN);
    stopping.await.unwrap();

    let s = TestServer::start_in(tmp.path(), |_| {}).await;
    let (_, info) = s.api("GET", &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(info["status"], "live");
    let rows = s.attendance(&id).await;
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r["present"], false);
        assert_eq!(r["intervals"][0]["reason"], "server_shutdown");
    }
    let events = s.events(&id).await;
    assert!(
        events.len() >= events_before + 2,
        "the leaves were stored too"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the timeline has no holes: {seqs:?}"
    );
    assert!(
        events.iter().any(|e| e["type"] == "hand_raised"),
        "hands history is kept"
    );

    let p = s.join(&id, "p", Role::Participant).await;
    let w = &p.welcome;
    assert_eq!(w["chat"][0]["text"], "第一条");
    assert_eq!(w["questions"][0]["text"], "重启后还在吗？");
    assert_eq!(w["questions"][0]["upvotes"], 1);
    assert_eq!(w["you"]["chat_muted"], true, "a mute survives a restart");
    assert!(
        w["seq"].as_u64().unwrap() > *seqs.last().unwrap(),
        "numbering continues"
    );
    s.stop().await;
}

pub(crate) struct Child_ {
    pub(crate) child: Child,
    base: String,
}

fn spawn_server(dir: &std::path::Path) -> Child_ {
    spawn_server_with(dir, &[])
}

/// The server binary as a child process (so it can be killed), with extra flags.
pub(crate) fn spawn_server_with(dir: &std::path::Path, extra: &[&str]) -> Child_ {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lectern"))
        .args(["serve", "--bind", "127.0.0.1:0", "--no-demo", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("LECTERN_ADMIN_KEY", "test-admin-key")
        .env("LECTERN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the lectern binary starts");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("Lectern is serving on ") {
            break rest.trim().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Child_ { child, base }
}

impl Child_ {
    pub(crate) fn as_test_server(&self) -> TestServer {
        TestServer::external(&self.base, "test-admin-key")
    }
}

#[tokio::test]
async fn a_crash_closes_attendance_at_the_last_time_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = spawn_server(tmp.path());
    let s = server.as_test_server();
    let id = s.create_session(SessionKind::Seminar).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    p.request(ClientMsg::ChatSend {
        text: "before the crash".into(),
    })
    .await
    .unwrap();
    server.child.kill().unwrap(); // SIGKILL: no clean shutdown
    server.child.wait().unwrap();
    p.wait_closed().await;

    let mut server = spawn_server(tmp.path());
    let s = server.as_test_server();
    let rows = s.attendance(&id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["present"], false);
    assert_eq!(rows[0]["intervals"][0]["reason"], "server_restart");
    let joined =
        lectern::protocol::Timestamp::parse(rows[0]["first_joined_at"].as_str().unwrap()).unwrap();
    let left =
        lectern::protocol::Timestamp::parse(rows[0]["last_left_at"].as_str().unwrap()).unwrap();
    assert!(
        left.millis() - joined.millis() < 10_000,
        "closed at the last time seen, not at restart"
    );
    let (_, chat) = s
        .api("GET", &format!("/api/v1/sessions/{id}/chat"), None)
        .await;
    assert_eq!(chat[0]["text"], "before the crash");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_tells_clients_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = spawn_server(tmp.path());
    let s = server.as_test_server();
    let id = s.create_session(SessionKind::Seminar).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let bye = p.wait_type("server_shutdown").await;
    assert!(bye["retry_after_ms"].as_u64().is_some());
    assert_eq!(p.wait_closed().await, close::SERVER_SHUTDOWN);
    let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0), "clean exit");

    let mut server = spawn_server(tmp.path());
    let s = server.as_test_server();
    let rows = s.attendance(&id).await;
    assert_eq!(rows[0]["intervals"][0]["reason"], "server_shutdown");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
