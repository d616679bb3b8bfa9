use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn chat_reaches_everyone_and_is_history_for_late_joiners() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    let r = a
        .request(ClientMsg::ChatSend {
            text: "  老师好！ ".into(),
        })
        .await
        .unwrap();
    let mid = r["message_id"].as_i64().unwrap();
    for c in [&mut host, &mut a, &mut b] {
        let m = c.wait_type("chat_message").await;
        assert_eq!(m["message"]["id"], mid);
        assert_eq!(m["message"]["text"], "老师好！", "trimmed");
        assert_eq!(m["message"]["identity"], "a");
        assert_eq!(m["message"]["name"], "a 老师");
    }
    b.request(ClientMsg::ChatSend {
        text: "second".into(),
    })
    .await
    .unwrap();
    let late = s.join(&id, "late", Role::Participant).await;
    let texts: Vec<&str> = late.welcome["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["老师好！", "second"]);
    let (_, log) = s
        .api("GET", &format!("/api/v1/sessions/{id}/chat"), None)
        .await;
    assert_eq!(log.as_array().unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn chat_limits_length_and_rate() {
    let s = TestServer::start_with(|c| {
        c.limits.chat_burst = 3;
        c.limits.chat_per_sec = 0.5;
    })
    .await;
    let id = s
        .create_session_with(
            json!({ "title": "t", "kind": "seminar", "settings": { "chat_max_length": 10 } }),
        )
        .await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    assert_eq!(
        a.request(ClientMsg::ChatSend {
            text: "一二三四五六七八九十".into()
        })
        .await
        .map(|_| ()),
        Ok(())
    );
    assert_eq!(
        a.request(ClientMsg::ChatSend {
            text: "一二三四五六七八九十一".into()
        })
        .await,
        Err("text_too_long".into()),
        "the limit counts characters, not bytes"
    );
    assert_eq!(
        a.request(ClientMsg::ChatSend { text: "   ".into() }).await,
        Err("empty_text".into())
    );
    assert!(a
        .request(ClientMsg::ChatSend { text: "2".into() })
        .await
        .is_ok());
    assert!(a
        .request(ClientMsg::ChatSend { text: "3".into() })
        .await
        .is_ok());
    assert_eq!(
        a.request(ClientMsg::ChatSend { text: "4".into() }).await,
        Err("rate_limited".into())
    );
    // Someone else is not limited by a's flood.
    assert!(b
        .request(ClientMsg::ChatSend { text: "b1".into() })
        .await
        .is_ok());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        a.request(ClientMsg::ChatSend { text: "5".into() })
            .await
            .is_ok(),
        "the bucket refills"
    );
    s.stop().await;
}

#[tokio::test]
async fn moderators_delete_mute_and_lock() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut m = s.join(&id, "mod", Role::Moderator).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;

    let mid = a
        .request(ClientMsg::ChatSend {
            text: "广告".into(),
        })
        .await
        .unwrap()["message_id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        b.request(ClientMsg::ChatDelete { message_id: mid }).await,
        Err("forbidden".into())
    );
    m.request(ClientMsg::ChatDelete { message_id: mid })
        .await
        .unwrap();
    let d = b.wait_type("chat_deleted").await;
    assert_eq!(d["message_id"], mid);
    assert_eq!(
        m.request(ClientMsg::ChatDelete { message_id: 999 }).await,
        Err("not_found".into())
    );
    let late = s.join(&id, "late", Role::Participant).await;
    assert!(
        late.welcome["chat"].as_array().unwrap().is_empty(),
        "deleted messages are not in history"
    );
    let (_, log) = s
        .api("GET", &format!("/api/v1/sessions/{id}/chat"), None)
        .await;
    assert_eq!(log[0]["deleted"], true);
    assert_eq!(log[0]["deleted_by"], "mod");

    // Mute one participant.
    assert_eq!(
        b.request(ClientMsg::ChatMute {
            identity: "a".into(),
            muted: true
        })
        .await,
        Err("forbidden".into())
    );
    assert_eq!(
        m.request(ClientMsg::ChatMute {
            identity: "host".into(),
            muted: true
        })
        .await,
        Err("forbidden".into()),
        "a moderator cannot mute the host"
    );
    m.request(ClientMsg::ChatMute {
        identity: "a".into(),
        muted: true,
    })
    .await
    .unwrap();
    let you = a.wait_type("you_updated").await;
    assert_eq!(you["you"]["chat_muted"], true);
    assert_eq!(
        a.request(ClientMsg::ChatSend { text: "x".into() }).await,
        Err("chat_muted".into())
    );
    assert!(b
        .request(ClientMsg::ChatSend {
            text: "b still talks".into()
        })
        .await
        .is_ok());
    m.request(ClientMsg::ChatMute {
        identity: "a".into(),
        muted: false,
    })
    .await
    .unwrap();
    assert!(a
        .request(ClientMsg::ChatSend {
            text: "back".into()
        })
        .await
        .is_ok());

    // Lock for everyone but staff.
    assert_eq!(
        a.request(ClientMsg::ChatLock { locked: true }).await,
        Err("forbidden".into())
    );
    host.request(ClientMsg::ChatLock { locked: true })
        .await
        .unwrap();
    let l = b.wait_type("chat_locked").await;
    assert_eq!(l["locked"], true);
    assert_eq!(
        b.request(ClientMsg::ChatSend { text: "x".into() }).await,
        Err("chat_locked".into())
    );
    assert!(m
        .request(ClientMsg::ChatSend {
            text: "staff may speak".into()
        })
        .await
        .is_ok());
    let late2 = s.join(&id, "late2", Role::Participant).await;
    assert_eq!(late2.welcome["chat_locked"], true);
    s.stop().await;
}

#[tokio::test]
async fn observers_cannot_chat() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut o = s.join(&id, "o", Role::Observer).await;
    assert_eq!(
        o.request(ClientMsg::ChatSend { text: "hi".into() }).await,
        Err("forbidden".into())
    );
    s.stop().await;
}
