//! Building peer connections: codecs, interceptors, sockets.
//!
//! Shared by the server and by test and load-test peers, so both ends
//! negotiate the same codecs and extensions.

use super::MediaConfig;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Instant;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, Registry, SettingEngineBuilder,
};

/// RFC 6464 client-to-mixer audio level.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Opus and VP8 (plus H.264 where both ends offer it), the audio-level
/// extension, and keyframe-request feedback.
pub fn media_engine() -> Result<MediaEngine, webrtc::error::Error> {
    let fb = |t: &str, p: &str| RTCPFeedback {
        typ: t.into(),
        parameter: p.into(),
    };
    let video_fb = vec![
        fb("goog-remb", ""),
        fb("ccm", "fir"),
        fb("nack", ""),
        fb("nack", "pli"),
    ];
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )?;
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: video_fb.clone(),
            },
            payload_type: 96,
        },
        RtpCodecKind::Video,
    )?;
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264
                    .to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                        .to_owned(),
                rtcp_feedback: video_fb,
            },
            payload_type: 125,
        },
        RtpCodecKind::Video,
    )?;
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    Ok(me)
}

/// Lets keyframe requests (PLI, FIR) through to the application, which
/// relays them to publishers; everything else stays in the interceptors.
pub struct KeyframeRequestTap {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Picks UDP ports from the configured range, round robin.
#[derive(Debug)]
pub struct PortPicker {
    min: u16,
    max: u16,
    next: AtomicU16,
}

impl PortPicker {
    pub fn new(min: u16, max: u16) -> PortPicker {
        PortPicker {
            min,
            max,
            next: AtomicU16::new(min),
        }
    }

    /// The next port to try; 0 (any free port) when no range is configured.
    fn next(&self) -> u16 {
        if self.min == 0 || self.max < self.min {
            return 0;
        }
        let span = self.max - self.min + 1;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.min + (n.wrapping_sub(self.min)) % span
    }

    fn span(&self) -> u16 {
        if self.min == 0 || self.max < self.min {
            1
        } else {
            self.max - self.min + 1
        }
    }
}

/// Builds a peer connection bound to one UDP socket on `cfg.bind_ip`, on a
/// port from the configured range when there is one.
pub async fn peer_connection(
    cfg: &MediaConfig,
    ports: &PortPicker,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, webrtc::error::Error> {
    let mut last_err = None;
    // Try each port of the range at most once; a port in use fails to bind.
    for _ in 0..ports.span().min(64) {
        let addr = SocketAddr::new(cfg.bind_ip, ports.next());
        let mut me = media_engine()?;
        let registry = register_default_interceptors(Registry::new(), &mut me)?.with(
            Slot::from(14_000),
            KeyframeRequestTap {
                read_queue: VecDeque::new(),
                write_queue: VecDeque::new(),
            },
        );
        let se = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        // No STUN/TURN for the server itself: it is reachable at its own (or
        // its announced) address, and an unreachable server would stall
        // gathering. `cfg.ice_servers` are for clients (sent in `welcome`).
        let config = RTCConfigurationBuilder::new().build();
        match PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_setting_engine(se)
            .with_handler(handler.clone())
            .with_udp_addrs(vec![addr])
            .build()
            .await
        {
            Ok(pc) => return Ok(Arc::new(pc)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.expect("at least one attempt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_cycle_through_the_range() {
        let p = PortPicker::new(40000, 40002);
        let got: Vec<u16> = (0..5).map(|_| p.next()).collect();
        assert_eq!(got, [40000, 40001, 40002, 40000, 40001]);
        assert_eq!(PortPicker::new(0, 0).next(), 0);
    }
}
