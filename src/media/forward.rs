//! The packet path: one published track fanned out to its subscribers.
//!
//! A publication's read loop hands each packet to every sink with a
//! non-blocking `try_send`: a slow subscriber loses packets, it never slows
//! the publisher or the others. The sink list is per track (not per room),
//! read with one short lock and an `Arc` clone per packet. The payload is
//! shared (`Bytes`); each subscriber gets one header copy with its own SSRC
//! and payload type.

use super::layers::{self, Quality};
use crate::http::metrics::Metrics;
use crate::protocol::TrackInfo;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packet::Packet;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;

/// Packets queued per subscriber before new ones are dropped.
pub const SINK_QUEUE: usize = 512;

/// A published track and who receives it.
pub struct Publication {
    pub info: TrackInfo,
    /// The publisher's own track id (msid), to notice it leaving the SDP.
    pub msid: String,
    /// The codec as the publisher negotiated it; subscribers get the same.
    pub codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
    /// The first SSRC seen (the only one unless the publisher simulcasts).
    pub ssrc: u32,
    /// Simulcast layers, lowest quality first: (rank, rid, ssrc).
    layers: RwLock<Vec<(u8, String, u32)>>,
    remote: Arc<dyn TrackRemote>,
    sinks: RwLock<Arc<Vec<Arc<Sink>>>>,
    last_keyframe_request: Mutex<Option<Instant>>,
    keyframe_interval: Duration,
    metrics: Arc<Metrics>,
}

/// One subscriber's copy of one publication.
pub struct Sink {
    pub subscriber: String,
    /// The SSRC this subscriber sees for the track.
    pub ssrc: u32,
    /// Payload type negotiated with this subscriber; 0 until the answer arrives.
    pub payload_type: AtomicU8,
    /// The publisher SSRC (layer) forwarded now; 0 before the first.
    current: AtomicU32,
    /// The layer wanted; forwarding switches to it at its next keyframe.
    target: AtomicU32,
    /// The quality asked for (see [`Quality`]).
    quality: AtomicU8,
    tx: mpsc::Sender<Packet>,
}

impl Publication {
    pub fn new(
        info: TrackInfo,
        msid: String,
        codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
        ssrc: u32,
        remote: Arc<dyn TrackRemote>,
        keyframe_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Publication {
        Publication {
            info,
            msid,
            codec,
            ssrc,
            layers: RwLock::new(Vec::new()),
            remote,
            sinks: RwLock::new(Arc::new(Vec::new())),
            last_keyframe_request: Mutex::new(None),
            keyframe_interval,
            metrics,
        }
    }

    /// A simulcast layer opened; subscribers are re-targeted to fit.
    pub fn add_layer(&self, rid: &str, ssrc: u32) {
        {
            let mut l = self.layers.write().unwrap_or_else(|e| e.into_inner());
            if l.iter().any(|(_, _, s)| *s == ssrc) {
                return;
            }
            let fallback = l.len() as u8;
            l.push((layers::rank(rid, fallback), rid.to_string(), ssrc));
            l.sort_by_key(|(rank, _, _)| *rank);
        }
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner()).clone();
        for s in sinks.iter() {
            self.retarget(s);
        }
    }

    /// The rank of the simulcast layer `ssrc` carries (higher is better;
    /// 0 without simulcast).
    pub fn layer_rank(&self, ssrc: u32) -> u8 {
        let l = self.layers.read().unwrap_or_else(|e| e.into_inner());
        l.iter()
            .find(|(_, _, s)| *s == ssrc)
            .map_or(0, |(rank, _, _)| *rank)
    }

    /// The SSRC a quality maps to (the only one without simulcast).
    fn layer_for(&self, quality: Quality) -> u32 {
        let l = self.layers.read().unwrap_or_else(|e| e.into_inner());
        layers::pick(l.len(), quality)
            .map(|i| l[i].2)
            .unwrap_or(self.ssrc)
    }

    /// Points a sink at the layer its quality asks for.
    pub fn retarget(&self, sink: &Sink) {
        let want = self.layer_for(Quality::from_u8(sink.quality.load(Ordering::Relaxed)));
        sink.target.store(want, Ordering::Relaxed);
        if sink.current.load(Ordering::Relaxed) == 0 {
            sink.current.store(want, Ordering::Relaxed);
        }
    }

    /// Sets a subscriber's quality; returns whether a layer switch is pending.
    pub fn set_quality(&self, subscriber: &str, quality: Quality) -> bool {
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(sink) = sinks.iter().find(|s| s.subscriber == subscriber) else {
            return false;
        };
        sink.quality.store(quality.as_u8(), Ordering::Relaxed);
        self.retarget(sink);
        sink.target.load(Ordering::Relaxed) != sink.current.load(Ordering::Relaxed)
    }

    /// Sends one packet to every sink that takes its layer. Called only by
    /// the read loop.
    pub fn forward(&self, mut pkt: Packet) {
        let ssrc = pkt.header.ssrc;
        // The publisher's extension ids mean nothing on the subscriber's
        // connection: drop them once, before the fan-out.
        pkt.header.extension = false;
        pkt.header.extensions.clear();
        pkt.header.extensions_padding = 0;
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut keyframe = None;
        for sink in sinks.iter() {
            if sink.current.load(Ordering::Relaxed) != ssrc {
                // Switch layers only where the new one starts a picture.
                let target = sink.target.load(Ordering::Relaxed);
                let key = *keyframe.get_or_insert_with(|| {
                    layers::is_keyframe(&self.codec.mime_type, &pkt.payload)
                });
                if target != ssrc || !key {
                    continue;
                }
                sink.current.store(ssrc, Ordering::Relaxed);
            }
            match sink.tx.try_send(pkt.clone()) {
                Ok(()) => self.metrics.rtp_forwarded.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.metrics.rtp_dropped.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    pub fn add_sink(&self, sink: Arc<Sink>) {
        let mut guard = self.sinks.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Arc<Sink>> = guard
            .iter()
            .filter(|s| s.subscriber != sink.subscriber)
            .cloned()
            .collect();
        next.push(sink);
        *guard = Arc::new(next);
    }

    pub fn remove_sink(&self, subscriber: &str) {
        let mut guard = self.sinks.write().unwrap_or_else(|e| e.into_inner());
        let next: Vec<Arc<Sink>> = guard
            .iter()
            .filter(|s| s.subscriber != subscriber)
            .cloned()
            .collect();
        *guard = Arc::new(next);
    }

    pub fn clear_sinks(&self) {
        *self.sinks.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Vec::new());
    }

    /// Asks the publisher for a keyframe, at most once per interval however
    /// many subscribers ask: a thousand viewers joining cause one request.
    pub async fn request_keyframe(&self) {
        let now = Instant::now();
        {
            let mut last = self
                .last_keyframe_request
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < self.keyframe_interval) {
                self.metrics
                    .keyframe_requests_suppressed
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            *last = Some(now);
        }
        self.metrics
            .keyframe_requests_sent
            .fetch_add(1, Ordering::Relaxed);
        let mut ssrcs: Vec<u32> = self
            .layers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, _, s)| *s)
            .collect();
        if ssrcs.is_empty() {
            ssrcs.push(self.ssrc);
        }
        let plis: Vec<Box<dyn rtc::rtcp::Packet>> = ssrcs
            .into_iter()
            .map(|media_ssrc| {
                Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                }) as Box<dyn rtc::rtcp::Packet>
            })
            .collect();
        let _ = self.remote.write_rtcp(plis).await;
    }
}

impl Sink {
    /// Creates a sink writing to `out` and starts its two tasks: the writer,
    /// and the listener for the subscriber's keyframe requests.
    pub fn start(
        subscriber: String,
        ssrc: u32,
        out: Arc<TrackLocalStaticRTP>,
        publication: std::sync::Weak<Publication>,
    ) -> Arc<Sink> {
        let (tx, mut rx) = mpsc::channel::<Packet>(SINK_QUEUE);
        let sink = Arc::new(Sink {
            subscriber,
            ssrc,
            payload_type: AtomicU8::new(0),
            current: AtomicU32::new(0),
            target: AtomicU32::new(0),
            quality: AtomicU8::new(Quality::High.as_u8()),
            tx,
        });
        if let Some(p) = publication.upgrade() {
            p.retarget(&sink);
        }
        let weak_sink = Arc::downgrade(&sink);
        let writer_out = out.clone();
        tokio::spawn(async move {
            // Sequence numbers stay continuous across layer switches.
            let mut last_in: Option<u32> = None;
            let mut offset: u16 = 0;
            let mut last_out: u16 = 0;
            while let Some(mut pkt) = rx.recv().await {
                let Some(sink) = weak_sink.upgrade() else {
                    break;
                };
                let pt = sink.payload_type.load(Ordering::Relaxed);
                if pt == 0 {
                    continue; // not negotiated yet
                }
                if last_in.is_some_and(|s| s != pkt.header.ssrc) {
                    offset = last_out
                        .wrapping_add(1)
                        .wrapping_sub(pkt.header.sequence_number);
                }
                last_in = Some(pkt.header.ssrc);
                pkt.header.sequence_number = pkt.header.sequence_number.wrapping_add(offset);
                last_out = pkt.header.sequence_number;
                pkt.header.ssrc = sink.ssrc;
                pkt.header.payload_type = pt;
                drop(sink);
                if writer_out.write_rtp(pkt).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(event) = out.poll().await {
                // The tap lets only keyframe requests through.
                if let TrackLocalEvent::OnRtcpPacket(_) = event {
                    match publication.upgrade() {
                        Some(p) => p.request_keyframe().await,
                        None => break,
                    }
                }
            }
        });
        sink
    }
}
