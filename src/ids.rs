//! Ids the server makes: short, random, readable in a URL or a log line.
//! Shared by the REST API (sessions), the rooms (polls' and checks' ids) and
//! the media layer (track ids), none of which owns the others.

/// A short random id: 12 characters of lowercase base32 (no `l`, `o`, `0`,
/// `1`, which read alike).
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut buf = [0u8; 12];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf.iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}
