//! Lectern: a live classroom server for teacher-training programmes.
//!
//! [`start`] wires the parts together: storage, the rooms, the HTTP and
//! WebSocket server, and a designed shutdown. `main.rs` only parses the
//! command line and calls it; tests call it directly with port 0.

pub mod auth;
pub mod config;
pub mod grading;
pub mod http;
pub mod ids;
pub mod media;
pub mod protocol;
pub mod record;
pub mod room;
pub mod signal;
pub mod store;

use crate::auth::{random_secret, TokenKey};
use crate::config::Config;
use crate::http::api::{self, CreateSession, CreateToken};
use crate::http::metrics::Metrics;
use crate::protocol::{Role, SessionKind, SessionStatus};
use crate::room::Rooms;
use crate::store::{DynStore, SqliteStore};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: DynStore,
    pub rooms: Rooms,
    pub keys: TokenKey,
    pub admin_key: Arc<str>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Base of join links.
    pub public_url: Arc<str>,
    /// Which web pages may open `/ws`.
    pub origins: Arc<signal::origin::OriginPolicy>,
    pub next_conn: Arc<AtomicU64>,
    /// Cancelled when shutdown starts.
    pub shutdown: CancellationToken,
    /// Grading sinks and their delivery workers.
    pub grading: Arc<grading::Hub>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("creating the demo sessions failed: {0}")]
    Demo(String),
}

/// A join link printed at start-up.
#[derive(Debug, Clone)]
pub struct DemoLink {
    pub session_title: String,
    pub kind: SessionKind,
    pub role: Role,
    pub url: String,
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub admin_key: String,
    pub public_url: String,
    pub demo_links: Vec<DemoLink>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts the designed shutdown: stop accepting, close attendance, tell
    /// clients, flush storage.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server has stopped (after [`Server::shutdown`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Reads a secret from `file` in the data dir, creating it on first start.
fn secret_file(dir: &Path, file: &str) -> Result<String, StartError> {
    let path = dir.join(file);
    let err = |e| StartError::DataDir(dir.display().to_string(), e);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => {
            let secret = random_secret(32);
            std::fs::write(&path, &secret).map_err(err)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            Ok(secret)
        }
    }
}

/// Opens the embedded SQLite store in the data dir, then [`start_with_store`].
pub async fn start(config: Config) -> Result<Server, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
    let store: DynStore = Arc::new(SqliteStore::open(&config.data_dir).await?);
    start_with_store(config, store).await
}

/// Recovers rooms left open by a crash, binds and serves, on a given store.
pub async fn start_with_store(config: Config, store: DynStore) -> Result<Server, StartError> {
    config.validate().map_err(StartError::Config)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
    let admin_key = match &config.admin_key {
        Some(k) if !k.is_empty() => k.clone(),
        _ => secret_file(&config.data_dir, "admin.key")?,
    };
    let token_secret = match &config.token_secret {
        Some(k) if !k.is_empty() => k.clone(),
        _ => secret_file(&config.data_dir, "token.secret")?,
    };
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| StartError::Bind(config.bind, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.bind, e))?;
    let public_url = config.public_url(addr);
    let metrics = Arc::new(Metrics::default());
    let keys = TokenKey::new(token_secret.as_bytes());
    let sfu = media::Sfu::with_recordings(
        config.media.clone(),
        metrics.clone(),
        config.data_dir.join("recordings"),
        config.recording.min_free_mb.saturating_mul(1 << 20),
    );
    grading::rubric::set_default(config.grading.rubric.clone());
    let sinks = grading_sinks(&config, &public_url).map_err(StartError::Config)?;
    let wakes: Vec<Arc<tokio::sync::Notify>> = sinks
        .iter()
        .map(|_| Arc::new(tokio::sync::Notify::new()))
        .collect();
    let hub = Arc::new(grading::Hub::new(
        sinks.iter().map(|s| s.name().to_string()).collect(),
        wakes.clone(),
        config.grading.include_chat_text,
    ));
    let rooms = Rooms::new(
        store.clone(),
        config.limits.clone(),
        metrics.clone(),
        keys.clone(),
        sfu,
        hub.clone(),
    );
    // Recordings the last run left unfinished are finalized before any
    // room loads (each room then records the interrupted stop).
    let recordings = config.data_dir.join("recordings");
    record::session::recover(recordings.clone(), store.clone()).await;
    if config.recording.retention_days > 0.0 {
        let days = config.recording.retention_days;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let dir = recordings.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    record::session::apply_retention(&dir, days)
                })
                .await;
            }
        });
    }
    rooms.recover().await?;
    let shutdown = CancellationToken::new();
    // Delivery stops with the server; what is left is sent after a restart.
    let deliver_stop = CancellationToken::new();
    let workers: Vec<_> = sinks
        .into_iter()
        .zip(wakes)
        .map(|(sink, wake)| {
            tokio::spawn(grading::deliver::run(
                store.clone(),
                sink,
                wake,
                deliver_stop.clone(),
                metrics.clone(),
                config.grading.retry_scale,
            ))
        })
        .collect();
    let app = App {
        store: store.clone(),
        rooms: rooms.clone(),
        keys,
        admin_key: admin_key.clone().into(),
        config: Arc::new(config.clone()),
        metrics: metrics.clone(),
        public_url: public_url.clone().into(),
        origins: Arc::new(signal::origin::OriginPolicy::new(
            &public_url,
            &config.allowed_origins,
        )),
        next_conn: Arc::new(AtomicU64::new(1)),
        shutdown: shutdown.clone(),
        grading: hub,
    };
    let demo_links = if config.demo {
        demo(&app).await?
    } else {
        Vec::new()
    };
    let router = http::router(app);
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        use axum::serve::ListenerExt as _;
        // Events are small frames that must go out at once: with Nagle's
        // algorithm a frame written while the previous one waits for its
        // ACK is held back until that ACK (up to a delayed ACK, ~40 ms).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        let serve =
            axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned());
        let serving = tokio::spawn(async move { serve.await });
        stop.cancelled().await;
        tracing::info!("shutting down: closing rooms");
        rooms.shutdown().await;
        // Let connection tasks write their close frames.
        for _ in 0..50 {
            if metrics.connections.load(Ordering::Relaxed) <= 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
        deliver_stop.cancel();
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
        store.close().await;
        tracing::info!("shutdown complete");
    });
    Ok(Server {
        addr,
        admin_key,
        public_url,
        demo_links,
        shutdown,
        task,
    })
}

/// The configured grading sinks, checked.
fn grading_sinks(
    config: &Config,
    public_url: &str,
) -> Result<Vec<Arc<dyn grading::deliver::Sink>>, String> {
    let g = &config.grading;
    let mut out: Vec<Arc<dyn grading::deliver::Sink>> = Vec::new();
    for w in &g.webhook {
        out.push(Arc::new(grading::webhook::Webhook::new(
            &w.name, &w.url, &w.secret,
        )?));
    }
    for x in &g.xapi {
        let base = x.activity_base.as_deref().unwrap_or(public_url);
        out.push(Arc::new(grading::xapi::Xapi::new(
            &x.name,
            &x.endpoint,
            &x.username,
            &x.password,
            base,
        )?));
    }
    let mut names = std::collections::HashSet::new();
    for s in &out {
        let n = s.name();
        if n.is_empty()
            || n.len() > 64
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "grading sink name {n:?}: use 1-64 letters, digits, - _ ."
            ));
        }
        if !names.insert(n.to_string()) {
            return Err(format!("two grading sinks are named {n:?}"));
        }
    }
    Ok(out)
}

/// Creates the demo sessions once (again if they were ended) and signs links.
async fn demo(app: &App) -> Result<Vec<DemoLink>, StartError> {
    let specs = [
        (
            "demo.seminar",
            "示范研讨课 Demo seminar",
            SessionKind::Seminar,
        ),
        ("demo.qa", "专家答疑示范 Demo expert Q&A", SessionKind::Qa),
    ];
    let mut links = Vec::new();
    let fail = |e: http::ApiError| StartError::Demo(e.message);
    for (key, title, kind) in specs {
        let existing = match app.store.get_meta(key).await? {
            Some(id) => app
                .store
                .get_session(&id)
                .await?
                .filter(|s| s.status != SessionStatus::Ended),
            None => None,
        };
        let session = match existing {
            Some(s) => s,
            None => {
                let s = api::create(
                    app,
                    CreateSession {
                        title: title.to_string(),
                        kind,
                        scheduled_start: None,
                        scheduled_end: None,
                        settings: Default::default(),
                    },
                )
                .await
                .map_err(fail)?;
                app.store.set_meta(key, &s.id).await?;
                s
            }
        };
        for (role, identity, name) in [
            (Role::Host, "demo-host", "主讲 Host"),
            (Role::Participant, "demo-teacher", "参训教师 Teacher"),
        ] {
            let t = api::issue_token(
                app,
                &session,
                &CreateToken {
                    identity: identity.to_string(),
                    name: name.to_string(),
                    role,
                    ttl_seconds: None,
                },
            )
            .map_err(fail)?;
            links.push(DemoLink {
                session_title: session.title.clone(),
                kind,
                role,
                url: t.join_url,
            });
        }
    }
    Ok(links)
}
