//! Token buckets: one type for the per-member chat limit, the
//! per-connection frame limit, and the server-wide allowance for bulk
//! storage work that can wait (ending grace periods after a mass drop:
//! every room sends only what is stored, and storage has one writer, so
//! thousands of leaves written at once would hold up every room).

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket: `burst` at once, then `per_sec`.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: burst as f64,
            at: now,
        }
    }

    /// Refills for the time passed and tells whether one token is there.
    pub fn ready(&mut self, burst: u32, per_sec: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(burst as f64);
        self.at = self.at.max(now);
        self.tokens >= 1.0
    }

    pub fn spend(&mut self) {
        self.tokens -= 1.0;
    }

    /// Refills, then takes up to `want` whole tokens; returns how many.
    pub fn take_up_to(&mut self, want: usize, burst: u32, per_sec: f64, now: Instant) -> usize {
        self.ready(burst, per_sec, now);
        let granted = (self.tokens.max(0.0).floor() as usize).min(want);
        self.tokens -= granted as f64;
        granted
    }
}

/// A [`Bucket`] shared by every room: `per_sec` a second, holding at most
/// one second's worth.
#[derive(Debug)]
pub struct Budget {
    per_sec: u32,
    bucket: Mutex<Bucket>,
}

impl Budget {
    /// Starts full.
    pub fn new(per_sec: u32, now: Instant) -> Budget {
        Budget {
            per_sec,
            bucket: Mutex::new(Bucket::full(per_sec, now)),
        }
    }

    /// Takes up to `want`; returns how many were granted (maybe 0).
    pub fn take(&self, want: usize, now: Instant) -> usize {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.take_up_to(want, self.per_sec, self.per_sec as f64, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        for _ in 0..3 {
            assert!(b.ready(3, 1.0, t0));
            b.spend();
        }
        assert!(!b.ready(3, 1.0, t0));
        assert!(b.ready(3, 1.0, t0 + Duration::from_millis(1100)));
        b.spend();
        assert!(!b.ready(3, 1.0, t0 + Duration::from_millis(1200)));
    }

    #[test]
    fn a_budget_grants_a_second_s_worth_then_refills_with_time() {
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
        // A caller whose clock reading is a little older changes nothing.
        assert_eq!(b.take(5, t1), 0);
    }
}
