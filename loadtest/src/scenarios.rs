//! Scenarios without media: idle connections, join storms, chat fan-out,
//! a Q&A audience, reconnect storms. Sending is open-loop: each message has a
//! scheduled time, and latency runs from that time, so a stalled server
//! cannot hide its stall by slowing the sender down.

use crate::client::{source_for, Api, FrameHook, WsClient};
use crate::report::{now_micros, Latency, Report, ServerReport};
use hdrhistogram::Histogram;
use lectern::protocol::ClientMsg;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Params {
    pub clients: usize,
    pub rooms: usize,
    pub members: usize,
    pub rate: f64,
    pub duration_s: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// One reader task's histogram.
type Shared = Arc<Mutex<Histogram<u64>>>;

/// Latency samples from many reader tasks, each with its own histogram.
#[derive(Default, Clone)]
struct Samples {
    all: Arc<Mutex<Vec<Shared>>>,
    count: Arc<AtomicU64>,
}

impl Samples {
    /// A hook that records the delay of every frame carrying `"text":"lt:<micros>`.
    fn chat_hook(&self) -> FrameHook {
        let h = Arc::new(Mutex::new(histogram()));
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h.clone());
        let count = self.count.clone();
        Arc::new(move |t: &str| {
            if let Some(at) = marker(t) {
                let d = now_micros().saturating_sub(at).max(1);
                let _ = h.lock().unwrap_or_else(|e| e.into_inner()).record(d);
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    fn merged(&self) -> Histogram<u64> {
        let mut m = histogram();
        for h in self.all.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = m.add(&*h.lock().unwrap_or_else(|e| e.into_inner()));
        }
        m
    }
}

/// Waits for the `i`-th slot of an open-loop schedule of `rate` per second
/// and returns its scheduled time (Unix µs): a late send shows as delay.
async fn slot(start: tokio::time::Instant, i: u64, rate: f64) -> u64 {
    let at = start + Duration::from_secs_f64(i as f64 / rate);
    tokio::time::sleep_until(at).await;
    now_micros() - at.elapsed().as_micros() as u64
}

/// A one-line progress display, refreshed at most once a second.
struct Progress {
    start: Instant,
    last: Instant,
    duration_s: u64,
}

impl Progress {
    fn new(duration_s: u64) -> Progress {
        let now = Instant::now();
        Progress {
            start: now,
            last: now,
            duration_s,
        }
    }

    fn tick(&mut self, sent: u64, delivered: u64) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            eprint!(
                "\r  {:>3}/{} s  sent {sent:>8}  delivered {delivered:>10}",
                self.start.elapsed().as_secs(),
                self.duration_s
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        eprintln!();
    }
}

/// The scheduled send time in a load-test text (`lt:<micros>`), if any.
fn marker(frame: &str) -> Option<u64> {
    let i = frame.find("\"text\":\"lt:")? + 11;
    let digits: String = frame[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Mints tokens and connects `n` members, `concurrency` at a time.
async fn join_many(
    api: &Api,
    sids: &[String],
    n: usize,
    role: &str,
    hook: impl Fn() -> Option<FrameHook>,
    offset: usize,
) -> anyhow::Result<(Vec<WsClient>, u64)> {
    let mut clients = Vec::with_capacity(n);
    let mut errors = 0;
    let concurrency = 64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(concurrency) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let sid = sids[i % sids.len()].clone();
            let token = api.token(&sid, &format!("lt-{}", i + offset), role).await?;
            let url = api.ws_url(&format!("token={token}"));
            let hook = hook();
            tasks.push(tokio::spawn(async move {
                WsClient::connect_with(&url, source_for(i + offset), hook).await
            }));
        }
        for t in tasks {
            match t.await {
                Ok(Ok(c)) => clients.push(c),
                _ => errors += 1,
            }
        }
        if clients.len() % 1000 < concurrency {
            eprint!("\r  connected {}/{n}", clients.len());
        }
    }
    eprintln!("\r  connected {}/{n}", clients.len());
    Ok((clients, errors))
}

fn server(
    u0: &crate::client::ServerUsage,
    u1: &crate::client::ServerUsage,
    peak: u64,
) -> ServerReport {
    ServerReport {
        cpu_seconds: u1.cpu_seconds - u0.cpu_seconds,
        rss_bytes_start: u0.rss_bytes,
        rss_bytes_end: u1.rss_bytes,
        rss_bytes_peak: peak.max(u1.rss_bytes),
        store_commits: u1.commits_since(u0).0,
        store_commits_over_25ms: u1.commits_since(u0).1,
    }
}

/// `idle`: hold connections in rooms; report memory per connection and idle CPU.
pub async fn idle(api: &Api, p: &Params) -> anyhow::Result<Report> {
    let mut sids = Vec::new();
    for r in 0..p.rooms.max(1) {
        sids.push(
            api.create_session(&format!("loadtest: idle {r}"), "qa")
                .await?,
        );
    }
    let u0 = api.server_usage().await?;
    let t = Instant::now();
    let (clients, errors) = join_many(api, &sids, p.clients, "participant", || None, 0).await?;
    let joined_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = api.server_usage().await?;
    tokio::time::sleep(Duration::from_secs(p.duration_s)).await;
    let u1 = api.server_usage().await?;
    let per_conn = (u1.rss_bytes.saturating_sub(u0.rss_bytes)) as f64 / clients.len().max(1) as f64;
    let idle_cpu = u1.cpu_seconds - held.cpu_seconds;
    drop(clients);
    Ok(Report {
        scenario: "idle".into(),
        params: json!({ "clients": p.clients, "rooms": p.rooms }),
        duration_s: p.duration_s as f64,
        clients: p.clients as u64,
        sent: 0,
        expected: p.clients as u64,
        delivered: p.clients as u64 - errors,
        lost: 0,
        errors,
        latency_ms: Latency::default(),
        rate_per_s: p.clients as f64 / joined_s,
        server: server(&u0, &u1, u1.rss_bytes),
        extra: json!({
            "rss_bytes_per_connection": per_conn,
            "idle_cpu_percent": 100.0 * idle_cpu / p.duration_s.max(1) as f64,
            "server_connections": u1.connections,
        }),
    })
}

/// `join-storm`: joins at a fixed rate; latency from the scheduled join to `welcome`.
pub async fn join_storm(api: &Api, p: &Params) -> anyhow::Result<Report> {
    let sid = api.create_session("loadtest: join storm", "qa").await?;
    // Tokens first, so the storm measures joins, not token minting.
    let mut urls = Vec::with_capacity(p.clients);
    for i in 0..p.clients {
        urls.push(api.ws_url(&format!(
            "token={}",
            api.token(&sid, &format!("lt-{i}"), "participant").await?
        )));
    }
    let u0 = api.server_usage().await?;
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::with_capacity(p.clients);
    for (i, url) in urls.into_iter().enumerate() {
        let at = start + Duration::from_secs_f64(i as f64 / p.rate);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let r = WsClient::connect_with(&url, source_for(i), None).await;
            (at.elapsed(), r)
        }));
    }
    let mut h = histogram();
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut clients = Vec::new();
    for t in tasks {
        match t.await {
            Ok((d, Ok(c))) => {
                let _ = h.record(d.as_micros().max(1) as u64);
                ok += 1;
                clients.push(c);
            }
            _ => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let u1 = api.server_usage().await?;
    drop(clients);
    Ok(Report {
        scenario: "join-storm".into(),
        params: json!({ "clients": p.clients, "rate": p.rate }),
        duration_s: elapsed,
        clients: p.clients as u64,
        sent: p.clients as u64,
        expected: p.clients as u64,
        delivered: ok,
        lost: 0,
        errors,
        latency_ms: Latency::from_micros(&h),
        rate_per_s: ok as f64 / elapsed,
        server: server(&u0, &u1, u1.rss_bytes),
        extra: json!({}),
    })
}

/// Sends chat from the members in turn at `rate` for `duration`, open-loop.
async fn chat_load(
    clients: &mut [WsClient],
    rate: f64,
    duration_s: u64,
    delivered: &AtomicU64,
) -> u64 {
    let start = tokio::time::Instant::now();
    let mut progress = Progress::new(duration_s);
    let total = (rate * duration_s as f64) as u64;
    for i in 0..total {
        let scheduled = slot(start, i, rate).await;
        // Round robin keeps every member under the per-member chat limit.
        let who = (i % clients.len() as u64) as usize;
        clients[who].send(&ClientMsg::ChatSend {
            text: format!("lt:{scheduled}"),
        });
        progress.tick(i + 1, delivered.load(Ordering::Relaxed));
    }
    total
}

/// `chat-fanout`: one seminar of `members`, chat at `rate`; latency to every receiver.
pub async fn chat_fanout(api: &Api, p: &Params) -> anyhow::Result<Report> {
    let sid = api
        .create_session("loadtest: chat fan-out", "seminar")
        .await?;
    let samples = Samples::default();
    let (mut clients, errors) = join_many(
        api,
        &[sid],
        p.members,
        "participant",
        || Some(samples.chat_hook()),
        0,
    )
    .await?;
    let u0 = api.server_usage().await?;
    let t0 = Instant::now();
    let sent = chat_load(&mut clients, p.rate, p.duration_s, &samples.count).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let u1 = api.server_usage().await?;
    let delivered = samples.count.load(Ordering::Relaxed);
    let expected = sent * clients.len() as u64;
    Ok(Report {
        scenario: "chat-fanout".into(),
        params: json!({ "members": p.members, "rate": p.rate }),
        duration_s: p.duration_s as f64,
        clients: clients.len() as u64,
        sent,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        errors,
        latency_ms: Latency::from_micros(&samples.merged()),
        rate_per_s: delivered as f64 / elapsed,
        server: server(&u0, &u1, u1.rss_bytes),
        extra: json!({ "deliveries_per_s_target": p.rate * clients.len() as f64 }),
    })
}

/// `reconnect-storm`: everyone's link drops at once; all come back with
/// jittered backoff and resume. Reports the time until all are back and
/// duplicate attendance intervals (must be zero).
pub async fn reconnect_storm(api: &Api, p: &Params) -> anyhow::Result<Report> {
    let sid = api
        .create_session("loadtest: reconnect storm", "qa")
        .await?;
    let (clients, errors) = join_many(
        api,
        std::slice::from_ref(&sid),
        p.clients,
        "participant",
        || None,
        0,
    )
    .await?;
    let resumes: Vec<(String, u64)> = clients
        .iter()
        .map(|c| {
            (
                c.first["resume_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c.first["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let u0 = api.server_usage().await?;
    for c in &clients {
        c.drop_link();
    }
    drop(clients);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (i, (token, seq)) in resumes.into_iter().enumerate() {
        let url = api.ws_url(&format!("resume={token}&last_seq={seq}"));
        // Jittered backoff over the first two seconds, then retries.
        let jitter = Duration::from_millis((i as u64 * 7919) % 2000);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(jitter).await;
            for attempt in 0..8u32 {
                if let Ok(c) = WsClient::connect_with(&url, source_for(i), None).await {
                    return Some((start.elapsed(), c));
                }
                tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
            }
            None
        }));
    }
    let dropped = tasks.len() as u64;
    let mut h = histogram();
    let mut back = Vec::new();
    let mut failed = 0u64;
    let mut resumed = 0u64;
    for t in tasks {
        match t.await {
            Ok(Some((d, c))) => {
                let _ = h.record(d.as_micros().max(1) as u64);
                if c.first["type"] == "resumed" {
                    resumed += 1;
                }
                back.push(c);
            }
            _ => failed += 1,
        }
    }
    let all_back_s = h.max() as f64 / 1e6;
    let u1 = api.server_usage().await?;
    let rows = api
        .get(&format!("/api/v1/sessions/{sid}/attendance"))
        .await?;
    let duplicates: u64 = rows
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    r["intervals"]
                        .as_array()
                        .map(|a| a.len() as u64)
                        .unwrap_or(0)
                        .saturating_sub(1)
                })
                .sum()
        })
        .unwrap_or(0);
    drop(back);
    Ok(Report {
        scenario: "reconnect-storm".into(),
        params: json!({ "clients": p.clients }),
        duration_s: all_back_s,
        clients: p.clients as u64,
        sent: dropped,
        expected: dropped,
        delivered: dropped - failed,
        lost: failed,
        errors: errors + failed,
        latency_ms: Latency::from_micros(&h),
        rate_per_s: (dropped - failed) as f64 / all_back_s.max(0.001),
        server: server(&u0, &u1, u1.rss_bytes),
        extra: json!({
            "all_back_within_s": all_back_s,
            "resumed_from_buffer": resumed,
            "fresh_snapshots": dropped - failed - resumed,
            "initial_join_failures": errors,
            "duplicate_attendance_intervals": duplicates,
        }),
    })
}

/// `qa-audience`: a Q&A room of `members` in audience mode; questions and
/// upvotes at `rate` per second (one question to four upvotes); the host
/// pins the newest question and answers the previous one every two seconds.
/// Latency is measured on every `question_asked` delivery.
pub async fn qa_audience(api: &Api, p: &Params) -> anyhow::Result<Report> {
    let sid = api.create_session("loadtest: Q&A audience", "qa").await?;
    let samples = Samples::default();
    let mut host = WsClient::connect_with(
        &api.join_url(&sid, "lt-expert", "host").await?,
        source_for(0),
        Some(samples.chat_hook()),
    )
    .await?;
    let (mut clients, errors) = join_many(
        api,
        std::slice::from_ref(&sid),
        p.members,
        "participant",
        || Some(samples.chat_hook()),
        1,
    )
    .await?;
    let u0 = api.server_usage().await?;
    let t0 = Instant::now();
    let start = tokio::time::Instant::now();
    let total = (p.rate * p.duration_s as f64) as u64;
    let (mut asked, mut pinned_at) = (0u64, Instant::now());
    let mut progress = Progress::new(p.duration_s);
    for i in 0..total {
        progress.tick(i, samples.count.load(Ordering::Relaxed));
        let scheduled = slot(start, i, p.rate).await;
        let who = (i % clients.len() as u64) as usize;
        if i % 5 == 0 || asked == 0 {
            clients[who].send(&ClientMsg::QuestionAsk {
                text: format!("lt:{scheduled}"),
            });
            asked += 1;
        } else {
            // Question ids are numbered per session from 1.
            let q = asked.saturating_sub(i % 3) as i64;
            clients[who].send(&ClientMsg::QuestionUpvote {
                question_id: q.max(1),
            });
        }
        if pinned_at.elapsed() >= Duration::from_secs(2) && asked > 1 {
            pinned_at = Instant::now();
            host.send(&ClientMsg::QuestionAnswer {
                question_id: asked as i64 - 1,
            });
            host.send(&ClientMsg::QuestionPin {
                question_id: Some(asked as i64),
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let u1 = api.server_usage().await?;
    let delivered = samples.count.load(Ordering::Relaxed);
    let expected = asked * (clients.len() as u64 + 1);
    drop(clients);
    Ok(Report {
        scenario: "qa-audience".into(),
        params: json!({ "members": p.members, "rate": p.rate }),
        duration_s: p.duration_s as f64,
        clients: p.members as u64 + 1,
        sent: total,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        errors,
        latency_ms: Latency::from_micros(&samples.merged()),
        rate_per_s: delivered as f64 / elapsed,
        server: server(&u0, &u1, u1.rss_bytes),
        extra: json!({ "questions": asked, "upvotes": total - asked }),
    })
}

/// `classroom-mix`: `rooms` seminars of `members`; chat at `rate` messages
/// per second across all rooms, and a hand raised (then lowered) for every
/// five messages. Latency is measured on chat deliveries within each room.
pub async fn classroom_mix(api: &Api, p: &Params) -> anyhow::Result<Report> {
    let rooms = p.rooms.max(1);
    let mut by_room: Vec<Vec<WsClient>> = Vec::new();
    let samples = Samples::default();
    let mut errors = 0;
    for r in 0..rooms {
        let sid = api
            .create_session(&format!("loadtest: seminar {r}"), "seminar")
            .await?;
        let (clients, e) = join_many(
            api,
            std::slice::from_ref(&sid),
            p.members,
            "participant",
            || Some(samples.chat_hook()),
            r * p.members,
        )
        .await?;
        errors += e;
        by_room.push(clients);
    }
    let u0 = api.server_usage().await?;
    let t0 = Instant::now();
    let start = tokio::time::Instant::now();
    let total = (p.rate * p.duration_s as f64) as u64;
    let mut expected = 0u64;
    let mut progress = Progress::new(p.duration_s);
    for i in 0..total {
        progress.tick(i, samples.count.load(Ordering::Relaxed));
        let scheduled = slot(start, i, p.rate).await;
        let room = &mut by_room[(i % rooms as u64) as usize];
        if room.is_empty() {
            continue;
        }
        let n = room.len() as u64;
        let who = ((i / rooms as u64) % n) as usize;
        room[who].send(&ClientMsg::ChatSend {
            text: format!("lt:{scheduled}"),
        });
        expected += n;
        if i % 5 == 0 {
            let hand = ((i / 5) % n) as usize;
            room[hand].send(if (i / 5) % 2 == 0 {
                &ClientMsg::HandRaise
            } else {
                &ClientMsg::HandLower { identity: None }
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let u1 = api.server_usage().await?;
    let delivered = samples.count.load(Ordering::Relaxed);
    Ok(Report {
        scenario: "classroom-mix".into(),
        params: json!({ "rooms": rooms, "members": p.members, "rate": p.rate }),
        duration_s: p.duration_s as f64,
        clients: (rooms * p.members) as u64,
        sent: total,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        errors,
        latency_ms: Latency::from_micros(&samples.merged()),
        rate_per_s: delivered as f64 / elapsed,
        server: server(&u0, &u1, u1.rss_bytes),
        extra: json!({ "hand_changes": total.div_ceil(5) }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_marker_in_a_chat_frame() {
        let f = r#"{"seq":5,"at":"x","type":"chat_message","message":{"id":1,"identity":"a","name":"a","text":"lt:1764149400123456","sent_at":"x"}}"#;
        assert_eq!(marker(f), Some(1_764_149_400_123_456));
        assert_eq!(marker(r#"{"type":"pong"}"#), None);
    }
}
