//! Delivery of the outbox: one worker per sink sends each session's pending
//! events in order, a batch at a time, retries failures on a backoff
//! schedule with jitter (seconds, then minutes, then hours, for at least
//! 24 hours, honouring `Retry-After`), then dead-letters them. State lives in
//! the `deliveries` table, so a restart (even after `kill -9`) carries on
//! where it stopped: an event is delivered at least once, and a repeat has
//! the same id.

use crate::protocol::Timestamp;
use crate::store::{DeliveryRow, DynStore};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Events sent in one request at most.
pub const BATCH: usize = 50;

/// Why a send failed, and when the receiver asked us to come back.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// A receiver of participation events.
#[async_trait]
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    /// Sends some consecutive events of one session (JSON bodies, in order).
    async fn send(&self, session: &str, events: &[DeliveryRow]) -> Result<(), SendError>;
}

/// Delay before retry number `attempt` (1 = the first retry), before jitter:
/// 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, then every 6 h.
pub fn backoff(attempt: u32) -> Duration {
    const STEPS: [u64; 8] = [5, 30, 120, 600, 1800, 3600, 7200, 14400];
    Duration::from_secs(
        STEPS
            .get(attempt.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(21600),
    )
}

/// How long after the first attempt an event is given up (dead-lettered).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(26 * 3600);

/// When to try again after a failure, or `None` to dead-letter: the
/// schedule's delay with ±20 % jitter, or the receiver's `Retry-After` when
/// it asks for longer.
/// `scale` shrinks or stretches the whole schedule (1.0 in production; the
/// tests use a small one).
pub fn next_attempt(
    attempts_after_this: u32,
    first_attempt: Timestamp,
    now: Timestamp,
    retry_after: Option<Duration>,
    jitter: f64,
    scale: f64,
) -> Option<Timestamp> {
    let elapsed = (now.millis() - first_attempt.millis()).max(0) as f64 / 1000.0;
    if elapsed >= GIVE_UP_AFTER.as_secs_f64() * scale {
        return None;
    }
    let base =
        backoff(attempts_after_this).as_secs_f64() * scale * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
    let wait = retry_after.map_or(base, |r| r.as_secs_f64().max(base));
    Some(Timestamp(now.millis() + (wait * 1000.0) as i64))
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_le_bytes(b) as f64 / u16::MAX as f64
}

/// Runs one sink's delivery until shutdown. `wake` is notified when new
/// events are stored.
pub async fn run(
    store: DynStore,
    sink: Arc<dyn Sink>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    metrics: Arc<crate::http::metrics::Metrics>,
    scale: f64,
) {
    let name = sink.name().to_string();
    loop {
        let wait = match round(&store, sink.as_ref(), &metrics, scale).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(sink = %name, "delivery: {e}");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass: sends every session's due events (a batch per session), and
/// returns how long to sleep before the next pass if nothing wakes us.
async fn round(
    store: &DynStore,
    sink: &dyn Sink,
    metrics: &crate::http::metrics::Metrics,
    scale: f64,
) -> Result<Duration, crate::store::StoreError> {
    use std::sync::atomic::Ordering;
    let name = sink.name();
    let now = Timestamp::now();
    let pending = store.pending_deliveries(name, now, BATCH as u32).await?;
    let mut by_session: BTreeMap<String, Vec<DeliveryRow>> = BTreeMap::new();
    for r in pending {
        by_session.entry(r.session_id.clone()).or_default().push(r);
    }
    let mut sleep = Duration::from_secs(30);
    if by_session.is_empty() {
        // Nothing due: sleep until the earliest retry (or a wake-up).
        if let Some(next) = store.next_delivery_due(name).await? {
            let ms = (next.millis() - now.millis()).max(0) as u64;
            sleep = sleep.min(Duration::from_millis(ms));
        }
    }
    for (session, rows) in by_session {
        // The head was due when read; newer events behind it go along (a
        // retry batch carries what arrived since, still in order).
        let batch = rows;
        let seqs: Vec<u64> = batch.iter().map(|r| r.seq).collect();
        let at = Timestamp::now();
        match sink.send(&session, &batch).await {
            Ok(()) => {
                store.deliveries_done(name, &session, &seqs, at).await?;
                metrics
                    .grading_delivered
                    .fetch_add(seqs.len() as u64, Ordering::Relaxed);
                // More may be waiting behind this batch: go again soon.
                sleep = Duration::ZERO;
            }
            Err(e) => {
                let attempts = batch.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
                let next = next_attempt(attempts, at, at, e.retry_after, jitter(), scale)
                    .expect("a first attempt is never given up");
                // Each event is given up on its own clock: an event that joined
                // a long-failing batch recently still gets its full 26 hours.
                let give_up_ms = (GIVE_UP_AFTER.as_secs_f64() * scale * 1000.0) as i64;
                let (dead, retry): (Vec<&DeliveryRow>, Vec<&DeliveryRow>) =
                    batch.iter().partition(|r| {
                        r.first_attempt_at
                            .is_some_and(|f| at.millis() - f.millis() >= give_up_ms)
                    });
                let dead: Vec<u64> = dead.iter().map(|r| r.seq).collect();
                let retry: Vec<u64> = retry.iter().map(|r| r.seq).collect();
                tracing::warn!(
                    sink = name, session = %session, events = seqs.len(), attempts,
                    retry_at = %next.to_rfc3339(), "delivery failed: {}", e.message
                );
                metrics.grading_failures.fetch_add(1, Ordering::Relaxed);
                if !dead.is_empty() {
                    metrics
                        .grading_dead
                        .fetch_add(dead.len() as u64, Ordering::Relaxed);
                    tracing::error!(sink = name, session = %session, "dead-lettered {} events after retrying for 26 h", dead.len());
                    store
                        .deliveries_failed(name, &session, &dead, at, None, &e.message)
                        .await?;
                    sleep = Duration::ZERO;
                }
                if !retry.is_empty() {
                    store
                        .deliveries_failed(name, &session, &retry, at, Some(next), &e.message)
                        .await?;
                    let d = (next.millis() - at.millis()).max(0) as u64;
                    sleep = sleep.min(Duration::from_millis(d));
                }
            }
        }
    }
    Ok(sleep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_climbs_from_seconds_to_hours_and_gives_up_after_a_day() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(4), Duration::from_secs(600));
        assert_eq!(backoff(8), Duration::from_secs(14400));
        assert_eq!(backoff(30), Duration::from_secs(21600));
        // The delays alone add up to more than 24 hours before giving up.
        let total: u64 = (1..=12).map(|a| backoff(a).as_secs()).sum();
        assert!(total >= 24 * 3600, "{total}");
        let t0 = Timestamp(1_000_000);
        let now = Timestamp(t0.millis() + 10_000);
        let n = next_attempt(1, t0, now, None, 0.5, 1.0).unwrap();
        assert_eq!(n.millis() - now.millis(), 5_000);
        // Jitter stays within ±20 %.
        let lo = next_attempt(2, t0, now, None, 0.0, 1.0).unwrap();
        let hi = next_attempt(2, t0, now, None, 1.0, 1.0).unwrap();
        assert_eq!(lo.millis() - now.millis(), 24_000);
        assert_eq!(hi.millis() - now.millis(), 36_000);
        // Retry-After wins when it asks for longer, never for shorter.
        let ra = next_attempt(1, t0, now, Some(Duration::from_secs(90)), 0.5, 1.0).unwrap();
        assert_eq!(ra.millis() - now.millis(), 90_000);
        let short = next_attempt(3, t0, now, Some(Duration::from_secs(1)), 0.5, 1.0).unwrap();
        assert_eq!(short.millis() - now.millis(), 120_000);
        // A day and a bit after the first attempt: dead-letter.
        let late = Timestamp(t0.millis() + GIVE_UP_AFTER.as_millis() as i64);
        assert_eq!(next_attempt(9, t0, late, None, 0.5, 1.0), None);
        // A small scale shrinks the delays and the give-up time alike.
        let fast = next_attempt(1, t0, now, None, 0.5, 0.01).unwrap();
        assert_eq!(fast.millis() - now.millis(), 50);
        assert_eq!(
            next_attempt(2, t0, Timestamp(t0.millis() + 950_000), None, 0.5, 0.01),
            None
        );
    }
}
