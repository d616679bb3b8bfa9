//! A WebM (Matroska) writer for one track: VP8 video or Opus audio, written
//! frame by frame as it arrives, without decoding.
//!
//! The file is playable at every moment: the segment and the cluster being
//! written have "unknown" sizes (as live WebM does), so a file cut short by
//! a crash plays up to its last complete block. A cluster gets its real
//! size, written over the unknown one, as soon as it is closed (when the
//! next one starts, or at the end), so strict demuxers find only known
//! sizes in a finished file. [`WebmWriter::finish`] then adds what makes
//! seeking fast and the length known: cue points, a seek head in the space
//! reserved for it, the duration, and the segment's size.

use std::io::{self, Seek, SeekFrom, Write};

// Element ids (with their length markers, as they appear in the file).
const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const VOID: u32 = 0xEC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const CODEC_DELAY: u32 = 0x56AA;
const SEEK_PRE_ROLL: u32 = 0x56BB;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;

/// "Size unknown": 8 bytes, all value bits set.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// Bytes of the Duration element (2-byte id, 1-byte size, 8-byte float).
const DURATION_LEN: u64 = 11;
/// Bytes kept free at the start of the segment for the seek head.
const SEEK_HEAD_SPACE: u64 = 96;
/// A new cluster after this long (a block's time is 16-bit relative)…
const CLUSTER_MAX_MS: i64 = 10_000;
/// …or at a video keyframe once the cluster is this long.
const CLUSTER_KEYFRAME_MS: i64 = 2_000;

/// What the track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Vp8 { width: u16, height: u16 },
    Opus { channels: u8 },
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count();
    b[skip..].to_vec()
}

/// An EBML variable-length size, in as few bytes as it takes.
pub fn size_bytes(n: u64) -> Vec<u8> {
    for len in 1..=8u32 {
        // All-ones is reserved for "unknown".
        if n < (1u64 << (7 * len)) - 1 {
            let marker = 1u64 << (7 * len);
            let v = n | marker;
            return v.to_be_bytes()[(8 - len as usize)..].to_vec();
        }
    }
    panic!("EBML size too large: {n}");
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend(size_bytes(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn uint(id: u32, v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(7);
    element(id, &b[skip..])
}

fn float(id: u32, v: f64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

fn string(id: u32, s: &str) -> Vec<u8> {
    element(id, s.as_bytes())
}

fn master(id: u32, children: &[Vec<u8>]) -> Vec<u8> {
    element(id, &children.concat())
}

/// The Opus identification header (RFC 7845) used as CodecPrivate.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(channels);
    h.extend(312u16.to_le_bytes()); // pre-skip (samples at 48 kHz)
    h.extend(48_000u32.to_le_bytes()); // original input sample rate
    h.extend(0i16.to_le_bytes()); // output gain
    h.push(0); // channel mapping family
    h
}

/// The cluster being written.
#[derive(Debug, Clone, Copy)]
struct OpenCluster {
    /// Its time (ms).
    ms: i64,
    /// File offset of its 8-byte size, unknown until it is closed.
    size_at: u64,
}

/// Writes one track into a WebM file.
pub struct WebmWriter<W: Write + Seek> {
    out: W,
    codec: Codec,
    /// File offset of the segment's data (positions in seek heads and cues
    /// are relative to it).
    segment_start: u64,
    /// Where the 8-byte size of the segment is.
    segment_size_at: u64,
    /// Where the Duration element goes (a Void until then).
    duration_at: u64,
    info_at: u64,
    tracks_at: u64,
    /// The open cluster, if any.
    cluster: Option<OpenCluster>,
    /// (time, cluster offset) of each cluster that starts with a keyframe.
    cues: Vec<(i64, u64)>,
    first_ms: Option<i64>,
    last_ms: i64,
    blocks: u64,
}

/// What a track's file holds: frames, and the first and last frame's time
/// on the recording's clock (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub frames: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Starts a file: header, reserved seek head, info and the track.
    pub fn new(mut out: W, codec: Codec) -> io::Result<WebmWriter<W>> {
        out.write_all(&master(
            EBML,
            &[
                uint(EBML_VERSION, 1),
                uint(EBML_READ_VERSION, 1),
                uint(EBML_MAX_ID_LENGTH, 4),
                uint(EBML_MAX_SIZE_LENGTH, 8),
                string(DOC_TYPE, "webm"),
                uint(DOC_TYPE_VERSION, 4),
                uint(DOC_TYPE_READ_VERSION, 2),
            ],
        ))?;
        out.write_all(&id_bytes(SEGMENT))?;
        let segment_size_at = out.stream_position()?;
        out.write_all(&UNKNOWN_SIZE)?;
        let segment_start = out.stream_position()?;
        // Room for the seek head, filled with a Void element until finish.
        out.write_all(&void(SEEK_HEAD_SPACE))?;
        let info_at = out.stream_position()? - segment_start;
        let mut info = Vec::new();
        info.extend(uint(TIMESTAMP_SCALE, 1_000_000)); // milliseconds
        info.extend(string(MUXING_APP, "lectern"));
        info.extend(string(WRITING_APP, "lectern"));
        // The duration is unknown until the end: a Void of the same size
        // holds its place (Matroska wants a duration above 0, or none).
        let duration_offset_in_info = info.len();
        info.extend(void(DURATION_LEN));
        let info_el = element(INFO, &info);
        let header_len = info_el.len() - info.len();
        out.write_all(&info_el)?;
        let duration_at = segment_start + info_at + (header_len + duration_offset_in_info) as u64;
        let tracks_at = out.stream_position()? - segment_start;
        out.write_all(&master(TRACKS, &[track_entry(codec)]))?;
        Ok(WebmWriter {
            out,
            codec,
            segment_start,
            segment_size_at,
            duration_at,
            info_at,
            tracks_at,
            cluster: None,
            cues: Vec::new(),
            first_ms: None,
            last_ms: 0,
            blocks: 0,
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Frames written so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Frames written so far and their times.
    pub fn span(&self) -> Span {
        Span {
            frames: self.blocks,
            first_ms: self.first_ms.unwrap_or(0),
            last_ms: self.last_ms,
        }
    }

    /// Adds one frame at `ms` (milliseconds from the recording's start,
    /// never going back). Frames after a gap simply carry later times.
    pub fn write_frame(&mut self, ms: i64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        let ms = ms.max(self.last_ms);
        let video = matches!(self.codec, Codec::Vp8 { .. });
        let start_new = match self.cluster {
            None => true,
            Some(OpenCluster { ms: t, .. }) => {
                ms - t >= CLUSTER_MAX_MS
                    || (video && keyframe && ms - t >= CLUSTER_KEYFRAME_MS)
                    || (!video && ms - t >= CLUSTER_KEYFRAME_MS * 2)
            }
        };
        if start_new {
            self.close_cluster()?;
            let pos = self.out.stream_position()?;
            let at = pos - self.segment_start;
            self.out.write_all(&id_bytes(CLUSTER))?;
            self.out.write_all(&UNKNOWN_SIZE)?;
            self.out.write_all(&uint(TIMESTAMP, ms as u64))?;
            self.cluster = Some(OpenCluster {
                ms,
                size_at: pos + id_bytes(CLUSTER).len() as u64,
            });
            if keyframe || !video {
                self.cues.push((ms, at));
            }
        }
        let cluster_ms = self.cluster.expect("a cluster is open").ms;
        let rel = (ms - cluster_ms) as i16;
        let mut block = Vec::with_capacity(data.len() + 4);
        block.push(0x81); // track number 1 as a 1-byte vint
        block.extend(rel.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0x00 });
        block.extend_from_slice(data);
        self.out.write_all(&element(SIMPLE_BLOCK, &block))?;
        self.first_ms.get_or_insert(ms);
        self.last_ms = ms;
        self.blocks += 1;
        Ok(())
    }

    /// Flushes what is buffered to the file (the file stays playable).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Writes the open cluster's real size over its unknown one. Its
    /// blocks reach the file before the size does (seeking flushes a
    /// buffered writer), and both sizes take 8 bytes, so the file is
    /// whole whichever of the two a crash leaves.
    fn close_cluster(&mut self) -> io::Result<()> {
        let Some(c) = self.cluster.take() else {
            return Ok(());
        };
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(c.size_at))?;
        self.out.write_all(&known_size_8(end - c.size_at - 8))?;
        self.out.seek(SeekFrom::Start(end))?;
        Ok(())
    }

    /// Ends the file: cues, seek head, duration (`end_ms`, or the last
    /// frame's time) and the segment size. Returns the inner writer.
    pub fn finish(mut self, end_ms: Option<i64>) -> io::Result<W> {
        self.close_cluster()?;
        let cues_at = self.out.stream_position()? - self.segment_start;
        let points: Vec<Vec<u8>> = self
            .cues
            .iter()
            .map(|(t, pos)| {
                master(
                    CUE_POINT,
                    &[
                        uint(CUE_TIME, *t as u64),
                        master(
                            CUE_TRACK_POSITIONS,
                            &[uint(CUE_TRACK, 1), uint(CUE_CLUSTER_POSITION, *pos)],
                        ),
                    ],
                )
            })
            .collect();
        if !points.is_empty() {
            self.out.write_all(&master(CUES, &points))?;
        }
        let end = self.out.stream_position()?;
        let seek = |id: u32, pos: u64| {
            master(
                SEEK,
                &[element(SEEK_ID, &id_bytes(id)), uint(SEEK_POSITION, pos)],
            )
        };
        let mut entries = vec![seek(INFO, self.info_at), seek(TRACKS, self.tracks_at)];
        if !points.is_empty() {
            entries.push(seek(CUES, cues_at));
        }
        let head = master(SEEK_HEAD, &entries);
        let rest = SEEK_HEAD_SPACE
            .checked_sub(head.len() as u64)
            .filter(|r| *r >= 2)
            .ok_or_else(|| io::Error::other("seek head does not fit its space"))?;
        self.out.seek(SeekFrom::Start(self.segment_start))?;
        self.out.write_all(&head)?;
        self.out.write_all(&void(rest))?;
        let duration = end_ms.unwrap_or(self.last_ms).max(self.last_ms).max(1) as f64;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out.write_all(&float(DURATION, duration))?;
        let size = end - self.segment_start;
        self.out.seek(SeekFrom::Start(self.segment_size_at))?;
        self.out.write_all(&known_size_8(size))?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A known size as an 8-byte vint, the length of [`UNKNOWN_SIZE`], so it
/// can be written in its place.
fn known_size_8(n: u64) -> [u8; 8] {
    (n | (1u64 << 56)).to_be_bytes()
}

/// A size as a vint of exactly `len` bytes, to write over a size of that
/// length; `None` if it does not fit.
fn size_in(n: u64, len: usize) -> Option<Vec<u8>> {
    if !(1..=8).contains(&len) || n >= (1u64 << (7 * len)) - 1 {
        return None;
    }
    let v = n | (1u64 << (7 * len));
    Some(v.to_be_bytes()[8 - len..].to_vec())
}

/// Reads an EBML id at `i` (1–4 bytes, length from the first byte).
fn read_id(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let first = *b.get(i)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 || i + len > b.len() {
        return None;
    }
    let mut v = 0u32;
    for x in &b[i..i + len] {
        v = (v << 8) | *x as u32;
    }
    Some((v, len))
}

/// Reads an EBML size at `i`; `None` inside for "unknown".
fn read_size(b: &[u8], i: usize) -> Option<(Option<u64>, usize)> {
    let first = *b.get(i)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || i + len > b.len() {
        return None;
    }
    let mut v = (first as u64) & ((1u64 << (8 - len)) - 1);
    for x in &b[i + 1..i + len] {
        v = (v << 8) | *x as u64;
    }
    let unknown = v == (1u64 << (7 * len)) - 1;
    Some(((!unknown).then_some(v), len))
}

/// Ends a file that was never finished (the server stopped while it was
/// written): drops a cut-off last block, writes the real size of the
/// cluster that was open (and of one cut short), then adds cues, seek
/// head, duration and size as [`WebmWriter::finish`] would. Returns the frames
/// and their times.
pub fn finalize(path: &std::path::Path) -> io::Result<Span> {
    let bytes = std::fs::read(path)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a WebM file Lectern wrote");
    let (id, n) = read_id(&bytes, 0).ok_or_else(bad)?;
    if id != EBML {
        return Err(bad());
    }
    let (size, m) = read_size(&bytes, n).ok_or_else(bad)?;
    let mut i = n + m + size.ok_or_else(bad)? as usize;
    let (id, n) = read_id(&bytes, i).ok_or_else(bad)?;
    if id != SEGMENT {
        return Err(bad());
    }
    let segment_size_at = (i + n) as u64;
    let (segment_size, m) = read_size(&bytes, i + n).ok_or_else(bad)?;
    // A known segment size is written last by `finish`: such a file is
    // already whole (a recording where only another file failed).
    let finished = segment_size.is_some();
    let segment_start = (i + n + m) as u64;
    i += n + m;
    let (mut info_at, mut tracks_at, mut duration_at) = (None, None, None);
    let mut cues = Vec::new();
    let (mut cluster_ms, mut last_ms, mut blocks, mut good_end) = (0i64, 0i64, 0u64, i);
    let mut first_ms = None;
    let mut codec = None;
    // Each cluster's size field (offset, length, value) and where its
    // content starts and ends, to write the real sizes afterwards.
    let mut clusters: Vec<(usize, usize, Option<u64>, usize, usize)> = Vec::new();
    'walk: while i < bytes.len() {
        let Some((id, n)) = read_id(&bytes, i) else {
            break;
        };
        let Some((size, m)) = read_size(&bytes, i + n) else {
            break;
        };
        let body = i + n + m;
        match (id, size) {
            (CLUSTER, _) => {
                // A closed cluster ends where its size says; the open one
                // (unknown size) at the next cluster, the cues, or the end.
                let at = (i as u64) - segment_start;
                let limit = size.map_or(bytes.len(), |s| {
                    usize::try_from(s)
                        .ok()
                        .and_then(|s| body.checked_add(s))
                        .unwrap_or(usize::MAX)
                });
                i = body;
                let mut first_block = true;
                while i < limit.min(bytes.len()) {
                    let Some((cid, cn)) = read_id(&bytes, i) else {
                        break;
                    };
                    if size.is_none() && (cid == CLUSTER || cid == CUES) {
                        break;
                    }
                    let Some((Some(cs), cm)) = read_size(&bytes, i + cn) else {
                        break;
                    };
                    let cbody = i + cn + cm;
                    let cend = cbody.saturating_add(cs as usize);
                    if cend > bytes.len() || cend > limit {
                        break; // cut off mid-element
                    }
                    if cid == TIMESTAMP {
                        cluster_ms = bytes[cbody..cend]
                            .iter()
                            .fold(0i64, |v, x| (v << 8) | *x as i64);
                    } else if cid == SIMPLE_BLOCK && cs >= 4 {
                        let rel = i16::from_be_bytes([bytes[cbody + 1], bytes[cbody + 2]]) as i64;
                        let key = bytes[cbody + 3] & 0x80 != 0;
                        if first_block {
                            if key || matches!(codec, Some(Codec::Opus { .. })) {
                                cues.push((cluster_ms + rel, at));
                            }
                            first_block = false;
                        }
                        last_ms = cluster_ms + rel;
                        first_ms.get_or_insert(last_ms);
                        blocks += 1;
                    }
                    i = cend;
                    good_end = i;
                }
                clusters.push((body - m, m, size, body, i));
                if size.is_some() && i != limit {
                    // A closed cluster cut short (its size reached the disk
                    // before its blocks): nothing after it can be trusted.
                    break 'walk;
                }
                continue;
            }
            // Cues of a finish cut short: written anew below.
            (CUES, Some(_)) => break,
            (_, Some(size)) => {
                let end = body + size as usize;
                if end > bytes.len() {
                    break;
                }
                let rel = (i as u64) - segment_start;
                match id {
                    INFO => {
                        info_at = Some(rel);
                        // The Duration placeholder: the first Void in Info.
                        let mut j = body;
                        while j < end {
                            let Some((cid, cn)) = read_id(&bytes, j) else {
                                break;
                            };
                            let Some((Some(cs), cm)) = read_size(&bytes, j + cn) else {
                                break;
                            };
                            if cid == VOID || cid == DURATION {
                                duration_at = Some(j as u64);
                                break;
                            }
                            j += cn + cm + cs as usize;
                        }
                    }
                    TRACKS => {
                        tracks_at = Some(rel);
                        let t = &bytes[body..end];
                        codec = Some(if t.windows(5).any(|w| w == b"V_VP8") {
                            Codec::Vp8 {
                                width: 0,
                                height: 0,
                            }
                        } else {
                            Codec::Opus { channels: 2 }
                        });
                    }
                    _ => {}
                }
                i = end;
                good_end = i;
            }
            _ => break,
        }
    }
    let (Some(info_at), Some(tracks_at), Some(duration_at), Some(codec)) =
        (info_at, tracks_at, duration_at, codec)
    else {
        return Err(bad());
    };
    if finished {
        return Ok(Span {
            first_ms: first_ms.unwrap_or(0),
            last_ms,
            frames: blocks,
        });
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    f.set_len(good_end as u64)?;
    // Every cluster kept gets its real size: the one open when the writer
    // stopped (unknown size), and one whose end was cut off.
    for (size_at, len, size, body, end) in clusters {
        if body > good_end {
            break; // its header is cut off with the rest
        }
        let real = (end.min(good_end) - body) as u64;
        if size != Some(real) {
            f.seek(SeekFrom::Start(size_at as u64))?;
            f.write_all(&size_in(real, len).ok_or_else(bad)?)?;
        }
    }
    f.seek(SeekFrom::Start(good_end as u64))?;
    let w = WebmWriter {
        out: f,
        codec,
        segment_start,
        segment_size_at,
        duration_at,
        info_at,
        tracks_at,
        cluster: None,
        cues,
        first_ms,
        last_ms,
        blocks,
    };
    let span = w.span();
    w.finish(None)?;
    Ok(span)
}

/// A Void element of exactly `len` bytes (at least 2).
fn void(len: u64) -> Vec<u8> {
    // 1 byte id + 8-byte size + payload, or 1 + 1 for short ones.
    if len < 9 + 1 {
        let payload = len - 2;
        let mut v = vec![VOID as u8, 0x80 | payload as u8];
        v.resize(len as usize, 0);
        return v;
    }
    let payload = len - 9;
    let mut v = vec![VOID as u8];
    v.extend((payload | (1u64 << 56)).to_be_bytes());
    v.resize(len as usize, 0);
    v
}

fn track_entry(codec: Codec) -> Vec<u8> {
    let mut c = vec![uint(TRACK_NUMBER, 1), uint(TRACK_UID, 1)];
    match codec {
        Codec::Vp8 { width, height } => {
            c.push(uint(TRACK_TYPE, 1));
            c.push(string(CODEC_ID, "V_VP8"));
            c.push(master(
                VIDEO,
                &[
                    uint(PIXEL_WIDTH, width as u64),
                    uint(PIXEL_HEIGHT, height as u64),
                ],
            ));
        }
        Codec::Opus { channels } => {
            c.push(uint(TRACK_TYPE, 2));
            c.push(string(CODEC_ID, "A_OPUS"));
            c.push(element(CODEC_PRIVATE, &opus_head(channels)));
            // Pre-skip as a delay, and the seek pre-roll, in nanoseconds.
            c.push(uint(CODEC_DELAY, 312 * 1_000_000_000 / 48_000));
            c.push(uint(SEEK_PRE_ROLL, 80_000_000));
            c.push(master(
                AUDIO,
                &[
                    float(SAMPLING_FREQUENCY, 48_000.0),
                    uint(CHANNELS, channels as u64),
                ],
            ));
        }
    }
    master(TRACK_ENTRY, &c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn sizes_are_minimal_vints() {
        assert_eq!(size_bytes(0), [0x80]);
        assert_eq!(size_bytes(126), [0xFE]);
        // 127 would be all ones in one byte ("unknown"): two bytes.
        assert_eq!(size_bytes(127), [0x40, 0x7F]);
        assert_eq!(size_bytes(16_382), [0x7F, 0xFE]);
        assert_eq!(size_bytes(16_383), [0x20, 0x3F, 0xFF]);
    }

    #[test]
    fn an_unfinished_file_is_finalized_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.webm");
        let f = std::fs::File::create(&path).unwrap();
        let mut w = WebmWriter::new(f, Codec::Opus { channels: 2 }).unwrap();
        // A track published 1 s into the recording.
        for i in 0..700 {
            w.write_frame(1000 + i * 20, true, &[0xFC, 0xFF, 0xFE])
                .unwrap();
        }
        w.flush().unwrap();
        drop(w); // never finished
                 // A crash in the middle of a block: cut the last few bytes off.
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let span = finalize(&path).unwrap();
        assert_eq!(span.frames, 699, "the cut-off block is dropped");
        assert_eq!((span.first_ms, span.last_ms), (1000, 1000 + 698 * 20));
        let bytes = std::fs::read(&path).unwrap();
        let find = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
        let d = find(&[0x44, 0x89, 0x88]).unwrap() + 3;
        assert_eq!(
            f64::from_be_bytes(bytes[d..d + 8].try_into().unwrap()),
            14960.0
        );
        assert!(find(&[0x1C, 0x53, 0xBB, 0x6B]).is_some(), "cues");
    }

    #[test]
    fn a_finished_file_is_read_but_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.webm");
        let f = std::fs::File::create(&path).unwrap();
        let mut w = WebmWriter::new(
            f,
            Codec::Vp8 {
                width: 64,
                height: 48,
            },
        )
        .unwrap();
        for i in 0..90 {
            w.write_frame(500 + i * 33, i % 30 == 0, &[0x10, 0x02, 0x00, 0x9d])
                .unwrap();
        }
        let written = w.span();
        w.finish(None).unwrap();
        let before = std::fs::read(&path).unwrap();
        for _ in 0..2 {
            let span = finalize(&path).unwrap();
            assert_eq!(
                (span.frames, span.first_ms, span.last_ms),
                (written.frames, written.first_ms, written.last_ms)
            );
            assert_eq!(std::fs::read(&path).unwrap(), before, "not rewritten");
        }
    }

    /// The elements in `b[from..to]`, read as written: (id, size, where
    /// the body starts). A child of unknown size runs to `to`.
    fn elements(b: &[u8], from: usize, to: usize) -> Vec<(u32, Option<u64>, usize)> {
        let mut out = Vec::new();
        let mut i = from;
        while i < to {
            let (id, n) = read_id(b, i).expect("an element id");
            let (size, m) = read_size(b, i + n).expect("an element size");
            out.push((id, size, i + n + m));
            i = match size {
                Some(s) => i + n + m + s as usize,
                None => to,
            };
        }
        assert_eq!(i, to, "the elements end exactly where their parent does");
        out
    }

    /// The segment's clusters, each as (size written, blocks in it),
    /// checking that a known size is exactly the length of what it holds.
    fn clusters(b: &[u8]) -> Vec<(Option<u64>, usize)> {
        let top = elements(b, 0, b.len());
        assert_eq!(top.len(), 2, "EBML header and segment");
        let (id, size, body) = top[1];
        assert_eq!(id, SEGMENT);
        let end = size.map_or(b.len(), |s| body + s as usize);
        elements(b, body, end)
            .into_iter()
            .filter(|(id, _, _)| *id == CLUSTER)
            .map(|(_, size, cbody)| {
                // Unknown: the cluster runs to the next top-level element.
                let cend = size.map_or_else(
                    || {
                        let mut j = cbody;
                        while j < end && read_id(b, j).unwrap().0 != CLUSTER {
                            let (_, n) = read_id(b, j).unwrap();
                            let (s, m) = read_size(b, j + n).unwrap();
                            j += n + m + s.unwrap() as usize;
                        }
                        j
                    },
                    |s| cbody + s as usize,
                );
                let children = elements(b, cbody, cend);
                assert_eq!(children[0].0, TIMESTAMP, "a cluster starts with its time");
                assert!(children[1..].iter().all(|c| c.0 == SIMPLE_BLOCK));
                (size, children.len() - 1)
            })
            .collect()
    }

    #[test]
    fn every_cluster_of_a_finished_file_has_its_real_size() {
        // 20 s of video, a keyframe every 2 s: ten clusters.
        let codec = Codec::Vp8 {
            width: 64,
            height: 48,
        };
        let mut w = WebmWriter::new(Cursor::new(Vec::new()), codec).unwrap();
        for i in 0..600 {
            w.write_frame(i * 100 / 3, i % 60 == 0, &[0x10, 0x02, 0x00, 0x9d])
                .unwrap();
        }
        let bytes = w.finish(Some(20_000)).unwrap().into_inner();
        let found = clusters(&bytes);
        assert_eq!(found.len(), 10, "{found:?}");
        for (size, blocks) in &found {
            assert!(size.is_some(), "a cluster of unknown size: {found:?}");
            assert_eq!(*blocks, 60);
        }
        // 10 s of audio: clusters of 4 s, 4 s and 2 s.
        let mut w = WebmWriter::new(Cursor::new(Vec::new()), Codec::Opus { channels: 2 }).unwrap();
        for i in 0..500 {
            w.write_frame(i * 20, true, &[0xFC, 0xFF, 0xFE]).unwrap();
        }
        let bytes = w.finish(None).unwrap().into_inner();
        let found = clusters(&bytes);
        let blocks: Vec<usize> = found.iter().map(|c| c.1).collect();
        assert_eq!(blocks, [200, 200, 100]);
        assert!(found.iter().all(|c| c.0.is_some()), "{found:?}");
    }

    #[test]
    fn clusters_get_their_size_when_closed_and_a_crash_leaves_a_file_finalize_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.webm");
        let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut w = WebmWriter::new(f, Codec::Opus { channels: 2 }).unwrap();
        for i in 0..450 {
            w.write_frame(i * 20, true, &[0xFC, 0xFF, 0xFE]).unwrap();
        }
        w.flush().unwrap();
        // While it is written: the closed clusters have their sizes, the
        // open one (and the segment) not yet.
        let live = std::fs::read(&path).unwrap();
        let found = clusters(&live);
        assert!(
            matches!(found[..], [(Some(_), 200), (Some(_), 200), (None, 50)]),
            "{found:?}"
        );
        drop(w); // never finished

        // A crash in the middle of the open cluster's last block.
        let cut = dir.path().join("cut.webm");
        std::fs::write(&cut, &live[..live.len() - 2]).unwrap();
        let span = finalize(&cut).unwrap();
        assert_eq!(span.frames, 449);
        let found = clusters(&std::fs::read(&cut).unwrap());
        assert!(
            matches!(found[..], [(Some(_), 200), (Some(_), 200), (Some(_), 49)]),
            "{found:?}"
        );

        // A closed cluster whose size reached the disk but not all of its
        // blocks (a power cut): it keeps the blocks that did, sized.
        let second = live
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == [0x1F, 0x43, 0xB6, 0x75])
            .nth(1)
            .unwrap()
            .0;
        let cut = dir.path().join("power.webm");
        std::fs::write(&cut, &live[..second + 400]).unwrap();
        let span = finalize(&cut).unwrap();
        let found = clusters(&std::fs::read(&cut).unwrap());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|c| c.0.is_some()), "{found:?}");
        assert_eq!(span.frames as usize, found[0].1 + found[1].1);
        assert_eq!(found[0].1, 200);
    }

    #[test]
    fn voids_have_the_asked_length() {
        for n in [2, 5, 9, 10, 11, 96] {
            assert_eq!(void(n).len() as u64, n);
        }
    }

    #[test]
    fn a_finished_file_has_its_duration_cues_and_seek_head() {
        let mut w = WebmWriter::new(Cursor::new(Vec::new()), Codec::Opus { channels: 2 }).unwrap();
        for i in 0..300 {
            w.write_frame(i * 20, true, &[0xFC, 0xFF, 0xFE]).unwrap();
        }
        assert_eq!(w.blocks(), 300);
        let bytes = w.finish(None).unwrap().into_inner();
        assert_eq!(&bytes[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        let find = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
        // The duration was patched to the last frame's time (5980 ms).
        let d = find(&[0x44, 0x89, 0x88]).unwrap() + 3;
        let dur = f64::from_be_bytes(bytes[d..d + 8].try_into().unwrap());
        assert_eq!(dur, 5980.0);
        assert!(find(&[0x11, 0x4D, 0x9B, 0x74]).is_some(), "seek head");
        assert!(find(&[0x1C, 0x53, 0xBB, 0x6B]).is_some(), "cues");
        assert!(find(b"OpusHead").is_some());
    }
}
