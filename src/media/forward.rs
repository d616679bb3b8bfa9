//! The packet path: one published track fanned out to its subscribers.
//!
//! A publication's read loop hands each packet to every sink with a
//! non-blocking `try_send`: a slow subscriber loses packets, it never slows
//! the publisher or the others. The sink list is per track (not per room),
//! read with one short lock and an `Arc` clone per packet. The payload is
//! shared (`Bytes`); each subscriber gets one header copy with its own SSRC
//! and payload type.

use crate::http::metrics::Metrics;
use crate::protocol::TrackInfo;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::packet::Packet;
use std::sync::atomic::{AtomicU8, Ordering};
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
    /// The codec as the publisher negotiated it; subscribers get the same.
    pub codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
    /// The SSRC forwarded (the first layer seen when the publisher simulcasts).
    pub ssrc: u32,
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
    tx: mpsc::Sender<Packet>,
}

impl Publication {
    pub fn new(
        info: TrackInfo,
        codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
        ssrc: u32,
        remote: Arc<dyn TrackRemote>,
        keyframe_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Publication {
        Publication {
            info,
            codec,
            ssrc,
            remote,
            sinks: RwLock::new(Arc::new(Vec::new())),
            last_keyframe_request: Mutex::new(None),
            keyframe_interval,
            metrics,
        }
    }

    /// Sends one packet to every sink. Called only by the read loop.
    pub fn forward(&self, mut pkt: Packet) {
        if pkt.header.ssrc != self.ssrc {
            return;
        }
        // The publisher's extension ids mean nothing on the subscriber's
        // connection: drop them once, before the fan-out.
        pkt.header.extension = false;
        pkt.header.extensions.clear();
        pkt.header.extensions_padding = 0;
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner()).clone();
        for sink in sinks.iter() {
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
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.ssrc,
        };
        let _ = self.remote.write_rtcp(vec![Box::new(pli)]).await;
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
            tx,
        });
        let weak_sink = Arc::downgrade(&sink);
        let writer_out = out.clone();
        tokio::spawn(async move {
            while let Some(mut pkt) = rx.recv().await {
                let Some(sink) = weak_sink.upgrade() else {
                    break;
                };
                let pt = sink.payload_type.load(Ordering::Relaxed);
                if pt == 0 {
                    continue; // not negotiated yet
                }
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
