//! The `media` scenario against Janus's VideoRoom (HTTP API), for a
//! side-by-side comparison: the same generated publisher, the same receiving
//! peers, the same delay measurement. Janus's CPU time is read from
//! `/proc/<pid>/stat`; it forwards what the subscribers count.

use crate::report::{Latency, Report, ServerReport};
use anyhow::{anyhow, Context};
use lectern::media::peer::{self, PacketHook, Peer, PublishOptions, Received};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROOM: u64 = 4242;

pub struct Params {
    pub url: String,
    pub pid: u32,
    pub peer_ip: IpAddr,
    pub subscribers: usize,
    pub duration_s: u64,
}

struct Janus {
    http: reqwest::Client,
    base: String,
    tx: AtomicU64,
}

impl Janus {
    async fn post(&self, path: &str, mut body: Value) -> anyhow::Result<Value> {
        body["transaction"] = json!(format!("t{}", self.tx.fetch_add(1, Ordering::Relaxed)));
        let v: Value = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        if v["janus"] == "error" {
            return Err(anyhow!("janus: {}", v["error"]));
        }
        Ok(v)
    }

    async fn session(&self) -> anyhow::Result<u64> {
        let v = self.post("", json!({ "janus": "create" })).await?;
        v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no session id: {v}"))
    }

    async fn attach(&self, s: u64) -> anyhow::Result<u64> {
        let v = self
            .post(
                &format!("/{s}"),
                json!({ "janus": "attach", "plugin": "janus.plugin.videoroom" }),
            )
            .await?;
        v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no handle id: {v}"))
    }

    async fn message(
        &self,
        s: u64,
        h: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<()> {
        let mut m = json!({ "janus": "message", "body": body });
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        self.post(&format!("/{s}/{h}"), m).await?;
        Ok(())
    }

    /// Long-polls the session until an event carrying a `jsep` arrives.
    async fn jsep_event(&self, s: u64) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let v: Value = self
                .http
                .get(format!("{}/{s}?maxev=1", self.base))
                .send()
                .await?
                .json()
                .await?;
            if v.get("jsep").is_some() {
                return Ok(v);
            }
        }
        Err(anyhow!("no jsep event within 30 s"))
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    lectern::http::metrics::process_usage_of(&pid.to_string())
        .map(|u| u.0)
        .unwrap_or(0.0)
}

fn rss_bytes(pid: u32) -> u64 {
    lectern::http::metrics::process_usage_of(&pid.to_string())
        .map(|u| u.1)
        .unwrap_or(0)
}

/// One subscriber: its own session and handle, Janus's offer, our answer.
async fn join_subscriber(
    j: &Janus,
    feed: u64,
    hook: &PacketHook,
    ip: IpAddr,
) -> anyhow::Result<(u64, Peer)> {
    let s = j.session().await?;
    let h = j.attach(s).await?;
    j.message(
        s,
        h,
        json!({ "request": "join", "room": ROOM, "ptype": "subscriber", "streams": [{ "feed": feed }] }),
        None,
    )
    .await?;
    let ev = j.jsep_event(s).await?;
    let mut peer = Peer::bound(Some(hook.clone()), ip).await?;
    let answer = peer
        .answer(ev["jsep"]["sdp"].as_str().unwrap_or_default().to_string())
        .await
        .map_err(|e| anyhow!(e))?;
    j.message(
        s,
        h,
        json!({ "request": "start", "room": ROOM }),
        Some(json!({ "type": "answer", "sdp": answer })),
    )
    .await?;
    Ok((s, peer))
}

pub async fn run(p: Params) -> anyhow::Result<Report> {
    let j = Arc::new(Janus {
        http: reqwest::Client::new(),
        base: p.url.trim_end_matches('/').to_string(),
        tx: AtomicU64::new(1),
    });
    let ps = j.session().await.context("janus session")?;
    let ph = j.attach(ps).await?;
    let opts = PublishOptions {
        video_packets_per_frame: 5,
        video_packet_bytes: 1250,
        bind_ip: p.peer_ip,
        ..Default::default()
    };
    let (pending, offer) = peer::prepare(opts).await.map_err(|e| anyhow!(e))?;
    j.message(
        ps,
        ph,
        json!({ "request": "joinandconfigure", "room": ROOM, "ptype": "publisher", "display": "lt-expert", "audio": true, "video": true }),
        Some(json!({ "type": "offer", "sdp": offer })),
    )
    .await?;
    let ev = j.jsep_event(ps).await?;
    let feed = ev["plugindata"]["data"]["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("no publisher id: {ev}"))?;
    let publisher = pending
        .start(ev["jsep"]["sdp"].as_str().unwrap_or_default())
        .await
        .map_err(|e| anyhow!(e))?;

    let (hist, measuring, hook) = crate::report::delay_hook();
    // Janus lists a feed only once its media flows; join after that.
    let ready = Instant::now() + Duration::from_secs(10);
    while publisher.sent.load(Ordering::Relaxed) == 0 && Instant::now() < ready {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut sessions = vec![ps];
    let mut viewers: Vec<(Arc<Received>, Peer)> = Vec::new();
    let mut errors = 0u64;
    for i in 0..p.subscribers {
        let mut r = Err(anyhow!("not tried"));
        for _attempt in 0..2 {
            r = join_subscriber(&j, feed, &hook, p.peer_ip).await;
            if r.is_ok() {
                break;
            }
        }
        match r {
            Ok((s, peer)) => {
                sessions.push(s);
                viewers.push((peer.received.clone(), peer));
            }
            Err(e) => {
                errors += 1;
                eprintln!("janus subscriber {i} failed: {e}");
            }
        }
        eprint!(
            "\r  joined {}/{} Janus subscribers",
            viewers.len(),
            p.subscribers
        );
    }
    eprintln!();
    // Janus drops sessions that go quiet for 60 s.
    let keepalive = {
        let (j, sessions) = (j.clone(), sessions.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                for s in &sessions {
                    let _ = j
                        .post(&format!("/{s}"), json!({ "janus": "keepalive" }))
                        .await;
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while viewers
        .iter()
        .any(|(r, _)| r.count("", "video/VP8") + r.total() == 0)
    {
        if Instant::now() > deadline {
            anyhow::bail!("not every Janus subscriber received media within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = |vs: &[(Arc<Received>, Peer)]| vs.iter().map(|(r, _)| r.total()).sum::<u64>();
    let (cpu0, rss0) = (cpu_seconds(p.pid), rss_bytes(p.pid));
    let (sent0, got0) = (publisher.sent.load(Ordering::Relaxed), total(&viewers));
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let mut peak = rss0;
    while t0.elapsed() < Duration::from_secs(p.duration_s) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss_bytes(p.pid));
        eprint!(
            "\r  {:>3}/{} s  delivered {:>9}",
            t0.elapsed().as_secs(),
            p.duration_s,
            total(&viewers) - got0
        );
    }
    eprintln!();
    measuring.store(false, Ordering::Relaxed);
    publisher.stop();
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(p.pid) - cpu0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = publisher.sent.load(Ordering::Relaxed) - sent0;
    let delivered = total(&viewers) - got0;
    let expected = sent * viewers.len() as u64;
    let h = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    keepalive.abort();
    for (_, v) in &viewers {
        v.close().await;
    }
    for s in sessions {
        let _ = j
            .post(&format!("/{s}"), json!({ "janus": "destroy" }))
            .await;
    }
    Ok(Report {
        scenario: "media (janus)".into(),
        params: json!({ "subscribers": p.subscribers, "video_kbit_s": 1500, "audio_packets_s": 50 }),
        duration_s: elapsed,
        clients: viewers.len() as u64 + 1,
        sent,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        errors,
        latency_ms: Latency::from_micros(&h),
        rate_per_s: delivered as f64 / elapsed,
        server: ServerReport {
            cpu_seconds: cpu,
            rss_bytes_start: rss0,
            rss_bytes_end: rss_bytes(p.pid),
            rss_bytes_peak: peak,
            // Janus stores nothing.
            ..Default::default()
        },
        extra: json!({
            "forwarded_packets_per_s": delivered as f64 / elapsed,
            "cpu_us_per_forwarded_packet": if delivered > 0 { cpu * 1e6 / delivered as f64 } else { 0.0 },
        }),
    })
}
