use crate::common::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};

#[tokio::test]
async fn ask_upvote_reply_pin_answer_dismiss() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut expert = s.join(&id, "expert", Role::Host).await;
    let mut tutor = s.join(&id, "tutor", Role::Moderator).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;

    let q1 = a
        .request(ClientMsg::QuestionAsk {
            text: "双减背景下怎样布置作业？".into(),
        })
        .await
        .unwrap()["question_id"]
        .as_i64()
        .unwrap();
    let q2 = b
        .request(ClientMsg::QuestionAsk {
            text: "Off-topic".into(),
        })
        .await
        .unwrap()["question_id"]
        .as_i64()
        .unwrap();
    assert_ne!(q1, q2);
    let asked = expert
        .wait(|f| f["type"] == "question_asked" && f["question"]["id"] == q1)
        .await;
    assert_eq!(asked["question"]["status"], "open");
    assert_eq!(asked["question"]["upvotes"], 0);

    assert_eq!(
        b.request(ClientMsg::QuestionUpvote { question_id: q1 })
            .await
            .unwrap()["upvotes"],
        1
    );
    assert_eq!(
        b.request(ClientMsg::QuestionUpvote { question_id: q1 })
            .await,
        Err("already_voted".into())
    );
    assert_eq!(
        tutor
            .request(ClientMsg::QuestionUpvote { question_id: q1 })
            .await
            .unwrap()["upvotes"],
        2
    );
    // In audience mode participants get vote counts at most once a second,
    // not every upvote; staff see each one.
    let votes = a
        .wait(|f| f["type"] == "question_votes" && f["votes"][0]["upvotes"] == 2)
        .await;
    assert_eq!(votes["votes"][0]["question_id"], q1);
    let each = expert
        .wait(|f| f["type"] == "question_upvoted" && f["upvotes"] == 2)
        .await;
    assert_eq!(each["by"], "tutor");
    assert!(
        !a.seen.iter().any(|f| f["type"] == "question_upvoted"),
        "participants are not sent every upvote"
    );
    assert_eq!(
        a.request(ClientMsg::QuestionUpvote { question_id: 77 })
            .await,
        Err("not_found".into())
    );

    let r = tutor
        .request(ClientMsg::QuestionReply {
            question_id: q1,
            text: "可以参考分层作业设计".into(),
        })
        .await
        .unwrap();
    assert!(r["reply_id"].as_i64().is_some());
    let rep = b.wait_type("question_replied").await;
    assert_eq!(rep["reply"]["identity"], "tutor");

    // Only moderators curate.
    for msg in [
        ClientMsg::QuestionPin {
            question_id: Some(q1),
        },
        ClientMsg::QuestionAnswer { question_id: q1 },
        ClientMsg::QuestionDismiss { question_id: q2 },
    ] {
        assert_eq!(a.request(msg).await, Err("forbidden".into()));
    }
    expert
        .request(ClientMsg::QuestionPin {
            question_id: Some(q1),
        })
        .await
        .unwrap();
    let pin = b.wait_type("question_pinned").await;
    assert_eq!(pin["question_id"], q1);
    tutor
        .request(ClientMsg::QuestionDismiss { question_id: q2 })
        .await
        .unwrap();
    assert_eq!(
        a.request(ClientMsg::QuestionUpvote { question_id: q2 })
            .await,
        Err("invalid_state".into())
    );
    expert
        .request(ClientMsg::QuestionAnswer { question_id: q1 })
        .await
        .unwrap();
    let st = a
        .wait(|f| f["type"] == "question_status_changed" && f["question_id"] == q1)
        .await;
    assert_eq!(st["status"], "answered");

    let late = s.join(&id, "late", Role::Participant).await;
    let w = &late.welcome;
    assert!(w["pinned_question"].is_null(), "answering unpins");
    let qs = w["questions"].as_array().unwrap();
    assert_eq!(qs.len(), 1, "dismissed questions are hidden: {qs:?}");
    assert_eq!(qs[0]["status"], "answered");
    assert_eq!(qs[0]["upvotes"], 2);
    assert_eq!(qs[0]["replies"].as_array().unwrap().len(), 1);
    let bw = s.join(&id, "b", Role::Participant).await;
    assert_eq!(bw.welcome["my_votes"], serde_json::json!([q1]));

    let (_, all) = s
        .api("GET", &format!("/api/v1/sessions/{id}/questions"), None)
        .await;
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "the report keeps dismissed ones"
    );
    s.stop().await;
}
