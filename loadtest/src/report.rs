//! The report every scenario produces: printed, and written as JSON.

use hdrhistogram::Histogram;
use lectern::media::peer::{self, PacketHook};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (the clock generated payloads carry).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A histogram of publisher-to-subscriber video delay, the switch that turns
/// recording on, and the packet hook that fills it.
pub fn delay_hook() -> (Arc<Mutex<Histogram<u64>>>, Arc<AtomicBool>, PacketHook) {
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    ));
    let measuring = Arc::new(AtomicBool::new(false));
    let (h, m) = (hist.clone(), measuring.clone());
    let hook: PacketHook = Arc::new(move |_owner, mime, pkt| {
        if !m.load(Ordering::Relaxed) || !mime.eq_ignore_ascii_case("video/vp8") {
            return;
        }
        if let Some(sent) = peer::sent_at_micros(&pkt.payload) {
            let delay = now_micros().saturating_sub(sent).max(1);
            let _ = h.lock().unwrap_or_else(|e| e.into_inner()).record(delay);
        }
    });
    (hist, measuring, hook)
}

#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn from_micros(h: &Histogram<u64>) -> Latency {
        let ms = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ServerReport {
    pub cpu_seconds: f64,
    pub rss_bytes_start: u64,
    pub rss_bytes_end: u64,
    pub rss_bytes_peak: u64,
    /// Rooms' storage commits during the run, and those over 25 ms (a
    /// room sends a batch's frames only once it is stored).
    pub store_commits: u64,
    pub store_commits_over_25ms: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: String,
    pub params: Value,
    pub duration_s: f64,
    pub clients: u64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub errors: u64,
    pub latency_ms: Latency,
    pub rate_per_s: f64,
    pub server: ServerReport,
    /// Scenario-specific figures.
    pub extra: Value,
}

impl Report {
    pub fn to_json(&self) -> Value {
        let l = &self.latency_ms;
        json!({
            "scenario": self.scenario,
            "params": self.params,
            "duration_s": self.duration_s,
            "clients": self.clients,
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "errors": self.errors,
            "latency_ms": { "p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999, "max": l.max },
            "rate_per_s": self.rate_per_s,
            "server": {
                "cpu_seconds": self.server.cpu_seconds,
                "rss_bytes_start": self.server.rss_bytes_start,
                "rss_bytes_end": self.server.rss_bytes_end,
                "rss_bytes_peak": self.server.rss_bytes_peak,
                "store_commits": self.server.store_commits,
                "store_commits_over_25ms": self.server.store_commits_over_25ms,
            },
            "extra": self.extra,
        })
    }

    pub fn print(&self) {
        let l = &self.latency_ms;
        let loss = if self.expected > 0 {
            100.0 * self.lost as f64 / self.expected as f64
        } else {
            0.0
        };
        println!("scenario   {}  {}", self.scenario, self.params);
        println!(
            "duration   {:.1} s, {} clients, {} errors",
            self.duration_s, self.clients, self.errors
        );
        println!(
            "sent       {}   expected {}   delivered {}   lost {} ({loss:.2} %)",
            self.sent, self.expected, self.delivered, self.lost
        );
        println!("rate       {:.0} /s", self.rate_per_s);
        println!(
            "latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        println!(
            "server     cpu {:.2} s   rss {:.1} MiB -> {:.1} MiB (peak {:.1} MiB)",
            self.server.cpu_seconds,
            self.server.rss_bytes_start as f64 / 1048576.0,
            self.server.rss_bytes_end as f64 / 1048576.0,
            self.server.rss_bytes_peak as f64 / 1048576.0
        );
        if self.server.store_commits > 0 {
            println!(
                "storage    {} commits, {} over 25 ms",
                self.server.store_commits, self.server.store_commits_over_25ms
            );
        }
        println!("extra      {}", self.extra);
    }
}
