//! Simulcast layers: ranking them, and finding keyframes to switch on.

/// What a subscriber asks for when a publisher sends several layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Low,
    Medium,
    High,
}

impl Quality {
    pub fn as_u8(self) -> u8 {
        match self {
            Quality::Low => 0,
            Quality::Medium => 1,
            Quality::High => 2,
        }
    }
    pub fn from_u8(v: u8) -> Quality {
        match v {
            0 => Quality::Low,
            1 => Quality::Medium,
            _ => Quality::High,
        }
    }
}

/// Orders a layer by its RID. Browsers and SDKs name layers in a few common
/// ways (`q`/`h`/`f`, `low`/`mid`/`high`, `l`/`m`/`h`, `0`/`1`/`2`);
/// unknown names rank by arrival (`fallback`).
pub fn rank(rid: &str, fallback: u8) -> u8 {
    match rid.to_ascii_lowercase().as_str() {
        "q" | "quarter" | "low" | "l" | "0" => 0,
        "h" | "half" | "mid" | "medium" | "m" | "1" => 1,
        "f" | "full" | "high" | "2" => 2,
        _ => fallback,
    }
}

/// Picks the layer index for a quality from layers sorted low → high.
pub fn pick(layers: usize, quality: Quality) -> Option<usize> {
    match (layers, quality) {
        (0, _) => None,
        (_, Quality::Low) => Some(0),
        (n, Quality::High) => Some(n - 1),
        (n, Quality::Medium) => Some((n - 1).div_ceil(2).min(n - 1)),
    }
}

/// Whether an RTP payload starts a keyframe, so a layer switch can happen
/// there without a broken picture. Unknown codecs switch at once.
pub fn is_keyframe(mime: &str, payload: &[u8]) -> bool {
    if mime.eq_ignore_ascii_case("video/vp8") {
        vp8_keyframe(payload)
    } else if mime.eq_ignore_ascii_case("video/h264") {
        h264_keyframe(payload)
    } else {
        true
    }
}

/// RFC 7741: the payload descriptor, then (at a partition start) the VP8
/// frame header, whose lowest bit is 0 for a key frame.
fn vp8_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    if !start {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID / KEYIDX
        }
    }
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// RFC 6184: an IDR or SPS NAL unit, alone, in a STAP-A, or starting a FU-A.
fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if matches!(p[i + 2] & 0x1f, 5 | 7) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && matches!(h & 0x1f, 5 | 7)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_common_rid_names() {
        assert_eq!(rank("q", 9), 0);
        assert_eq!(rank("h", 9), 1);
        assert_eq!(rank("f", 9), 2);
        assert_eq!(rank("HIGH", 9), 2);
        assert_eq!(rank("x", 7), 7);
        assert_eq!(pick(3, Quality::Low), Some(0));
        assert_eq!(pick(3, Quality::Medium), Some(1));
        assert_eq!(pick(3, Quality::High), Some(2));
        assert_eq!(pick(2, Quality::Medium), Some(1));
        assert_eq!(pick(1, Quality::Low), Some(0));
        assert_eq!(pick(0, Quality::High), None);
    }

    #[test]
    fn finds_vp8_and_h264_keyframes() {
        assert!(vp8_keyframe(&[0x10, 0x00, 0x9d]));
        assert!(!vp8_keyframe(&[0x10, 0x01]), "inter frame");
        assert!(!vp8_keyframe(&[0x00, 0x00]), "not a partition start");
        // X=1, I=1 with a 15-bit picture id, then the frame header.
        assert!(vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x00]));
        assert!(!vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x01]));
        assert!(h264_keyframe(&[0x65, 0x88]));
        assert!(h264_keyframe(&[
            0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce
        ]));
        assert!(h264_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!h264_keyframe(&[0x41, 0x9a]));
    }
}
