//! Runner tokens and lease tokens: 32 random bytes from the OS, base64url, with a prefix
//! that says what the secret is when one turns up in a file or a paste (`cgr_` a runner
//! token, `cgl_` a lease token). Only their SHA-256 is stored (as refresh tokens are,
//! `store::tokens::hash`); a presented token is hashed and looked up.

use base64::Engine;
use rand::RngCore;

/// A runner's bearer token prefix.
pub const RUNNER_PREFIX: &str = "cgr_";
/// A lease (fencing) token prefix.
pub const LEASE_PREFIX: &str = "cgl_";

fn random(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A new runner token (shown to the admin once).
pub fn new_runner_token() -> String {
    random(RUNNER_PREFIX)
}

/// A new lease token (handed to the runner that took the job, once).
pub fn new_lease_token() -> String {
    random(LEASE_PREFIX)
}

/// What is stored of a token.
pub fn hash(token: &str) -> [u8; 32] {
    crate::store::tokens::hash(token)
}

pub fn hash_hex(token: &str) -> String {
    hex::encode(hash(token))
}

/// Whether a presented token is the one whose hash is stored. The hashes are compared,
/// not the tokens: an early-exit comparison then tells a caller only how much of a SHA-256
/// of their guess matches, which says nothing about the token.
pub fn matches(token: &str, stored_hex: &str) -> bool {
    !stored_hex.is_empty() && hash_hex(token) == stored_hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_matched_by_hash() {
        let a = new_runner_token();
        let b = new_runner_token();
        assert!(a.starts_with(RUNNER_PREFIX) && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        let lease = new_lease_token();
        assert!(lease.starts_with(LEASE_PREFIX));
        let stored = hash_hex(&lease);
        assert!(matches(&lease, &stored));
        assert!(!matches(&a, &stored));
        assert!(!matches(&lease, ""));
        assert!(!matches(&lease, "not hex"));
    }
}
