//! Test harness: a real server on 127.0.0.1:0 with a temporary data dir, and
//! a WebSocket client that waits for frames with readable timeouts.

use futures_util::{SinkExt, StreamExt};
use lectern::config::Config;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub base: String,
    pub admin_key: String,
    server: Option<lectern::Server>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn test_config(dir: &Path) -> Config {
    let mut c = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        demo: false,
        admin_key: Some("test-admin-key".into()),
        ..Config::default()
    };
    c.limits.grace_secs = 2;
    // The free-space guard stays on, but a small temporary file system
    // must not stop the recording tests.
    c.recording.min_free_mb = 1;
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, tweak).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an existing data dir (for restarts); the caller keeps the dir.
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config(dir);
        tweak(&mut config);
        let server = lectern::start(config).await.expect("server starts");
        TestServer {
            base: format!("http://{}", server.addr),
            admin_key: server.admin_key.clone(),
            server: Some(server),
            _tmp: None,
        }
    }

    /// Clean shutdown; returns the temp dir so a restart can reuse it.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        let s = self.server.take().unwrap();
        s.shutdown();
        s.wait().await;
        self._tmp.take()
    }

    pub fn ws_url(&self) -> String {
        self.base.replace("http://", "ws://") + "/ws"
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.api_text(method, path, body).await;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn api_text(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let client = reqwest::Client::new();
        let url = format!("{}{}", self.base, path);
        let mut req = client
            .request(method.parse().unwrap(), url)
            .bearer_auth(&self.admin_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn create_session(&self, kind: SessionKind) -> String {
        self.create_session_with(json!({ "title": "测试课 Test", "kind": kind }))
            .await
    }

    pub async fn create_session_with(&self, body: Value) -> String {
        let (status, v) = self.api("POST", "/api/v1/sessions", Some(body)).await;
        assert_eq!(status, 201, "create session: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn token(&self, sid: &str, identity: &str, role: Role) -> String {
        let (status, v) = self
            .api(
                "POST",
                &format!("/api/v1/sessions/{sid}/tokens"),
                Some(json!({ "identity": identity, "name": format!("{identity} 老师"), "role": role })),
            )
            .await;
        assert_eq!(status, 200, "token: {v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Joins and returns the client after its `welcome`.
    pub async fn join(&self, sid: &str, identity: &str, role: Role) -> TestClient {
        let token = self.token(sid, identity, role).await;
        let mut c = TestClient::connect(&format!("{}?token={token}", self.ws_url()))
            .await
            .unwrap_or_else(|e| panic!("{identity} could not connect: {e:?}"));
        let w = c.wait_type("welcome").await;
        c.welcome = w;
        c
    }

    pub async fn events(&self, sid: &str) -> Vec<Value> {
        let (s, v) = self
            .api(
                "GET",
                &format!("/api/v1/sessions/{sid}/events?limit=10000"),
                None,
            )
            .await;
        assert_eq!(s, 200);
        v.as_array().unwrap().clone()
    }

    pub async fn attendance(&self, sid: &str) -> Vec<Value> {
        let (s, v) = self
            .api("GET", &format!("/api/v1/sessions/{sid}/attendance"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v.as_array().unwrap().clone()
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct TestClient {
    ws: Ws,
    pub welcome: Value,
    /// Frames read while waiting for something else.
    buffered: VecDeque<Value>,
    /// Every frame ever received, in order.
    pub seen: Vec<Value>,
    next_req: i64,
    pub closed: Option<(u16, String)>,
    /// Payloads of the pongs received, in order.
    pongs: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub enum ConnectError {
    Http(u16, Value),
    Other(#[allow(dead_code)] String),
}

impl TestClient {
    pub async fn connect(url: &str) -> Result<TestClient, ConnectError> {
        Self::connect_request(url).await
    }

    /// Like [`TestClient::connect`], with a request that may carry extra
    /// headers (an `Origin`, say).
    pub async fn connect_request(
        req: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
    ) -> Result<TestClient, ConnectError> {
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(TestClient::from_ws(ws)),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err(ConnectError::Http(status, body))
            }
            Err(e) => Err(ConnectError::Other(e.to_string())),
        }
    }

    pub fn from_ws(ws: Ws) -> TestClient {
        TestClient {
            ws,
            welcome: Value::Null,
            buffered: VecDeque::new(),
            seen: Vec::new(),
            next_req: 1,
            closed: None,
            pongs: Vec::new(),
        }
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Sends a request with a fresh `req_id`, returning the id.
    pub async fn send(&mut self, msg: ClientMsg) -> i64 {
        let id = self.next_req;
        self.next_req += 1;
        let mut v = serde_json::to_value(&msg).unwrap();
        v["req_id"] = json!(id);
        self.send_raw(&v.to_string()).await;
        id
    }

    /// Sends and waits for the answer: `Ok(result)` for an ack, `Err(code)` for an error.
    pub async fn request(&mut self, msg: ClientMsg) -> Result<Value, String> {
        let id = self.send(msg).await;
        let f = self
            .wait_for(&format!("answer to req {id}"), |f| {
                (f["type"] == "ack" || f["type"] == "error") && f["req_id"] == json!(id)
            })
            .await;
        if f["type"] == "ack" {
            Ok(f.get("result").cloned().unwrap_or(Value::Null))
        } else {
            Err(f["code"].as_str().unwrap().to_string())
        }
    }

    async fn read(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => {
                    self.closed.get_or_insert((1006, String::new()));
                    return None;
                }
                Ok(Some(Err(_))) => {
                    self.closed.get_or_insert((1006, String::new()));
                    return None;
                }
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("server frames are JSON");
                    // Every server frame must decode as a protocol type.
                    serde_json::from_str::<lectern::protocol::Incoming>(&t).unwrap_or_else(|e| {
                        panic!("frame does not decode as protocol type: {e}: {t}")
                    });
                    self.seen.push(v.clone());
                    return Some(v);
                }
                Message::Close(f) => {
                    // Sends the answer tungstenite queued, as browsers do.
                    let _ = self.ws.flush().await;
                    let f = f
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    self.closed = Some(f);
                    return None;
                }
                Message::Pong(p) => {
                    self.pongs.push(p.to_vec());
                    continue;
                }
                _ => continue,
            }
        }
    }

    /// Waits for the first frame matching `pred`; others are kept for later waits.
    pub async fn wait(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for("a matching frame", pred).await
    }

    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.buffered.iter().position(&pred) {
            return self.buffered.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.read(deadline).await {
                Some(f) if pred(&f) => return f,
                Some(f) => self.buffered.push_back(f),
                None => panic!(
                    "timed out waiting for {what}; closed={:?}; unread frames: {:?}",
                    self.closed, self.buffered
                ),
            }
        }
    }

    pub async fn wait_type(&mut self, ty: &str) -> Value {
        self.wait_for(ty, |f| f["type"] == ty).await
    }

    /// Asserts no frame matching `pred` arrives within `dur` (frames read are kept).
    pub async fn assert_none(&mut self, dur: Duration, what: &str, pred: impl Fn(&Value) -> bool) {
        assert!(
            !self.buffered.iter().any(&pred),
            "unexpected {what}: {:?}",
            self.buffered
        );
        let deadline = tokio::time::Instant::now() + dur;
        while let Some(f) = self.read(deadline).await {
            assert!(!pred(&f), "unexpected {what}: {f}");
            self.buffered.push_back(f);
        }
    }

    /// Waits until the server closes the connection; returns the close code.
    pub async fn wait_closed(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() {
            match self.read(deadline).await {
                Some(f) => self.buffered.push_back(f),
                None if self.closed.is_none() => {
                    panic!("timed out waiting for close; frames: {:?}", self.buffered)
                }
                None => {}
            }
        }
        self.closed.as_ref().unwrap().0
    }

    pub fn resume_token(&self) -> String {
        self.welcome["resume_token"].as_str().unwrap().to_string()
    }

    /// The largest `seq` received so far.
    pub fn last_seq(&self) -> u64 {
        let from_frames = self
            .seen
            .iter()
            .filter_map(|f| f["seq"].as_u64())
            .max()
            .unwrap_or(0);
        from_frames.max(self.welcome["seq"].as_u64().unwrap_or(0))
    }

    /// Sends a close frame (code 1000) and reads until the server's close
    /// frame comes back; returns its code, or `None` if the connection
    /// ended (or `WAIT` passed) without one.
    pub async fn close_handshake(mut self) -> Option<u16> {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        self.ws
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await
            .ok()?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Drops the TCP connection without a close handshake (a lost network).
    pub async fn drop_connection(self) {
        let TestClient { ws, .. } = self;
        drop(ws);
    }
}

impl TestClient {
    /// Sends a WebSocket ping and waits for its pong (frames read meanwhile
    /// are kept); false if the pong does not come within `wait`.
    pub async fn ping_within(&mut self, payload: &[u8], wait: Duration) -> bool {
        self.ws
            .send(Message::Ping(payload.to_vec().into()))
            .await
            .expect("send ping");
        let deadline = tokio::time::Instant::now() + wait;
        while !self.pongs.iter().any(|p| p == payload) {
            match self.read(deadline).await {
                Some(f) => self.buffered.push_back(f),
                None => return false,
            }
        }
        true
    }

    pub async fn ws_send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    pub async fn try_send_raw(&mut self, text: &str) -> bool {
        self.ws.send(Message::Text(text.into())).await.is_ok()
    }

    /// A client whose socket receive buffer is tiny, so a stalled reader
    /// backs up into the server quickly.
    pub async fn connect_small_buffer(url: &str) -> TestClient {
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let stream = sock.connect(addr.parse().unwrap()).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
        TestClient::from_ws(ws)
    }
}

impl TestClient {
    /// Forgets frames read but not yet waited for (bulk tests).
    pub fn forget_buffered(&mut self) {
        self.buffered.clear();
        self.seen.clear();
    }
}

impl TestServer {
    /// A handle on a server running in another process.
    pub fn external(base: &str, admin_key: &str) -> TestServer {
        TestServer {
            base: base.to_string(),
            admin_key: admin_key.to_string(),
            server: None,
            _tmp: None,
        }
    }
}

impl TestServer {
    /// Wraps a server started by the test itself.
    pub fn wrap(server: lectern::Server) -> TestServer {
        TestServer {
            base: format!("http://{}", server.addr),
            admin_key: server.admin_key.clone(),
            server: Some(server),
            _tmp: None,
        }
    }
}

impl TestClient {
    /// Like `wait_type`, but gives up quietly after `dur`.
    pub async fn try_wait_type(&mut self, ty: &str, dur: Duration) -> Option<Value> {
        if let Some(i) = self.buffered.iter().position(|f| f["type"] == ty) {
            return self.buffered.remove(i);
        }
        let deadline = tokio::time::Instant::now() + dur;
        while let Some(f) = self.read(deadline).await {
            if f["type"] == ty {
                return Some(f);
            }
            self.buffered.push_back(f);
        }
        None
    }
}
