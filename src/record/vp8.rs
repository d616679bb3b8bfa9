//! VP8 frames from RTP packets (RFC 7741): strip each packet's payload
//! descriptor, join the partitions of a frame, and end the frame at the
//! packet with the marker bit. Lost packets drop the frame they belong to,
//! and everything up to the next keyframe (a decoder could not use it).

/// A whole VP8 frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub rtp_timestamp: u32,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// A packet this far behind the expected sequence number or less is late;
/// one further away means the stream jumped (and is taken as a gap).
const LATE_WINDOW: u16 = 1000;

/// Reassembles frames from the packets of one VP8 stream.
#[derive(Debug, Default)]
pub struct Depacketizer {
    buf: Vec<u8>,
    ts: Option<u32>,
    next_seq: Option<u16>,
    /// A packet of the current frame was lost.
    broken: bool,
    /// Since a loss, wait for a keyframe.
    need_keyframe: bool,
    started: bool,
}

/// The payload after the descriptor, and whether it starts a frame.
fn strip_descriptor(p: &[u8]) -> Option<(&[u8], bool)> {
    let first = *p.first()?;
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0 && first & 0x0F == 0;
    let mut i = 1;
    if extended {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let m = *p.get(i)? & 0x80 != 0;
            i += if m { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID / KEYIDX
        }
    }
    (i <= p.len()).then(|| (&p[i..], start))
}

impl Depacketizer {
    /// A depacketizer that waits for a keyframe before it gives out frames.
    pub fn after_gap() -> Depacketizer {
        Depacketizer {
            need_keyframe: true,
            ..Depacketizer::default()
        }
    }

    /// Frames are being dropped until the next keyframe (after a loss, or
    /// from [`Depacketizer::after_gap`]).
    pub fn waiting_for_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// Feeds one packet; returns a frame when this packet completes one.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Frame> {
        if let Some(expected) = self.next_seq {
            let behind = expected.wrapping_sub(seq);
            if behind != 0 && behind <= LATE_WINDOW {
                // Late (reordered, or resent after a NACK): its frame was
                // already given up when the gap was seen.
                return None;
            }
            if seq != expected {
                // A gap: the frame being built is lost, and so is
                // everything until a keyframe.
                self.broken = true;
                self.need_keyframe = true;
            }
        }
        self.next_seq = Some(seq.wrapping_add(1));
        if payload.is_empty() {
            // Padding only (bandwidth probing): it takes a sequence number,
            // so it is no gap, and carries nothing.
            return None;
        }
        let (data, start) = strip_descriptor(payload)?;
        if start || self.ts != Some(timestamp) {
            self.buf.clear();
            self.ts = Some(timestamp);
            self.broken = !start;
            self.started = start;
        }
        if !self.started {
            return None;
        }
        self.buf.extend_from_slice(data);
        if !marker {
            return None;
        }
        let complete = !self.broken && !self.buf.is_empty();
        let keyframe = self.buf.first().is_some_and(|b| b & 0x01 == 0);
        let data = std::mem::take(&mut self.buf);
        self.started = false;
        if !complete {
            return None;
        }
        if self.need_keyframe && !keyframe {
            return None;
        }
        self.need_keyframe = false;
        Some(Frame {
            rtp_timestamp: timestamp,
            keyframe,
            data,
        })
    }
}

/// Width and height from a keyframe's header (RFC 6386 §9.1).
pub fn dimensions(keyframe: &[u8]) -> Option<(u16, u16)> {
    if keyframe.len() < 10 || keyframe[0] & 0x01 != 0 || keyframe[3..6] != [0x9D, 0x01, 0x2A] {
        return None;
    }
    let w = u16::from_le_bytes([keyframe[6], keyframe[7]]) & 0x3FFF;
    let h = u16::from_le_bytes([keyframe[8], keyframe[9]]) & 0x3FFF;
    Some((w, h))
}

/// Extends 32-bit RTP timestamps to 64 bits across wrap-arounds.
#[derive(Debug, Default)]
pub struct Unwrapper {
    last: Option<(u32, i64)>,
}

impl Unwrapper {
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let v = match self.last {
            None => ts as i64,
            Some((prev, ext)) => ext + (ts.wrapping_sub(prev) as i32) as i64,
        };
        self.last = Some((ts, v));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe header for 640×360 followed by `n` bytes.
    fn keyframe(n: usize) -> Vec<u8> {
        let mut f = vec![0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A];
        f.extend(640u16.to_le_bytes());
        f.extend(360u16.to_le_bytes());
        f.resize(10 + n, 0xAB);
        f
    }

    /// Splits a frame into packets with a short descriptor (S bit on the first).
    fn packets(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        frame
            .chunks(mtu)
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(c);
                p
            })
            .collect()
    }

    #[test]
    fn frames_are_reassembled_and_keyframes_read() {
        let kf = keyframe(3000);
        assert_eq!(dimensions(&kf), Some((640, 360)));
        let mut d = Depacketizer::default();
        let ps = packets(&kf, 1200);
        let n = ps.len();
        let mut out = None;
        for (i, p) in ps.iter().enumerate() {
            out = d.push(100 + i as u16, 9000, i == n - 1, p);
        }
        let f = out.expect("a frame");
        assert!(f.keyframe);
        assert_eq!(f.data, kf);
        // An interframe (bit 0 set) right after.
        let inter = vec![0x01, 1, 2, 3];
        let f = d
            .push(100 + n as u16, 12000, true, &packets(&inter, 1200)[0])
            .unwrap();
        assert!(!f.keyframe);
    }

    #[test]
    fn a_lost_packet_drops_frames_until_the_next_keyframe() {
        let mut d = Depacketizer::default();
        let big = vec![0x01; 2000];
        let ps = packets(&big, 1200);
        assert!(d.push(1, 100, false, &ps[0]).is_none());
        // Packet 2 lost; 3 ends the frame: nothing comes out.
        assert!(d.push(3, 100, true, &ps[1]).is_none());
        // A whole interframe after the loss is useless without a keyframe.
        assert!(d
            .push(4, 200, true, &packets(&[0x01, 9], 1200)[0])
            .is_none());
        assert!(d.waiting_for_keyframe());
        let kf = keyframe(10);
        let f = d.push(5, 300, true, &packets(&kf, 1200)[0]).unwrap();
        assert!(f.keyframe);
        assert!(!d.waiting_for_keyframe());
    }

    #[test]
    fn padding_packets_are_no_loss_and_late_packets_are_ignored() {
        let mut d = Depacketizer::default();
        let kf = keyframe(10);
        assert!(
            d.push(1, 100, true, &packets(&kf, 1200)[0])
                .unwrap()
                .keyframe
        );
        // Two padding-only packets (empty once their padding is stripped).
        assert!(d.push(2, 100, false, &[]).is_none());
        assert!(d.push(3, 100, false, &[]).is_none());
        let f = d.push(4, 200, true, &packets(&[0x01, 9], 1200)[0]).unwrap();
        assert!(!f.keyframe, "the interframe after padding is kept");
        // Packet 1 again (a resend) changes nothing.
        assert!(d.push(1, 100, true, &packets(&kf, 1200)[0]).is_none());
        assert!(!d.waiting_for_keyframe());
        let f = d.push(5, 300, true, &packets(&[0x01, 8], 1200)[0]).unwrap();
        assert_eq!(f.rtp_timestamp, 300);
    }

    #[test]
    fn a_stream_that_jumps_far_back_goes_on_from_its_next_keyframe() {
        let mut d = Depacketizer::default();
        let kf = keyframe(10);
        assert!(d.push(40_000, 100, true, &packets(&kf, 1200)[0]).is_some());
        // 30,000 back is no late packet: a jump, then a keyframe again.
        assert!(d
            .push(10_000, 200, true, &packets(&[0x01, 9], 1200)[0])
            .is_none());
        assert!(d.waiting_for_keyframe());
        assert!(
            d.push(10_001, 300, true, &packets(&kf, 1200)[0])
                .unwrap()
                .keyframe
        );
    }

    #[test]
    fn extended_descriptors_are_skipped() {
        // X=1, S=1; I=1 with a 15-bit picture id; L=1; T=1.
        let p = [0x90, 0xE0, 0x80, 0x01, 0x05, 0x20, 0x01, 7, 7];
        let (data, start) = strip_descriptor(&p).unwrap();
        assert!(start);
        assert_eq!(data, &[0x01, 7, 7]);
    }

    #[test]
    fn timestamps_unwrap_across_the_32_bit_edge() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), (u32::MAX - 10) as i64);
        assert_eq!(u.unwrap(5), u32::MAX as i64 + 6);
        assert_eq!(u.unwrap(3), u32::MAX as i64 + 4, "a late packet goes back");
    }
}
