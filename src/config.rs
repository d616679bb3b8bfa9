//! Server configuration: defaults, overridden by a TOML file, overridden by
//! `LECTERN_*` environment variables and command-line flags (see `main.rs`).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP and WebSocket server listens on.
    pub bind: SocketAddr,
    /// Where the SQLite database and generated keys live.
    pub data_dir: PathBuf,
    /// Base URL put into join links; defaults to `http://{bind}`.
    pub public_url: Option<String>,
    /// Web origins (`https://host[:port]`) whose pages may open `/ws`, beside
    /// the public URL's own origin and the host the request was sent to;
    /// `"*"` allows any (see `signal::origin`).
    pub allowed_origins: Vec<String>,
    /// Bearer key for the admin REST API; generated and kept in the data dir when unset.
    pub admin_key: Option<String>,
    /// Secret that signs join tokens; generated and kept in the data dir when unset.
    pub token_secret: Option<String>,
    /// Lifetime of a join token when the request names none.
    pub token_ttl_secs: u64,
    /// Create (once) and print links for a demo seminar and a demo Q&A session.
    pub demo: bool,
    pub limits: Limits,
    pub media: crate::media::MediaConfig,
    pub grading: GradingConfig,
    pub recording: RecordingConfig,
}

/// Recording storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// Recordings finished longer ago than this are deleted (checked at
    /// start-up and every hour); 0 keeps them forever.
    pub retention_days: f64,
    /// A recording stops (reason `disk_full`) when less than this many
    /// MiB are free on the recordings' file system, so the database, which
    /// holds attendance and grading events, keeps room to write. 0: only a
    /// failed write stops it.
    pub min_free_mb: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            retention_days: 0.0,
            min_free_mb: 512,
        }
    }
}

/// Where participation events go, and how they are scored (docs/grading.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradingConfig {
    /// Send the text of chat messages, questions and replies to sinks (off:
    /// only ids, lengths and counts leave the server).
    pub include_chat_text: bool,
    /// Webhook sinks (`[[grading.webhook]]`); `LECTERN_WEBHOOK_URL` and
    /// `LECTERN_WEBHOOK_SECRET` add one named `webhook`.
    pub webhook: Vec<WebhookSink>,
    /// xAPI Learning Record Stores (`[[grading.xapi]]`); `LECTERN_XAPI_*`
    /// add one named `xapi`.
    pub xapi: Vec<XapiSink>,
    /// The default scoring rubric (a session's `settings.rubric` replaces it).
    pub rubric: crate::grading::rubric::Rubric,
    /// Multiplies the retry schedule (and the 26 h give-up time); 1.0
    /// unless testing.
    pub retry_scale: f64,
}

impl Default for GradingConfig {
    fn default() -> Self {
        GradingConfig {
            include_chat_text: false,
            webhook: Vec::new(),
            xapi: Vec::new(),
            rubric: Default::default(),
            retry_scale: 1.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSink {
    /// Names the sink in the delivery API; keep it stable (deliveries are
    /// tracked by it).
    pub name: String,
    pub url: String,
    /// `whsec_` followed by base64 (Standard Webhooks).
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XapiSink {
    pub name: String,
    /// The LRS base URL; statements go to `{endpoint}/statements`.
    pub endpoint: String,
    pub username: String,
    pub password: String,
    /// Where activity ids live (default: the server's public URL).
    pub activity_base: Option<String>,
}

/// Protocol and resource limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest client frame handled; larger ones get `frame_too_large`
    /// (except SDP-carrying frames, see `max_sdp_bytes`).
    pub max_frame_bytes: usize,
    /// Largest `media_publish` / `media_answer` frame (SDP with several
    /// tracks and simulcast easily passes 16 KiB).
    pub max_sdp_bytes: usize,
    /// Default longest chat message, question or reply, in characters.
    pub chat_max_length: usize,
    /// Chat messages a participant may send in a burst…
    pub chat_burst: u32,
    /// …and per second after it (questions and replies count too).
    pub chat_per_sec: f64,
    /// Frames of any kind a connection may send in a burst…
    pub frame_burst: u32,
    /// …and per second after it.
    pub frame_per_sec: f64,
    /// Rejected frames within ten seconds before the connection is closed (4009).
    pub abuse_threshold: u32,
    /// Frames queued for one connection before it is closed as a slow consumer (4008).
    pub send_queue: usize,
    /// Events kept per room for resuming connections.
    pub resume_buffer: usize,
    /// How long a dropped member stays present before attendance closes.
    pub grace_secs: u64,
    /// Grace periods ended per second, over all rooms. After a mass drop
    /// the leaves are stored this many a second (each with the time of its
    /// drop), so they do not hold up every room's sending.
    pub leaves_per_sec: u32,
    /// Chat messages sent in the welcome snapshot.
    pub chat_history: usize,
    /// A connection silent for this long is closed. The server pings every
    /// 20 s and browsers answer automatically, so only a dead link times out.
    pub idle_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("lectern-data"),
            public_url: None,
            allowed_origins: Vec::new(),
            admin_key: None,
            token_secret: None,
            token_ttl_secs: 7 * 24 * 3600,
            demo: true,
            limits: Limits::default(),
            media: Default::default(),
            grading: Default::default(),
            recording: Default::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 * 1024,
            max_sdp_bytes: 64 * 1024,
            chat_max_length: 2000,
            chat_burst: 5,
            chat_per_sec: 1.0,
            frame_burst: 60,
            frame_per_sec: 20.0,
            abuse_threshold: 50,
            send_queue: 1024,
            resume_buffer: 2048,
            grace_secs: 30,
            leaves_per_sec: 1000,
            chat_history: 50,
            idle_timeout_secs: 60,
        }
    }
}

impl Limits {
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors so typos do not pass silently.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        self.grading
            .rubric
            .validate()
            .map_err(|e| format!("grading.{e}"))?;
        let r = self.recording.retention_days;
        if !(r.is_finite() && r >= 0.0) {
            return Err("recording.retention_days must be 0 (keep) or more".into());
        }
        if !(self.grading.retry_scale > 0.0 && self.grading.retry_scale <= 100.0) {
            return Err("grading.retry_scale must be above 0 and at most 100".into());
        }
        if self.token_ttl_secs == 0 || self.token_ttl_secs > 30 * 24 * 3600 {
            return Err("token_ttl_secs must be 1 to 2592000 (30 days)".into());
        }
        for o in &self.allowed_origins {
            if o != "*" && !crate::signal::origin::is_origin(o) {
                return Err(format!(
                    "allowed_origins: {o:?} is not an origin (scheme://host[:port], no path) or \"*\""
                ));
            }
        }
        let l = &self.limits;
        if l.max_frame_bytes < 1024 {
            return Err("limits.max_frame_bytes must be at least 1024".into());
        }
        if l.send_queue < 16 || l.resume_buffer == 0 || l.chat_burst == 0 || l.frame_burst == 0 {
            return Err(
                "limits: send_queue >= 16, and resume_buffer, chat_burst, frame_burst >= 1".into(),
            );
        }
        if l.leaves_per_sec == 0 {
            return Err("limits.leaves_per_sec must be at least 1".into());
        }
        let m = &self.media;
        if (m.udp_port_min == 0) != (m.udp_port_max == 0) || m.udp_port_max < m.udp_port_min {
            return Err("media: udp_port_min and udp_port_max must both be 0 (any port) or a range min <= max".into());
        }
        if m.keyframe_interval_ms < 100 {
            return Err("media.keyframe_interval_ms must be at least 100".into());
        }
        if l.max_sdp_bytes < l.max_frame_bytes {
            return Err("limits.max_sdp_bytes must be at least limits.max_frame_bytes".into());
        }
        let positive = |x: f64| x > 0.0 && x.is_finite();
        if !positive(l.chat_per_sec) || !positive(l.frame_per_sec) || l.idle_timeout_secs == 0 {
            return Err(
                "limits: chat_per_sec, frame_per_sec and idle_timeout_secs must be positive".into(),
            );
        }
        Ok(())
    }

    pub fn public_url(&self, local: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{local}"),
        }
    }
}

/// Adds the single-sink shortcuts from the environment: `LECTERN_WEBHOOK_URL`
/// with `LECTERN_WEBHOOK_SECRET` (a sink named `webhook`), and
/// `LECTERN_XAPI_ENDPOINT` with `LECTERN_XAPI_USERNAME` and
/// `LECTERN_XAPI_PASSWORD` (a sink named `xapi`).
pub fn grading_from_env(
    g: &mut GradingConfig,
    var: impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(url) = set("LECTERN_WEBHOOK_URL") {
        let secret = set("LECTERN_WEBHOOK_SECRET")
            .ok_or("LECTERN_WEBHOOK_URL needs LECTERN_WEBHOOK_SECRET (whsec_…)")?;
        g.webhook.retain(|w| w.name != "webhook");
        g.webhook.push(WebhookSink {
            name: "webhook".into(),
            url,
            secret,
        });
    }
    if let Some(endpoint) = set("LECTERN_XAPI_ENDPOINT") {
        let (Some(username), Some(password)) =
            (set("LECTERN_XAPI_USERNAME"), set("LECTERN_XAPI_PASSWORD"))
        else {
            return Err(
                "LECTERN_XAPI_ENDPOINT needs LECTERN_XAPI_USERNAME and LECTERN_XAPI_PASSWORD"
                    .into(),
            );
        };
        g.xapi.retain(|x| x.name != "xapi");
        g.xapi.push(XapiSink {
            name: "xapi".into(),
            endpoint,
            username,
            password,
            activity_base: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn grading_sinks_come_from_the_environment_too() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let mut g = GradingConfig::default();
        grading_from_env(
            &mut g,
            env(&[
                ("LECTERN_WEBHOOK_URL", "https://grades.example.org/hook"),
                (
                    "LECTERN_WEBHOOK_SECRET",
                    "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
                ),
                ("LECTERN_XAPI_ENDPOINT", "https://lrs.example.org/xAPI"),
                ("LECTERN_XAPI_USERNAME", "u"),
                ("LECTERN_XAPI_PASSWORD", "p"),
            ]),
        )
        .unwrap();
        assert_eq!(g.webhook[0].name, "webhook");
        assert_eq!(g.xapi[0].endpoint, "https://lrs.example.org/xAPI");
        let mut g = GradingConfig::default();
        let e = grading_from_env(&mut g, env(&[("LECTERN_WEBHOOK_URL", "https://x")])).unwrap_err();
        assert!(e.contains("LECTERN_WEBHOOK_SECRET"), "{e}");
        let e =
            grading_from_env(&mut g, env(&[("LECTERN_XAPI_ENDPOINT", "https://x")])).unwrap_err();
        assert!(e.contains("LECTERN_XAPI_USERNAME"), "{e}");
    }

    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_typos() {
        let c: Config = toml::from_str("bind = \"0.0.0.0:9000\"\n[limits]\ngrace_secs = 5\n")
            .expect("valid config");
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.limits.grace_secs, 5);
        assert_eq!(c.limits.max_frame_bytes, 16 * 1024);
        assert!(toml::from_str::<Config>("bnd = \"x\"").is_err());
        assert!(c.validate().is_ok());
        let c: Config = toml::from_str("token_ttl_secs = 99999999").unwrap();
        assert!(c.validate().unwrap_err().contains("token_ttl_secs"));
    }
}
