//! Short smoke runs of each scenario against a real server on port 0: they
//! check that reports are complete and their counts add up, not speed.

use lectern_loadtest::client::Api;
use lectern_loadtest::{media, scenarios};

async fn server() -> (lectern::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = lectern::config::Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        demo: false,
        admin_key: Some("smoke".into()),
        ..Default::default()
    };
    (lectern::start(config).await.unwrap(), dir)
}

fn params(clients: usize, members: usize, rate: f64) -> scenarios::Params {
    scenarios::Params {
        clients,
        rooms: 2,
        members,
        rate,
        duration_s: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_produces_a_complete_report() {
    let (s, _dir) = server().await;
    let api = Api::new(&format!("http://{}", s.addr), "smoke");

    let r = scenarios::idle(&api, &params(20, 0, 0.0)).await.unwrap();
    assert_eq!((r.errors, r.delivered), (0, 20));
    assert!(r.extra["rss_bytes_per_connection"].as_f64().is_some());
    assert!(r.server.rss_bytes_end > 0);

    let r = scenarios::join_storm(&api, &params(30, 0, 100.0))
        .await
        .unwrap();
    assert_eq!((r.errors, r.delivered), (0, 30));
    assert!(r.latency_ms.p50 > 0.0 && r.latency_ms.max >= r.latency_ms.p99);

    let r = scenarios::chat_fanout(&api, &params(0, 10, 20.0))
        .await
        .unwrap();
    assert_eq!(r.sent, 20);
    assert_eq!(r.expected, 200, "every member receives every message");
    assert_eq!(r.delivered, 200);
    assert_eq!(r.lost, 0);

    let r = scenarios::qa_audience(&api, &params(0, 10, 20.0))
        .await
        .unwrap();
    assert_eq!(r.sent, 20);
    assert_eq!(r.extra["questions"], 4);
    assert_eq!(
        r.expected,
        4 * 11,
        "host and members receive every question"
    );
    assert_eq!(r.delivered, r.expected);
    assert!(
        r.server.store_commits > 0,
        "questions and upvotes are stored, and the commits counted"
    );
    assert!(r.server.store_commits_over_25ms <= r.server.store_commits);

    let r = scenarios::classroom_mix(&api, &params(0, 5, 20.0))
        .await
        .unwrap();
    assert_eq!(r.sent, 20);
    assert_eq!(r.expected, 20 * 5);
    assert_eq!(r.delivered, r.expected, "chat stays within its room");

    let r = scenarios::reconnect_storm(&api, &params(20, 0, 0.0))
        .await
        .unwrap();
    assert_eq!(r.lost, 0, "everyone came back");
    assert_eq!(r.extra["duplicate_attendance_intervals"], 0);

    let r = media::run(
        &api,
        media::Params {
            subscribers: 3,
            duration_s: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(r.clients, 4);
    assert!(r.delivered > 0 && r.sent > 0);
    let json = r.to_json();
    for key in [
        "scenario",
        "params",
        "duration_s",
        "clients",
        "sent",
        "expected",
        "delivered",
        "lost",
        "errors",
        "latency_ms",
        "rate_per_s",
        "server",
    ] {
        assert!(json.get(key).is_some(), "report lacks {key}");
    }
    s.shutdown();
    s.wait().await;
}
