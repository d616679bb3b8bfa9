//! `lectern-loadtest`: load scenarios against a running Lectern server.
//!
//! The scenarios (idle, join-storm, chat-fanout, qa-audience, classroom-mix,
//! reconnect-storm, media) are specified in issue #4 and not built yet; this
//! crate exists so the workspace layout is in place and it reuses the
//! server's protocol types from day one.

use lectern::protocol::ClientMsg;

fn main() {
    eprintln!(
        "lectern-loadtest: no scenarios are implemented yet (issue #4). \
         The protocol has {} client message types.",
        ClientMsg::TYPES.len()
    );
    std::process::exit(2);
}
