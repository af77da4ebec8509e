//! Segment keys and IVs derived from docs/PACKAGE-CONTRACT.md (not from the transcoder's
//! code), and decryption by `openssl enc`, so a package is judged by a second implementation.

use std::path::Path;
use std::process::Command;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The film secret the packaging tests use (32 bytes, as 64 hex characters).
pub const SECRET_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn secret_bytes(hex_str: &str) -> Vec<u8> {
    let b = hex::decode(hex_str.trim()).expect("secret is hex");
    assert_eq!(b.len(), 32, "a film secret is 32 bytes");
    b
}

/// key_i = first 16 bytes of HMAC-SHA256(secret, b"cinegate-seg" || i as u64 BE).
pub fn derive_key(secret: &[u8], index: u64) -> [u8; 16] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key");
    mac.update(b"cinegate-seg");
    mac.update(&index.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut k = [0u8; 16];
    k.copy_from_slice(&full[..16]);
    k
}

/// IV_i = i as a 16-byte big-endian integer.
pub fn derive_iv(index: u64) -> [u8; 16] {
    (index as u128).to_be_bytes()
}

/// Decrypts with `openssl enc -d -aes-128-cbc` (PKCS#7 padding checked by openssl).
pub fn openssl_decrypt(
    enc: &Path,
    key: &[u8; 16],
    iv: &[u8; 16],
    out: &Path,
) -> Result<(), String> {
    let o = Command::new("openssl")
        .args(["enc", "-d", "-aes-128-cbc", "-K"])
        .arg(hex::encode(key))
        .arg("-iv")
        .arg(hex::encode(iv))
        .arg("-in")
        .arg(enc)
        .arg("-out")
        .arg(out)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}
