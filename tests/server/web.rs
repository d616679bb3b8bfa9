//! The embedded web client is served, cached with ETags, and the join page's
//! `token-info` endpoint tells a link's state without the admin key.

use crate::common::TestServer;
use lectern::protocol::{Role, SessionKind};
use serde_json::json;

#[tokio::test]
async fn pages_and_assets_are_served_with_types_and_etags() {
    let s = TestServer::start().await;
    let client = reqwest::Client::new();
    for (path, ty) in [
        ("/", "text/html"),
        ("/join?token=x", "text/html"),
        ("/admin", "text/html"),
        ("/app/src/main.js", "text/javascript"),
        ("/app/src/strings.js", "text/javascript"),
        ("/app/style.css", "text/css"),
    ] {
        let r = client
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(ty),
            "{path}"
        );
        let etag = h["etag"].to_str().unwrap().to_string();
        assert_eq!(h["cache-control"], "no-cache");
        if ty == "text/html" {
            // The token is in the URL: never leak it in a Referer.
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert!(h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'"));
        }
        let again = client
            .get(format!("{}{path}", s.base))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates");
    }
    let html = client
        .get(&s.base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("/app/src/main.js"));
    let r = client
        .get(format!("{}/app/src/nope.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn token_info_describes_a_link_and_refuses_bad_ones() {
    let s = TestServer::start().await;
    let sid = s.create_session(SessionKind::Qa).await;
    let token = s.token(&sid, "t-1", Role::Participant).await;
    let client = reqwest::Client::new();
    let get = |q: String| {
        let c = client.clone();
        let url = format!("{}/api/v1/token-info{q}", s.base);
        async move {
            let r = c.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };

    // No admin key needed: the token is the credential.
    let (status, v) = get(format!("?token={token}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["identity"], "t-1");
    assert_eq!(v["role"], "participant");
    assert_eq!(v["session"]["id"], sid.as_str());
    assert_eq!(v["session"]["kind"], "qa");
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));

    let (status, v) = get("?token=garbage".into()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, v) = get(String::new()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let (_, t) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{sid}/tokens"),
            Some(
                json!({"identity": "t-2", "name": "Late", "role": "participant", "ttl_seconds": 1}),
            ),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, v) = get(format!("?token={}", t["token"].as_str().unwrap())).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("token_expired"))
    );

    let (status, _) = s
        .api("POST", &format!("/api/v1/sessions/{sid}/end"), None)
        .await;
    assert_eq!(status, 200);
    let (status, v) = get(format!("?token={token}")).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (410, Some("session_ended"))
    );
}
