//! Join tokens: compact JWTs signed with HMAC-SHA256 (HS256), and the admin key.
//!
//! Only HS256 is accepted; the header's `alg` is checked, so a token with
//! `"alg":"none"` or any other algorithm is refused.

use crate::protocol::{Role, Timestamp};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Session id.
    pub sid: String,
    /// The participant's external identity (the programme's teacher id).
    pub sub: String,
    pub name: String,
    pub role: Role,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// `join` for tokens from the API, `resume` for the ones the server hands out.
    pub typ: TokenType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Join,
    Resume,
    /// Watches a session's recordings (never joins the live session).
    Replay,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenKey {
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey {
            secret: secret.to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = mac.finalize().into_bytes();
        format!("{signing_input}.{}", B64.encode(sig))
    }

    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = B64
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp * 1000 <= now.millis() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A random secret as URL-safe text (`bytes` bytes of entropy).
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    B64.encode(buf)
}

/// Compares secrets without leaking where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sid: "s1".into(),
            sub: "t-001".into(),
            name: "李老师".into(),
            role: Role::Participant,
            iat: 0,
            exp,
            typ: TokenType::Join,
        }
    }

    #[test]
    fn signs_and_verifies() {
        let key = TokenKey::new(b"secret");
        let t = key.sign(&claims(2_000_000_000));
        assert_eq!(key.verify(&t, Timestamp(0)), Ok(claims(2_000_000_000)));
    }

    #[test]
    fn refuses_expired_tampered_and_foreign_tokens() {
        let key = TokenKey::new(b"secret");
        let t = key.sign(&claims(100));
        assert_eq!(key.verify(&t, Timestamp(100_000)), Err(TokenError::Expired));
        let other = TokenKey::new(b"other").sign(&claims(2_000_000_000));
        assert_eq!(
            key.verify(&other, Timestamp(0)),
            Err(TokenError::BadSignature)
        );
        let mut parts: Vec<String> = key
            .sign(&claims(2_000_000_000))
            .split('.')
            .map(String::from)
            .collect();
        let mut forged = claims(2_000_000_000);
        forged.role = Role::Host;
        parts[1] = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            key.verify(&parts.join("."), Timestamp(0)),
            Err(TokenError::BadSignature)
        );
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(key.verify(&none, Timestamp(0)), Err(TokenError::Malformed));
        assert_eq!(
            key.verify("garbage", Timestamp(0)),
            Err(TokenError::Malformed)
        );
    }
}
