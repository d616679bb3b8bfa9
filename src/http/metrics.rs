//! Counters and gauges, rendered as Prometheus text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: AtomicI64,
    /// Running room actors.
    pub rooms: AtomicI64,
    /// Frames received from clients.
    pub messages_in: AtomicU64,
    /// Frames queued to clients.
    pub messages_out: AtomicU64,
    /// Connections closed because their send queue overflowed.
    pub queue_drops: AtomicU64,
    /// Client frames answered with an error before reaching a room.
    pub frames_rejected: AtomicU64,
    pub events_stored: AtomicU64,
    pub storage_errors: AtomicU64,
    /// WebSocket upgrades refused (bad token, ended session).
    pub joins_refused: AtomicU64,
    /// Open WebRTC peer connections (publishing and receiving).
    pub peer_connections: AtomicI64,
    pub peer_connections_failed: AtomicU64,
    /// Tracks being published.
    pub publications: AtomicI64,
    /// RTP packets queued to subscribers, and dropped for a full queue.
    pub rtp_forwarded: AtomicU64,
    pub rtp_dropped: AtomicU64,
    /// Keyframe requests sent to publishers, and those held back by the rate limit.
    pub keyframe_requests_sent: AtomicU64,
    pub keyframe_requests_suppressed: AtomicU64,
    /// Participation events delivered to sinks, requests that failed, and
    /// events given up on (dead-lettered).
    pub grading_delivered: AtomicU64,
    pub grading_failures: AtomicU64,
    pub grading_dead: AtomicU64,
    /// Recordings being written, frames written, packets dropped because a
    /// recording's queue was full, and recordings stopped by a failure
    /// (disk full, write error).
    pub recordings: AtomicI64,
    pub recording_frames: AtomicU64,
    pub recording_packets_dropped: AtomicU64,
    pub recording_failures: AtomicU64,
    /// How long rooms' storage batches took to commit (a room sends
    /// nothing of a batch before it is stored, so this is added latency).
    pub store_commit: Histogram,
}

/// Upper bounds of [`Histogram`]'s buckets, in microseconds.
const BUCKETS_US: [u64; 9] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// A Prometheus histogram of durations with fixed buckets (1 ms to 1 s).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut n = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            n += b.load(Ordering::Relaxed);
            match BUCKETS_US.get(i) {
                Some(us) => {
                    let le = *us as f64 / 1e6;
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
                }
            }
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {n}");
    }
}

/// CPU time (user + system) and resident memory of this process, from /proc.
pub fn process_usage() -> Option<(f64, u64)> {
    process_usage_of("self")
}

/// The same for another process (`pid` as text, or `self`); the load-test
/// tool reads another server's figures this way.
pub fn process_usage_of(pid: &str) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(((utime + stime) / ticks, rss_kb * 1024))
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some((cpu, rss)) = process_usage() {
            let _ = writeln!(
                out,
                "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu:.3}"
            );
            let _ = writeln!(
                out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
            );
        }
        let mut line = |name: &str, kind: &str, help: &str, v: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        line(
            "lectern_connections",
            "gauge",
            "Open WebSocket connections.",
            g(&self.connections),
        );
        line(
            "lectern_rooms",
            "gauge",
            "Rooms running in memory.",
            g(&self.rooms),
        );
        line(
            "lectern_messages_in_total",
            "counter",
            "Frames received from clients.",
            c(&self.messages_in),
        );
        line(
            "lectern_messages_out_total",
            "counter",
            "Frames queued to clients.",
            c(&self.messages_out),
        );
        line(
            "lectern_queue_drops_total",
            "counter",
            "Connections closed because their send queue overflowed.",
            c(&self.queue_drops),
        );
        line(
            "lectern_frames_rejected_total",
            "counter",
            "Client frames refused at the edge (malformed, oversize, rate limited).",
            c(&self.frames_rejected),
        );
        line(
            "lectern_events_stored_total",
            "counter",
            "Room events written to storage.",
            c(&self.events_stored),
        );
        line(
            "lectern_storage_errors_total",
            "counter",
            "Failed storage batches.",
            c(&self.storage_errors),
        );
        line(
            "lectern_grading_delivered_total",
            "counter",
            "Participation events delivered to grading sinks.",
            c(&self.grading_delivered),
        );
        line(
            "lectern_grading_failures_total",
            "counter",
            "Failed delivery requests to grading sinks (retried).",
            c(&self.grading_failures),
        );
        line(
            "lectern_grading_dead_total",
            "counter",
            "Participation events dead-lettered after the retry schedule.",
            c(&self.grading_dead),
        );
        line(
            "lectern_joins_refused_total",
            "counter",
            "WebSocket upgrades refused.",
            c(&self.joins_refused),
        );
        line(
            "lectern_peer_connections",
            "gauge",
            "Open WebRTC peer connections.",
            g(&self.peer_connections),
        );
        line(
            "lectern_peer_connections_failed_total",
            "counter",
            "Peer connections that reached the failed state.",
            c(&self.peer_connections_failed),
        );
        line(
            "lectern_publications",
            "gauge",
            "Media tracks being published.",
            g(&self.publications),
        );
        line(
            "lectern_rtp_forwarded_total",
            "counter",
            "RTP packets queued to subscribers.",
            c(&self.rtp_forwarded),
        );
        line(
            "lectern_rtp_dropped_total",
            "counter",
            "RTP packets dropped because a subscriber's queue was full.",
            c(&self.rtp_dropped),
        );
        line(
            "lectern_keyframe_requests_sent_total",
            "counter",
            "Keyframe requests sent to publishers.",
            c(&self.keyframe_requests_sent),
        );
        line(
            "lectern_keyframe_requests_suppressed_total",
            "counter",
            "Keyframe requests held back by the per-track rate limit.",
            c(&self.keyframe_requests_suppressed),
        );
        line(
            "lectern_recordings",
            "gauge",
            "Recordings being written.",
            g(&self.recordings),
        );
        line(
            "lectern_recording_frames_total",
            "counter",
            "Frames written to recording files (Opus packets, whole VP8 frames).",
            c(&self.recording_frames),
        );
        line(
            "lectern_recording_packets_dropped_total",
            "counter",
            "Packets not recorded because a recording's queue was full.",
            c(&self.recording_packets_dropped),
        );
        line(
            "lectern_recording_failures_total",
            "counter",
            "Recordings stopped by a full disk or a failed write.",
            c(&self.recording_failures),
        );
        self.store_commit.render(
            &mut out,
            "lectern_store_commit_seconds",
            "Time rooms waited for a batch of events to be stored before sending it.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        for ms in [0, 3, 3, 40, 2000] {
            m.store_commit.observe(Duration::from_millis(ms));
        }
        let text = m.render();
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{key} missing"))
                .to_string()
        };
        let name = "lectern_store_commit_seconds";
        assert_eq!(get(&format!("{name}_bucket{{le=\"0.001\"}}")), "1");
        assert_eq!(get(&format!("{name}_bucket{{le=\"0.0025\"}}")), "1");
        assert_eq!(get(&format!("{name}_bucket{{le=\"0.005\"}}")), "3");
        assert_eq!(get(&format!("{name}_bucket{{le=\"0.05\"}}")), "4");
        assert_eq!(get(&format!("{name}_bucket{{le=\"1\"}}")), "4");
        assert_eq!(get(&format!("{name}_bucket{{le=\"+Inf\"}}")), "5");
        assert_eq!(get(&format!("{name}_count")), "5");
        assert_eq!(get(&format!("{name}_sum")), "2.046");
        assert!(text.contains(&format!("# TYPE {name} histogram")));
    }
}
