//! Who is speaking, from RFC 6464 audio levels in the publishers' packets.
//!
//! Levels are averaged over short windows; a member starts speaking when a
//! window is loud and stops when one is quiet, with hysteresis so a pause
//! between words does not flap. At most one change per window per track.

use std::time::{Duration, Instant};

/// Length of one averaging window (so at most four changes a second).
pub const WINDOW: Duration = Duration::from_millis(250);
/// Average level (−dBov, 0 loudest, 127 silence) at or below which speech starts…
const START_AT: u32 = 50;
/// …and at or above which it stops.
const STOP_AT: u32 = 65;

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    window_start: Option<Instant>,
    sum: u32,
    n: u32,
    speaking: bool,
}

impl SpeakerDetector {
    /// Feeds one packet's level; returns the new state when it changes.
    pub fn observe(&mut self, level: u8, now: Instant) -> Option<bool> {
        let start = *self.window_start.get_or_insert(now);
        self.sum += u32::from(level.min(127));
        self.n += 1;
        if now.duration_since(start) < WINDOW {
            return None;
        }
        let avg = self.sum / self.n.max(1);
        self.window_start = Some(now);
        self.sum = 0;
        self.n = 0;
        let next = if self.speaking {
            avg < STOP_AT
        } else {
            avg <= START_AT
        };
        if next != self.speaking {
            self.speaking = next;
            Some(next)
        } else {
            None
        }
    }

    pub fn speaking(&self) -> bool {
        self.speaking
    }
}

/// The level (0–127, −dBov) in a one-byte audio-level extension payload.
pub fn level_of(payload: &[u8]) -> Option<u8> {
    payload.first().map(|b| b & 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_windows_start_speech_and_quiet_ones_stop_it() {
        let mut d = SpeakerDetector::default();
        let t0 = Instant::now();
        let mut changes = Vec::new();
        // 20 ms packets: 1 s of speech at -30 dBov, then 1 s of silence.
        for i in 0..100u64 {
            let level = if i < 50 { 30 } else { 127 };
            if let Some(c) = d.observe(level, t0 + Duration::from_millis(i * 20)) {
                changes.push((i, c));
            }
        }
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            changes[0].1 && changes[0].0 <= 13,
            "starts within a window: {changes:?}"
        );
        assert!(
            !changes[1].1 && changes[1].0 >= 50 && changes[1].0 <= 66,
            "{changes:?}"
        );
    }

    #[test]
    fn a_short_pause_does_not_flap() {
        let mut d = SpeakerDetector::default();
        let t0 = Instant::now();
        let mut changes = 0;
        for i in 0..100u64 {
            // Mostly speech with one quiet packet in five.
            let level = if i % 5 == 0 { 127 } else { 35 };
            if d.observe(level, t0 + Duration::from_millis(i * 20))
                .is_some()
            {
                changes += 1;
            }
        }
        assert_eq!(changes, 1);
        assert!(d.speaking());
        assert_eq!(level_of(&[0x80 | 42]), Some(42));
    }
}
