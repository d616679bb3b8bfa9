//! A webhook sink following the Standard Webhooks spec: each request is
//! signed with HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`
//! with the `whsec_` secret, and carries one session's events in order.

use super::deliver::{SendError, Sink};
use crate::store::DeliveryRow;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub struct Webhook {
    name: String,
    url: String,
    key: Vec<u8>,
    client: reqwest::Client,
}

/// Reads a `whsec_<base64>` secret into its key bytes.
pub fn parse_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = B64
        .decode(b64.trim())
        .map_err(|_| "a webhook secret is whsec_ followed by base64".to_string())?;
    if key.len() < 16 {
        return Err("a webhook secret needs at least 16 bytes of key".into());
    }
    Ok(key)
}

/// The `webhook-signature` value for a message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The request body for a batch: `{"type", "timestamp", "data": {"session_id", "events"}}`.
pub fn body(session: &str, events: &[DeliveryRow], now: crate::protocol::Timestamp) -> String {
    let mut s = String::with_capacity(256 + events.iter().map(|e| e.body.len() + 1).sum::<usize>());
    s.push_str(r#"{"type":"participation.batch","timestamp":""#);
    s.push_str(&now.to_rfc3339());
    s.push_str(r#"","data":{"session_id":"#);
    s.push_str(&serde_json::to_string(session).unwrap_or_default());
    s.push_str(r#","events":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&e.body);
    }
    s.push_str("]}}");
    s
}

impl Webhook {
    pub fn new(name: &str, url: &str, secret: &str) -> Result<Webhook, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "webhook {name}: url must start with http:// or https://"
            ));
        }
        Ok(Webhook {
            name: name.to_string(),
            url: url.to_string(),
            key: parse_secret(secret).map_err(|e| format!("webhook {name}: {e}"))?,
            client: http_client(),
        })
    }
}

/// The HTTP client sinks share: short timeouts, no redirects (a redirect
/// would send the signed body somewhere unexpected).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lectern/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// Turns a non-2xx answer into a retryable error, with `Retry-After` read
/// as seconds or as an HTTP date.
pub async fn refusal(resp: reqwest::Response) -> SendError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    SendError {
        message: format!("HTTP {status}: {text}"),
        retry_after,
    }
}

/// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (t - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(Duration::from_secs(secs.clamp(0, 86_400) as u64))
}

#[async_trait]
impl Sink for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, session: &str, events: &[DeliveryRow]) -> Result<(), SendError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let now = crate::protocol::Timestamp::now();
        let body = body(session, events, now);
        // The same events always get the same id, so a receiver can drop a
        // repeated request; every event also carries its own id.
        let id = format!("msg_{}_{}_{}", session, first.seq, last.seq);
        let ts = now.millis() / 1000;
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sign(&self.key, &id, ts, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| SendError {
                message: format!("request failed: {e}"),
                retry_after: None,
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refusal(resp).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The example of the Standard Webhooks specification.
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(parse_secret("whsec_???").is_err());
        assert!(parse_secret("whsec_c2hvcnQ=").is_err());
    }

    #[test]
    fn reads_retry_after_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
