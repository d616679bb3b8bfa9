//! The SFU: everything that touches the webrtc crate.
//!
//! Each member has up to two peer connections: a *publisher* connection the
//! client offers (its camera, microphone, screen) and a *subscriber*
//! connection the server offers (everyone else's tracks). Signaling travels
//! on the member's WebSocket. This layer never edits room state: it reports
//! published and ended tracks to the room as [`MediaNote`]s, and the room
//! decides who may publish (stage, seminar lock) and tells it to stop.

pub mod engine;
pub mod forward;
pub mod layers;
pub mod peer;
pub mod sdp;
pub mod speaker;

use crate::http::metrics::Metrics;
use crate::protocol::{
    ClientMsg, ErrorCode, IceCandidate, IceServer, MediaTarget, ReqId, ServerMsg, TrackInfo,
    TrackKind, TrackSource,
};
use crate::room::conn::ConnHandle;
use engine::PortPicker;
use forward::{Publication, Sink};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

/// Media settings (`[media]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Address media sockets bind to. A specific address is needed (the
    /// webrtc crate skips loopback on a wildcard bind).
    pub bind_ip: IpAddr,
    /// Address announced to clients instead of `bind_ip` (1:1 NAT).
    pub public_ip: Option<IpAddr>,
    /// UDP port range for media (inclusive); 0 and 0 for any free port.
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// STUN/TURN servers handed to clients in `welcome` (the server uses none).
    pub ice_servers: Vec<IceServer>,
    /// Minimum time between keyframe requests sent to one publisher track.
    pub keyframe_interval_ms: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            public_ip: None,
            udp_port_min: 0,
            udp_port_max: 0,
            ice_servers: Vec::new(),
            keyframe_interval_ms: 500,
        }
    }
}

/// Server-wide media state.
pub struct Sfu {
    pub config: MediaConfig,
    ports: PortPicker,
    metrics: Arc<Metrics>,
    /// Where recordings go: `{dir}/{session}/{recording}/`.
    pub recordings_dir: std::path::PathBuf,
    /// Free bytes a recording leaves on its file system (0: no guard).
    pub recording_min_free: u64,
}

impl Sfu {
    pub fn new(config: MediaConfig, metrics: Arc<Metrics>) -> Arc<Sfu> {
        Sfu::with_recordings(config, metrics, std::path::PathBuf::from("recordings"), 0)
    }

    pub fn with_recordings(
        config: MediaConfig,
        metrics: Arc<Metrics>,
        recordings_dir: std::path::PathBuf,
        recording_min_free: u64,
    ) -> Arc<Sfu> {
        Arc::new(Sfu {
            ports: PortPicker::new(config.udp_port_min, config.udp_port_max),
            config,
            metrics,
            recordings_dir,
            recording_min_free,
        })
    }
}

/// What the media layer reports to the room.
#[derive(Debug, Clone)]
pub enum MediaNote {
    Published(TrackInfo),
    Unpublished {
        track_id: String,
        owner: String,
    },
    /// A publisher started or stopped speaking (audio levels, RFC 6464).
    Speaking {
        identity: String,
        speaking: bool,
    },
}

/// Media work the room hands over, done in order by one task per room.
pub enum MediaJob {
    /// A member's media request; the answer goes straight to `conn`.
    Request {
        identity: String,
        msg: ClientMsg,
        req_id: Option<ReqId>,
        conn: ConnHandle,
    },
    /// A member's WebSocket (re)connected.
    Attach { identity: String, conn: ConnHandle },
    /// The member may no longer publish.
    Unpublish(String),
    /// The member left: close both connections.
    Remove(String),
}

/// Why a media request failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("invalid SDP or state: {0}")]
    Negotiation(String),
    #[error("there is no {0} connection to apply this to")]
    NoConnection(&'static str),
    #[error("could not open a media connection: {0}")]
    Setup(String),
}

impl From<webrtc::error::Error> for MediaError {
    fn from(e: webrtc::error::Error) -> MediaError {
        MediaError::Negotiation(e.to_string())
    }
}

/// Tracks whether a connection has finished gathering candidates.
struct Handler {
    gathered: watch::Sender<bool>,
    /// Set for publisher connections: where their tracks go.
    publisher: Option<(Weak<MediaRoom>, String)>,
    metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Failed {
            self.metrics
                .peer_connections_failed
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some((room, owner)) = &self.publisher {
            let (room, owner) = (room.clone(), owner.clone());
            tokio::spawn(run_publication(room, owner, track));
        }
    }
}

/// A peer connection and what it takes to use it.
struct Pc {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
}

struct SubSend {
    sender: Arc<dyn RtpSender>,
    sink: Arc<Sink>,
    /// Part of an offer already sent: its answer sets the payload type.
    offered: bool,
    /// Its m-section, an index into `Subscriber::slots`.
    slot: usize,
    /// Left out while an offer was out: its sink was taken off the
    /// publication at once; the next offer ends it, unless it is wanted
    /// again by then.
    held: bool,
}

/// One m-section (transceiver) of a receiving connection, in the order
/// they were made, which is the connection's own order.
struct Slot {
    kind: TrackKind,
    /// The codec of the track it was made for: a later track reuses it
    /// only with the same codec, since a reused transceiver keeps its
    /// codec preferences.
    mime: String,
    /// Its sender's id, which a new sender on the same transceiver shares.
    sender_id: RTCRtpSenderId,
    /// Carries a track. A free one is `inactive` in an offer that was
    /// answered (the connection is changed only when an offer is made).
    busy: bool,
}

struct Subscriber {
    pc: Pc,
    sends: HashMap<String, SubSend>,
    slots: Vec<Slot>,
    /// An offer is out and its answer has not come back.
    awaiting_answer: bool,
    /// Something changed while an offer was out: offer again after the answer.
    dirty: bool,
}

#[derive(Debug, Clone, Default)]
struct Prefs {
    audio_only: bool,
    video: Option<Vec<String>>,
}

#[derive(Default)]
struct MemberMedia {
    conn: Option<ConnHandle>,
    publisher: Option<Pc>,
    /// Track id (msid) → source, as the client named them.
    sources: HashMap<String, TrackSource>,
    /// The audio-level extension id in the publisher's offer.
    audio_level_id: Option<u8>,
    subscriber: Option<Subscriber>,
    /// `None` until the member asks to receive media.
    prefs: Option<Prefs>,
}

#[derive(Default)]
struct Inner {
    members: HashMap<String, MemberMedia>,
    publications: HashMap<String, Arc<Publication>>,
    next_track: u64,
    closed: bool,
}

/// The media side of one room.
pub struct MediaRoom {
    sfu: Arc<Sfu>,
    notify: Box<dyn Fn(MediaNote) + Send + Sync>,
    /// Control plane only (negotiation, subscriptions); packets never take it.
    inner: tokio::sync::Mutex<Inner>,
    /// Where packets also go while the session records (a read lock per
    /// packet, taken for writing only when recording starts or stops).
    recording: std::sync::RwLock<Option<crate::record::session::Tap>>,
}

async fn wait_gathered(rx: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|done| *done)).await;
}

impl MediaRoom {
    pub fn new(sfu: Arc<Sfu>, notify: Box<dyn Fn(MediaNote) + Send + Sync>) -> Arc<MediaRoom> {
        Arc::new(MediaRoom {
            sfu,
            notify,
            inner: tokio::sync::Mutex::new(Inner::default()),
            recording: std::sync::RwLock::new(None),
        })
    }

    /// Sends every published packet to `tap` (or stops, with `None`). When
    /// recording (re)starts, video publishers are asked for a keyframe so
    /// the files start with a picture.
    pub async fn set_recording(&self, tap: Option<crate::record::session::Tap>) {
        let starting = tap.is_some();
        *self.recording.write().unwrap_or_else(|e| e.into_inner()) = tap;
        if starting {
            let pubs: Vec<Arc<Publication>> = self
                .inner
                .lock()
                .await
                .publications
                .values()
                .filter(|p| p.info.kind == TrackKind::Video)
                .cloned()
                .collect();
            for p in &pubs {
                p.request_keyframe().await;
            }
            // A request is held back if a subscriber asked just before (its
            // keyframe may have passed before the tap was set): ask again
            // once the rate limit allows.
            let wait = Duration::from_millis(self.sfu.config.keyframe_interval_ms + 100);
            tokio::spawn(async move {
                for _ in 0..2 {
                    tokio::time::sleep(wait).await;
                    for p in &pubs {
                        p.request_keyframe().await;
                    }
                }
            });
        }
    }

    /// Asks the publisher of `track_id` for a keyframe (for the recorder,
    /// after a loss); subject to the usual rate limit.
    pub async fn request_keyframe(&self, track_id: &str) {
        let p = self.inner.lock().await.publications.get(track_id).cloned();
        if let Some(p) = p {
            p.request_keyframe().await;
        }
    }

    fn record(&self, publication: &Publication, pkt: &rtc::rtp::packet::Packet) {
        let guard = self.recording.read().unwrap_or_else(|e| e.into_inner());
        let Some(tap) = guard.as_ref() else { return };
        let kind = match publication.codec.mime_type.to_ascii_lowercase().as_str() {
            "video/vp8" => crate::record::Kind::Vp8,
            "audio/opus" => crate::record::Kind::Opus,
            _ => return,
        };
        tap.send(crate::record::session::RecPacket {
            track_id: publication.info.id.clone(),
            owner: publication.info.owner.clone(),
            source: match publication.info.source {
                TrackSource::Microphone => "microphone",
                TrackSource::Camera => "camera",
                TrackSource::Screen => "screen",
            },
            kind,
            ssrc: pkt.header.ssrc,
            layer: publication.layer_rank(pkt.header.ssrc),
            seq: pkt.header.sequence_number,
            timestamp: pkt.header.timestamp,
            marker: pkt.header.marker,
            payload: pkt.payload.clone(),
        });
    }

    /// Starts the task that carries out [`MediaJob`]s in order; it ends when
    /// the returned sender is dropped.
    pub fn start_worker(self: Arc<Self>) -> tokio::sync::mpsc::UnboundedSender<MediaJob> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                self.run_job(job).await;
            }
        });
        tx
    }

    async fn run_job(self: &Arc<Self>, job: MediaJob) {
        match job {
            MediaJob::Attach { identity, conn } => self.attach(&identity, conn).await,
            MediaJob::Unpublish(identity) => self.unpublish(&identity).await,
            MediaJob::Remove(identity) => self.remove_member(&identity).await,
            MediaJob::Request {
                identity,
                msg,
                req_id,
                conn,
            } => {
                let result: Result<Option<serde_json::Value>, MediaError> = match msg {
                    ClientMsg::MediaPublish {
                        sdp,
                        sources,
                        reset,
                    } => self
                        .publish(&identity, sdp, sources, reset)
                        .await
                        .map(|sdp| Some(serde_json::json!({ "sdp": sdp }))),
                    ClientMsg::MediaUnpublish => {
                        self.unpublish(&identity).await;
                        Ok(None)
                    }
                    ClientMsg::MediaSubscribe {
                        audio_only,
                        video,
                        reset,
                    } => self
                        .subscribe(&identity, audio_only, video, reset)
                        .await
                        .map(|_| None),
                    ClientMsg::MediaAnswer { sdp } => {
                        self.answer(&identity, sdp).await.map(|_| None)
                    }
                    ClientMsg::MediaQuality { track_id, quality } => self
                        .set_quality(&identity, &track_id, quality)
                        .await
                        .map(|_| None),
                    ClientMsg::MediaIce { target, candidate } => self
                        .add_ice(&identity, target, candidate)
                        .await
                        .map(|_| None),
                    _ => Ok(None),
                };
                let frame = match result {
                    Ok(result) => crate::protocol::encode(&ServerMsg::Ack { req_id, result }),
                    Err(e) => crate::protocol::encode(&ServerMsg::Error {
                        req_id,
                        code: ErrorCode::MediaFailed,
                        message: e.to_string(),
                    }),
                };
                let _ = conn.send(frame);
            }
        }
    }

    async fn new_pc(self: &Arc<Self>, publisher_of: Option<&str>) -> Result<Pc, MediaError> {
        let (tx, rx) = watch::channel(false);
        let handler = Arc::new(Handler {
            gathered: tx,
            publisher: publisher_of.map(|o| (Arc::downgrade(self), o.to_string())),
            metrics: self.sfu.metrics.clone(),
        });
        let pc = engine::peer_connection(&self.sfu.config, &self.sfu.ports, handler)
            .await
            .map_err(|e| MediaError::Setup(e.to_string()))?;
        self.sfu
            .metrics
            .peer_connections
            .fetch_add(1, Ordering::Relaxed);
        Ok(Pc { pc, gathered: rx })
    }

    async fn close_pc(&self, pc: Pc) {
        let _ = pc.pc.close().await;
        self.sfu
            .metrics
            .peer_connections
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// The local description with every candidate, public address announced.
    async fn local_sdp(&self, pc: &mut Pc) -> Result<String, MediaError> {
        wait_gathered(&mut pc.gathered).await;
        let desc = pc
            .pc
            .local_description()
            .await
            .ok_or(MediaError::Negotiation("no local description".into()))?;
        Ok(match self.sfu.config.public_ip {
            Some(public) => sdp::announce_ip(&desc.sdp, self.sfu.config.bind_ip, public),
            None => desc.sdp,
        })
    }

    /// A member's WebSocket (re)connected: offers go there from now on.
    pub async fn attach(&self, identity: &str, conn: ConnHandle) {
        let mut inner = self.inner.lock().await;
        inner.members.entry(identity.to_string()).or_default().conn = Some(conn);
    }

    /// Applies a publisher offer and returns the answer.
    pub async fn publish(
        self: &Arc<Self>,
        identity: &str,
        offer: String,
        sources: HashMap<String, TrackSource>,
        reset: bool,
    ) -> Result<String, MediaError> {
        if reset {
            self.unpublish(identity).await;
        }
        let audio_level_id = sdp::extmap_id(&offer, engine::AUDIO_LEVEL_URI);
        let offer_text = offer.clone();
        let mut inner = self.inner.lock().await;
        if inner.closed {
            return Err(MediaError::NoConnection("open"));
        }
        let fresh = inner
            .members
            .get(identity)
            .is_none_or(|m| m.publisher.is_none());
        let mut pc = if fresh {
            self.new_pc(Some(identity)).await?
        } else {
            let m = inner.members.get_mut(identity).expect("checked");
            m.publisher.take().expect("checked")
        };
        let result = async {
            pc.pc
                .set_remote_description(RTCSessionDescription::offer(offer)?)
                .await?;
            let answer = pc.pc.create_answer(None).await?;
            pc.pc.set_local_description(answer).await?;
            self.local_sdp(&mut pc).await
        }
        .await;
        match result {
            Ok(sdp) => {
                if !fresh {
                    // A renegotiation may have dropped tracks: end those.
                    // Unknown ids (old-style SDP): end nothing rather than everything.
                    if let Some(sending) = sdp::sending_track_ids(&offer_text) {
                        self.end_publications(&mut inner, |p| {
                            p.info.owner == identity && !sending.contains(&p.msid)
                        })
                        .await;
                    }
                }
                let m = inner.members.entry(identity.to_string()).or_default();
                m.sources.extend(sources);
                if let Some(id) = audio_level_id {
                    m.audio_level_id = Some(id);
                }
                m.publisher = Some(pc);
                Ok(sdp)
            }
            Err(e) => {
                if fresh {
                    self.close_pc(pc).await;
                } else {
                    inner
                        .members
                        .entry(identity.to_string())
                        .or_default()
                        .publisher = Some(pc);
                }
                Err(e)
            }
        }
    }

    /// Closes a member's publisher connection and ends its tracks.
    pub async fn unpublish(self: &Arc<Self>, identity: &str) {
        let mut inner = self.inner.lock().await;
        let pc = inner
            .members
            .get_mut(identity)
            .and_then(|m| m.publisher.take());
        self.end_publications(&mut inner, |p| p.info.owner == identity)
            .await;
        drop(inner);
        if let Some(pc) = pc {
            self.close_pc(pc).await;
        }
    }

    /// The member left: close both connections.
    pub async fn remove_member(self: &Arc<Self>, identity: &str) {
        self.unpublish(identity).await;
        let mut inner = self.inner.lock().await;
        let Some(mut m) = inner.members.remove(identity) else {
            return;
        };
        for p in inner.publications.values() {
            p.remove_sink(identity);
        }
        drop(inner);
        if let Some(sub) = m.subscriber.take() {
            self.close_pc(sub.pc).await;
        }
    }

    /// Sets what a member wants to receive and (re)offers their subscriber connection.
    pub async fn subscribe(
        self: &Arc<Self>,
        identity: &str,
        audio_only: bool,
        video: Option<Vec<String>>,
        reset: bool,
    ) -> Result<(), MediaError> {
        let mut inner = self.inner.lock().await;
        if inner.closed {
            return Err(MediaError::NoConnection("open"));
        }
        let old = if reset {
            let old = inner
                .members
                .get_mut(identity)
                .and_then(|m| m.subscriber.take());
            for p in inner.publications.values() {
                p.remove_sink(identity);
            }
            old
        } else {
            None
        };
        if let Some(old) = old {
            self.close_pc(old.pc).await;
        }
        inner.members.entry(identity.to_string()).or_default().prefs =
            Some(Prefs { audio_only, video });
        self.sync(&mut inner, identity, false).await
    }

    /// The member's answer to our last offer.
    pub async fn answer(self: &Arc<Self>, identity: &str, sdp: String) -> Result<(), MediaError> {
        let mut inner = self.inner.lock().await;
        let sub = inner
            .members
            .get_mut(identity)
            .and_then(|m| m.subscriber.as_mut())
            .ok_or(MediaError::NoConnection("subscriber"))?;
        if !sub.awaiting_answer {
            return Err(MediaError::Negotiation(
                "no offer is waiting for an answer".into(),
            ));
        }
        sub.pc
            .pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        sub.awaiting_answer = false;
        for send in sub.sends.values().filter(|s| s.offered) {
            if let Ok(params) = send.sender.get_parameters().await {
                if let Some(c) = params.rtp_parameters.codecs.first() {
                    send.sink
                        .payload_type
                        .store(c.payload_type, Ordering::Relaxed);
                }
            }
        }
        let redo = std::mem::take(&mut sub.dirty);
        if redo {
            self.sync(&mut inner, identity, true).await?;
        }
        Ok(())
    }

    /// Chooses the simulcast layer a member receives for one track.
    pub async fn set_quality(
        &self,
        identity: &str,
        track_id: &str,
        quality: layers::Quality,
    ) -> Result<(), MediaError> {
        let p = {
            let inner = self.inner.lock().await;
            inner
                .publications
                .get(track_id)
                .cloned()
                .ok_or(MediaError::Negotiation(format!("no track {track_id:?}")))?
        };
        if p.set_quality(identity, quality) {
            p.request_keyframe().await;
        }
        Ok(())
    }

    pub async fn add_ice(
        &self,
        identity: &str,
        target: MediaTarget,
        c: IceCandidate,
    ) -> Result<(), MediaError> {
        let inner = self.inner.lock().await;
        let m = inner.members.get(identity);
        let pc = match target {
            MediaTarget::Publisher => m.and_then(|m| m.publisher.as_ref()).map(|p| p.pc.clone()),
            MediaTarget::Subscriber => m
                .and_then(|m| m.subscriber.as_ref())
                .map(|s| s.pc.pc.clone()),
        };
        drop(inner);
        let pc = pc.ok_or(MediaError::NoConnection(match target {
            MediaTarget::Publisher => "publisher",
            MediaTarget::Subscriber => "subscriber",
        }))?;
        pc.add_ice_candidate(RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            ..Default::default()
        })
        .await?;
        Ok(())
    }

    /// Closes every connection (room stopping).
    pub async fn close_all(&self) {
        let mut inner = self.inner.lock().await;
        inner.closed = true;
        let members: Vec<MemberMedia> = inner.members.drain().map(|(_, m)| m).collect();
        for p in inner.publications.values() {
            p.clear_sinks();
        }
        let ended = inner.publications.len() as i64;
        self.sfu
            .metrics
            .publications
            .fetch_sub(ended, Ordering::Relaxed);
        inner.publications.clear();
        drop(inner);
        for mut m in members {
            if let Some(pc) = m.publisher.take() {
                self.close_pc(pc).await;
            }
            if let Some(sub) = m.subscriber.take() {
                self.close_pc(sub.pc).await;
            }
        }
    }

    /// Ends the publications `which` selects and updates every subscriber.
    async fn end_publications(
        self: &Arc<Self>,
        inner: &mut Inner,
        which: impl Fn(&Publication) -> bool,
    ) {
        let ended: Vec<String> = inner
            .publications
            .values()
            .filter(|p| which(p))
            .map(|p| p.info.id.clone())
            .collect();
        for id in &ended {
            self.end_publication(inner, id);
        }
        if !ended.is_empty() {
            self.sync_all(inner).await;
        }
    }

    fn end_publication(&self, inner: &mut Inner, id: &str) {
        if let Some(p) = inner.publications.remove(id) {
            p.clear_sinks();
            if p.info.kind == TrackKind::Audio {
                // Its levels stop with it (the room ignores this if silent).
                (self.notify)(MediaNote::Speaking {
                    identity: p.info.owner.clone(),
                    speaking: false,
                });
            }
            self.sfu
                .metrics
                .publications
                .fetch_sub(1, Ordering::Relaxed);
            (self.notify)(MediaNote::Unpublished {
                track_id: p.info.id.clone(),
                owner: p.info.owner.clone(),
            });
        }
    }

    async fn sync_all(self: &Arc<Self>, inner: &mut Inner) {
        let wanting: Vec<String> = inner
            .members
            .iter()
            .filter(|(_, m)| m.prefs.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in wanting {
            if let Err(e) = self.sync(inner, &id, false).await {
                tracing::warn!(identity = %id, "updating subscriptions failed: {e}");
            }
        }
    }

    /// Makes a member's subscriber connection carry exactly the tracks they
    /// should get, renegotiating when that changes.
    /// `offer_anyway`: changes were made while an offer was out; offer them now.
    async fn sync(
        self: &Arc<Self>,
        inner: &mut Inner,
        identity: &str,
        offer_anyway: bool,
    ) -> Result<(), MediaError> {
        let Some(prefs) = inner.members.get(identity).and_then(|m| m.prefs.clone()) else {
            return Ok(());
        };
        let wanted: Vec<Arc<Publication>> = inner
            .publications
            .values()
            .filter(|p| p.info.owner != identity)
            .filter(|p| match p.info.kind {
                TrackKind::Audio => true,
                TrackKind::Video => {
                    !prefs.audio_only && prefs.video.as_ref().is_none_or(|v| v.contains(&p.info.id))
                }
            })
            .cloned()
            .collect();
        let has_sub = inner
            .members
            .get(identity)
            .is_some_and(|m| m.subscriber.is_some());
        if !has_sub {
            if wanted.is_empty() {
                return Ok(());
            }
            let pc = self.new_pc(None).await?;
            inner.members.get_mut(identity).expect("member").subscriber = Some(Subscriber {
                pc,
                sends: HashMap::new(),
                slots: Vec::new(),
                awaiting_answer: false,
                dirty: false,
            });
        }
        let member = inner.members.get_mut(identity).expect("member");
        let sub = member.subscriber.as_mut().expect("created above");
        let keep: Vec<&str> = wanted.iter().map(|p| p.info.id.as_str()).collect();
        let gone: Vec<String> = sub
            .sends
            .keys()
            .filter(|k| !keep.contains(&k.as_str()))
            .cloned()
            .collect();
        let added: Vec<&Arc<Publication>> = wanted
            .iter()
            .filter(|p| !sub.sends.contains_key(&p.info.id))
            .collect();
        if sub.awaiting_answer {
            // The connection is left alone while an offer is out: the next
            // offer, made once the answer is in, carries every change. So
            // an m-section freed in one offer is reused only in a later
            // one, and the client sees it go inactive before it carries
            // another track. Forwarding of what is left out stops now.
            for id in &gone {
                if let (Some(send), Some(p)) = (sub.sends.get_mut(id), inner.publications.get(id)) {
                    p.remove_sink(identity);
                    send.held = true;
                }
            }
            sub.dirty |= !gone.is_empty() || !added.is_empty();
            return Ok(());
        }
        // Tracks left out while an offer was out and wanted again since.
        for p in &wanted {
            if let Some(send) = sub.sends.get_mut(&p.info.id).filter(|s| s.held) {
                p.add_sink(send.sink.clone());
                send.held = false;
            }
        }
        let mut changed = offer_anyway;
        // New tracks first, so that they can only take m-sections freed
        // in earlier offers, never one this offer frees.
        let mut new_sinks = Vec::new();
        for p in added {
            let ssrc = random_ssrc();
            let kind = match p.info.kind {
                TrackKind::Audio => RtpCodecKind::Audio,
                TrackKind::Video => RtpCodecKind::Video,
            };
            let out = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                sdp::token(&p.info.owner),
                p.info.id.clone(),
                format!("{}:{}", sdp::token(&p.info.owner), p.info.id),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: p.codec.clone(),
                    ..Default::default()
                }],
            )));
            let mime = p.codec.mime_type.clone();
            // `add_track` puts a track on the first free m-section of its
            // kind (and makes it `sendonly`, since it never receives):
            // reuse it if it has the same codec, else add a new one.
            let free = sub
                .slots
                .iter()
                .position(|s| !s.busy && s.kind == p.info.kind);
            let reuse = free.is_some_and(|i| sub.slots[i].mime.eq_ignore_ascii_case(&mime));
            let (sender, slot) = if reuse {
                let sender = sub
                    .pc
                    .pc
                    .add_track(out.clone() as Arc<dyn TrackLocal>)
                    .await?;
                let slot = sub
                    .slots
                    .iter()
                    .position(|s| !s.busy && s.sender_id == sender.id())
                    .ok_or_else(|| {
                        MediaError::Negotiation("a track took an m-section in use".into())
                    })?;
                (sender, slot)
            } else {
                let transceiver = sub
                    .pc
                    .pc
                    .add_transceiver_from_track(
                        out.clone() as Arc<dyn TrackLocal>,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Sendonly,
                            streams: vec![],
                            send_encodings: vec![],
                        }),
                    )
                    .await?;
                let sender = transceiver.sender().await?.ok_or_else(|| {
                    MediaError::Negotiation("a transceiver without sender".into())
                })?;
                sub.slots.push(Slot {
                    kind: p.info.kind,
                    mime,
                    sender_id: sender.id(),
                    busy: false,
                });
                (sender, sub.slots.len() - 1)
            };
            sub.slots[slot].busy = true;
            let sink = Sink::start(identity.to_string(), ssrc, out, Arc::downgrade(p));
            sub.sends.insert(
                p.info.id.clone(),
                SubSend {
                    sender,
                    sink: sink.clone(),
                    offered: false,
                    slot,
                    held: false,
                },
            );
            // Registered at once, so an error later in this sync cannot leave
            // a send whose sink never gets packets (payload type 0 holds
            // them back until the answer).
            p.add_sink(sink.clone());
            new_sinks.push(p.clone());
            changed = true;
        }
        // Ended tracks leave their m-sections `inactive`, without msid.
        for id in gone {
            if let Some(send) = sub.sends.remove(&id) {
                if let Some(p) = inner.publications.get(&id) {
                    p.remove_sink(identity);
                }
                if sub.pc.pc.remove_track(&send.sender).await.is_ok() {
                    sub.slots[send.slot].busy = false;
                }
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let offer = sub.pc.pc.create_offer(None).await?;
        for send in sub.sends.values_mut() {
            send.offered = true;
        }
        sub.pc.pc.set_local_description(offer).await?;
        let sdp = self.local_sdp(&mut sub.pc).await?;
        sub.awaiting_answer = true;
        if let Some(conn) = &member.conn {
            let frame = crate::protocol::encode(&ServerMsg::MediaOffer { sdp });
            let _ = conn.send(frame);
        }
        // The payload type arrives with the answer; a keyframe lets the new
        // viewer start at once.
        for p in new_sinks {
            tokio::spawn(async move { p.request_keyframe().await });
        }
        Ok(())
    }
}

fn random_ssrc() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source is available");
    u32::from_be_bytes(b).max(1)
}

/// Runs one published track: registers it, forwards its packets until it
/// ends, then unregisters it.
async fn run_publication(room: Weak<MediaRoom>, owner: String, track: Arc<dyn TrackRemote>) {
    let kind = match track.kind().await {
        RtpCodecKind::Audio => TrackKind::Audio,
        _ => TrackKind::Video,
    };
    let Some(ssrc) = track.ssrcs().await.first().copied() else {
        return;
    };
    let Some(codec) = track.codec(ssrc).await else {
        return;
    };
    let msid = track.track_id().await;
    let publication = {
        let Some(r) = room.upgrade() else { return };
        let mut inner = r.inner.lock().await;
        if inner.closed {
            return;
        }
        let source = inner
            .members
            .get(&owner)
            .and_then(|m| m.sources.get(&msid).copied())
            .unwrap_or(match kind {
                TrackKind::Audio => TrackSource::Microphone,
                TrackKind::Video => TrackSource::Camera,
            });
        inner.next_track += 1;
        let level_id = match kind {
            TrackKind::Audio => inner.members.get(&owner).and_then(|m| m.audio_level_id),
            TrackKind::Video => None,
        };
        let info = TrackInfo {
            // Unique across room reloads and restarts too.
            id: format!("TR{}{}", inner.next_track, &crate::ids::new_id()[..6]),
            owner: owner.clone(),
            // Filled in by the room, which knows the members.
            name: String::new(),
            kind,
            source,
            codec: codec.mime_type.clone(),
        };
        let p = Arc::new(Publication::new(
            info.clone(),
            msid.clone(),
            codec,
            ssrc,
            track.clone(),
            Duration::from_millis(r.sfu.config.keyframe_interval_ms),
            r.sfu.metrics.clone(),
        ));
        inner.publications.insert(info.id.clone(), p.clone());
        r.sfu.metrics.publications.fetch_add(1, Ordering::Relaxed);
        (r.notify)(MediaNote::Published(info));
        r.sync_all(&mut inner).await;
        (p, level_id)
    };
    let (publication, level_id) = publication;
    if let Some(rid) = track.rid(ssrc).await.filter(|r| !r.is_empty()) {
        publication.add_layer(&rid, ssrc);
    }
    let mut detector = level_id.map(|id| (id, speaker::SpeakerDetector::default()));
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(pkt) => {
                if let Some((id, d)) = detector.as_mut() {
                    let level = pkt
                        .header
                        .get_extension(*id)
                        .and_then(|b| speaker::level_of(&b));
                    if let Some(change) =
                        level.and_then(|l| d.observe(l, std::time::Instant::now()))
                    {
                        if let Some(r) = room.upgrade() {
                            (r.notify)(MediaNote::Speaking {
                                identity: owner.clone(),
                                speaking: change,
                            });
                        }
                    }
                }
                if let Some(r) = room.upgrade() {
                    r.record(&publication, &pkt);
                }
                publication.forward(pkt)
            }
            TrackRemoteEvent::OnOpen(init) => {
                if let Some(rid) = init.rid.as_deref().filter(|r| !r.is_empty()) {
                    publication.add_layer(rid, init.ssrc);
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    if detector.is_some_and(|(_, d)| d.speaking()) {
        if let Some(r) = room.upgrade() {
            (r.notify)(MediaNote::Speaking {
                identity: owner.clone(),
                speaking: false,
            });
        }
    }
    if let Some(r) = room.upgrade() {
        let mut inner = r.inner.lock().await;
        if inner.publications.contains_key(&publication.info.id) {
            r.end_publication(&mut inner, &publication.info.id);
            r.sync_all(&mut inner).await;
        }
    }
}

/// Used by tests and tools: the track id a `MediaStreamTrack` gets in SDP.
pub fn source_map(pairs: &[(&str, TrackSource)]) -> HashMap<String, TrackSource> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}
