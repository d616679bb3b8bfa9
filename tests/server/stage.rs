use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};

#[tokio::test]
async fn qa_stage_invite_accept_leave_and_remove() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    assert_eq!(host.welcome["you"]["can_publish"], true);
    assert_eq!(
        a.welcome["you"]["can_publish"], false,
        "Q&A participants start off stage"
    );

    assert_eq!(
        b.request(ClientMsg::StageInvite {
            identity: "a".into()
        })
        .await,
        Err("forbidden".into())
    );
    assert_eq!(
        a.request(ClientMsg::StageAccept).await,
        Err("not_invited".into())
    );
    a.request(ClientMsg::HandRaise).await.unwrap();
    host.request(ClientMsg::StageInvite {
        identity: "a".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        a.request(ClientMsg::HandRaise).await,
        Err("invalid_state".into()),
        "invited already"
    );
    let inv = b.wait_type("stage_invited").await;
    assert_eq!(inv["member"]["identity"], "a");
    a.request(ClientMsg::StageAccept).await.unwrap();
    let you = a.wait_type("you_updated").await;
    assert_eq!(you["you"]["can_publish"], true);
    let joined = b.wait_type("stage_joined").await;
    assert_eq!(joined["member"]["identity"], "a");
    let late = s.join(&id, "late", Role::Participant).await;
    assert_eq!(late.welcome["stage"]["members"][0]["identity"], "a");
    assert!(
        late.welcome["hands"].as_array().unwrap().is_empty(),
        "the invite lowered a's hand"
    );

    a.request(ClientMsg::StageLeave).await.unwrap();
    let left = b.wait_type("stage_left").await;
    assert_eq!(left["reason"], "left");
    let you = a
        .wait(|f| f["type"] == "you_updated" && f["you"]["can_publish"] == false)
        .await;
    assert_eq!(you["you"]["identity"], "a");

    // Decline, then remove.
    host.request(ClientMsg::StageInvite {
        identity: "b".into(),
    })
    .await
    .unwrap();
    b.request(ClientMsg::StageDecline).await.unwrap();
    host.wait_type("stage_declined").await;
    host.request(ClientMsg::StageInvite {
        identity: "b".into(),
    })
    .await
    .unwrap();
    b.request(ClientMsg::StageAccept).await.unwrap();
    assert_eq!(
        a.request(ClientMsg::StageRemove {
            identity: "b".into()
        })
        .await,
        Err("forbidden".into())
    );
    host.request(ClientMsg::StageRemove {
        identity: "b".into(),
    })
    .await
    .unwrap();
    let removed = a
        .wait(|f| f["type"] == "stage_left" && f["identity"] == "b")
        .await;
    assert_eq!(removed["reason"], "removed");
    assert_eq!(
        host.request(ClientMsg::StageLock { locked: true }).await,
        Err("invalid_state".into())
    );
    s.stop().await;
}

#[tokio::test]
async fn leaving_the_session_also_leaves_the_stage_visibly_to_the_audience() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    host.request(ClientMsg::StageInvite {
        identity: "a".into(),
    })
    .await
    .unwrap();
    a.request(ClientMsg::StageAccept).await.unwrap();
    b.wait_type("stage_joined").await;
    a.request(ClientMsg::Leave).await.unwrap();
    let left = b.wait_type("stage_left").await;
    assert_eq!(left["identity"], "a");
    assert_eq!(left["reason"], "disconnected");
    s.stop().await;
}

#[tokio::test]
async fn seminar_publishing_follows_the_lock() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "tutor", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut o = s.join(&id, "o", Role::Observer).await;
    assert_eq!(a.welcome["you"]["can_publish"], true);
    assert_eq!(
        o.welcome["you"]["can_publish"], false,
        "observers never publish"
    );
    assert_eq!(
        a.request(ClientMsg::StageLock { locked: true }).await,
        Err("forbidden".into())
    );
    host.request(ClientMsg::StageLock { locked: true })
        .await
        .unwrap();
    let you = a.wait_type("you_updated").await;
    assert_eq!(you["you"]["can_publish"], false);
    o.assert_none(
        std::time::Duration::from_millis(200),
        "a permission update for an observer",
        |f| f["type"] == "you_updated",
    )
    .await;
    host.request(ClientMsg::StageInvite {
        identity: "a".into(),
    })
    .await
    .unwrap();
    a.request(ClientMsg::StageAccept).await.unwrap();
    a.wait(|f| f["type"] == "you_updated" && f["you"]["can_publish"] == true)
        .await;
    s.stop().await;
}
