//! Recorded tracks are files a demuxer reads: real VP8 (encoded by ffmpeg,
//! sent as RTP packets) and Opus packets go in; ffprobe (from Debian's
//! `ffmpeg`, installed on first use) counts the frames and packets and reads
//! the duration, for finished files and for files cut short by a crash, and
//! finds nothing wrong with them (`-v error` prints nothing).

use lectern::record::{Kind, TrackRecorder};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// ffprobe and ffmpeg (Debian's `ffmpeg`), installed once per run if
/// missing: `apt-get install` as root or through `sudo -n`, and when that
/// fails, `apt-get update` and the install again. A failed install fails
/// the test that needs them; nothing is skipped.
pub(crate) fn ensure_ffmpeg() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = DONE.get_or_init(install_ffmpeg) {
        panic!("{e}");
    }
}

fn install_ffmpeg() -> Result<(), String> {
    let present = |tool: &str| Command::new(tool).arg("-version").output().is_ok();
    if present("ffprobe") && present("ffmpeg") {
        return Ok(());
    }
    eprintln!("installing Debian's ffmpeg (ffmpeg, ffprobe) for the recording tests");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| -> bool {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            c
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = ["install", "-y", "--no-install-recommends", "ffmpeg"];
    let ok = apt(&install) || {
        eprintln!("apt-get install ffmpeg failed; running apt-get update and trying again");
        apt(&["update"]) && apt(&install)
    };
    if ok && present("ffprobe") && present("ffmpeg") {
        return Ok(());
    }
    Err(format!(
        "could not install Debian's ffmpeg for the recording tests (apt-get failed{}); \
         install it by hand: `sudo apt-get update && sudo apt-get install -y ffmpeg`",
        if root {
            ""
        } else {
            ", or `sudo -n` asked for a password"
        }
    ))
}

/// Reads a file with `ffprobe -v error`: (codec, duration in seconds,
/// frames or packets counted). Fails the test if ffprobe fails or prints
/// anything: at that level it prints only what it found wrong with the
/// file (Debian's ffmpeg reports, for example, a cluster of unknown size
/// inside a segment of known size).
pub(crate) fn ffprobe(path: &Path, stream: &str, count: &str) -> (String, f64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", count, "-select_streams", stream])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames,nb_read_packets:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe failed: {errors}");
    assert!(
        errors.trim().is_empty(),
        "ffprobe -v error found problems in {}: {errors}",
        path.display()
    );
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    let n = [get("nb_read_frames"), get("nb_read_packets")]
        .iter()
        .find_map(|v| v.parse().ok())
        .unwrap_or(0);
    (get("codec_name"), get("duration").parse().unwrap_or(0.0), n)
}

/// Frames of an IVF file (ffmpeg's VP8 output): (pts, data).
fn ivf_frames(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    assert_eq!(&bytes[..4], b"DKIF");
    let header = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let mut i = header;
    let mut out = Vec::new();
    while i + 12 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        let pts = u64::from_le_bytes(bytes[i + 4..i + 12].try_into().unwrap());
        out.push((pts, bytes[i + 12..i + 12 + size].to_vec()));
        i += 12 + size;
    }
    out
}

/// `secs` seconds of real VP8 (ffmpeg's test pattern, 320×240 at 30
/// frames/s, a keyframe every `gop` frames), as IVF frames.
pub(crate) fn vp8_test_video(dir: &Path, secs: u32, gop: u32) -> Vec<(u64, Vec<u8>)> {
    let ivf = dir.join("src.ivf");
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
        ])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libvpx",
            "-g",
            &gop.to_string(),
        ])
        .args(["-b:v", "300k", "-f", "ivf"])
        .arg(&ivf)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg made the test video");
    ivf_frames(&std::fs::read(&ivf).unwrap())
}

/// Sends VP8 frames as RTP packets (1,000-byte chunks, S bit on the first,
/// marker on the last) at 30 frames/s.
fn record_vp8(rec: &mut TrackRecorder, frames: &[(u64, Vec<u8>)]) {
    let mut seq = 1000u16;
    for (pts, data) in frames {
        let ts = (*pts as u32).wrapping_mul(3000);
        let chunks: Vec<&[u8]> = data.chunks(1000).collect();
        for (i, c) in chunks.iter().enumerate() {
            let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
            p.extend_from_slice(c);
            rec.push(
                seq,
                ts,
                i == chunks.len() - 1,
                &p,
                (*pts as i64) * 1000 / 30,
            )
            .unwrap();
            seq = seq.wrapping_add(1);
        }
    }
}

#[test]
fn recorded_vp8_and_opus_files_parse_with_the_right_counts_and_duration() {
    ensure_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    // Ten seconds of real VP8 from ffmpeg's test pattern.
    let frames = vp8_test_video(dir.path(), 10, 60);
    assert_eq!(frames.len(), 300);

    let video = dir.path().join("camera.webm");
    let mut rec = TrackRecorder::new(&video, Kind::Vp8);
    record_vp8(&mut rec, &frames);
    assert_eq!(rec.frames(), 300);
    let span = rec.finish(Some(10_000)).unwrap().unwrap();
    assert_eq!(
        (span.frames, span.first_ms, span.last_ms),
        (300, 0, 299 * 100 / 3)
    );
    let (codec, duration, n) = ffprobe(&video, "v:0", "-count_frames");
    assert_eq!(codec, "vp8");
    assert_eq!(n, 300, "every frame decodes");
    assert!((duration - 10.0).abs() < 0.5, "duration {duration}");

    // Opus: 20 ms packets for 10 s.
    let audio = dir.path().join("mic.webm");
    let mut rec = TrackRecorder::new(&audio, Kind::Opus);
    for i in 0..500u32 {
        rec.push(
            i as u16,
            i * 960,
            true,
            &[0xFC, 0xFF, 0xFE],
            (i * 20) as i64,
        )
        .unwrap();
    }
    rec.finish(None).unwrap();
    let (codec, duration, n) = ffprobe(&audio, "a:0", "-count_packets");
    assert_eq!(codec, "opus");
    assert_eq!(n, 500);
    assert!((duration - 10.0).abs() < 0.5, "duration {duration}");
}

#[test]
fn a_file_cut_short_still_plays_up_to_its_last_frame() {
    ensure_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let frames = vp8_test_video(dir.path(), 4, 30);
    let video = dir.path().join("camera.webm");
    let mut rec = TrackRecorder::new(&video, Kind::Vp8);
    record_vp8(&mut rec, &frames);
    rec.flush().unwrap();
    // As after a crash: never finished (no cues, no duration, the segment's
    // size and the last cluster's unknown).
    std::mem::forget(rec);
    let (codec, _, n) = ffprobe(&video, "v:0", "-count_frames");
    assert_eq!(codec, "vp8");
    assert_eq!(n as usize, frames.len());
}
