//! xAPI statements reach a real Learning Record Store: Ralph (`ralph-malph`
//! from PyPI, its LRS server with the file-system backend), installed into
//! `target/ralph-venv` on first use. Statements are read back with the
//! expected verbs and counts, and a redelivery never counts twice.

use crate::common::TestServer;
use lectern::config::XapiSink;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const USER: &str = "lectern";
const PASSWORD: &str = "lrs-test-password";

fn venv() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("ralph-venv")
}

/// The `ralph` command, installed into a venv once (idempotent).
fn ralph() -> PathBuf {
    static RALPH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RALPH
        .get_or_init(|| {
            let dir = venv();
            let bin = dir.join("bin").join("ralph");
            if bin.exists() {
                return Ok(bin);
            }
            eprintln!("installing ralph-malph (an xAPI LRS) into {}", dir.display());
            let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
                let st = cmd.status().map_err(|e| format!("{what}: {e}"))?;
                st.success()
                    .then_some(())
                    .ok_or_else(|| format!("{what} failed ({st})"))
            };
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&dir),
                "python3 -m venv",
            )?;
            run(
                Command::new(dir.join("bin").join("pip")).args([
                    "install",
                    "--quiet",
                    "ralph-malph[cli,lrs]==5.1.0",
                    "requests",
                ]),
                "pip install ralph-malph[cli,lrs]",
            )?;
            Ok(bin)
        })
        .clone()
        .unwrap_or_else(|e| {
            panic!("the xAPI test needs Ralph: {e}. Install it by hand with: python3 -m venv target/ralph-venv && target/ralph-venv/bin/pip install 'ralph-malph[cli,lrs]' requests")
        })
}

/// A running Ralph LRS; stopped when dropped.
struct Lrs {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Lrs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lrs {
    async fn start() -> Lrs {
        let bin = ralph();
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        let st = Command::new(&bin)
            .args(["auth", "-u", USER, "-p", PASSWORD, "-s", "all"])
            .args(["-M", "mailto:lrs@example.org", "-w"])
            .env("RALPH_APP_DIR", dir.path())
            .env("RALPH_RUNSERVER_BACKEND", "fs")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "ralph auth");
        // Our launcher: Ralph's LRS without its reloader, appending to its
        // file (see tests/server/support/ralph_lrs.py). A port picked free
        // can be taken before Ralph binds it, so a launcher that exits is
        // started again on another port.
        let launcher =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/server/support/ralph_lrs.py");
        let log = dir.path().join("ralph.log");
        let mut tries = 0;
        let (child, port) = loop {
            tries += 1;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(venv().join("bin").join("python"))
                .arg(&launcher)
                .arg(port.to_string())
                .arg(&store)
                .env("RALPH_APP_DIR", dir.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            // Up to 90 s for the first start: importing Ralph on a loaded
            // two-core machine right after installing it can be slow.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            let up = loop {
                if statements_at(port).await.is_some() {
                    break true;
                }
                if child.try_wait().ok().flatten().is_some()
                    || tokio::time::Instant::now() > deadline
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            if up {
                break (child, port);
            }
            assert!(
                tries < 3,
                "Ralph did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Lrs {
            child,
            base: format!("http://127.0.0.1:{port}/xAPI"),
            _dir: dir,
        }
    }

    /// Every statement stored, or `None` while the LRS is not up.
    async fn statements(&self) -> Option<Vec<Value>> {
        fetch_statements(&self.base).await
    }
}

async fn statements_at(port: u16) -> Option<Vec<Value>> {
    fetch_statements(&format!("http://127.0.0.1:{port}/xAPI")).await
}

async fn fetch_statements(base: &str) -> Option<Vec<Value>> {
    let r = reqwest::Client::new()
        .get(format!("{base}/statements?limit=1000"))
        .basic_auth(USER, Some(PASSWORD))
        .header("X-Experience-API-Version", "1.0.3")
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    v["statements"].as_array().cloned()
}

fn verbs(statements: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for s in statements {
        let id = s["verb"]["id"].as_str().unwrap();
        *m.entry(id.rsplit('/').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn statements_reach_a_real_lrs_with_the_virtual_classroom_verbs() {
    let lrs = Lrs::start().await;
    let endpoint = lrs.base.clone();
    let s = TestServer::start_with(move |c| {
        c.grading.xapi = vec![XapiSink {
            name: "lrs".into(),
            endpoint,
            username: USER.into(),
            password: PASSWORD.into(),
            activity_base: Some("https://lectern.example.org".into()),
        }];
        c.grading.retry_scale = 0.01;
    })
    .await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "t-a", Role::Participant).await;
    let mut b = s.join(&id, "t-b", Role::Participant).await;
    a.request(ClientMsg::ChatSend {
        text: "早上好".into(),
    })
    .await
    .unwrap();
    let qid = a
        .request(ClientMsg::QuestionAsk {
            text: "作文怎么批改？".into(),
        })
        .await
        .unwrap()["question_id"]
        .as_i64()
        .unwrap();
    b.request(ClientMsg::QuestionReply {
        question_id: qid,
        text: "分层批改".into(),
    })
    .await
    .unwrap();
    b.request(ClientMsg::HandRaise).await.unwrap();
    b.request(ClientMsg::HandLower { identity: None })
        .await
        .unwrap();
    let poll_id = host
        .request(ClientMsg::PollCreate {
            question: "2 + 2 = ?".into(),
            options: vec!["3".into(), "4".into()],
            multiple: false,
            correct: Some(vec![1]),
            time_limit_secs: None,
        })
        .await
        .unwrap()["poll_id"]
        .as_i64()
        .unwrap();
    host.request(ClientMsg::PollOpen { poll_id }).await.unwrap();
    a.request(ClientMsg::PollAnswer {
        poll_id,
        choices: vec![1],
    })
    .await
    .unwrap();
    host.request(ClientMsg::PollClose { poll_id })
        .await
        .unwrap();
    host.request(ClientMsg::SessionEnd).await.unwrap();

    // Wait until the sink has nothing pending.
    let pending = format!("/api/v1/grading/sinks/lrs/deliveries?session={id}&state=pending");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, rows) = s.api("GET", &pending, None).await;
        let (_, all) = s
            .api(
                "GET",
                &format!("/api/v1/grading/sinks/lrs/deliveries?session={id}"),
                None,
            )
            .await;
        let ended = all
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "session.ended");
        if ended && rows.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still pending: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let statements = lrs.statements().await.unwrap();
    let v = verbs(&statements);
    let count = |k: &str| v.get(k).copied().unwrap_or(0);
    assert_eq!(count("initialized"), 1, "{v:?}");
    assert_eq!(count("terminated"), 1);
    assert_eq!(count("join"), 3);
    assert_eq!(count("leave"), 3);
    assert_eq!(count("attended"), 3);
    assert_eq!(count("asked"), 1);
    assert_eq!(count("answered"), 2, "a reply and a poll answer");
    assert_eq!(count("commented"), 1);
    assert_eq!(count("reacted"), 1);
    assert_eq!(count("unreacted"), 1);
    assert_eq!(count("scored"), 2, "the two participants");
    // One registration for the whole planned session; results where they belong.
    let reg = statements[0]["context"]["registration"].clone();
    assert!(statements
        .iter()
        .all(|s| s["context"]["registration"] == reg));
    let attended: Vec<&Value> = statements
        .iter()
        .filter(|s| s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/attended")
        .collect();
    assert!(attended
        .iter()
        .all(|s| s["result"]["duration"].as_str().unwrap().starts_with("PT")));
    let poll = statements
        .iter()
        .find(|s| {
            s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/answered"
                && s["object"]["id"].as_str().unwrap().contains("/polls/")
        })
        .unwrap();
    assert_eq!(poll["result"]["success"], true);
    assert_eq!(poll["actor"]["account"]["name"], "t-a");
    assert_eq!(
        poll["actor"]["account"]["homePage"],
        "https://lectern.example.org"
    );

    // Sending everything again adds nothing: the ids are the event ids'.
    let before = statements.len();
    let (status, r) = s
        .api(
            "POST",
            "/api/v1/grading/sinks/lrs/redeliver",
            Some(json!({"session_id": id, "from_seq": 1, "to_seq": 1000})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, rows) = s.api("GET", &pending, None).await;
        if rows.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "redelivery pending: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, dead) = s
        .api(
            "GET",
            &format!("/api/v1/grading/sinks/lrs/deliveries?session={id}&state=dead"),
            None,
        )
        .await;
    assert_eq!(dead, json!([]));
    assert_eq!(lrs.statements().await.unwrap().len(), before);
}
