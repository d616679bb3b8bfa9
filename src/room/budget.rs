//! A server-wide allowance for bulk storage work that can wait, shared by
//! every room: ending grace periods after a mass drop. Every room sends
//! only what is stored, and storage has one writer, so thousands of leaves
//! written at once would hold up every room's chat and questions.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket: `per_sec` a second, holding at most one second's worth.
#[derive(Debug)]
pub struct Budget {
    per_sec: f64,
    state: Mutex<(Instant, f64)>,
}

impl Budget {
    /// Starts full.
    pub fn new(per_sec: u32, now: Instant) -> Budget {
        Budget {
            per_sec: per_sec as f64,
            state: Mutex::new((now, per_sec as f64)),
        }
    }

    /// Takes up to `want`; returns how many were granted (maybe 0).
    pub fn take(&self, want: usize, now: Instant) -> usize {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(s.0).as_secs_f64();
        let tokens = (s.1 + elapsed * self.per_sec).min(self.per_sec);
        let granted = (tokens.floor() as usize).min(want);
        *s = (s.0.max(now), tokens - granted as f64);
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grants_a_second_s_worth_then_refills_with_time() {
        let t0 = Instant::now();
        let b = Budget::new(1000, t0);
        assert_eq!(b.take(300, t0), 300);
        assert_eq!(b.take(5000, t0), 700, "the rest of the second");
        assert_eq!(b.take(10, t0), 0, "empty");
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(b.take(5000, t1), 250, "a quarter second refills a quarter");
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.take(5000, t2), 1000, "never more than a second's worth");
        assert_eq!(b.take(0, t2), 0);
    }
}
