//! Test glue for the library's client media peer (`lectern::media::peer`):
//! the test WebSocket client is its signaling channel.

use crate::common::TestClient;
use lectern::media::peer::{self, PublishOptions, Signal};
use lectern::protocol::ClientMsg;
use std::time::Duration;

pub use lectern::media::peer::{Peer, Publisher};

#[async_trait::async_trait]
impl Signal for TestClient {
    async fn request(&mut self, msg: ClientMsg) -> Result<serde_json::Value, String> {
        TestClient::request(self, msg).await
    }

    async fn next_offer(&mut self, wait: Duration) -> Option<String> {
        let f = self.try_wait_type("media_offer", wait).await?;
        f["sdp"].as_str().map(str::to_string)
    }
}

/// Publishes microphone audio and, when `video`, camera video.
pub async fn publish(client: &mut TestClient, video: bool) -> Result<Publisher, String> {
    publish_with(client, video, false).await
}

/// Publishes from a new peer connection, replacing any earlier one when `reset`.
pub async fn publish_with(
    client: &mut TestClient,
    video: bool,
    reset: bool,
) -> Result<Publisher, String> {
    peer::publish(
        client,
        PublishOptions {
            video,
            reset,
            ..Default::default()
        },
    )
    .await
}

/// Publishes one three-layer simulcast video track (RIDs `q`, `h`, `f`).
pub async fn publish_simulcast(client: &mut TestClient) -> Publisher {
    peer::publish(
        client,
        PublishOptions {
            audio: false,
            simulcast: true,
            ..Default::default()
        },
    )
    .await
    .expect("simulcast publish accepted")
}

/// Subscribes `client` and answers the first offer.
pub async fn subscribe(client: &mut TestClient, audio_only: bool) -> Peer {
    peer::subscribe(client, audio_only, None)
        .await
        .expect("subscribed")
}

/// Waits until `cond` holds, polling; panics with `what` after `secs`.
pub async fn eventually(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
