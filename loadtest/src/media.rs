//! `media`: one publisher (~1.5 Mbit/s VP8 plus Opus, generated) and N
//! subscribers, all real WebRTC peers on this machine. Measures forwarded
//! packets per second, loss, publisher-to-subscriber packet delay, and the
//! server's CPU time per forwarded packet.

use crate::client::{Api, WsClient};
use crate::report::{Latency, Report, ServerReport};
use lectern::media::peer::{self, PublishOptions, Received};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Params {
    pub subscribers: usize,
    pub duration_s: u64,
}

/// Stops the publisher's senders (the peer stays open until dropped).
fn publisher_running(p: &peer::Publisher) {
    p.stop();
}

pub async fn run(api: &Api, p: Params) -> anyhow::Result<Report> {
    let sid = api.create_session("loadtest: media", "qa").await?;
    let mut host = WsClient::connect(&api.join_url(&sid, "lt-expert", "host").await?).await?;
    let opts = PublishOptions {
        video_packets_per_frame: 5,
        video_packet_bytes: 1250,
        ..Default::default()
    };
    let publisher = peer::publish(&mut host, opts)
        .await
        .map_err(|e| anyhow::anyhow!("publishing failed: {e}"))?;

    let (hist, measuring, hook) = crate::report::delay_hook();

    // Join in small waves, as a class does over a minute.
    let started = Instant::now();
    // Each viewer's task keeps answering renegotiations until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut viewers: Vec<(Arc<Received>, tokio::task::JoinHandle<()>)> = Vec::new();
    let mut errors = 0u64;
    let wave = 10;
    for chunk in (0..p.subscribers).collect::<Vec<_>>().chunks(wave) {
        let mut joins = Vec::new();
        for i in chunk {
            let url = api
                .join_url(&sid, &format!("lt-viewer-{i}"), "participant")
                .await?;
            let hook = hook.clone();
            let stop = stop.clone();
            joins.push(tokio::spawn(async move {
                let mut c = WsClient::connect(&url).await.map_err(|e| e.to_string())?;
                let mut peer = peer::subscribe(&mut c, false, Some(hook)).await?;
                let received = peer.received.clone();
                let task = tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if peer
                            .answer_next_offer(&mut c, Duration::from_millis(500))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    peer.close().await;
                });
                Ok::<_, String>((received, task))
            }));
        }
        for j in joins {
            match j.await {
                Ok(Ok(v)) => viewers.push(v),
                Ok(Err(e)) => {
                    errors += 1;
                    eprintln!("a subscriber failed to join: {e}");
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("a subscriber task failed: {e}");
                }
            }
        }
        eprint!("\r  joined {}/{} subscribers", viewers.len(), p.subscribers);
    }
    eprintln!(" in {:.1} s", started.elapsed().as_secs_f64());
    let deadline = Instant::now() + Duration::from_secs(60);
    while viewers
        .iter()
        .any(|(r, _)| r.count("lt-expert", "video/VP8") == 0)
    {
        if Instant::now() > deadline {
            anyhow::bail!("not every subscriber received video within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let total = |vs: &[(Arc<Received>, tokio::task::JoinHandle<()>)]| {
        vs.iter().map(|(r, _)| r.total()).sum::<u64>()
    };
    let u0 = api.server_usage().await?;
    let (sent0, got0) = (publisher.sent.load(Ordering::Relaxed), total(&viewers));
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let mut peak = u0.rss_bytes;
    while t0.elapsed() < Duration::from_secs(p.duration_s) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let u = api.server_usage().await?;
        peak = peak.max(u.rss_bytes);
        eprint!(
            "\r  {:>3}/{} s  forwarded {:>9}  delivered {:>9}",
            t0.elapsed().as_secs(),
            p.duration_s,
            u.rtp_forwarded - u0.rtp_forwarded,
            total(&viewers) - got0
        );
    }
    eprintln!();
    measuring.store(false, Ordering::Relaxed);
    // Stop sending, let packets in flight land, then count both ends.
    publisher_running(&publisher);
    let elapsed = t0.elapsed().as_secs_f64();
    let u1 = api.server_usage().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = publisher.sent.load(Ordering::Relaxed) - sent0;
    let delivered = total(&viewers) - got0;
    let expected = sent * viewers.len() as u64;
    let forwarded = u1.rtp_forwarded - u0.rtp_forwarded;
    let cpu = u1.cpu_seconds - u0.cpu_seconds;
    let h = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    stop.store(true, Ordering::Relaxed);
    let clients = viewers.len() as u64 + 1;
    for (_, task) in viewers {
        let _ = task.await;
    }
    drop(publisher);
    Ok(Report {
        scenario: "media".into(),
        params: serde_json::json!({
            "subscribers": p.subscribers,
            "video_kbit_s": 5 * 1250 * 8 * 30 / 1000,
            "audio_packets_s": 50,
        }),
        duration_s: elapsed,
        clients,
        sent,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        errors,
        latency_ms: Latency::from_micros(&h),
        rate_per_s: forwarded as f64 / elapsed,
        server: ServerReport {
            cpu_seconds: cpu,
            rss_bytes_start: u0.rss_bytes,
            rss_bytes_end: u1.rss_bytes,
            rss_bytes_peak: peak.max(u1.rss_bytes),
            store_commits: u1.commits_since(&u0).0,
            store_commits_over_25ms: u1.commits_since(&u0).1,
        },
        extra: serde_json::json!({
            "forwarded_packets_per_s": forwarded as f64 / elapsed,
            "dropped_at_server": u1.rtp_dropped - u0.rtp_dropped,
            "cpu_us_per_forwarded_packet": if forwarded > 0 { cpu * 1e6 / forwarded as f64 } else { 0.0 },
        }),
    })
}
