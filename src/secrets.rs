//! Secrets under `keys_dir`: the token-signing keys and the `/metrics` bearer token
//! (generated on first start, mode 0600, reused after) and one secret per film. Never
//! logged, never under `media_dir`. Also the owner-only directories the data lives in.

use std::path::{Path, PathBuf};

use rand::RngCore;
use transcoder::FilmSecret;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid key file (expected 64 hex characters)")]
    Invalid { path: PathBuf },
    #[error("film secret: {0}")]
    Film(#[from] transcoder::TranscodeError),
}

/// The file under `keys_dir` that holds the `/metrics` bearer token.
pub const METRICS_TOKEN_FILE: &str = "metrics.token";

/// Server-wide signing keys.
#[derive(Clone)]
pub struct SigningKeys {
    /// HS256 key for access JWTs.
    pub access: [u8; 32],
    /// HMAC key for playback tokens (separate, so neither token can pass as the other).
    pub playback: [u8; 32],
    /// The bearer token `/metrics` asks for: `keys/metrics.token`, whose text (64 hex
    /// characters) Prometheus sends as it is (`bearer_token_file`).
    pub metrics: [u8; 32],
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys(…)")
    }
}

pub fn ensure_keys_dir(dir: &Path) -> Result<(), SecretsError> {
    ensure_private_dir(dir)
}

/// Creates `dir` (and missing parents) owner-only, 0700, whatever the umask. An existing
/// directory with looser bits (made by an older cinegate, by hand, or under another umask)
/// is tightened to 0700, and the log says so.
pub fn ensure_private_dir(dir: &Path) -> Result<(), SecretsError> {
    let io = |source| SecretsError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)?;
    #[cfg(unix)]
    tighten(dir, 0o700).map_err(io)?;
    Ok(())
}

/// Tightens every directory (0700) and file (0600) under `dir`, `dir` included, that has
/// bits for group or others; symbolic links are left alone. For the small private trees
/// (the store, `keys_dir`) that an older cinegate created with the process umask.
#[cfg(unix)]
pub fn make_tree_private(dir: &Path) -> Result<(), SecretsError> {
    fn walk(path: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() {
            tighten(path, 0o700)?;
            for entry in std::fs::read_dir(path)? {
                walk(&entry?.path())?;
            }
        } else if meta.is_file() {
            tighten(path, 0o600)?;
        }
        Ok(())
    }
    walk(dir).map_err(|source| SecretsError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Sets `path` to `mode` if it grants anything to group or others, and logs the change.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let old = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if old & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        tracing::warn!(
            path = %path.display(),
            from = %format!("{old:04o}"),
            to = %format!("{mode:04o}"),
            "tightened permissions: cinegate's data is owner-only"
        );
    }
    Ok(())
}

impl SigningKeys {
    pub fn load_or_create(dir: &Path) -> Result<Self, SecretsError> {
        ensure_keys_dir(dir)?;
        Ok(Self {
            access: key_file(&dir.join("access-token.key"))?,
            playback: key_file(&dir.join("playback-token.key"))?,
            metrics: key_file(&dir.join(METRICS_TOKEN_FILE))?,
        })
    }

    #[cfg(test)]
    pub fn fixed() -> Self {
        Self {
            access: [1; 32],
            playback: [2; 32],
            metrics: [3; 32],
        }
    }
}

fn key_file(path: &Path) -> Result<[u8; 32], SecretsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut key = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut key)
                .map_err(|_| SecretsError::Invalid { path: path.into() })?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            write_private(path, &format!("{}\n", hex::encode(key)))?;
            Ok(key)
        }
        Err(source) => Err(SecretsError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), SecretsError> {
    use std::io::Write;
    let io = |source| SecretsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub fn film_secret_path(keys_dir: &Path, film: &Uuid) -> PathBuf {
    keys_dir.join("films").join(format!("{film}.secret"))
}

pub fn film_secret(keys_dir: &Path, film: &Uuid) -> Result<FilmSecret, SecretsError> {
    ensure_keys_dir(&keys_dir.join("films"))?;
    Ok(FilmSecret::load_or_create(&film_secret_path(keys_dir, film))?.0)
}

pub fn delete_film_secret(keys_dir: &Path, film: &Uuid) {
    let _ = std::fs::remove_file(film_secret_path(keys_dir, film));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_private_and_reused() -> Result<(), SecretsError> {
        let dir = tempfile::tempdir().map_err(|source| SecretsError::Io {
            path: "tmp".into(),
            source,
        })?;
        let a = SigningKeys::load_or_create(dir.path())?;
        let b = SigningKeys::load_or_create(dir.path())?;
        assert_eq!(a.access, b.access);
        assert_ne!(a.access, a.playback);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("access-token.key"))
                .map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        Ok(())
    }
}
