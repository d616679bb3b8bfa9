use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};

#[tokio::test]
async fn hands_queue_in_order_and_moderators_lower_them() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    let mut c = s.join(&id, "c", Role::Participant).await;
    for p in [&mut b, &mut a, &mut c] {
        p.request(ClientMsg::HandRaise).await.unwrap();
    }
    // Raising twice keeps the place in the queue.
    b.request(ClientMsg::HandRaise).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let h = host.wait_type("hand_raised").await;
        order.push(h["hand"]["identity"].as_str().unwrap().to_string());
    }
    assert_eq!(order, ["b", "a", "c"]);
    let late = s.join(&id, "late", Role::Moderator).await;
    let queue: Vec<&str> = late.welcome["hands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["identity"].as_str().unwrap())
        .collect();
    assert_eq!(queue, ["b", "a", "c"]);

    a.request(ClientMsg::HandLower { identity: None })
        .await
        .unwrap();
    let l = host.wait_type("hand_lowered").await;
    assert_eq!(
        (l["identity"].as_str(), l["by"].as_str()),
        (Some("a"), Some("a"))
    );
    assert_eq!(
        a.request(ClientMsg::HandLower {
            identity: Some("b".into())
        })
        .await,
        Err("forbidden".into()),
        "a participant cannot lower someone else's hand"
    );
    assert_eq!(
        a.request(ClientMsg::HandsClear).await,
        Err("forbidden".into())
    );
    host.request(ClientMsg::HandLower {
        identity: Some("b".into()),
    })
    .await
    .unwrap();
    let l = c
        .wait(|f| f["type"] == "hand_lowered" && f["identity"] == "b")
        .await;
    assert_eq!(l["by"], "host");
    host.request(ClientMsg::HandsClear).await.unwrap();
    c.wait_type("hands_cleared").await;
    let late2 = s.join(&id, "late2", Role::Participant).await;
    assert!(late2.welcome["hands"].as_array().unwrap().is_empty());
    let mut o = s.join(&id, "o", Role::Observer).await;
    assert_eq!(
        o.request(ClientMsg::HandRaise).await,
        Err("forbidden".into())
    );
    s.stop().await;
}

#[tokio::test]
async fn in_audience_mode_participants_see_only_their_own_hand() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    a.request(ClientMsg::HandRaise).await.unwrap();
    b.request(ClientMsg::HandRaise).await.unwrap();
    host.wait(|f| f["type"] == "hand_raised" && f["hand"]["identity"] == "b")
        .await;
    let own = b.wait_type("hand_raised").await;
    assert_eq!(own["hand"]["identity"], "b");
    assert!(!b
        .seen
        .iter()
        .any(|f| f["type"] == "hand_raised" && f["hand"]["identity"] == "a"));
    let c = s.join(&id, "c", Role::Participant).await;
    assert!(c.welcome["hands"].as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_request_right_after_leaving_leaves_no_ghost_hand() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    host.wait_type("participant_joined").await;
    // Back to back, so both usually land in one batch of the room.
    p.send_raw(r#"{"type":"leave","req_id":1}"#).await;
    p.send_raw(r#"{"type":"hand_raise","req_id":2}"#).await;
    p.wait_closed().await;
    host.wait_type("participant_left").await;
    let late = s.join(&id, "late", Role::Moderator).await;
    assert!(
        late.welcome["hands"].as_array().unwrap().is_empty(),
        "{}",
        late.welcome["hands"]
    );
    let events = s.events(&id).await;
    assert!(
        !events.iter().any(|e| e["type"] == "hand_raised"),
        "no hand was stored"
    );
    s.stop().await;
}
