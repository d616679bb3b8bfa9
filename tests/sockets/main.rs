//! Sockets are released when connections end. This is a test binary of its
//! own, so that counting the process's open files sees only this test's
//! sockets (the server tests run side by side in one process).

#[path = "../server/common.rs"]
#[allow(dead_code)]
mod common;

use common::*;
use lectern::protocol::{Role, SessionKind};
use std::time::Duration;

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// A member whose connection drops stays present for the grace period
/// (30 s by default, and here), and the room keeps what it needs for a resume. The
/// socket itself must still close at once: a server that kept it open
/// would run out of file descriptors when thousands drop together.
#[tokio::test]
async fn a_dropped_connection_frees_its_socket_during_the_grace_period() {
    // The tests' usual grace period is 2 s; here it must outlast the wait.
    let s = TestServer::start_with(|c| c.limits.grace_secs = 30).await;
    let id = s.create_session(SessionKind::Seminar).await;
    // The database and one pooled HTTP connection are open by now.
    let before = open_files();
    let mut clients = Vec::new();
    for i in 0..40 {
        clients.push(s.join(&id, &format!("p{i}"), Role::Participant).await);
    }
    let joined = open_files();
    assert!(
        joined >= before + 80,
        "{before} files before, {joined} with 40 connected: a socket at each end"
    );
    for c in clients {
        c.drop_connection().await;
    }
    // Well inside the grace period: WAIT is 5 s.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = open_files();
        if now <= before + 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} files open {WAIT:?} after the drops, against {before} before the joins"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}
