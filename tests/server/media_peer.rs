//! A test media peer built on the same webrtc crate: publishes generated
//! Opus and VP8 RTP, or receives the server's offer and records packets.

use crate::common::TestClient;
use lectern::media::engine::{peer_connection, PortPicker};
use lectern::media::MediaConfig;
use lectern::protocol::{ClientMsg, TrackSource};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState};

/// What a receiving peer has seen, per (owner, mime type).
#[derive(Default)]
pub struct Received {
    pub packets: Mutex<HashMap<(String, String), u64>>,
    /// Remote tracks, to send keyframe requests on.
    pub tracks: Mutex<Vec<Arc<dyn TrackRemote>>>,
    /// Video packets per simulcast layer (the third payload byte of
    /// `publish_simulcast`'s packets), and their sequence numbers.
    pub layers: Mutex<HashMap<u8, u64>>,
    pub video_seqs: Mutex<Vec<u16>>,
}

impl Received {
    pub fn count(&self, owner: &str, mime: &str) -> u64 {
        let p = self.packets.lock().unwrap();
        p.iter()
            .filter(|((o, m), _)| o == owner && m.eq_ignore_ascii_case(mime))
            .map(|(_, n)| *n)
            .sum()
    }
    pub fn total(&self) -> u64 {
        self.packets.lock().unwrap().values().sum()
    }
}

struct Handler {
    gathered: watch::Sender<bool>,
    received: Arc<Received>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        tokio::spawn(async move {
            let owner = track.stream_id().await;
            let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
            let mime = track
                .codec(ssrc)
                .await
                .map(|c| c.mime_type)
                .unwrap_or_default();
            received.tracks.lock().unwrap().push(track.clone());
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        *received
                            .packets
                            .lock()
                            .unwrap()
                            .entry((owner.clone(), mime.clone()))
                            .or_default() += 1;
                        if mime.eq_ignore_ascii_case("video/vp8") {
                            if let Some(layer) = p.payload.get(2) {
                                *received.layers.lock().unwrap().entry(*layer).or_default() += 1;
                            }
                            received
                                .video_seqs
                                .lock()
                                .unwrap()
                                .push(p.header.sequence_number);
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    pub received: Arc<Received>,
}

impl Peer {
    pub async fn new() -> Peer {
        let (tx, rx) = watch::channel(false);
        let received = Arc::new(Received::default());
        let handler = Arc::new(Handler {
            gathered: tx,
            received: received.clone(),
        });
        let pc = peer_connection(&MediaConfig::default(), &PortPicker::new(0, 0), handler)
            .await
            .expect("test peer connection");
        Peer {
            pc,
            gathered: rx,
            received,
        }
    }

    async fn local_sdp(&mut self) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.wait_for(|d| *d)).await;
        self.pc
            .local_description()
            .await
            .expect("local description")
            .sdp
    }

    /// Answers one `media_offer` from the server on `client`.
    pub async fn answer_next_offer(&mut self, client: &mut TestClient) {
        let offer = client.wait_type("media_offer").await;
        self.answer(client, offer).await;
    }

    /// Keeps answering offers (renegotiations) until `done` holds.
    pub async fn answer_offers_until(
        &mut self,
        client: &mut TestClient,
        secs: u64,
        what: &str,
        done: impl Fn() -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            if let Some(offer) = client
                .try_wait_type("media_offer", Duration::from_millis(200))
                .await
            {
                self.answer(client, offer).await;
            }
        }
    }

    async fn answer(&mut self, client: &mut TestClient, offer: serde_json::Value) {
        let sdp = offer["sdp"].as_str().unwrap().to_string();
        self.pc
            .set_remote_description(RTCSessionDescription::offer(sdp).unwrap())
            .await
            .expect("server offer applies");
        let answer = self.pc.create_answer(None).await.unwrap();
        self.pc.set_local_description(answer).await.unwrap();
        let sdp = self.local_sdp().await;
        client
            .request(ClientMsg::MediaAnswer { sdp })
            .await
            .expect("answer accepted");
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// A publishing peer sending generated audio and video until dropped.
pub struct Publisher {
    /// Kept so the connection lives as long as the publisher.
    _peer: Peer,
    running: Arc<AtomicBool>,
    /// Keyframe requests that reached this publisher.
    pub keyframe_requests: Arc<AtomicU64>,
    /// The audio level (RFC 6464, −dBov) stamped on audio packets; 127 is silence.
    pub level: Arc<std::sync::atomic::AtomicU8>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

fn local_track(
    kind: RtpCodecKind,
    mime: &str,
    rate: u32,
    channels: u16,
    ssrc: u32,
    id: &str,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "publisher".into(),
        id.into(),
        id.into(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: mime.into(),
                clock_rate: rate,
                channels,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    )))
}

/// Publishes microphone audio and (unless `audio_only`) camera video.
/// Returns the server's answer error code instead when publishing is refused.
pub async fn publish(client: &mut TestClient, video: bool) -> Result<Publisher, String> {
    publish_with(client, video, false).await
}

/// Publishes from a new peer connection, replacing any earlier one when `reset`.
pub async fn publish_with(
    client: &mut TestClient,
    video: bool,
    reset: bool,
) -> Result<Publisher, String> {
    let mut peer = Peer::new().await;
    let audio = local_track(
        RtpCodecKind::Audio,
        MIME_TYPE_OPUS,
        48000,
        2,
        0x1111_0000 + rand_u16() as u32,
        "mic",
    );
    let a_sender = peer
        .pc
        .add_track(audio.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let mut tracks = vec![(audio.clone(), a_sender, 960u32, 20u64)];
    let mut sources = vec![("mic", TrackSource::Microphone)];
    if video {
        let cam = local_track(
            RtpCodecKind::Video,
            MIME_TYPE_VP8,
            90000,
            0,
            0x2222_0000 + rand_u16() as u32,
            "cam",
        );
        let v_sender = peer
            .pc
            .add_track(cam.clone() as Arc<dyn TrackLocal>)
            .await
            .unwrap();
        tracks.push((cam, v_sender, 3000, 33));
        sources.push(("cam", TrackSource::Camera));
    }
    let offer = peer.pc.create_offer(None).await.unwrap();
    peer.pc.set_local_description(offer).await.unwrap();
    let sdp = peer.local_sdp().await;
    let answer = client
        .request(ClientMsg::MediaPublish {
            sdp,
            sources: lectern::media::source_map(&sources),
            reset,
        })
        .await;
    let answer = match answer {
        Ok(v) => v["sdp"].as_str().unwrap().to_string(),
        Err(code) => {
            peer.close().await;
            return Err(code);
        }
    };
    peer.pc
        .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .expect("server answer applies");
    let running = Arc::new(AtomicBool::new(true));
    let keyframe_requests = Arc::new(AtomicU64::new(0));
    let level = Arc::new(std::sync::atomic::AtomicU8::new(127));
    for (track, sender, ts_step, every_ms) in tracks {
        let running = running.clone();
        let kf = keyframe_requests.clone();
        let level = level.clone();
        let listener = track.clone();
        tokio::spawn(async move {
            while let Some(ev) = listener.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(pkts) = ev {
                    let n = pkts
                        .iter()
                        .filter(|p| p.as_any().is::<PictureLossIndication>())
                        .count();
                    kf.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        });
        tokio::spawn(async move {
            let ssrc = track.ssrcs().await[0];
            let mut seq: u16 = 0;
            let mut pt = 0;
            let mut level_id = None;
            while running.load(Ordering::Relaxed) {
                if pt == 0 {
                    if let Ok(p) = sender.get_parameters().await {
                        pt = p
                            .rtp_parameters
                            .codecs
                            .first()
                            .map(|c| c.payload_type)
                            .unwrap_or(0);
                        level_id = p
                            .rtp_parameters
                            .header_extensions
                            .iter()
                            .find(|e| e.uri == lectern::media::engine::AUDIO_LEVEL_URI)
                            .map(|e| e.id as u8);
                    }
                }
                if pt != 0 {
                    let mut pkt = rtc::rtp::packet::Packet {
                        header: rtc::rtp::header::Header {
                            version: 2,
                            payload_type: pt,
                            sequence_number: seq,
                            timestamp: seq as u32 * ts_step,
                            ssrc,
                            marker: true,
                            ..Default::default()
                        },
                        payload: bytes::Bytes::from(vec![0x90u8; 200]),
                    };
                    if let (Some(id), true) = (level_id, ts_step == 960) {
                        let l = level.load(Ordering::Relaxed);
                        let _ = pkt
                            .header
                            .set_extension(id, bytes::Bytes::from(vec![0x80 | l]));
                    }
                    if track.write_rtp(pkt).await.is_err() {
                        break;
                    }
                    seq = seq.wrapping_add(1);
                }
                tokio::time::sleep(Duration::from_millis(every_ms)).await;
            }
        });
    }
    Ok(Publisher {
        _peer: peer,
        running,
        keyframe_requests,
        level,
    })
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).unwrap();
    u16::from_be_bytes(b)
}

/// Subscribes `client` and answers the first offer.
pub async fn subscribe(client: &mut TestClient, audio_only: bool) -> Peer {
    let mut peer = Peer::new().await;
    client
        .request(ClientMsg::MediaSubscribe {
            audio_only,
            video: None,
            reset: false,
        })
        .await
        .expect("subscribe accepted");
    peer.answer_next_offer(client).await;
    peer
}

/// Waits until `cond` holds, polling; panics with `what` after `secs`.
pub async fn eventually(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes one simulcast video track with three layers (RIDs `q`, `h`,
/// `f`); each packet's third payload byte names its layer (0, 1, 2), and
/// every fifth packet of a layer is a VP8 keyframe.
pub async fn publish_simulcast(client: &mut TestClient) -> Publisher {
    let mut peer = Peer::new().await;
    let rids = ["q", "h", "f"];
    let ssrcs: Vec<u32> = (0..3)
        .map(|i| 0x3333_0000 + i * 7 + rand_u16() as u32)
        .collect();
    let codings = rids
        .iter()
        .zip(&ssrcs)
        .map(|(rid, ssrc)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: rid.to_string(),
                ssrc: Some(*ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.into(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        })
        .collect();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "publisher".into(),
        "cam".into(),
        "cam".into(),
        RtpCodecKind::Video,
        codings,
    )));
    let sender = peer
        .pc
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let offer = peer.pc.create_offer(None).await.unwrap();
    peer.pc.set_local_description(offer).await.unwrap();
    let sdp = peer.local_sdp().await;
    let answer = client
        .request(ClientMsg::MediaPublish {
            sdp,
            sources: Default::default(),
            reset: false,
        })
        .await
        .expect("simulcast publish accepted");
    peer.pc
        .set_remote_description(
            RTCSessionDescription::answer(answer["sdp"].as_str().unwrap().to_string()).unwrap(),
        )
        .await
        .unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let run = running.clone();
    tokio::spawn(async move {
        let mut seq: u16 = 0;
        let mut ids = None;
        while run.load(Ordering::Relaxed) {
            if ids.is_none() {
                if let Ok(p) = sender.get_parameters().await {
                    let find = |uri: &str| {
                        p.rtp_parameters
                            .header_extensions
                            .iter()
                            .find(|e| e.uri == uri)
                            .map(|e| e.id as u8)
                    };
                    let pt = p
                        .rtp_parameters
                        .codecs
                        .first()
                        .map(|c| c.payload_type)
                        .unwrap_or(0);
                    if pt != 0 {
                        ids = Some((
                            pt,
                            find("urn:ietf:params:rtp-hdrext:sdes:mid"),
                            find("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
                        ));
                    }
                }
            }
            if let Some((pt, mid_id, rid_id)) = ids {
                for (layer, (rid, ssrc)) in rids.iter().zip(&ssrcs).enumerate() {
                    let mut header = rtc::rtp::header::Header {
                        version: 2,
                        payload_type: pt,
                        sequence_number: seq.wrapping_add(layer as u16 * 10_000),
                        timestamp: seq as u32 * 3000,
                        ssrc: *ssrc,
                        marker: true,
                        ..Default::default()
                    };
                    if let Some(id) = mid_id {
                        let _ = header.set_extension(id, bytes::Bytes::from_static(b"0"));
                    }
                    if let Some(id) = rid_id {
                        let _ =
                            header.set_extension(id, bytes::Bytes::from(rid.as_bytes().to_vec()));
                    }
                    let key = if seq.is_multiple_of(5) { 0x00 } else { 0x01 };
                    let mut payload = vec![0x10u8, key, layer as u8];
                    payload.resize(100 + layer * 300, 0x55);
                    let pkt = rtc::rtp::packet::Packet {
                        header,
                        payload: bytes::Bytes::from(payload),
                    };
                    if track.write_rtp(pkt).await.is_err() {
                        return;
                    }
                }
                seq = seq.wrapping_add(1);
            }
            tokio::time::sleep(Duration::from_millis(33)).await;
        }
    });
    Publisher {
        _peer: peer,
        running,
        keyframe_requests: Arc::new(AtomicU64::new(0)),
        level: Arc::new(std::sync::atomic::AtomicU8::new(127)),
    }
}
