//! A client-side media peer for tests and the load-test tool: publishes
//! generated Opus and VP8 RTP (optionally simulcast), or receives the
//! server's offers and counts what arrives. Built on the same engine as the
//! server, so both ends negotiate the same codecs and extensions.
//!
//! Generated video payloads start with a VP8 payload descriptor and frame
//! header (so the server can find keyframes), then the layer number, then the
//! send time in microseconds since the Unix epoch, so a receiver in the same
//! process can measure forwarding delay.

use super::engine::{peer_connection, PortPicker, AUDIO_LEVEL_URI};
use super::MediaConfig;
use crate::protocol::{ClientMsg, TrackSource};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState};
use webrtc::rtp_transceiver::RtpSender;

/// The signaling a peer needs from its WebSocket client.
#[async_trait::async_trait]
pub trait Signal: Send {
    /// Sends a request; `Ok(result)` for its ack, `Err(code)` for an error.
    async fn request(&mut self, msg: ClientMsg) -> Result<serde_json::Value, String>;
    /// The SDP of the next `media_offer`, if one arrives within `wait`.
    async fn next_offer(&mut self, wait: Duration) -> Option<String>;
}

/// Called for every RTP packet received: (owner, mime type, packet).
pub type PacketHook = Arc<dyn Fn(&str, &str, &Packet) + Send + Sync>;

/// What a receiving peer has seen.
#[derive(Default)]
pub struct Received {
    /// Packets per (owner, mime type).
    pub packets: Mutex<HashMap<(String, String), u64>>,
    /// Packets per track id: the second value of the `a=msid` line the
    /// offer gave the track's m-section when its stream started.
    pub by_track: Mutex<HashMap<String, u64>>,
    /// Remote tracks, e.g. to send keyframe requests on.
    pub tracks: Mutex<Vec<Arc<dyn TrackRemote>>>,
    /// Video packets per simulcast layer (see the module doc), and their
    /// sequence numbers in arrival order.
    pub layers: Mutex<HashMap<u8, u64>>,
    pub video_seqs: Mutex<Vec<u16>>,
}

impl Received {
    pub fn count(&self, owner: &str, mime: &str) -> u64 {
        let p = self.packets.lock().unwrap_or_else(|e| e.into_inner());
        p.iter()
            .filter(|((o, m), _)| o == owner && m.eq_ignore_ascii_case(mime))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Packets received for one track id.
    pub fn of_track(&self, track_id: &str) -> u64 {
        let p = self.by_track.lock().unwrap_or_else(|e| e.into_inner());
        p.get(track_id).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.packets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    pub fn layer(&self, layer: u8) -> u64 {
        self.layers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&layer)
            .copied()
            .unwrap_or(0)
    }
}

struct Handler {
    gathered: watch::Sender<bool>,
    received: Arc<Received>,
    hook: Option<PacketHook>,
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
        let hook = self.hook.clone();
        tokio::spawn(async move {
            let owner = track.stream_id().await;
            let track_id = track.track_id().await;
            let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
            let mime = track
                .codec(ssrc)
                .await
                .map(|c| c.mime_type)
                .unwrap_or_default();
            let video = mime.eq_ignore_ascii_case(MIME_TYPE_VP8);
            received
                .tracks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(track.clone());
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        *received
                            .packets
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry((owner.clone(), mime.clone()))
                            .or_default() += 1;
                        *received
                            .by_track
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(track_id.clone())
                            .or_default() += 1;
                        if video {
                            if let Some(layer) = p.payload.get(2) {
                                *received
                                    .layers
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .entry(*layer)
                                    .or_default() += 1;
                            }
                            received
                                .video_seqs
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(p.header.sequence_number);
                        }
                        if let Some(h) = &hook {
                            h(&owner, &mime, &p);
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

/// One client peer connection.
pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    pub received: Arc<Received>,
}

impl Peer {
    pub async fn new() -> Result<Peer, webrtc::error::Error> {
        Peer::with_hook(None).await
    }

    pub async fn with_hook(hook: Option<PacketHook>) -> Result<Peer, webrtc::error::Error> {
        Peer::bound(hook, MediaConfig::default().bind_ip).await
    }

    /// A peer whose socket binds `ip` (e.g. a veth address to reach a server
    /// in another network namespace).
    pub async fn bound(
        hook: Option<PacketHook>,
        ip: std::net::IpAddr,
    ) -> Result<Peer, webrtc::error::Error> {
        let (tx, rx) = watch::channel(false);
        let received = Arc::new(Received::default());
        let handler = Arc::new(Handler {
            gathered: tx,
            received: received.clone(),
            hook,
        });
        let config = MediaConfig {
            bind_ip: ip,
            ..Default::default()
        };
        let pc = peer_connection(&config, &PortPicker::new(0, 0), handler).await?;
        Ok(Peer {
            pc,
            gathered: rx,
            received,
        })
    }

    /// The local description once gathering is complete.
    pub async fn local_sdp(&mut self) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.wait_for(|d| *d)).await;
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default()
    }

    /// Creates and applies an offer; returns it with every candidate.
    pub async fn offer(&mut self) -> Result<String, String> {
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|e| e.to_string())?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.local_sdp().await)
    }

    /// Applies the server's answer to our offer.
    pub async fn accept_answer(&self, sdp: &str) -> Result<(), String> {
        let desc = RTCSessionDescription::answer(sdp.to_string()).map_err(|e| e.to_string())?;
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(|e| e.to_string())
    }

    /// Applies a server offer and returns our answer.
    pub async fn answer(&mut self, offer: String) -> Result<String, String> {
        let desc = RTCSessionDescription::offer(offer).map_err(|e| e.to_string())?;
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(|e| e.to_string())?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| e.to_string())?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.local_sdp().await)
    }

    /// Answers one `media_offer` (waiting up to `wait` for it); false if none came.
    pub async fn answer_next_offer(
        &mut self,
        signal: &mut dyn Signal,
        wait: Duration,
    ) -> Result<bool, String> {
        let Some(offer) = signal.next_offer(wait).await else {
            return Ok(false);
        };
        let sdp = self.answer(offer).await?;
        signal.request(ClientMsg::MediaAnswer { sdp }).await?;
        Ok(true)
    }

    /// Keeps answering offers (renegotiations) until `done()` or `secs` pass.
    pub async fn answer_offers_until(
        &mut self,
        signal: &mut dyn Signal,
        secs: u64,
        done: impl Fn() -> bool,
    ) -> Result<bool, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !done() {
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            self.answer_next_offer(signal, Duration::from_millis(200))
                .await?;
        }
        Ok(true)
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// Asks to receive media and answers the first offer.
pub async fn subscribe(
    signal: &mut dyn Signal,
    audio_only: bool,
    hook: Option<PacketHook>,
) -> Result<Peer, String> {
    let mut peer = Peer::with_hook(hook).await.map_err(|e| e.to_string())?;
    signal
        .request(ClientMsg::MediaSubscribe {
            audio_only,
            video: None,
            reset: false,
        })
        .await?;
    if !peer
        .answer_next_offer(signal, Duration::from_secs(10))
        .await?
    {
        return Err("no media_offer arrived".into());
    }
    Ok(peer)
}

/// What a generated publisher sends.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub audio: bool,
    pub video: bool,
    /// Three simulcast layers (RIDs `q`, `h`, `f`) instead of one video stream.
    pub simulcast: bool,
    /// Video packets per frame and their payload size (30 frames a second):
    /// 5 × 1,250 bytes is about 1.5 Mbit/s.
    pub video_packets_per_frame: usize,
    pub video_packet_bytes: usize,
    /// Replace an earlier publisher connection (see `media_publish`).
    pub reset: bool,
    /// The address the peer's socket binds.
    pub bind_ip: std::net::IpAddr,
    /// Real VP8 frames to send as the (single-layer) video, in a loop,
    /// instead of generated payloads; each is cut into packets of
    /// `video_packet_bytes`. A keyframe request makes the sender skip to
    /// the next keyframe, as an encoder would make one.
    pub vp8_frames: Option<Arc<Vec<Vec<u8>>>>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            audio: true,
            video: true,
            simulcast: false,
            video_packets_per_frame: 1,
            video_packet_bytes: 200,
            reset: false,
            bind_ip: MediaConfig::default().bind_ip,
            vp8_frames: None,
        }
    }
}

/// A publishing peer; stops sending when dropped.
pub struct Publisher {
    pub peer: Peer,
    running: Arc<AtomicBool>,
    /// Keyframe requests (PLI) that reached this publisher.
    pub keyframe_requests: Arc<AtomicU64>,
    /// The audio level (RFC 6464, −dBov) stamped on audio packets; 127 is silence.
    pub level: Arc<AtomicU8>,
    /// RTP packets written.
    pub sent: Arc<AtomicU64>,
    /// Audio packets and video frames written (of the first layer).
    pub audio_sent: Arc<AtomicU64>,
    pub video_frames_sent: Arc<AtomicU64>,
    /// The video sender, to remove the camera by renegotiation.
    pub video_sender: Option<Arc<dyn RtpSender>>,
}

impl Publisher {
    /// Stops sending; the connection stays open until the publisher is dropped.
    pub fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// Removes the camera and renegotiates, as a browser does when a track
    /// is stopped.
    pub async fn remove_video(&mut self, signal: &mut dyn Signal) -> Result<(), String> {
        let sender = self.video_sender.take().ok_or("no video")?;
        self.peer
            .pc
            .remove_track(&sender)
            .await
            .map_err(|e| e.to_string())?;
        let sdp = self.peer.offer().await?;
        let answer = signal
            .request(ClientMsg::MediaPublish {
                sdp,
                sources: HashMap::new(),
                reset: false,
            })
            .await?;
        self.peer
            .accept_answer(answer["sdp"].as_str().unwrap_or_default())
            .await
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source is available");
    u32::from_be_bytes(b) | 1
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The send time stamped into a generated video payload, if there is one.
pub fn sent_at_micros(payload: &[u8]) -> Option<u64> {
    payload
        .get(3..11)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

fn codec(mime: &str, rate: u32, channels: u16) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.into(),
        clock_rate: rate,
        channels,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    video: bool,
    /// (rid, ssrc) per layer; one entry without simulcast.
    layers: Vec<(String, u32)>,
}

/// Publishes generated media. `Err(code)` when the server refuses.
pub async fn publish(signal: &mut dyn Signal, opts: PublishOptions) -> Result<Publisher, String> {
    let (pending, sdp) = prepare(opts).await?;
    let answer = match signal
        .request(ClientMsg::MediaPublish {
            sdp,
            sources: pending.sources.clone(),
            reset: pending.opts.reset,
        })
        .await
    {
        Ok(v) => v["sdp"].as_str().unwrap_or_default().to_string(),
        Err(code) => {
            pending.peer.close().await;
            return Err(code);
        }
    };
    pending.start(&answer).await
}

/// A publisher whose offer is made but not yet answered (any signaling).
pub struct PendingPublisher {
    peer: Peer,
    outgoing: Vec<Outgoing>,
    /// Track id → source, for `media_publish`.
    pub sources: HashMap<String, TrackSource>,
    opts: PublishOptions,
}

/// Creates the publishing peer and its offer.
pub async fn prepare(opts: PublishOptions) -> Result<(PendingPublisher, String), String> {
    let mut peer = Peer::bound(None, opts.bind_ip)
        .await
        .map_err(|e| e.to_string())?;
    let mut outgoing = Vec::new();
    let mut sources = HashMap::new();
    if opts.audio {
        let ssrc = random_u32();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "publisher".into(),
            "mic".into(),
            "mic".into(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec(MIME_TYPE_OPUS, 48000, 2),
                ..Default::default()
            }],
        )));
        let sender = peer
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| e.to_string())?;
        outgoing.push(Outgoing {
            track,
            sender,
            video: false,
            layers: vec![(String::new(), ssrc)],
        });
        sources.insert("mic".to_string(), TrackSource::Microphone);
    }
    if opts.video {
        let rids: Vec<&str> = if opts.simulcast {
            vec!["q", "h", "f"]
        } else {
            vec![""]
        };
        let layers: Vec<(String, u32)> =
            rids.iter().map(|r| (r.to_string(), random_u32())).collect();
        let codings = layers
            .iter()
            .map(|(rid, ssrc)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: rid.clone(),
                    ssrc: Some(*ssrc),
                    ..Default::default()
                },
                codec: codec(MIME_TYPE_VP8, 90000, 0),
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
            .map_err(|e| e.to_string())?;
        outgoing.push(Outgoing {
            track,
            sender,
            video: true,
            layers,
        });
        sources.insert("cam".to_string(), TrackSource::Camera);
    }
    let sdp = peer.offer().await?;
    Ok((
        PendingPublisher {
            peer,
            outgoing,
            sources,
            opts,
        },
        sdp,
    ))
}

impl PendingPublisher {
    /// Applies the answer and starts sending.
    pub async fn start(self, answer: &str) -> Result<Publisher, String> {
        let PendingPublisher {
            peer,
            outgoing,
            opts,
            ..
        } = self;
        peer.accept_answer(answer).await?;
        let video_sender = outgoing.iter().find(|o| o.video).map(|o| o.sender.clone());
        let publisher = Publisher {
            video_sender,
            peer,
            running: Arc::new(AtomicBool::new(true)),
            keyframe_requests: Arc::new(AtomicU64::new(0)),
            level: Arc::new(AtomicU8::new(127)),
            sent: Arc::new(AtomicU64::new(0)),
            audio_sent: Arc::new(AtomicU64::new(0)),
            video_frames_sent: Arc::new(AtomicU64::new(0)),
        };
        for out in outgoing {
            spawn_sender(out, &publisher, &opts);
        }
        Ok(publisher)
    }
}

/// Payload type and extension ids negotiated for one sender.
#[derive(Clone, Copy)]
struct Negotiated {
    pt: u8,
    level_id: Option<u8>,
    mid_id: Option<u8>,
    rid_id: Option<u8>,
}

fn spawn_sender(out: Outgoing, p: &Publisher, opts: &PublishOptions) {
    let kf = p.keyframe_requests.clone();
    let listener = out.track.clone();
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
    let running = p.running.clone();
    let level = p.level.clone();
    let sent = p.sent.clone();
    let counted = if out.video {
        p.video_frames_sent.clone()
    } else {
        p.audio_sent.clone()
    };
    let keyframe_asks = p.keyframe_requests.clone();
    // Real frames only for a single-layer video.
    let real = opts
        .vp8_frames
        .clone()
        .filter(|f| out.video && out.layers.len() == 1 && !f.is_empty());
    let (per_frame, bytes) = (
        opts.video_packets_per_frame.max(1),
        opts.video_packet_bytes.max(12),
    );
    tokio::spawn(async move {
        let (every, ts_step) = if out.video {
            (33u64, 3000u32)
        } else {
            (20, 960)
        };
        let mut seqs: Vec<u16> = out
            .layers
            .iter()
            .enumerate()
            .map(|(i, _)| i as u16 * 10_000)
            .collect();
        let mut frame: u32 = 0;
        // The next real frame to send, and the keyframe requests seen.
        let (mut next_real, mut asks_seen) = (0usize, 0u64);
        let mut ids: Option<Negotiated> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(every));
        while running.load(Ordering::Relaxed) {
            tick.tick().await;
            if ids.is_none() {
                if let Ok(params) = out.sender.get_parameters().await {
                    let find = |uri: &str| {
                        params
                            .rtp_parameters
                            .header_extensions
                            .iter()
                            .find(|e| e.uri == uri)
                            .map(|e| e.id as u8)
                    };
                    if let Some(pt) = params.rtp_parameters.codecs.first().map(|c| c.payload_type) {
                        ids = Some(Negotiated {
                            pt,
                            level_id: find(AUDIO_LEVEL_URI),
                            mid_id: find("urn:ietf:params:rtp-hdrext:sdes:mid"),
                            rid_id: find("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
                        });
                    }
                }
            }
            let Some(Negotiated {
                pt,
                level_id,
                mid_id,
                rid_id,
            }) = ids
            else {
                continue;
            };
            let simulcast = out.layers.len() > 1;
            let chunks: Vec<&[u8]> = match &real {
                Some(frames) => {
                    let asks = keyframe_asks.load(Ordering::Relaxed);
                    if asks != asks_seen {
                        asks_seen = asks;
                        let is_key = |f: &Vec<u8>| f.first().is_some_and(|b| b & 0x01 == 0);
                        while !is_key(&frames[next_real]) {
                            next_real = (next_real + 1) % frames.len();
                        }
                    }
                    let f = &frames[next_real];
                    next_real = (next_real + 1) % frames.len();
                    f.chunks(bytes).collect()
                }
                None => Vec::new(),
            };
            for (layer, (rid, ssrc)) in out.layers.iter().enumerate() {
                let packets = if !chunks.is_empty() {
                    chunks.len()
                } else if out.video {
                    per_frame
                } else {
                    1
                };
                for i in 0..packets {
                    let mut header = rtc::rtp::header::Header {
                        version: 2,
                        payload_type: pt,
                        sequence_number: seqs[layer],
                        timestamp: frame.wrapping_mul(ts_step),
                        ssrc: *ssrc,
                        marker: i + 1 == packets,
                        ..Default::default()
                    };
                    seqs[layer] = seqs[layer].wrapping_add(1);
                    let payload = if let Some(c) = chunks.get(i) {
                        // RFC 7741 descriptor: S on the frame's first packet.
                        let mut b = vec![if i == 0 { 0x10 } else { 0x00 }];
                        b.extend_from_slice(c);
                        b
                    } else if out.video {
                        // Partition start only on a frame's first packet;
                        // every fifth frame is a keyframe.
                        let start = if i == 0 { 0x10 } else { 0x00 };
                        let key = if frame.is_multiple_of(5) { 0x00 } else { 0x01 };
                        let mut b = vec![start, key, layer as u8];
                        b.extend_from_slice(&now_micros().to_be_bytes());
                        b.resize(bytes + layer * 100, 0x55);
                        b
                    } else {
                        if let Some(id) = level_id {
                            let l = level.load(Ordering::Relaxed);
                            let _ = header.set_extension(id, bytes::Bytes::from(vec![0x80 | l]));
                        }
                        vec![0xf8; 100]
                    };
                    if simulcast {
                        if let Some(id) = mid_id {
                            let _ = header.set_extension(id, bytes::Bytes::from_static(b"0"));
                        }
                        if let Some(id) = rid_id {
                            let _ = header
                                .set_extension(id, bytes::Bytes::from(rid.as_bytes().to_vec()));
                        }
                    }
                    let pkt = Packet {
                        header,
                        payload: bytes::Bytes::from(payload),
                    };
                    if out.track.write_rtp(pkt).await.is_err() {
                        return;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    if layer == 0 && (!out.video || i + 1 == packets) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            frame = frame.wrapping_add(1);
        }
    });
}
