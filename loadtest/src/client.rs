//! WebSocket and REST clients for load scenarios.
//!
//! A [`WsClient`] matches answers to requests by `req_id` and queues
//! `media_offer` frames for the media peer. Every other frame goes to an
//! optional hook as raw text, so a scenario can look for its own markers
//! without parsing JSON on the hot path.

use anyhow::{anyhow, Context};
use futures_util::{SinkExt, StreamExt};
use lectern::media::peer::Signal;
use lectern::protocol::ClientMsg;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>;

/// Called with the raw text of every frame that is not an answer or an offer.
pub type FrameHook = Arc<dyn Fn(&str) + Send + Sync>;

pub struct WsClient {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    offers: mpsc::UnboundedReceiver<String>,
    next: i64,
    /// The first frame (`welcome` or `resumed`), parsed.
    pub first: Value,
}

/// Connects a TCP socket, from `source` when given (to spread connections
/// over 127.0.0.x when one address runs out of ports).
async fn tcp(url: &str, source: Option<IpAddr>) -> anyhow::Result<tokio::net::TcpStream> {
    let hostport = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| anyhow!("bad url {url}"))?;
    let addr: SocketAddr = tokio::net::lookup_host(hostport)
        .await?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {hostport}"))?;
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = sock.connect(addr).await?;
    // As browsers do: a small frame goes out at once, not held for an ACK.
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl WsClient {
    /// Connects and waits for the first frame (`welcome` or `resumed`).
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        WsClient::connect_with(url, None, None).await
    }

    pub async fn connect_with(
        url: &str,
        source: Option<IpAddr>,
        hook: Option<FrameHook>,
    ) -> anyhow::Result<WsClient> {
        let stream = tcp(url, source).await.context("tcp connect")?;
        // tungstenite zero-fills `read_buffer_size` bytes before every read:
        // the 128 KiB default was 40 % of the generator's CPU in chat-fanout.
        let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            url,
            MaybeTlsStream::Plain(stream),
            Some(config),
        )
        .await
        .context("websocket handshake")?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (offer_tx, offers) = mpsc::unbounded_channel();
        let (first_tx, first_rx) = oneshot::channel();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let close = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || close {
                    break;
                }
            }
        });
        let p = pending.clone();
        tokio::spawn(async move {
            let mut first_tx = Some(first_tx);
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let t = text.as_str();
                // Server frames that are not events begin with their type.
                if t.starts_with(r#"{"type":"ack""#) || t.starts_with(r#"{"type":"error""#) {
                    let Ok(v) = serde_json::from_str::<Value>(t) else {
                        continue;
                    };
                    if let Some(id) = v["req_id"].as_i64() {
                        if let Some(tx) = p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                            let _ = tx.send(v);
                        }
                    } else if let Some(tx) = first_tx.take() {
                        // Refused after the upgrade (e.g. kicked, storage).
                        let _ = tx.send(v);
                    }
                } else if t.starts_with(r#"{"type":"media_offer""#) {
                    if let Ok(v) = serde_json::from_str::<Value>(t) {
                        let _ = offer_tx.send(v["sdp"].as_str().unwrap_or_default().to_string());
                    }
                } else if first_tx.is_some()
                    && (t.starts_with(r#"{"type":"welcome""#)
                        || t.starts_with(r#"{"type":"resumed""#))
                {
                    if let (Some(tx), Ok(v)) = (first_tx.take(), serde_json::from_str::<Value>(t)) {
                        let _ = tx.send(v);
                    }
                } else if let Some(h) = &hook {
                    h(t);
                }
            }
        });
        let first = tokio::time::timeout(Duration::from_secs(30), first_rx)
            .await
            .map_err(|_| anyhow!("no welcome within 30 s"))??;
        if first["type"] == "error" {
            return Err(anyhow!("refused: {}", first["code"]));
        }
        Ok(WsClient {
            out: out_tx,
            pending,
            offers,
            next: 1,
            first,
        })
    }

    /// Sends a frame without waiting for its answer.
    pub fn send(&mut self, msg: &ClientMsg) {
        let id = self.next;
        self.next += 1;
        let mut v = serde_json::to_value(msg).expect("protocol types serialize");
        v["req_id"] = json!(id);
        let _ = self.out.send(Message::Text(v.to_string().into()));
    }

    /// Closes the connection the way a lost network does: no `leave`.
    pub fn drop_link(&self) {
        let _ = self.out.send(Message::Close(None));
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
            .send(Message::Text(v.to_string().into()))
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

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            return Err(anyhow!("GET {path}: {status}: {v}"));
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

    /// A join token for one member.
    pub async fn token(&self, sid: &str, identity: &str, role: &str) -> anyhow::Result<String> {
        let v = self
            .post(
                &format!("/api/v1/sessions/{sid}/tokens"),
                json!({ "identity": identity, "name": identity, "role": role }),
            )
            .await?;
        Ok(v["token"]
            .as_str()
            .ok_or_else(|| anyhow!("no token"))?
            .to_string())
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("{}/ws?{query}", self.base.replacen("http", "ws", 1))
    }

    /// A WebSocket URL with a fresh join token.
    pub async fn join_url(&self, sid: &str, identity: &str, role: &str) -> anyhow::Result<String> {
        Ok(self.ws_url(&format!("token={}", self.token(sid, identity, role).await?)))
    }

    /// Process and forwarding figures from `/metrics`.
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
            connections: get("lectern_connections") as u64,
            store_commits: get("lectern_store_commit_seconds_count") as u64,
            store_commits_within_25ms: get("lectern_store_commit_seconds_bucket{le=\"0.025\"}")
                as u64,
        })
    }
}

impl ServerUsage {
    /// Storage commits since `before`, and how many of them took over 25 ms.
    pub fn commits_since(&self, before: &ServerUsage) -> (u64, u64) {
        let slow = |u: &ServerUsage| u.store_commits.saturating_sub(u.store_commits_within_25ms);
        (
            self.store_commits.saturating_sub(before.store_commits),
            slow(self).saturating_sub(slow(before)),
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ServerUsage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub rtp_forwarded: u64,
    pub rtp_dropped: u64,
    pub connections: u64,
    /// Storage batches committed by rooms, and those that took ≤ 25 ms.
    pub store_commits: u64,
    pub store_commits_within_25ms: u64,
}

/// The source address for the `i`-th connection: 20,000 connections per
/// address (each has about 28,000 ephemeral ports), starting from an address
/// picked per run, so the ports a previous run left in TIME_WAIT do not slow
/// or refuse this run's connects.
pub fn source_for(i: usize) -> Option<IpAddr> {
    static BASE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (t.as_secs() as usize) % 200
    });
    let n = ((base + i / 20_000) % 250) as u8;
    Some(IpAddr::from([127, 0, 1 + n / 250, 2 + n]))
}
