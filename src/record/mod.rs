//! Recording: each published VP8 or Opus track written as it arrives,
//! without decoding, into a WebM file a browser plays directly
//! (docs/recording.md).
//!
//! [`webm`] writes and finalizes the files, [`vp8`] reassembles VP8 frames
//! from RTP, [`TrackRecorder`] puts one track's packets on the recording's
//! clock, and [`session`] runs one recording of a session (pause and
//! resume, manifest), finalizes recordings a crash left unfinished, and
//! applies the retention setting. The replay API lives in
//! `http::recordings_api`, the replay page in `web-client/src/replay.js`.

pub mod session;
pub mod vp8;
pub mod webm;

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;
use webm::{Codec, WebmWriter};

/// Which codec a recorded track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vp8,
    Opus,
}

/// Writes one track's RTP packets into a WebM file.
pub struct TrackRecorder {
    kind: Kind,
    file: Option<std::path::PathBuf>,
    writer: Option<WebmWriter<BufWriter<File>>>,
    depacketizer: vp8::Depacketizer,
    unwrap: vp8::Unwrapper,
    /// The first packet's extended RTP time and its place on the
    /// recording's clock (ms).
    origin: Option<(i64, i64)>,
}

impl TrackRecorder {
    /// A recorder that creates `path` when the first usable frame arrives
    /// (for video, the first keyframe: nothing before it can be decoded).
    pub fn new(path: &Path, kind: Kind) -> TrackRecorder {
        TrackRecorder {
            kind,
            file: Some(path.to_path_buf()),
            writer: None,
            depacketizer: vp8::Depacketizer::default(),
            unwrap: vp8::Unwrapper::default(),
            origin: None,
        }
    }

    fn clock_rate(&self) -> i64 {
        match self.kind {
            Kind::Vp8 => 90_000,
            Kind::Opus => 48_000,
        }
    }

    /// One RTP packet. `now_ms` is the recording's clock when it arrived;
    /// frame times follow the RTP timestamps from the first packet on.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now_ms: i64,
    ) -> io::Result<()> {
        let (ts, keyframe, data) = match self.kind {
            // An empty packet is padding, not a frame.
            Kind::Opus if payload.is_empty() => return Ok(()),
            Kind::Opus => (timestamp, true, payload.to_vec()),
            Kind::Vp8 => match self.depacketizer.push(seq, timestamp, marker, payload) {
                Some(f) => (f.rtp_timestamp, f.keyframe, f.data),
                None => return Ok(()),
            },
        };
        let ext = self.unwrap.unwrap(ts);
        if self.writer.is_none() {
            let codec = match self.kind {
                Kind::Opus => Codec::Opus { channels: 2 },
                Kind::Vp8 => match vp8::dimensions(&data) {
                    Some((width, height)) if keyframe => Codec::Vp8 { width, height },
                    _ => return Ok(()),
                },
            };
            let path = self.file.take().expect("the file is created once");
            let f = BufWriter::new(File::create(path)?);
            self.writer = Some(WebmWriter::new(f, codec)?);
        }
        let (ext0, ms0) = *self.origin.get_or_insert((ext, now_ms));
        let ms = ms0 + (ext - ext0) * 1000 / self.clock_rate();
        let w = self.writer.as_mut().expect("created above");
        w.write_frame(ms, keyframe, &data)
    }

    /// Anchors the next frame to the recording's clock again (after a
    /// pause, or when the track's RTP stream starts anew).
    pub fn rebase(&mut self) {
        self.origin = None;
        self.unwrap = vp8::Unwrapper::default();
        self.depacketizer = vp8::Depacketizer::after_gap();
    }

    /// Video that cannot go on without a keyframe: none has come yet, or
    /// packets were lost since the last one.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.kind == Kind::Vp8
            && (self.writer.is_none() || self.depacketizer.waiting_for_keyframe())
    }

    /// Frames written and their times; `None` before the file exists.
    pub fn span(&self) -> Option<webm::Span> {
        self.writer.as_ref().map(|w| w.span())
    }

    /// Frames written.
    pub fn frames(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.blocks())
    }

    /// Writes buffered frames to disk (the file stays playable).
    pub fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }

    /// Ends the file with its duration and cues; `None` when nothing usable
    /// ever arrived (no file was made).
    pub fn finish(self, end_ms: Option<i64>) -> io::Result<Option<webm::Span>> {
        match self.writer {
            Some(w) => {
                let span = w.span();
                w.finish(end_ms)?;
                Ok(Some(span))
            }
            None => Ok(None),
        }
    }
}
