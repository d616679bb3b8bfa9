//! Live media through the SFU, with real WebRTC peers over loopback.

use crate::common::*;
use crate::media_peer::*;
use lectern::protocol::{ClientMsg, Role, SessionKind};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_is_seen_and_heard_by_every_participant() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    let _publisher = publish(&mut host, true).await.expect("host may publish");
    for c in [&mut a, &mut b] {
        let t1 = c.wait_type("track_published").await;
        let t2 = c.wait_type("track_published").await;
        let mut sources = [t1["track"]["source"].clone(), t2["track"]["source"].clone()];
        sources.sort_by_key(|v| v.to_string());
        assert_eq!(
            sources,
            [serde_json::json!("camera"), serde_json::json!("microphone")]
        );
        assert_eq!(t1["track"]["owner"], "host");
        // The name labels the stage for an audience that has no roster.
        assert_eq!(t1["track"]["name"], "host 老师");
    }
    let sub_a = subscribe(&mut a, false).await;
    let sub_b = subscribe(&mut b, false).await;
    for sub in [&sub_a, &sub_b] {
        let r = sub.received.clone();
        eventually(10, "audio and video from the host", move || {
            r.count("host", "audio/opus") >= 10 && r.count("host", "video/VP8") >= 10
        })
        .await;
    }
    let late = s.join(&id, "late", Role::Participant).await;
    assert_eq!(
        late.welcome["tracks"].as_array().unwrap().len(),
        2,
        "the welcome lists live tracks"
    );
    sub_a.close().await;
    sub_b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qa_participants_speak_only_from_the_stage() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let mut obs = s.join(&id, "obs", Role::Observer).await;

    assert_eq!(
        publish(&mut p, true).await.err(),
        Some("forbidden".into()),
        "not on stage yet"
    );
    assert_eq!(
        publish(&mut obs, false).await.err(),
        Some("forbidden".into()),
        "observers never publish"
    );

    host.request(ClientMsg::StageInvite {
        identity: "p".into(),
    })
    .await
    .unwrap();
    p.request(ClientMsg::StageAccept).await.unwrap();
    let publisher = publish(&mut p, true).await.expect("on stage, may publish");
    for _ in 0..2 {
        viewer
            .wait(|f| f["type"] == "track_published" && f["track"]["owner"] == "p")
            .await;
    }
    let sub = subscribe(&mut viewer, false).await;
    let r = sub.received.clone();
    eventually(
        10,
        "the stage member's media reaches the audience",
        move || r.count("p", "audio/opus") >= 5 && r.count("p", "video/VP8") >= 5,
    )
    .await;

    host.request(ClientMsg::StageRemove {
        identity: "p".into(),
    })
    .await
    .unwrap();
    let started = std::time::Instant::now();
    viewer
        .wait(|f| f["type"] == "track_unpublished" && f["owner"] == "p")
        .await;
    viewer
        .wait(|f| f["type"] == "track_unpublished" && f["owner"] == "p")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "tracks stop within a second"
    );
    let r = sub.received.clone();
    let before = r.total();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = r.total();
    assert!(
        after - before <= 2,
        "forwarding stopped ({before} -> {after})"
    );
    drop(publisher);
    sub.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_subscribers_get_no_video() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    let _publisher = publish(&mut host, true).await.unwrap();
    for _ in 0..2 {
        host.wait_type("track_published").await;
    }
    let weak_link = subscribe(&mut a, true).await;
    let full = subscribe(&mut b, false).await;
    let (r_full, r_weak) = (full.received.clone(), weak_link.received.clone());
    eventually(10, "media flowing", move || {
        r_full.count("host", "video/VP8") >= 20 && r_weak.count("host", "audio/opus") >= 20
    })
    .await;
    assert_eq!(
        weak_link.received.count("host", "video/VP8"),
        0,
        "no video on an audio-only link"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_seminar_members_each_receive_the_other_four() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let names = ["m1", "m2", "m3", "m4", "m5"];
    let mut clients = Vec::new();
    for n in names {
        clients.push(s.join(&id, n, Role::Participant).await);
    }
    let mut publishers = Vec::new();
    for c in clients.iter_mut() {
        publishers.push(publish(c, true).await.unwrap());
    }
    // Subscribe once every track is up, so each member gets a single offer.
    for (i, c) in clients.iter_mut().enumerate() {
        for _ in 0..8 {
            let me = names[i];
            c.wait(move |f| f["type"] == "track_published" && f["track"]["owner"] != me)
                .await;
        }
    }
    let mut subs = Vec::new();
    for c in clients.iter_mut() {
        subs.push(subscribe(c, false).await);
    }
    for (i, sub) in subs.iter().enumerate() {
        let r = sub.received.clone();
        let me = names[i];
        eventually(15, &format!("{me} receives the four others"), move || {
            names
                .iter()
                .filter(|o| **o != me)
                .all(|o| r.count(o, "video/VP8") > 0 && r.count(o, "audio/opus") > 0)
        })
        .await;
        assert_eq!(
            sub.received.count(me, "audio/opus"),
            0,
            "nobody receives themselves"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_requests_from_many_viewers_are_rate_limited() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let publisher = publish(&mut host, true).await.unwrap();
    for _ in 0..2 {
        host.wait_type("track_published").await;
    }
    const VIEWERS: usize = 50;
    let mut viewers = Vec::new();
    for i in 0..VIEWERS {
        let mut c = s.join(&id, &format!("v{i}"), Role::Participant).await;
        let peer = subscribe(&mut c, false).await;
        viewers.push((c, peer));
    }
    for (_, peer) in &viewers {
        let r = peer.received.clone();
        eventually(20, "video at every viewer", move || {
            r.count("expert", "video/VP8") > 0
        })
        .await;
    }
    let before = publisher
        .keyframe_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    // Every viewer asks for a keyframe five times within about a second.
    let started = std::time::Instant::now();
    for _ in 0..5 {
        for (_, peer) in &viewers {
            let tracks = peer.received.tracks.lock().unwrap().clone();
            for t in tracks {
                let ssrc = t.ssrcs().await.first().copied().unwrap_or(0);
                let pli =
                    rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: ssrc,
                    };
                let _ = t.write_rtcp(vec![Box::new(pli)]).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let reached = publisher
        .keyframe_requests
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    let allowed = elapsed_ms / 500 + 2;
    assert!(reached >= 1, "some keyframe request reaches the publisher");
    assert!(
        reached <= allowed,
        "{reached} keyframe requests in {elapsed_ms} ms (at most {allowed})"
    );
    let (_, metrics) = s.api_text("GET", "/metrics", None).await;
    let suppressed: u64 = metrics
        .lines()
        .find(|l| l.starts_with("lectern_keyframe_requests_suppressed_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(
        suppressed >= VIEWERS as u64,
        "the storm was absorbed ({suppressed} held back)"
    );
    s.stop().await;
}

fn gauge(metrics: &str, name: &str) -> i64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_a_hundred_times_leaks_nothing() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let _publisher = publish(&mut host, true).await.unwrap();
    for _ in 0..2 {
        host.wait_type("track_published").await;
    }
    let fds = || {
        std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    // One warm-up round, so lazily created pools are counted in the baseline.
    let mut c = s.join(&id, "warm", Role::Participant).await;
    let peer = subscribe(&mut c, false).await;
    peer.close().await;
    c.request(ClientMsg::Leave).await.unwrap();
    c.wait_closed().await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, m0) = s.api_text("GET", "/metrics", None).await;
    let (fd0, task0) = (fds(), tasks());
    for i in 0..100 {
        let mut c = s.join(&id, &format!("t{i}"), Role::Participant).await;
        let peer = subscribe(&mut c, false).await;
        peer.close().await;
        c.request(ClientMsg::Leave).await.unwrap();
        c.wait_closed().await;
    }
    let ok = || async {
        let (_, m) = s.api_text("GET", "/metrics", None).await;
        gauge(&m, "lectern_peer_connections") == gauge(&m0, "lectern_peer_connections")
            && gauge(&m, "lectern_connections") == gauge(&m0, "lectern_connections")
            && gauge(&m, "lectern_publications") == gauge(&m0, "lectern_publications")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gauges did not return to their start values: {}",
            {
                let (_, m) = s.api_text("GET", "/metrics", None).await;
                [
                    "lectern_peer_connections",
                    "lectern_connections",
                    "lectern_publications",
                ]
                .map(|g| format!("{g} {} -> {}", gauge(&m0, g), gauge(&m, g)))
                .join(", ")
            }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sockets and tasks come back to where they were (a little slack for
    // connections the HTTP client keeps alive).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fds() > fd0 + 4 || tasks() > task0 + 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "leak: fds {fd0} -> {}, tasks {task0} -> {}",
            fds(),
            tasks()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_reconnects_is_seen_again_without_help() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let first = publish(&mut host, true).await.unwrap();
    for _ in 0..2 {
        viewer.wait_type("track_published").await;
    }
    let mut sub = subscribe(&mut viewer, false).await;
    let r = sub.received.clone();
    eventually(10, "first media", move || r.count("host", "video/VP8") > 0).await;

    // The host's page reloads: WebSocket and peer connection are both new.
    let resume = host.resume_token();
    let last = host.last_seq();
    host.drop_connection().await;
    drop(first);
    let mut host = TestClient::connect(&format!("{}?resume={resume}&last_seq={last}", s.ws_url()))
        .await
        .unwrap();
    host.wait_type("resumed").await;
    let _second = publish_with(&mut host, true, true)
        .await
        .expect("republish after reconnect");
    // The viewer's connection is renegotiated for the new tracks.
    for _ in 0..2 {
        viewer.wait(|f| f["type"] == "track_unpublished").await;
    }
    for _ in 0..2 {
        viewer.wait(|f| f["type"] == "track_published").await;
    }
    let before = sub.received.count("host", "video/VP8");
    let r = sub.received.clone();
    let ok = sub
        .answer_offers_until(&mut viewer, 10, move || {
            r.count("host", "video/VP8") > before + 10
        })
        .await
        .unwrap();
    assert!(ok, "media from the new connection");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_levels_tell_everyone_who_is_speaking() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let publisher = publish(&mut host, false).await.unwrap();
    viewer.wait_type("track_published").await;
    publisher
        .level
        .store(25, std::sync::atomic::Ordering::Relaxed);
    let on = viewer.wait_type("speaking").await;
    assert_eq!(
        (on["identity"].as_str(), on["speaking"].as_bool()),
        (Some("expert"), Some(true))
    );
    let late = s.join(&id, "late", Role::Participant).await;
    assert_eq!(late.welcome["speaking"], serde_json::json!(["expert"]));
    publisher
        .level
        .store(127, std::sync::atomic::Ordering::Relaxed);
    let off = viewer.wait_type("speaking").await;
    assert_eq!(off["speaking"], false);
    // Changes are few: no more than a handful over a second of steady speech.
    publisher
        .level
        .store(25, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let timeline = s.events(&id).await;
    let changes = timeline.iter().filter(|e| e["type"] == "speaking").count();
    assert!(
        (3..=4).contains(&changes),
        "{changes} speaking changes in the timeline"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_ports_come_from_the_range_and_the_announced_address() {
    // The announced address is another loopback address, so no test traffic
    // leaves this machine.
    let s = TestServer::start_with(|c| {
        c.media.udp_port_min = 41_200;
        c.media.udp_port_max = 41_209;
        c.media.public_ip = Some("127.0.0.2".parse().unwrap());
        c.media.ice_servers = vec![lectern::protocol::IceServer {
            urls: vec!["turn:127.0.0.1:3478".into()],
            username: Some("lectern".into()),
            credential: Some("secret".into()),
        }];
    })
    .await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    assert_eq!(
        host.welcome["ice_servers"][0]["urls"][0],
        "turn:127.0.0.1:3478"
    );
    let peer = Peer::new().await.unwrap();
    let _t = peer
        .pc
        .add_transceiver_from_kind(rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio, None)
        .await
        .unwrap();
    let offer = peer.pc.create_offer(None).await.unwrap();
    peer.pc.set_local_description(offer).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sdp = peer.pc.local_description().await.unwrap().sdp;
    let answer = host
        .request(ClientMsg::MediaPublish {
            sdp,
            sources: Default::default(),
            reset: false,
        })
        .await
        .unwrap();
    peer.close().await;
    let answer = answer["sdp"].as_str().unwrap();
    let candidates: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "{answer}");
    for c in candidates {
        let f: Vec<&str> = c.split(' ').collect();
        assert_eq!(f[4], "127.0.0.2", "announced address: {c}");
        let port: u16 = f[5].parse().unwrap();
        assert!(
            (41_200..=41_209).contains(&port),
            "port from the range: {c}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_the_simulcast_layer_it_asks_for() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut good = s.join(&id, "good-link", Role::Participant).await;
    let mut weak = s.join(&id, "weak-link", Role::Participant).await;
    let _publisher = publish_simulcast(&mut host).await;
    let track = good.wait_type("track_published").await;
    let track_id = track["track"]["id"].as_str().unwrap().to_string();
    weak.wait_type("track_published").await;
    let good_peer = subscribe(&mut good, false).await;
    let weak_peer = subscribe(&mut weak, false).await;
    weak.request(ClientMsg::MediaQuality {
        track_id: track_id.clone(),
        quality: lectern::media::layers::Quality::Low,
    })
    .await
    .unwrap();
    let (g, w) = (good_peer.received.clone(), weak_peer.received.clone());
    eventually(15, "each link on its layer", move || {
        g.layers.lock().unwrap().get(&2).copied().unwrap_or(0) >= 20
            && w.layers.lock().unwrap().get(&0).copied().unwrap_or(0) >= 20
    })
    .await;
    // The good link never saw the low layer; the weak one stopped getting the
    // high one after its switch.
    assert_eq!(good_peer.received.layers.lock().unwrap().get(&0), None);
    let before = weak_peer
        .received
        .layers
        .lock()
        .unwrap()
        .get(&2)
        .copied()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = weak_peer
        .received
        .layers
        .lock()
        .unwrap()
        .get(&2)
        .copied()
        .unwrap_or(0);
    assert_eq!(before, after, "no high layer after switching to low");
    // Sequence numbers stay continuous across the switch.
    let seqs = weak_peer.received.video_seqs.lock().unwrap().clone();
    let jumps = seqs
        .windows(2)
        .filter(|w| w[1].wrapping_sub(w[0]) > 100)
        .count();
    assert_eq!(jumps, 0, "no sequence jump at the layer switch");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seminar_lock_stops_participants_but_not_the_tutor() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut tutor = s.join(&id, "tutor", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let _t = publish(&mut tutor, false).await.unwrap();
    let _p = publish(&mut p, false).await.unwrap();
    for _ in 0..2 {
        tutor.wait_type("track_published").await;
    }
    tutor
        .request(ClientMsg::StageLock { locked: true })
        .await
        .unwrap();
    let gone = tutor.wait_type("track_unpublished").await;
    assert_eq!(gone["owner"], "p");
    tutor
        .assert_none(
            Duration::from_millis(500),
            "the tutor's track ending",
            |f| f["type"] == "track_unpublished" && f["owner"] == "tutor",
        )
        .await;
    assert_eq!(publish(&mut p, false).await.err(), Some("forbidden".into()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_removed_by_renegotiation_ends_for_everyone() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let mut publisher = publish(&mut host, true).await.unwrap();
    for _ in 0..2 {
        viewer.wait_type("track_published").await;
    }
    publisher
        .remove_video(&mut host)
        .await
        .expect("renegotiated without video");
    let gone = viewer.wait_type("track_unpublished").await;
    assert_eq!(gone["owner"], "host");
    let late = s.join(&id, "late", Role::Participant).await;
    let tracks = late.welcome["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 1, "{tracks:?}");
    assert_eq!(tracks[0]["kind"], "audio");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_while_speaking_clears_the_highlight_for_the_audience() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let publisher = publish(&mut host, false).await.unwrap();
    viewer.wait_type("track_published").await;
    publisher
        .level
        .store(20, std::sync::atomic::Ordering::Relaxed);
    viewer
        .wait(|f| f["type"] == "speaking" && f["speaking"] == true)
        .await;
    host.request(ClientMsg::Leave).await.unwrap();
    let off = viewer
        .wait(|f| f["type"] == "speaking" && f["speaking"] == false)
        .await;
    assert_eq!(off["identity"], "expert");
    viewer.wait_type("track_unpublished").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_s_media_ends_with_its_connection() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Qa).await;
    let mut host = s.join(&id, "expert", Role::Host).await;
    let _p = publish(&mut host, true).await.unwrap();
    for _ in 0..2 {
        host.wait_type("track_published").await;
    }
    let mut obs = s.join(&id, "inspector", Role::Observer).await;
    let peer = subscribe(&mut obs, false).await;
    let r = peer.received.clone();
    eventually(10, "the observer watches", move || {
        r.count("expert", "video/VP8") > 0
    })
    .await;
    let gauge = |m: &str| -> i64 {
        m.lines()
            .find(|l| l.starts_with("lectern_peer_connections "))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap()
    };
    let (_, m) = s.api_text("GET", "/metrics", None).await;
    assert_eq!(gauge(&m), 2, "host publisher + observer subscriber");
    obs.drop_connection().await;
    peer.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, m) = s.api_text("GET", "/metrics", None).await;
        if gauge(&m) == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "observer's connection not released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_also_stops_a_publisher_whose_link_just_dropped() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut tutor = s.join(&id, "tutor", Role::Host).await;
    let mut p = s.join(&id, "p", Role::Participant).await;
    let _pub = publish(&mut p, false).await.unwrap();
    tutor.wait_type("track_published").await;
    p.drop_connection().await; // inside the grace period; media still flows
    tokio::time::sleep(Duration::from_millis(200)).await;
    tutor
        .request(ClientMsg::StageLock { locked: true })
        .await
        .unwrap();
    let gone = tutor.wait_type("track_unpublished").await;
    assert_eq!(gone["owner"], "p");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_offer_is_accepted_but_a_large_chat_frame_is_not() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut peer = Peer::new().await.unwrap();
    let _t = peer
        .pc
        .add_transceiver_from_kind(rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio, None)
        .await
        .unwrap();
    let offer = peer.pc.create_offer(None).await.unwrap();
    peer.pc.set_local_description(offer).await.unwrap();
    let mut sdp = peer.local_sdp().await;
    // Pad past the 16 KiB frame limit with session-level attributes, as
    // offers with many tracks and simulcast do.
    let pad: String = (0..20)
        .map(|i| format!("a=x-pad{i}:{}\r\n", "p".repeat(1000)))
        .collect();
    let at = sdp.find("m=").unwrap();
    sdp.insert_str(at, &pad);
    assert!(sdp.len() > 16 * 1024);
    let answer = host
        .request(ClientMsg::MediaPublish {
            sdp,
            sources: Default::default(),
            reset: false,
        })
        .await;
    assert!(answer.is_ok(), "large offer refused: {answer:?}");
    assert_eq!(
        host.request(ClientMsg::ChatSend {
            text: "x".repeat(17 * 1024)
        })
        .await,
        Err("frame_too_large".into())
    );
    peer.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_chooses_which_videos_to_receive() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut a = s.join(&id, "a", Role::Participant).await;
    let mut b = s.join(&id, "b", Role::Participant).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let _pa = publish(&mut a, true).await.unwrap();
    let _pb = publish(&mut b, true).await.unwrap();
    let mut a_video = None;
    for _ in 0..4 {
        let t = viewer.wait_type("track_published").await;
        if t["track"]["owner"] == "a" && t["track"]["kind"] == "video" {
            a_video = t["track"]["id"].as_str().map(str::to_string);
        }
    }
    let a_video = a_video.expect("a's camera was announced");
    let mut peer = Peer::new().await.unwrap();
    viewer
        .request(ClientMsg::MediaSubscribe {
            audio_only: false,
            video: Some(vec![a_video]),
            reset: false,
        })
        .await
        .unwrap();
    assert!(peer
        .answer_next_offer(&mut viewer, Duration::from_secs(5))
        .await
        .unwrap());
    let r = peer.received.clone();
    eventually(10, "a's video and both voices", move || {
        r.count("a", "video/VP8") > 10
            && r.count("a", "audio/opus") > 10
            && r.count("b", "audio/opus") > 10
    })
    .await;
    assert_eq!(
        peer.received.count("b", "video/VP8"),
        0,
        "b's video was not chosen"
    );
    peer.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_keeps_the_publisher_s_tracks() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let publisher = publish(&mut host, true).await.unwrap();
    for _ in 0..2 {
        viewer.wait_type("track_published").await;
    }
    let sub = subscribe(&mut viewer, false).await;
    let r = sub.received.clone();
    eventually(10, "media before the restart", move || {
        r.count("host", "video/VP8") > 5
    })
    .await;

    // The network changed: the client restarts ICE on the same connection.
    let pc = &publisher.peer.pc;
    pc.restart_ice().await.unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sdp = pc.local_description().await.unwrap().sdp;
    let answer = host
        .request(ClientMsg::MediaPublish {
            sdp,
            sources: Default::default(),
            reset: false,
        })
        .await
        .expect("restart offer accepted");
    pc.set_remote_description(
        rtc::peer_connection::sdp::RTCSessionDescription::answer(
            answer["sdp"].as_str().unwrap().to_string(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    viewer
        .assert_none(Duration::from_millis(500), "the tracks ending", |f| {
            f["type"] == "track_unpublished"
        })
        .await;
    let before = sub.received.count("host", "video/VP8");
    let r = sub.received.clone();
    eventually(10, "media after the restart", move || {
        r.count("host", "video/VP8") > before + 20
    })
    .await;
    s.stop().await;
}

/// One m-section of an SDP, as a client reads it.
#[derive(Debug, Clone)]
struct MSection {
    mid: String,
    kind: String,
    port: u16,
    /// `sendonly`, `recvonly`, `sendrecv` or `inactive` (sendrecv if none).
    direction: String,
    /// The track id of its `a=msid` line (the second value), if it has one.
    track: Option<String>,
}

fn m_sections(sdp: &str) -> Vec<MSection> {
    sdp.split("\nm=")
        .skip(1)
        .map(|m| {
            let mut first = m.lines().next().unwrap_or_default().split_whitespace();
            let kind = first.next().unwrap_or_default().to_string();
            let port = first.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let attr = |name: &str| m.lines().find_map(|l| l.strip_prefix(name));
            let direction = ["sendonly", "recvonly", "sendrecv", "inactive"]
                .into_iter()
                .find(|d| m.lines().any(|l| l == format!("a={d}")))
                .unwrap_or("sendrecv")
                .to_string();
            MSection {
                mid: attr("a=mid:").unwrap_or_default().to_string(),
                kind,
                port,
                direction,
                track: attr("a=msid:")
                    .and_then(|v| v.split_whitespace().nth(1))
                    .map(str::to_string),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_publisher_s_reset_offers_end_the_old_tracks_and_name_the_new_ones() {
    let s = TestServer::start().await;
    let id = s.create_session(SessionKind::Seminar).await;
    let mut host = s.join(&id, "host", Role::Host).await;
    let mut viewer = s.join(&id, "viewer", Role::Participant).await;
    let first = publish(&mut host, true).await.unwrap();
    // Track id → kind, as announced.
    let mut kinds = std::collections::HashMap::new();
    let mut old = Vec::new();
    for _ in 0..2 {
        let t = viewer.wait_type("track_published").await;
        let track = t["track"]["id"].as_str().unwrap().to_string();
        kinds.insert(
            track.clone(),
            t["track"]["kind"].as_str().unwrap().to_string(),
        );
        old.push(track);
    }
    old.sort();

    let mut peer = Peer::new().await.unwrap();
    viewer
        .request(ClientMsg::MediaSubscribe {
            audio_only: false,
            video: None,
            reset: false,
        })
        .await
        .unwrap();
    let mut offers: Vec<String> = Vec::new();
    let offer = viewer
        .try_wait_type("media_offer", Duration::from_secs(10))
        .await
        .expect("an offer for the host's tracks");
    let offer = offer["sdp"].as_str().unwrap().to_string();
    // Live tracks are sent only (the client receives), each named.
    let sections = m_sections(&offer);
    let mut named: Vec<String> = sections.iter().filter_map(|m| m.track.clone()).collect();
    named.sort();
    assert_eq!(named, old, "{sections:?}");
    for m in &sections {
        assert_eq!(m.direction, "sendonly", "{sections:?}");
    }
    // Mid → the old track it carried.
    let old_mids: Vec<(String, String)> = sections
        .iter()
        .map(|m| (m.mid.clone(), m.track.clone().unwrap()))
        .collect();
    let answer = peer.answer(offer).await.unwrap();
    viewer
        .request(ClientMsg::MediaAnswer { sdp: answer })
        .await
        .unwrap();
    let r = peer.received.clone();
    let o = old.clone();
    eventually(10, "frames of the first tracks", move || {
        o.iter().all(|t| r.of_track(t) > 5)
    })
    .await;

    // The host's page reloads: a new publishing connection, with reset.
    drop(first);
    let _second = publish_with(&mut host, true, true)
        .await
        .expect("republished with reset");
    for _ in 0..2 {
        viewer.wait(|f| f["type"] == "track_unpublished").await;
    }
    let old_counts: Vec<u64> = old.iter().map(|t| peer.received.of_track(t)).collect();
    let mut new = Vec::new();
    for _ in 0..2 {
        let t = viewer.wait(|f| f["type"] == "track_published").await;
        let track = t["track"]["id"].as_str().unwrap().to_string();
        kinds.insert(
            track.clone(),
            t["track"]["kind"].as_str().unwrap().to_string(),
        );
        new.push(track);
    }
    new.sort();

    // Answer every offer until frames of both new tracks arrive.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !new.iter().all(|t| peer.received.of_track(t) > 10) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "frames of the new tracks; offers: {offers:#?}"
        );
        if let Some(f) = viewer
            .try_wait_type("media_offer", Duration::from_millis(200))
            .await
        {
            let sdp = f["sdp"].as_str().unwrap().to_string();
            let answer = peer.answer(sdp.clone()).await.unwrap();
            viewer
                .request(ClientMsg::MediaAnswer { sdp: answer })
                .await
                .unwrap();
            offers.push(sdp);
        }
    }

    // Every offer since: a section with an msid names a new track and is
    // sent only; one without is inactive (or rejected, port 0).
    for sdp in &offers {
        for m in m_sections(sdp) {
            match &m.track {
                Some(t) => {
                    assert!(new.contains(t), "an ended track still named: {m:?}");
                    assert_eq!(m.direction, "sendonly", "{m:?}");
                }
                None => assert!(m.direction == "inactive" || m.port == 0, "{m:?}"),
            }
        }
    }
    // The first ends the old tracks: their mids inactive, no msid.
    let ended = m_sections(&offers[0]);
    for (mid, track) in &old_mids {
        let m = ended.iter().find(|m| &m.mid == mid).unwrap();
        assert!(
            m.track.is_none() && m.direction == "inactive",
            "{track} ended: {m:?}"
        );
    }
    // Once that was answered, the new tracks take the freed mids, each one
    // of its own kind: the same mids now carry other tracks.
    let last = m_sections(offers.last().unwrap());
    assert_eq!(last.len(), 2, "no new m-sections: {last:?}");
    for (mid, track) in &old_mids {
        let m = last.iter().find(|m| &m.mid == mid).unwrap();
        let now = m.track.as_ref().expect("the mid carries a new track");
        assert!(new.contains(now), "{m:?}");
        assert_eq!(kinds[now], kinds[track], "{m:?}");
        assert_eq!(m.kind, kinds[now]);
    }
    // Frames of the new tracks count as theirs, none as the old ones'.
    for (t, before) in old.iter().zip(old_counts) {
        assert_eq!(peer.received.of_track(t), before, "frames credited to {t}");
    }
    peer.close().await;
    s.stop().await;
}
