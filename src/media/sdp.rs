//! SDP text adjustments the webrtc crate does not make itself.

use std::net::IpAddr;

/// Announces `public` instead of `local` in ICE candidates and connection
/// lines (1:1 NAT: the server binds a private address that clients reach
/// through a public one). The webrtc crate has the setting but ignores it.
pub fn announce_ip(sdp: &str, local: IpAddr, public: IpAddr) -> String {
    let local = local.to_string();
    let public = public.to_string();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            },
        };
        if let Some(rest) = body.strip_prefix("a=candidate:") {
            // foundation component transport priority address port typ …
            let mut fields: Vec<&str> = rest.split(' ').collect();
            if fields.len() > 4 && fields[4] == local {
                fields[4] = &public;
            }
            out.push_str("a=candidate:");
            out.push_str(&fields.join(" "));
        } else if let Some(addr) = body
            .strip_prefix("c=IN IP4 ")
            .or_else(|| body.strip_prefix("c=IN IP6 "))
        {
            if addr == local {
                out.push_str(&body.replace(&local, &public));
            } else {
                out.push_str(body);
            }
        } else {
            out.push_str(body);
        }
        out.push_str(end);
    }
    out
}

/// Track ids of the media sections that send (from `a=msid:<stream> <track>`
/// or the older `a=ssrc:<n> msid:<stream> <track>`): a publisher's
/// renegotiated offer no longer lists a track it removed. `None` when a
/// sending section names no track id, so nothing can be concluded.
pub fn sending_track_ids(sdp: &str) -> Option<std::collections::HashSet<String>> {
    let mut ids = std::collections::HashSet::new();
    for section in sdp.split("\nm=").skip(1) {
        // Data channels carry no media track.
        if section.starts_with("application") {
            continue;
        }
        let rejected = section.split_whitespace().nth(1) == Some("0");
        let mut sends = true;
        let mut track = None;
        for line in section.lines() {
            let line = line.trim_end();
            if line == "a=recvonly" || line == "a=inactive" {
                sends = false;
            }
            let msid = line.strip_prefix("a=msid:").or_else(|| {
                line.strip_prefix("a=ssrc:")
                    .and_then(|r| r.split_once(" msid:").map(|(_, m)| m))
            });
            if let Some(t) = msid
                .and_then(|m| m.split(' ').nth(1))
                .filter(|t| !t.is_empty())
            {
                track = Some(t.to_string());
            }
        }
        if rejected || !sends {
            continue;
        }
        ids.insert(track?);
    }
    Some(ids)
}

/// Makes an identity safe as an SDP stream id (msid: 1–64 token characters).
pub fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

/// The id an SDP gives a header extension (`a=extmap:ID[/dir] URI`).
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim_end().strip_prefix("a=extmap:")?;
        let (id, rest) = rest.split_once(' ')?;
        let id = id.split('/').next()?.parse().ok()?;
        (rest.split(' ').next()? == uri).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_sending_tracks_and_makes_tokens() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=msid:s mic\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\na=msid:s cam\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=msid:s old\r\n";
        let ids = sending_track_ids(sdp).unwrap();
        assert!(
            ids.contains("mic") && !ids.contains("cam") && !ids.contains("old"),
            "{ids:?}"
        );
        let old_style = "v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=ssrc:1 msid:s mic\r\n";
        assert!(sending_track_ids(old_style).unwrap().contains("mic"));
        let with_data = "v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=msid:s mic\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert!(sending_track_ids(with_data).unwrap().contains("mic"));
        let no_id = "v=0\r\nm=audio 9 RTP/SAVPF 111\r\na=msid:s\r\n";
        assert_eq!(sending_track_ids(no_id), None);
        assert_eq!(token("王 老师"), "____");
        assert_eq!(token("t-001"), "t-001");
    }

    #[test]
    fn finds_extension_ids() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:1/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        assert_eq!(
            extmap_id(sdp, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            Some(1)
        );
        assert_eq!(extmap_id(sdp, "urn:x"), None);
    }

    #[test]
    fn rewrites_host_candidates_and_connection_lines_only() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.5\r\na=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\na=candidate:2 1 udp 1694498815 203.0.113.9 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n";
        let out = announce_ip(
            sdp,
            "10.0.0.5".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
        );
        assert_eq!(
            out,
            "v=0\r\nc=IN IP4 198.51.100.7\r\na=candidate:1 1 udp 2130706431 198.51.100.7 40000 typ host\r\na=candidate:2 1 udp 1694498815 203.0.113.9 40000 typ srflx raddr 10.0.0.5 rport 40000\r\n"
        );
    }
}
