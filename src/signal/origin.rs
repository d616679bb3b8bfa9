//! Which web pages may open a WebSocket to this server (`Origin`, RFC 6454).
//!
//! Join and resume tokens travel in the URL, never in cookies, so a page on
//! another site cannot ride on a teacher's browser credentials: it would need
//! the token itself. The check is defence in depth: it stops a page elsewhere
//! that got hold of a link from embedding the classroom, and it makes the
//! deployment's intent explicit. What is allowed:
//! - no `Origin` header: not a browser page (the load test, a native app);
//!   browsers always send it on a WebSocket handshake;
//! - the origin of the configured public URL (`public_url`);
//! - an origin whose `host[:port]` is the request's own `Host` (the page was
//!   served by this server under whatever name it was reached by, including
//!   behind a TLS proxy that passes `Host` through);
//! - the origins listed in `allowed_origins`, or any when it holds `"*"`.
//!
//! `Origin: null` (sandboxed frames, `file:` pages) is refused unless `"*"`.

/// Whether `s` is an origin as browsers send it: `scheme://host[:port]`,
/// without path, query or user info.
pub fn is_origin(s: &str) -> bool {
    let Some((scheme, authority)) = s.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
}

/// The origin part of a URL (`https://class.example.org/x` →
/// `https://class.example.org`), lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// The policy, built once from the configuration.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    any: bool,
    /// Lower-cased origins allowed beside same-host.
    listed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(public_url: &str, allowed: &[String]) -> OriginPolicy {
        let mut listed: Vec<String> = allowed
            .iter()
            .filter(|o| o.as_str() != "*")
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        listed.extend(origin_of(public_url));
        OriginPolicy {
            any: allowed.iter().any(|o| o == "*"),
            listed,
        }
    }

    /// Whether a handshake with this `Origin` (if any) sent to this `Host`
    /// may proceed.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let origin = origin.trim().to_ascii_lowercase();
        if self.listed.contains(&origin) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false; // "null" and anything else that is not an origin
        };
        let Some(host) = host.map(|h| h.trim().to_ascii_lowercase()) else {
            return false;
        };
        // A default port may be written in one header and left out in the other.
        let default_port = match scheme {
            "https" | "wss" => ":443",
            _ => ":80",
        };
        authority == host
            || format!("{authority}{default_port}") == host
            || authority == format!("{host}{default_port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_host_public_url_and_listed_origins_pass_others_do_not() {
        let p = OriginPolicy::new(
            "https://class.example.org/base",
            &["http://portal.example.org:8443".into()],
        );
        let host = Some("127.0.0.1:8080");
        assert!(p.allows(None, host), "not a browser");
        assert!(p.allows(Some("http://127.0.0.1:8080"), host), "same host");
        assert!(
            p.allows(Some("https://CLASS.example.org"), host),
            "public URL"
        );
        assert!(p.allows(Some("http://portal.example.org:8443"), host));
        assert!(!p.allows(Some("https://evil.example.org"), host));
        assert!(!p.allows(Some("null"), host));
        assert!(
            !p.allows(Some("http://127.0.0.1:9999"), host),
            "another port"
        );
        assert!(!p.allows(Some("http://127.0.0.1:8080"), None));
        // Behind a TLS proxy the Host has no port and the page is https.
        assert!(p.allows(
            Some("https://lectern.example.org"),
            Some("lectern.example.org")
        ));
        assert!(p.allows(
            Some("https://lectern.example.org"),
            Some("lectern.example.org:443")
        ));
        let any = OriginPolicy::new("http://x", &["*".into()]);
        assert!(any.allows(Some("null"), host));
        assert!(any.allows(Some("https://evil.example.org"), host));
    }

    #[test]
    fn origins_are_recognised() {
        assert!(is_origin("https://class.example.org"));
        assert!(is_origin("http://10.0.0.5:8080"));
        assert!(!is_origin("class.example.org"));
        assert!(!is_origin("https://class.example.org/join"));
        assert!(!is_origin("https://"));
    }
}
