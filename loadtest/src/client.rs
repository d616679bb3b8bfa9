//! A WebSocket client for load scenarios: requests are matched to their
//! answers by `req_id`; `media_offer` frames are queued for the media peer.

use anyhow::{anyhow, Context};
use futures_util::{SinkExt, StreamExt};
use lectern::media::peer::Signal;
use lectern::protocol::ClientMsg;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>;

pub struct WsClient {
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    offers: mpsc::UnboundedReceiver<String>,
    next: i64,
}

impl WsClient {
    /// Connects and waits for the `welcome` frame.
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("websocket connect")?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (offer_tx, offers) = mpsc::unbounded_channel();
        let (welcome_tx, welcome_rx) = oneshot::channel();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        });
        let p = pending.clone();
        tokio::spawn(async move {
            let mut welcome_tx = Some(welcome_tx);
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("welcome") => {
                        if let Some(tx) = welcome_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Some("ack") | Some("error") => {
                        if let Some(id) = v["req_id"].as_i64() {
                            if let Some(tx) =
                                p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
                            {
                                let _ = tx.send(v);
                            }
                        }
                    }
                    Some("media_offer") => {
                        let _ = offer_tx.send(v["sdp"].as_str().unwrap_or_default().to_string());
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), welcome_rx)
            .await
            .map_err(|_| anyhow!("no welcome within 30 s"))??;
        Ok(WsClient {
            out: out_tx,
            pending,
            offers,
            next: 1,
        })
    }
}

#[async_trait::async_trait]
impl Signal for WsClient {
    async fn request(&mut self, msg: ClientMsg) -> Result<Value, String> {
        let id = self.next;
        self.next += 1;
        let mut v = serde_json::to_value(&msg).map_err(|e| e.to_string())?;
        v["req_id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        self.out
            .send(v.to_string())
            .map_err(|_| "connection closed".to_string())?;
        let answer = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|_| "connection closed".to_string())?;
        if answer["type"] == "ack" {
            Ok(answer.get("result").cloned().unwrap_or(Value::Null))
        } else {
            Err(answer["code"].as_str().unwrap_or("error").to_string())
        }
    }

    async fn next_offer(&mut self, wait: Duration) -> Option<String> {
        tokio::time::timeout(wait, self.offers.recv())
            .await
            .ok()
            .flatten()
    }
}

/// The REST API, with the admin key.
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            return Err(anyhow!("POST {path}: {status}: {v}"));
        }
        Ok(v)
    }

    pub async fn create_session(&self, title: &str, kind: &str) -> anyhow::Result<String> {
        let v = self
            .post("/api/v1/sessions", json!({ "title": title, "kind": kind }))
            .await?;
        Ok(v["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id"))?
            .to_string())
    }

    /// A WebSocket URL with a fresh join token.
    pub async fn join_url(&self, sid: &str, identity: &str, role: &str) -> anyhow::Result<String> {
        let v = self
            .post(
                &format!("/api/v1/sessions/{sid}/tokens"),
                json!({ "identity": identity, "name": identity, "role": role }),
            )
            .await?;
        let token = v["token"].as_str().ok_or_else(|| anyhow!("no token"))?;
        Ok(format!(
            "{}/ws?token={token}",
            self.base.replacen("http", "ws", 1)
        ))
    }

    /// `process_cpu_seconds_total`, `process_resident_memory_bytes` and
    /// `lectern_rtp_forwarded_total` from `/metrics`.
    pub async fn server_usage(&self) -> anyhow::Result<ServerUsage> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        let get = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0.0)
        };
        Ok(ServerUsage {
            cpu_seconds: get("process_cpu_seconds_total"),
            rss_bytes: get("process_resident_memory_bytes") as u64,
            rtp_forwarded: get("lectern_rtp_forwarded_total") as u64,
            rtp_dropped: get("lectern_rtp_dropped_total") as u64,
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ServerUsage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub rtp_forwarded: u64,
    pub rtp_dropped: u64,
}
