//! Every cell of the permission table that says "no", tried for real.

use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};

fn staff_only() -> Vec<ClientMsg> {
    vec![
        ClientMsg::ChatDelete { message_id: 1 },
        ClientMsg::ChatMute {
            identity: "p2".into(),
            muted: true,
        },
        ClientMsg::ChatLock { locked: true },
        ClientMsg::HandLower {
            identity: Some("p2".into()),
        },
        ClientMsg::HandsClear,
        ClientMsg::QuestionAnswer { question_id: 1 },
        ClientMsg::QuestionDismiss { question_id: 1 },
        ClientMsg::QuestionPin {
            question_id: Some(1),
        },
        ClientMsg::StageInvite {
            identity: "p2".into(),
        },
        ClientMsg::StageRemove {
            identity: "p2".into(),
        },
        ClientMsg::StageLock { locked: true },
        ClientMsg::Kick {
            identity: "p2".into(),
        },
        ClientMsg::SessionEnd,
    ]
}

#[tokio::test]
async fn each_role_is_refused_what_it_may_not_do() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut m = s.join(&id, "m", Role::Moderator).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let mut o = s.join(&id, "o", Role::Observer).await;
    let mut p2 = s.join(&id, "p2", Role::Participant).await;
    p2.request(ClientMsg::HandRaise).await.unwrap();
    // Something to act on, so a refusal cannot be a "not found".
    p.request(ClientMsg::ChatSend {
        text: "hello".into(),
    })
    .await
    .unwrap();
    p.request(ClientMsg::QuestionAsk { text: "q".into() })
        .await
        .unwrap();
    p.request(ClientMsg::HandRaise).await.unwrap();

    let mut cases: Vec<(Role, ClientMsg)> = Vec::new();
    for msg in staff_only() {
        cases.push((Role::Participant, msg.clone()));
        cases.push((Role::Observer, msg));
    }
    cases.push((Role::Moderator, ClientMsg::SessionEnd));
    for msg in [
        ClientMsg::ChatSend { text: "x".into() },
        ClientMsg::HandRaise,
        ClientMsg::QuestionAsk { text: "x".into() },
        ClientMsg::QuestionUpvote { question_id: 1 },
        ClientMsg::QuestionReply {
            question_id: 1,
            text: "x".into(),
        },
    ] {
        cases.push((Role::Observer, msg));
    }
    cases.push((Role::Host, ClientMsg::HandRaise));

    for (role, msg) in cases {
        let client = match role {
            Role::Host => &mut host,
            Role::Moderator => &mut m,
            Role::Participant => &mut p,
            Role::Observer => &mut o,
        };
        assert_eq!(
            client.request(msg.clone()).await,
            Err("forbidden".to_string()),
            "{role:?} must not {msg:?}"
        );
    }
    // Nobody acts on themselves this way (a host cannot lock themselves out).
    assert_eq!(
        host.request(ClientMsg::Kick {
            identity: "host".into()
        })
        .await,
        Err("invalid_state".into())
    );
    // A moderator cannot act on the host or another moderator.
    let _m2 = s.join(&id, "m2", Role::Moderator).await;
    assert_eq!(
        m.request(ClientMsg::Kick {
            identity: "host".into()
        })
        .await,
        Err("forbidden".into())
    );
    assert_eq!(
        m.request(ClientMsg::Kick {
            identity: "m2".into()
        })
        .await,
        Err("forbidden".into())
    );
    // Nothing above changed the room.
    let late = s.join(&id, "late", Role::Participant).await;
    assert_eq!(late.welcome["chat"].as_array().unwrap().len(), 1);
    assert_eq!(late.welcome["hands"].as_array().unwrap().len(), 2);
    assert_eq!(late.welcome["chat_locked"], false);
    assert_eq!(late.welcome["session"]["status"], "live");
    s.stop().await;
}

#[tokio::test]
async fn kicked_participants_are_closed_and_cannot_return() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut m = s.join(&id, "m", Role::Moderator).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    m.request(ClientMsg::StageInvite {
        identity: "p".into(),
    })
    .await
    .unwrap();
    p.request(ClientMsg::StageAccept).await.unwrap();
    m.request(ClientMsg::Kick {
        identity: "p".into(),
    })
    .await
    .unwrap();
    assert_eq!(p.wait_closed().await, lectern::protocol::close::KICKED);
    let stage = m.wait_type("stage_left").await;
    assert_eq!(
        (stage["reason"].as_str(), stage["by"].as_str()),
        (Some("removed"), Some("m"))
    );
    let left = m.wait_type("participant_left").await;
    assert_eq!(left["reason"], "kicked");
    let token = s.token(&id, "p", Role::Participant).await;
    let mut again = TestClient::connect(&format!("{}?token={token}", s.ws_url()))
        .await
        .unwrap();
    let err = again.wait_type("error").await;
    assert_eq!(err["code"], "forbidden");
    assert_eq!(again.wait_closed().await, lectern::protocol::close::KICKED);
    let rows = s.attendance(&id).await;
    let p_row = rows.iter().find(|r| r["identity"] == "p").unwrap();
    assert_eq!(p_row["intervals"].as_array().unwrap().len(), 1);
    assert_eq!(p_row["intervals"][0]["reason"], "kicked");
    s.stop().await;
}
