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
        out
    }
}
