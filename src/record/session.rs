//! One recording of a session: a task that receives every published
//! track's packets while recording runs, keeps the recording's clock (which
//! stands still while paused, so the replay holds only recorded stretches),
//! and writes one WebM file per track plus a `recording.json` manifest.

use super::{Kind, TrackRecorder};
use crate::http::metrics::Metrics;
use bytes::Bytes;
use serde::Serialize;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A packet of a published track, as the SFU received it.
pub struct RecPacket {
    pub track_id: String,
    pub owner: String,
    pub source: &'static str,
    pub kind: Kind,
    pub ssrc: u32,
    /// The simulcast layer's rank (higher is better; 0 without simulcast).
    pub layer: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

enum Msg {
    Packet(RecPacket),
    Pause,
    Resume,
    Stop(oneshot::Sender<Manifest>),
}

/// What a finished recording holds (also written as `recording.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub id: String,
    /// Length of the recorded stretches together, in ms.
    pub duration_ms: i64,
    pub tracks: Vec<TrackFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackFile {
    pub track_id: String,
    pub owner: String,
    pub source: String,
    pub kind: &'static str,
    pub file: String,
    pub frames: u64,
    /// The first and last frame's time on the recording's clock (ms): when
    /// the track is in the replay.
    pub start_ms: i64,
    pub end_ms: i64,
    pub bytes: u64,
}

/// What a recording needs from the server besides its directory.
pub struct Setup {
    /// Free bytes to leave on the recordings' file system (0: no guard).
    pub min_free: u64,
    /// Asks a video track's publisher for a keyframe, after a loss.
    pub ask_keyframe: AskKeyframe,
    pub metrics: Arc<Metrics>,
}

/// The handle the room keeps; the SFU gets a [`Tap`].
pub struct Recording {
    tx: mpsc::Sender<Msg>,
    failure: Arc<OnceLock<&'static str>>,
}

/// Where the SFU puts packets; cheap to clone. Full queue: the packet is
/// dropped (recording must never slow forwarding down).
#[derive(Clone)]
pub struct Tap {
    tx: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
}

impl Tap {
    pub fn send(&self, p: RecPacket) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(Msg::Packet(p)) {
            self.metrics
                .recording_packets_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Asks a track's publisher for a keyframe (given the track id).
pub type AskKeyframe = Box<dyn Fn(&str) + Send + Sync>;

/// How often a video track waiting for a keyframe asks for one.
const KEYFRAME_ASK_EVERY: Duration = Duration::from_secs(1);

/// A track's stream silent this long gives way to another stream of the
/// track (a lower simulcast layer, or a restarted stream).
const STREAM_QUIET: Duration = Duration::from_secs(1);

struct Track {
    rec: TrackRecorder,
    /// When a keyframe was last asked for.
    asked: Option<Instant>,
    /// The one stream written: of a simulcast track, the best layer that
    /// is sending.
    ssrc: u32,
    layer: u8,
    last_packet: Instant,
    owner: String,
    source: &'static str,
    kind: Kind,
    file: String,
}

impl Recording {
    /// Starts recording into `dir` (created). Returns the handle and the
    /// tap.
    pub fn start(id: String, dir: PathBuf, setup: Setup) -> io::Result<(Recording, Tap)> {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = mpsc::channel(4096);
        let failure = Arc::new(OnceLock::new());
        let metrics = setup.metrics.clone();
        tokio::spawn(run(id, dir, setup, rx, failure.clone()));
        Ok((
            Recording {
                tx: tx.clone(),
                failure,
            },
            Tap { tx, metrics },
        ))
    }

    /// Why the recording stopped writing by itself, if it did: `disk_full`
    /// (less than the configured space left, or the disk or quota full) or
    /// `write_failed` (any other write error). The task then writes
    /// nothing more, but still answers [`Recording::stop`].
    pub fn failure(&self) -> Option<&'static str> {
        self.failure.get().copied()
    }

    /// Stops the clock. Waits for room in the queue: a pause must never be
    /// dropped, or media and timeline would drift apart.
    pub async fn pause(&self) {
        let _ = self.tx.send(Msg::Pause).await;
    }

    pub async fn resume(&self) {
        let _ = self.tx.send(Msg::Resume).await;
    }

    /// Finishes every file; resolves with the manifest.
    pub async fn stop(self) -> Option<Manifest> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Stop(reply)).await.ok()?;
        rx.await.ok()
    }
}

/// The reason a write error stops a recording with.
fn failure_reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => "disk_full",
        _ => "write_failed",
    }
}

/// Bytes available to this process on the file system holding `dir`.
fn free_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `path` is a valid C string; `st` is plain data the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// `Some(why)` when fewer than `min_free` bytes are left (0: never).
fn short_of_space(dir: &Path, min_free: u64) -> Option<String> {
    if min_free == 0 {
        return None;
    }
    match free_space(dir) {
        Ok(free) if free < min_free => Some(format!(
            "{} MiB free on the recordings' disk, less than the {} MiB kept free ([recording] min_free_mb)",
            free >> 20,
            min_free >> 20
        )),
        _ => None,
    }
}

async fn run(
    id: String,
    dir: PathBuf,
    setup: Setup,
    mut rx: mpsc::Receiver<Msg>,
    failure: Arc<OnceLock<&'static str>>,
) {
    let Setup {
        min_free,
        ask_keyframe: ask,
        metrics,
    } = setup;
    metrics.recordings.fetch_add(1, Ordering::Relaxed);
    // Counted down however the task ends.
    struct Running(Arc<Metrics>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.recordings.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _running = Running(metrics.clone());
    // The first failure stops all writing; the room sees it on its next
    // tick and stops the recording with the reason.
    let fail = |reason: &'static str, detail: &str| {
        if failure.set(reason).is_ok() {
            metrics.recording_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                recording = %id,
                "recording stopped ({reason}): {detail}; the live session goes on"
            );
        }
    };
    if let Some(why) = short_of_space(&dir, min_free) {
        fail("disk_full", &why);
    }
    let mut tracks: HashMap<String, Track> = HashMap::new();
    // The recording's clock: time recorded before the current stretch, and
    // when the current stretch began (none while paused).
    let mut before = Duration::ZERO;
    let mut stretch: Option<Instant> = Some(Instant::now());
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    let now_ms = |before: Duration, stretch: Option<Instant>| -> i64 {
        (before + stretch.map_or(Duration::ZERO, |s| s.elapsed())).as_millis() as i64
    };
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = flush.tick() => {
                if failure.get().is_some() {
                    continue;
                }
                for t in tracks.values_mut() {
                    if let Err(e) = t.rec.flush() {
                        fail(failure_reason(&e), &format!("writing {}: {e}", t.file));
                    }
                }
                if let Some(why) = short_of_space(&dir, min_free) {
                    fail("disk_full", &why);
                }
                continue;
            }
        };
        match msg {
            Msg::Packet(p) => {
                if stretch.is_none() || failure.get().is_some() {
                    continue;
                }
                let ms = now_ms(before, stretch);
                let t = tracks.entry(p.track_id.clone()).or_insert_with(|| {
                    let file = format!("{}-{}.webm", p.track_id, p.source);
                    Track {
                        rec: TrackRecorder::new(&dir.join(&file), p.kind),
                        asked: None,
                        ssrc: p.ssrc,
                        layer: p.layer,
                        last_packet: Instant::now(),
                        owner: p.owner.clone(),
                        source: p.source,
                        kind: p.kind,
                        file,
                    }
                });
                if t.ssrc != p.ssrc {
                    // Another stream of the same track: a simulcast layer,
                    // or a stream that replaced this one. Switch to a better
                    // layer, or to any once this stream went quiet; its RTP
                    // clock starts anew, and the file goes on from its next
                    // keyframe (asked for below).
                    if p.layer > t.layer || t.last_packet.elapsed() >= STREAM_QUIET {
                        t.ssrc = p.ssrc;
                        t.layer = p.layer;
                        t.rec.rebase();
                    } else {
                        continue;
                    }
                }
                t.last_packet = Instant::now();
                let before = t.rec.frames();
                let pushed = t.rec.push(p.seq, p.timestamp, p.marker, &p.payload, ms);
                metrics
                    .recording_frames
                    .fetch_add(t.rec.frames() - before, Ordering::Relaxed);
                if let Err(e) = pushed {
                    let detail = format!("writing {}: {e}", t.file);
                    fail(failure_reason(&e), &detail);
                } else if t.rec.waiting_for_keyframe()
                    && t.asked.is_none_or(|at| at.elapsed() >= KEYFRAME_ASK_EVERY)
                {
                    // Viewers get lost packets resent; the file can only go
                    // on from a keyframe.
                    t.asked = Some(Instant::now());
                    ask(&p.track_id);
                }
            }
            Msg::Pause => {
                if let Some(s) = stretch.take() {
                    before += s.elapsed();
                }
            }
            Msg::Resume => {
                if stretch.is_none() {
                    stretch = Some(Instant::now());
                    // Frames after the pause continue from the clock, not
                    // from their RTP times (which ran on while paused).
                    for t in tracks.values_mut() {
                        t.rec.rebase();
                    }
                }
            }
            Msg::Stop(reply) => {
                let end = now_ms(before, stretch);
                let mut files = Vec::new();
                let mut unfinished = false;
                for (track_id, t) in tracks.drain() {
                    let Some(written) = t.rec.span() else {
                        continue; // nothing usable arrived: no file
                    };
                    let span = match t.rec.finish(Some(end)) {
                        Ok(span) => span.unwrap_or(written),
                        Err(e) => {
                            tracing::error!(recording = %id, "finishing {track_id}: {e}");
                            unfinished = true;
                            written
                        }
                    };
                    let bytes = std::fs::metadata(dir.join(&t.file)).map_or(0, |m| m.len());
                    files.push(TrackFile {
                        track_id,
                        owner: t.owner,
                        source: t.source.to_string(),
                        kind: match t.kind {
                            Kind::Vp8 => "video",
                            Kind::Opus => "audio",
                        },
                        file: t.file,
                        frames: span.frames,
                        start_ms: span.first_ms,
                        end_ms: span.last_ms,
                        bytes,
                    });
                }
                files.sort_by(|a, b| a.file.cmp(&b.file));
                let manifest = Manifest {
                    id: id.clone(),
                    duration_ms: end,
                    tracks: files,
                };
                if unfinished {
                    // No manifest: the next start-up finalizes the files
                    // (`recover`), as after a crash.
                    tracing::error!(recording = %id, "a file could not be finished; the recording is finalized at the next start-up");
                } else if let Ok(json) = serde_json::to_vec_pretty(&manifest) {
                    if let Err(e) = std::fs::write(dir.join("recording.json"), json) {
                        // Finalized at the next start-up.
                        tracing::error!(recording = %id, "writing recording.json: {e}");
                    }
                }
                let _ = reply.send(manifest);
                return;
            }
        }
    }
}

/// At start-up: ends every recording the last run left unfinished (the
/// server stopped while it was written). Each file is finalized (a cut-off
/// last block dropped; cues, duration and size added) and a manifest is
/// written with the tracks' owners from the timeline. Returns how many.
pub async fn recover(dir: PathBuf, store: crate::store::DynStore) -> usize {
    let mut done = 0;
    let Ok(sessions) = std::fs::read_dir(&dir) else {
        return 0;
    };
    for s in sessions.flatten() {
        let session = s.file_name().to_string_lossy().to_string();
        let Ok(recs) = std::fs::read_dir(s.path()) else {
            continue;
        };
        for r in recs.flatten() {
            let rdir = r.path();
            if rdir.join("recording.json").exists() || !rdir.is_dir() {
                continue;
            }
            // Owners and kinds of the session's tracks, from the timeline.
            let mut owners: HashMap<String, (String, &'static str)> = HashMap::new();
            if let Ok(events) = store.events(&session, 0, None, &["track_published"]).await {
                for e in events {
                    if let Ok(ev) = serde_json::from_str::<crate::protocol::Event>(&e.frame) {
                        if let crate::protocol::EventKind::TrackPublished { track } = ev.kind {
                            let kind = match track.kind {
                                crate::protocol::TrackKind::Audio => "audio",
                                crate::protocol::TrackKind::Video => "video",
                            };
                            owners.insert(track.id, (track.owner, kind));
                        }
                    }
                }
            }
            let id = r.file_name().to_string_lossy().to_string();
            let rdir2 = rdir.clone();
            let files = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                for f in std::fs::read_dir(&rdir2).into_iter().flatten().flatten() {
                    let name = f.file_name().to_string_lossy().to_string();
                    if !name.ends_with(".webm") {
                        continue;
                    }
                    match super::webm::finalize(&f.path()) {
                        Ok(span) => out.push((name, span)),
                        Err(e) => tracing::warn!(file = %f.path().display(), "cannot finalize recording: {e}"),
                    }
                }
                out
            })
            .await
            .unwrap_or_default();
            let mut tracks = Vec::new();
            let mut duration_ms = 0;
            for (file, span) in files {
                duration_ms = duration_ms.max(span.last_ms);
                let (track_id, source) = file
                    .trim_end_matches(".webm")
                    .split_once('-')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .unwrap_or_default();
                let (owner, kind) = owners.get(&track_id).cloned().unwrap_or_default();
                let bytes = std::fs::metadata(rdir.join(&file)).map_or(0, |m| m.len());
                tracks.push(TrackFile {
                    track_id,
                    owner,
                    source,
                    kind,
                    file,
                    frames: span.frames,
                    start_ms: span.first_ms,
                    end_ms: span.last_ms,
                    bytes,
                });
            }
            tracks.sort_by(|a, b| a.file.cmp(&b.file));
            let manifest = Manifest {
                id: id.clone(),
                duration_ms,
                tracks,
            };
            if let Ok(json) = serde_json::to_vec_pretty(&manifest) {
                if std::fs::write(rdir.join("recording.json"), json).is_ok() {
                    tracing::info!(session = %session, recording = %id, "finalized a recording left unfinished");
                    done += 1;
                }
            }
        }
    }
    done
}

/// Deletes recordings finished more than `days` ago (by their manifest's
/// time); unfinished ones are left for [`recover`]. Returns how many.
pub fn apply_retention(dir: &std::path::Path, days: f64) -> usize {
    if days <= 0.0 {
        return 0;
    }
    let keep = Duration::from_secs_f64(days * 86_400.0);
    let mut removed = 0;
    for s in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for r in std::fs::read_dir(s.path()).into_iter().flatten().flatten() {
            let manifest = r.path().join("recording.json");
            let old = std::fs::metadata(&manifest)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > keep);
            if old && std::fs::remove_dir_all(r.path()).is_ok() {
                tracing::info!(recording = %r.path().display(), "deleted by the retention setting");
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_deletes_old_finished_recordings_only() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, age_days: u64, finished: bool| {
            let d = dir.path().join("s1").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("a.webm"), b"x").unwrap();
            if finished {
                let f = std::fs::File::create(d.join("recording.json")).unwrap();
                let t = std::time::SystemTime::now() - Duration::from_secs(age_days * 86_400);
                f.set_modified(t).unwrap();
            }
            d
        };
        let old = make("R1", 40, true);
        let fresh = make("R2", 2, true);
        let unfinished = make("R3", 0, false);
        assert_eq!(apply_retention(dir.path(), 0.0), 0, "0 keeps everything");
        assert_eq!(apply_retention(dir.path(), 30.0), 1);
        assert!(!old.exists());
        assert!(fresh.exists() && unfinished.exists());
    }

    fn setup(min_free: u64) -> Setup {
        Setup {
            min_free,
            ask_keyframe: Box::new(|_| {}),
            metrics: Arc::new(Metrics::default()),
        }
    }

    fn opus(track: &str, seq: u16) -> RecPacket {
        RecPacket {
            track_id: track.into(),
            owner: "host".into(),
            source: "microphone",
            kind: Kind::Opus,
            ssrc: 7,
            layer: 0,
            seq,
            timestamp: u32::from(seq) * 960,
            marker: false,
            payload: Bytes::from(vec![0x78; 200]),
        }
    }

    async fn failure_of(rec: &Recording) -> Option<&'static str> {
        for _ in 0..100 {
            if let Some(f) = rec.failure() {
                return Some(f);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    #[tokio::test]
    async fn a_full_disk_stops_the_writing_with_disk_full() {
        let dir = tempfile::tempdir().unwrap();
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.path().join("TRa-microphone.webm")).unwrap();
        let (rec, tap) = Recording::start("R1".into(), dir.path().to_path_buf(), setup(0)).unwrap();
        assert_eq!(rec.failure(), None);
        for seq in 0..100 {
            tap.send(opus("TRa", seq));
        }
        assert_eq!(failure_of(&rec).await, Some("disk_full"));
        // Nothing more is written, not even a track that could be.
        for seq in 0..50 {
            tap.send(opus("TRb", seq));
        }
        let manifest = rec.stop().await.expect("the task still answers stop");
        assert!(!dir.path().join("TRb-microphone.webm").exists());
        // Not even the file's header could be written: nothing usable, so
        // the track is left out.
        assert!(manifest.tracks.is_empty(), "{manifest:?}");
        assert!(dir.path().join("recording.json").exists());
    }

    #[tokio::test]
    async fn too_little_free_space_stops_a_recording_before_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, tap) =
            Recording::start("R1".into(), dir.path().to_path_buf(), setup(u64::MAX)).unwrap();
        assert_eq!(failure_of(&rec).await, Some("disk_full"));
        tap.send(opus("TRa", 0));
        let manifest = rec.stop().await.unwrap();
        assert!(manifest.tracks.is_empty());
        assert!(dir.path().join("recording.json").exists());
        assert!(!dir.path().join("TRa-microphone.webm").exists());
    }

    /// One VP8 keyframe of `width` pixels, in one packet of layer `layer`.
    fn vp8_keyframe(ssrc: u32, layer: u8, seq: u16, frame: u32, width: u16) -> RecPacket {
        let mut payload = vec![0x10, 0x00, 0x00, 0x00, 0x9D, 0x01, 0x2A];
        payload.extend(width.to_le_bytes());
        payload.extend(120u16.to_le_bytes());
        payload.extend([0x42; 40]);
        RecPacket {
            track_id: "TRv".into(),
            owner: "host".into(),
            source: "camera",
            kind: Kind::Vp8,
            ssrc,
            layer,
            seq,
            timestamp: frame * 3000,
            marker: true,
            payload: Bytes::from(payload),
        }
    }

    #[tokio::test]
    async fn a_simulcast_track_records_its_best_sending_layer_only() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, tap) = Recording::start("R1".into(), dir.path().to_path_buf(), setup(0)).unwrap();
        // Low (160 px, rank 0) and high (640 px, rank 2) interleaved, the
        // low layer first: one low frame, then only the high layer.
        for i in 0..20u16 {
            tap.send(vp8_keyframe(11, 0, 100 + i, u32::from(i), 160));
            tap.send(vp8_keyframe(22, 2, 500 + i, u32::from(i), 640));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The high layer stops (the sender's bandwidth fell): after a second
        // of silence the low layer is written again.
        for i in 20..25u16 {
            tap.send(vp8_keyframe(11, 0, 100 + i, u32::from(i), 160));
        }
        tokio::time::sleep(STREAM_QUIET + Duration::from_millis(200)).await;
        for i in 25..30u16 {
            tap.send(vp8_keyframe(11, 0, 100 + i, u32::from(i), 160));
        }
        let manifest = rec.stop().await.unwrap();
        assert_eq!(manifest.tracks.len(), 1);
        assert_eq!(manifest.tracks[0].frames, 1 + 20 + 5, "{manifest:?}");
    }

    #[tokio::test]
    async fn a_full_queue_drops_packets_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(0);
        let metrics = s.metrics.clone();
        let (rec, tap) = Recording::start("R1".into(), dir.path().to_path_buf(), s).unwrap();
        // The test runtime has one thread: the task reads nothing until this
        // test waits, so the queue (4,096) fills up.
        for seq in 0..5000 {
            tap.send(opus("TRa", seq));
        }
        assert_eq!(
            metrics.recording_packets_dropped.load(Ordering::Relaxed),
            904
        );
        let manifest = rec.stop().await.unwrap();
        assert_eq!(manifest.tracks[0].frames, 4096);
        assert_eq!(metrics.recording_frames.load(Ordering::Relaxed), 4096);
        assert_eq!(
            metrics.recordings.load(Ordering::Relaxed),
            0,
            "the task ended"
        );
    }

    #[test]
    fn free_space_is_read_from_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        assert!(
            short_of_space(dir.path(), 0).is_none(),
            "0 turns the guard off"
        );
        assert!(short_of_space(dir.path(), 1).is_none());
        let why = short_of_space(dir.path(), u64::MAX).unwrap();
        assert!(why.contains("min_free_mb"), "{why}");
        assert!(free_space(Path::new("/no/such/dir")).is_err());
    }
}
