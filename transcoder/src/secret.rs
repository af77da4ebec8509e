//! Per-film secrets and the per-segment key scheme fixed by DESIGN.md:
//! `key_i = HMAC-SHA256(film_secret, "cinegate-seg" ‖ i as u64 BE)[..16]`, `IV_i = i as u128 BE`.
//! Clients and tests derive the same values independently, so this is a contract, not a detail.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::error::{Context, TranscodeError};

const KEY_LABEL: &[u8] = b"cinegate-seg";

/// 32 random bytes from which every segment key of one film is derived.
#[derive(Clone, PartialEq, Eq)]
pub struct FilmSecret([u8; 32]);

impl fmt::Debug for FilmSecret {
    // Never let a secret reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FilmSecret(…)")
    }
}

impl FilmSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the 64 hex characters of a secret file (surrounding whitespace allowed).
    pub fn from_hex(text: &str) -> Result<Self, TranscodeError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
            TranscodeError::InvalidOptions("a film secret must be 64 hexadecimal characters".into())
        })?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the secret at `path`, or creates it (mode 0600, written to a temporary file and
    /// renamed so a crash never leaves a half secret). Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), TranscodeError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Ok((Self::from_hex(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
        }
        let secret = Self::generate();
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("tmp");
        let mut file = private_file(&tmp).context(|| format!("creating {}", tmp.display()))?;
        writeln!(file, "{}", secret.to_hex())
            .and_then(|_| file.sync_all())
            .context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).context(|| format!("renaming to {}", path.display()))?;
        Ok((secret, true))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// The AES-128 key of segment `index` (the same index in every rendition).
pub fn segment_key(secret: &FilmSecret, index: u64) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(KEY_LABEL);
    mac.update(&index.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The IV of segment `index`: the index as a 128-bit big-endian integer.
pub fn segment_iv(index: u64) -> [u8; 16] {
    u128::from(index).to_be_bytes()
}

/// `IV=0x…` attribute value for playlists.
pub fn segment_iv_hex(index: u64) -> String {
    format!("0x{}", hex::encode_upper(segment_iv(index)))
}

/// Encrypts a whole plain segment: AES-128-CBC with PKCS#7 padding (HLS `METHOD=AES-128`).
pub fn encrypt_segment(secret: &FilmSecret, index: u64, plain: &[u8]) -> Vec<u8> {
    let key = segment_key(secret, index);
    let iv = segment_iv(index);
    cbc::Encryptor::<aes::Aes128>::new(&key.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iv_is_the_index_big_endian() {
        assert_eq!(segment_iv(0), [0u8; 16]);
        let iv = segment_iv(0x0102);
        assert_eq!(&iv[14..], &[1, 2]);
        assert!(iv[..14].iter().all(|b| *b == 0));
        assert_eq!(segment_iv_hex(12), "0x0000000000000000000000000000000C");
    }

    #[test]
    fn keys_differ_per_segment_and_per_film() {
        let a = FilmSecret::from_bytes([7; 32]);
        let b = FilmSecret::from_bytes([8; 32]);
        assert_ne!(segment_key(&a, 0), segment_key(&a, 1));
        assert_ne!(segment_key(&a, 0), segment_key(&b, 0));
    }

    #[test]
    fn key_matches_an_independently_computed_vector() {
        // Recomputed with Python's hmac module:
        // hmac.new(bytes([7]*32), b"cinegate-seg" + (3).to_bytes(8, "big"), "sha256").hexdigest()[:32]
        let secret = FilmSecret::from_bytes([7; 32]);
        assert_eq!(
            hex::encode(segment_key(&secret, 3)),
            "f074e8e7fadf8f2f37a4959a994a0efe"
        );
    }

    #[test]
    fn hex_round_trip_and_bad_input() {
        let s = FilmSecret::generate();
        assert_eq!(
            FilmSecret::from_hex(&format!("{}\n", s.to_hex())).ok(),
            Some(s)
        );
        assert!(FilmSecret::from_hex("abc").is_err());
        assert!(format!("{:?}", FilmSecret::generate()).contains('…'));
    }

    #[test]
    fn ciphertext_is_padded_to_whole_blocks() {
        let s = FilmSecret::from_bytes([1; 32]);
        assert_eq!(encrypt_segment(&s, 0, &[0u8; 188]).len(), 192);
        assert_eq!(encrypt_segment(&s, 0, &[0u8; 16]).len(), 32);
    }
}
