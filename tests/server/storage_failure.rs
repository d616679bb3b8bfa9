//! A store that fails (a full disk): requests get `storage_unavailable`,
//! nothing half-done is broadcast, and the room recovers with the store.

use crate::common::*;
use async_trait::async_trait;
use lectern::protocol::{close, ClientMsg, Role, SessionInfo, SessionKind};
use lectern::store::{ParticipantRow, SqliteStore, Store, StoreError, StoredEvent, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct FlakyStore {
    inner: SqliteStore,
    full: Arc<AtomicBool>,
}

#[async_trait]
impl Store for FlakyStore {
    async fn get_session(&self, id: &str) -> Result<Option<SessionInfo>, StoreError> {
        self.inner.get_session(id).await
    }
    async fn list_sessions(&self) -> Result<Vec<SessionInfo>, StoreError> {
        self.inner.list_sessions().await
    }
    async fn events(
        &self,
        s: &str,
        after: u64,
        limit: Option<u64>,
        kinds: &[&str],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events(s, after, limit, kinds).await
    }
    async fn participants(&self, s: &str) -> Result<Vec<ParticipantRow>, StoreError> {
        self.inner.participants(s).await
    }
    async fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            let io =
                std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            return Err(StoreError::Db(sqlx::Error::Io(io)));
        }
        self.inner.apply(batch).await
    }
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_meta(key).await
    }
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.set_meta(key, value).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

#[tokio::test]
async fn a_full_disk_refuses_changes_without_losing_or_inventing_any() {
    let tmp = tempfile::tempdir().unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: SqliteStore::open(tmp.path()).await.unwrap(),
        full: full.clone(),
    };
    let server = lectern::start_with_store(test_config(tmp.path()), Arc::new(store))
        .await
        .unwrap();
    let s = TestServer::wrap(server);
    let id = s.create_session(SessionKind::Seminar).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    a.request(ClientMsg::ChatSend {
        text: "stored".into(),
    })
    .await
    .unwrap();
    b.wait_type("chat_message").await;

    full.store(true, Ordering::SeqCst);
    assert_eq!(
        a.request(ClientMsg::ChatSend {
            text: "lost?".into()
        })
        .await,
        Err("storage_unavailable".into())
    );
    b.assert_none(Duration::from_millis(300), "an unstored message", |f| {
        f["message"]["text"] == "lost?"
    })
    .await;
    let (st, v) = s
        .api(
            "POST",
            "/api/v1/sessions",
            Some(serde_json::json!({ "title": "x", "kind": "qa" })),
        )
        .await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "storage_unavailable");
    // A join needs a stored attendance interval: refused, with a reason.
    let token = s.token(&id, "c", Role::Participant).await;
    let mut c = TestClient::connect(&format!("{}?token={token}", s.ws_url()))
        .await
        .unwrap();
    assert_eq!(c.wait_type("error").await["code"], "storage_unavailable");
    assert_eq!(c.wait_closed().await, close::STORAGE_UNAVAILABLE);

    full.store(false, Ordering::SeqCst);
    a.request(ClientMsg::ChatSend {
        text: "after".into(),
    })
    .await
    .unwrap();
    let m = b
        .wait(|f| f["type"] == "chat_message" && f["message"]["text"] == "after")
        .await;
    assert_eq!(m["message"]["id"], 2, "ids continue from what was stored");
    let seqs: Vec<u64> = s
        .events(&id)
        .await
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no holes in the timeline: {seqs:?}"
    );
    let (_, chat) = s
        .api("GET", &format!("/api/v1/sessions/{id}/chat"), None)
        .await;
    let texts: Vec<&str> = chat
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["stored", "after"]);
    s.stop().await;
}
