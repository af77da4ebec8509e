//! `--export-keys`: writes the key files and a self-contained set of playlists into a
//! package directory so that `ffmpeg -allowed_extensions ALL -i DIR/master.m3u8` plays it
//! offline. For operators checking a package by hand; the server never uses this.

use std::path::Path;

use crate::error::{Context, TranscodeError};
use crate::manifest::Manifest;
use crate::playlist;
use crate::secret::{segment_key, FilmSecret};

pub fn export_keys(
    dir: &Path,
    manifest: &Manifest,
    secret: &FilmSecret,
) -> Result<(), TranscodeError> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).context(|| format!("creating {}", keys.display()))?;
    for i in 0..manifest.segment_count() {
        let path = keys.join(format!("{i}.key"));
        std::fs::write(&path, segment_key(secret, i as u64))
            .context(|| format!("writing {}", path.display()))?;
    }
    let master = dir.join("master.m3u8");
    std::fs::write(&master, playlist::master(manifest))
        .context(|| format!("writing {}", master.display()))?;
    for r in &manifest.renditions {
        let text = playlist::media(manifest, &r.name, None).unwrap_or_default();
        let path = dir.join(&r.name).join("index.m3u8");
        std::fs::write(&path, text).context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
