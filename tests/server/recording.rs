//! Recording control across clients: only hosts start, pause, resume and
//! stop; everyone sees it; a real publisher's audio is written, paused
//! stretches are left out, and the files are listed and served with ranges.

use crate::common::TestServer;
use crate::media_peer::publish;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use std::time::Duration;

#[tokio::test]
async fn a_host_records_with_a_pause_and_the_file_holds_the_recorded_stretches() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let mut m = s.join(&id, "m", Role::Moderator).await;

    for c in [&mut p, &mut m] {
        assert_eq!(
            c.request(ClientMsg::RecordStart).await,
            Err("forbidden".into())
        );
    }
    assert_eq!(
        host.request(ClientMsg::RecordPause).await,
        Err("invalid_state".into())
    );
    let r = host.request(ClientMsg::RecordStart).await.unwrap();
    let t0 = std::time::Instant::now();
    let rid = r["recording_id"].as_str().unwrap().to_string();
    assert_eq!(
        host.request(ClientMsg::RecordStart).await,
        Err("invalid_state".into())
    );
    let started = p.wait_type("recording_started").await;
    assert_eq!(started["recording_id"], rid.as_str());

    let publisher = publish(&mut host, false)
        .await
        .expect("host publishes audio");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    p.request(ClientMsg::ChatSend {
        text: "before the pause".into(),
    })
    .await
    .unwrap();
    let sent1 = t0.elapsed().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(800)).await;
    host.request(ClientMsg::RecordPause).await.unwrap();
    let paused_at = t0.elapsed().as_millis() as i64;
    p.wait_type("recording_paused").await;
    let late = s.join(&id, "late", Role::Participant).await;
    assert_eq!(late.welcome["recording"]["paused"], true);
    p.request(ClientMsg::ChatSend {
        text: "during the pause".into(),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    host.request(ClientMsg::RecordResume).await.unwrap();
    let resumed_at = t0.elapsed().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.request(ClientMsg::ChatSend {
        text: "after the pause".into(),
    })
    .await
    .unwrap();
    let sent3 = t0.elapsed().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    host.request(ClientMsg::RecordStop).await.unwrap();
    let stopped = p.wait_type("recording_stopped").await;
    assert_eq!(stopped["reason"], "stopped");
    publisher.stop();

    // The list shows the finished recording once its files are closed.
    let path = format!("/api/v1/sessions/{id}/recordings");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let rec = loop {
        let (status, list) = s.api("GET", &path, None).await;
        assert_eq!(status, 200, "{list}");
        if list[0]["finished"] == true {
            break list[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording finished: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rec["id"], rid.as_str());
    // About three seconds recorded (2 + 1), the 1.5 s pause left out.
    let ms = rec["duration_ms"].as_i64().unwrap();
    assert!((2500..=3600).contains(&ms), "{ms} ms");
    let track = &rec["tracks"][0];
    assert_eq!(
        (
            track["kind"].as_str(),
            track["owner"].as_str(),
            track["role"].as_str()
        ),
        (Some("audio"), Some("host"), Some("host"))
    );
    let frames = track["frames"].as_u64().unwrap();
    // 50 packets a second while recording, not while paused.
    assert!((100..=190).contains(&frames), "{frames} frames");
    // The track is in the replay from its first to its last frame: here
    // from near the start to near the end.
    let (start, end) = (
        track["start_ms"].as_i64().unwrap(),
        track["end_ms"].as_i64().unwrap(),
    );
    assert!((0..500).contains(&start), "starts at {start} ms");
    assert!(end <= ms && end > ms - 500, "ends at {end} of {ms} ms");

    // The file, whole and by ranges.
    let url = format!("{}{}", s.base, track["url"].as_str().unwrap());
    let client = reqwest::Client::new();
    let whole = client
        .get(&url)
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "video/webm");
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, track["bytes"].as_u64().unwrap());
    // A demuxer reads it: every packet, and the recorded length.
    crate::record_files::ensure_ffmpeg();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("mic.webm");
    std::fs::write(&local, &bytes).unwrap();
    let (codec, secs, packets) = crate::record_files::ffprobe(&local, "a:0", "-count_packets");
    assert_eq!(codec, "opus");
    assert_eq!(packets, frames);
    assert!(
        (secs * 1000.0 - ms as f64).abs() < 500.0,
        "{secs} s vs {ms} ms"
    );
    let part = client
        .get(&url)
        .bearer_auth(&s.admin_key)
        .header("range", "bytes=4-11")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str().unwrap(),
        format!("bytes 4-11/{}", bytes.len())
    );
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(4..12));
    let (status, _) = s
        .api_text(
            "GET",
            &format!("/api/v1/sessions/{id}/recordings/{rid}/..%2Fx.webm"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let no_key = client.get(&url).send().await.unwrap();
    assert_eq!(no_key.status(), 401);

    // The timeline: chat at its place in the recording, the pause skipped.
    let (status, tl) = s
        .api(
            "GET",
            &format!("/api/v1/sessions/{id}/recordings/{rid}/timeline"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{tl}");
    let chat: Vec<(String, i64)> = tl
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "chat_message")
        .map(|e| {
            (
                e["message"]["text"].as_str().unwrap().to_string(),
                e["offset_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        chat.len(),
        2,
        "the message sent while paused is not in the replay: {chat:?}"
    );
    assert_eq!(chat[0].0, "before the pause");
    assert!((chat[0].1 - sent1).abs() <= 100, "{} vs {sent1}", chat[0].1);
    let expected = paused_at + (sent3 - resumed_at);
    assert_eq!(chat[1].0, "after the pause");
    assert!(
        (chat[1].1 - expected).abs() <= 100,
        "{} vs {expected}",
        chat[1].1
    );
}

#[tokio::test]
async fn a_session_set_to_record_starts_by_itself_and_stops_when_it_ends() {
    let s = TestServer::start().await;
    let id = s
        .create_session_with(
            serde_json::json!({"title": "录制", "kind": "qa", "settings": {"record": true}}),
        )
        .await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let started = host.wait_type("recording_started").await;
    assert_eq!(started["by"], "schedule");
    host.request(ClientMsg::SessionEnd).await.unwrap();
    let stopped = host.wait_type("recording_stopped").await;
    assert_eq!(stopped["reason"], "session_ended");
}

#[tokio::test]
async fn a_recording_short_of_disk_space_stops_with_disk_full_and_the_class_goes_on() {
    // More free space asked for than any disk has: as if the disk were full.
    let s = TestServer::start_with(|c| c.recording.min_free_mb = u64::MAX >> 20).await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let publisher = publish(&mut host, false)
        .await
        .expect("host publishes audio");
    let rid = host.request(ClientMsg::RecordStart).await.unwrap()["recording_id"]
        .as_str()
        .unwrap()
        .to_string();
    for c in [&mut host, &mut p] {
        let stopped = c.wait_type("recording_stopped").await;
        assert_eq!(stopped["recording_id"], rid.as_str());
        assert_eq!(
            (stopped["reason"].as_str(), stopped["by"].as_str()),
            (Some("disk_full"), Some("server"))
        );
    }
    assert_eq!(
        host.request(ClientMsg::RecordPause).await,
        Err("invalid_state".into())
    );
    // The live session goes on.
    p.request(ClientMsg::ChatSend {
        text: "还在上课".into(),
    })
    .await
    .unwrap();
    let chat = host.wait_type("chat_message").await;
    assert_eq!(chat["message"]["text"], "还在上课");
    let late = s.join(&id, "late", Role::Participant).await;
    assert!(late.welcome["recording"].is_null());
    // The stopped recording is finished, with nothing written, and the
    // timeline has the stop.
    let path = format!("/api/v1/sessions/{id}/recordings");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = s.api("GET", &path, None).await.1;
        if list[0]["finished"] == true {
            assert_eq!(list[0]["tracks"], serde_json::json!([]), "{list}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = s.events(&id).await;
    assert!(events
        .iter()
        .any(|e| e["type"] == "recording_stopped" && e["reason"] == "disk_full"));
    let (_, metrics) = s.api_text("GET", "/metrics", None).await;
    assert!(
        metrics.contains("\nlectern_recording_failures_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nlectern_recordings 0\n"), "{metrics}");
    publisher.stop();
}

#[tokio::test]
async fn a_teacher_with_a_replay_link_reports_watched_time_for_grading() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let other = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let rid = host.request(ClientMsg::RecordStart).await.unwrap()["recording_id"]
        .as_str()
        .unwrap()
        .to_string();
    let publisher = publish(&mut host, false).await.expect("audio");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    host.request(ClientMsg::SessionEnd).await.unwrap();
    publisher.stop();
    let list = format!("/api/v1/sessions/{id}/recordings");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.api("GET", &list, None).await.1[0]["finished"] != true {
        assert!(tokio::time::Instant::now() < deadline, "recording finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Replay links work after the session ended.
    let (status, t) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{id}/replay-tokens"),
            Some(serde_json::json!({"identity": "t-9", "name": "补看的老师"})),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert!(t["replay_url"]
        .as_str()
        .unwrap()
        .contains("/replay?session="));
    let token = t["token"].as_str().unwrap().to_string();
    let (_, t2) = s
        .api(
            "POST",
            &format!("/api/v1/sessions/{other}/replay-tokens"),
            Some(serde_json::json!({"identity": "t-9", "name": "x"})),
        )
        .await;
    let client = reqwest::Client::new();
    let post = |bearer: String, body: serde_json::Value| {
        let url = format!("{}/api/v1/sessions/{id}/recordings/{rid}/watched", s.base);
        let c = client.clone();
        async move {
            let r = c
                .post(url)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    // The token holder may read the recording; it is not a way into the live room.
    let r = client
        .get(format!("{}{list}", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A media element cannot send headers: the files take the token in the
    // URL too (streamed, whole or by range), but never the admin key.
    let listed: serde_json::Value = r.json().await.unwrap();
    let file = format!(
        "{}{}",
        s.base,
        listed[0]["tracks"][0]["url"].as_str().unwrap()
    );
    let whole = client
        .get(format!("{file}?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(
        bytes.len() as u64,
        listed[0]["tracks"][0]["bytes"].as_u64().unwrap()
    );
    let part = client
        .get(format!("{file}?token={token}"))
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-{}/{}", bytes.len() - 1, bytes.len())
    );
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(100..));
    for (query, status) in [
        (format!("token={}", s.admin_key), 401),
        (format!("token={}", t2["token"].as_str().unwrap()), 403),
        ("token=nonsense".to_string(), 401),
        (String::new(), 401),
    ] {
        let r = client.get(format!("{file}?{query}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{query}");
        if query == "token=nonsense" {
            let body: serde_json::Value = r.json().await.unwrap();
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("link"), "{message}");
            assert!(!message.contains("admin key"), "{message}");
        }
    }
    let ranges = serde_json::json!({"ranges": [[0.0, 1.5], [1.0, 2.0]]});
    let (status, r) = post(token.clone(), ranges.clone()).await;
    assert_eq!(
        (status, r["seconds"].as_u64()),
        (200, Some(2)),
        "overlaps count once"
    );
    assert_eq!(
        post(s.admin_key.clone(), ranges.clone()).await.0,
        400,
        "per person"
    );
    assert_eq!(
        post(t2["token"].as_str().unwrap().into(), ranges).await.0,
        403
    );
    let bad = serde_json::json!({"ranges": [[2.0, 1.0]]});
    assert_eq!(post(token.clone(), bad).await.0, 400);
    let beyond = serde_json::json!({"ranges": [[0.0, 500.0]]});
    assert_eq!(post(token.clone(), beyond).await.0, 400);

    // Staff see it in the timeline; the report counts it.
    let events = s.events(&id).await;
    let w = events
        .iter()
        .find(|e| e["type"] == "replay_watched")
        .unwrap();
    assert_eq!(
        (w["identity"].as_str(), w["seconds"].as_u64()),
        (Some("t-9"), Some(2))
    );
    let (_, rows) = s
        .api("GET", &format!("/api/v1/sessions/{id}/report"), None)
        .await;
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["identity"] == "t-9")
        .unwrap();
    assert_eq!(row["replay_seconds"], 2);
    // A replay token cannot open the live WebSocket.
    let ws = crate::common::TestClient::connect(&format!("{}?token={token}", s.ws_url())).await;
    assert!(ws.is_err());
}

#[tokio::test]
async fn a_recording_cut_by_a_crash_is_finalized_on_restart_and_plays() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = crate::restart::spawn_server_with(&data, &[]);
    let s = server.as_test_server();
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    host.request(ClientMsg::RecordStart).await.unwrap();
    let publisher = publish(&mut host, false).await.expect("audio");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.child.kill().unwrap(); // SIGKILL mid-recording
    server.child.wait().unwrap();
    publisher.stop();

    let mut server = crate::restart::spawn_server_with(&data, &[]);
    let s = server.as_test_server();
    let (status, list) = s
        .api("GET", &format!("/api/v1/sessions/{id}/recordings"), None)
        .await;
    assert_eq!(status, 200);
    let rec = &list[0];
    assert_eq!(rec["finished"], true, "finalized at start-up: {list}");
    let track = &rec["tracks"][0];
    assert_eq!(
        (track["owner"].as_str(), track["kind"].as_str()),
        (Some("host"), Some("audio"))
    );
    let frames = track["frames"].as_u64().unwrap();
    assert!(frames > 50, "{frames}");
    let (start, end) = (
        track["start_ms"].as_i64().unwrap(),
        track["end_ms"].as_i64().unwrap(),
    );
    assert!(
        start < end && end <= rec["duration_ms"].as_i64().unwrap(),
        "{rec}"
    );
    let bytes = reqwest::Client::new()
        .get(format!("{}{}", s.base, track["url"].as_str().unwrap()))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    crate::record_files::ensure_ffmpeg();
    let local = tmp.path().join("mic.webm");
    std::fs::write(&local, &bytes).unwrap();
    let (codec, secs, packets) = crate::record_files::ffprobe(&local, "a:0", "-count_packets");
    assert_eq!(codec, "opus");
    assert_eq!(packets, frames);
    assert!(secs > 1.0 && secs < 3.5, "{secs} s");
    // The room notes the interrupted recording in the timeline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = s.events(&id).await;
        if let Some(e) = events.iter().find(|e| e["type"] == "recording_stopped") {
            assert_eq!(e["reason"], "server_restart");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording_stopped recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn ten_seconds_of_real_vp8_and_opus_with_one_pause_hold_what_was_sent() {
    crate::record_files::ensure_ffmpeg();
    let tmp = tempfile::tempdir().unwrap();
    // Four seconds of real VP8, a keyframe every 15 frames, sent in a loop.
    let frames: Vec<Vec<u8>> = crate::record_files::vp8_test_video(tmp.path(), 4, 15)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let publisher = lectern::media::peer::publish(
        &mut host,
        lectern::media::peer::PublishOptions {
            vp8_frames: Some(std::sync::Arc::new(frames)),
            video_packet_bytes: 1000,
            ..Default::default()
        },
    )
    .await
    .expect("host publishes camera and microphone");
    for _ in 0..2 {
        host.wait_type("track_published").await;
    }
    // Past the keyframe asked for when the track was published, so the
    // one asked for at the start is not held back by the rate limit.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sent = || {
        use std::sync::atomic::Ordering::Relaxed;
        (
            publisher.video_frames_sent.load(Relaxed),
            publisher.audio_sent.load(Relaxed),
        )
    };

    host.request(ClientMsg::RecordStart).await.unwrap();
    let (t0, c0) = (std::time::Instant::now(), sent());
    tokio::time::sleep(Duration::from_secs(4)).await;
    host.request(ClientMsg::RecordPause).await.unwrap();
    let (t1, c1) = (std::time::Instant::now(), sent());
    tokio::time::sleep(Duration::from_secs(2)).await;
    host.request(ClientMsg::RecordResume).await.unwrap();
    let (t2, c2) = (std::time::Instant::now(), sent());
    tokio::time::sleep(Duration::from_secs(6)).await;
    host.request(ClientMsg::RecordStop).await.unwrap();
    let (t3, c3) = (std::time::Instant::now(), sent());
    publisher.stop();
    let recorded_ms = ((t1 - t0) + (t3 - t2)).as_millis() as i64;
    let video_sent = (c1.0 - c0.0) + (c3.0 - c2.0);
    let audio_sent = (c1.1 - c0.1) + (c3.1 - c2.1);

    let path = format!("/api/v1/sessions/{id}/recordings");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let rec = loop {
        let list = s.api("GET", &path, None).await.1;
        if list[0]["finished"] == true {
            break list[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ms = rec["duration_ms"].as_i64().unwrap();
    assert!(
        (ms - recorded_ms).abs() < 500,
        "{ms} ms recorded, {recorded_ms} ms by the test's clock"
    );
    let track = |kind: &str| {
        rec["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind} track in {rec}"))
            .clone()
    };
    let client = reqwest::Client::new();
    let fetch = |t: serde_json::Value| {
        let client = client.clone();
        let url = format!("{}{}", s.base, t["url"].as_str().unwrap());
        let key = s.admin_key.clone();
        async move {
            let b = client.get(url).bearer_auth(key).send().await.unwrap();
            b.bytes().await.unwrap()
        }
    };

    // Video: every frame in the file decodes; the frames are those sent
    // while recording, less at most a few at the start and the resume
    // (until the keyframe asked for arrives).
    let video = track("video");
    let file = tmp.path().join("camera.webm");
    std::fs::write(&file, fetch(video.clone()).await).unwrap();
    let (codec, secs, decoded) = crate::record_files::ffprobe(&file, "v:0", "-count_frames");
    assert_eq!(codec, "vp8");
    let frames = video["frames"].as_u64().unwrap();
    assert_eq!(decoded, frames, "every frame written decodes");
    assert!(
        frames <= video_sent + 2 && frames + 8 >= video_sent,
        "{frames} frames written, {video_sent} sent while recording"
    );
    assert!(
        (secs * 1000.0 - ms as f64).abs() < 500.0,
        "video {secs} s vs {ms} ms"
    );

    // Audio: every packet sent while recording, give or take the edges.
    let audio = track("audio");
    let file = tmp.path().join("mic.webm");
    std::fs::write(&file, fetch(audio.clone()).await).unwrap();
    let (codec, secs, packets) = crate::record_files::ffprobe(&file, "a:0", "-count_packets");
    assert_eq!(codec, "opus");
    assert_eq!(packets, audio["frames"].as_u64().unwrap());
    assert!(
        packets <= audio_sent + 4 && packets + 8 >= audio_sent,
        "{packets} packets written, {audio_sent} sent while recording"
    );
    assert!(
        (secs * 1000.0 - ms as f64).abs() < 500.0,
        "audio {secs} s vs {ms} ms"
    );
    let (_, metrics) = s.api_text("GET", "/metrics", None).await;
    let written: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lectern_recording_frames_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_eq!(written, frames + packets, "{metrics}");
    eprintln!("video {frames} of {video_sent} frames, audio {packets} of {audio_sent} packets, {ms} of {recorded_ms} ms");
}
