//! Rendered playlists and key material per film, cached in memory: a package never
//! changes once written, so playlists are rendered once (full and preview) and served
//! as shared bytes. Entries are dropped when a film is deleted or repackaged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use actix_web::web::Bytes;
use transcoder::{playlist, FilmSecret, Manifest};
use uuid::Uuid;

use crate::stream::gate::preview_segments;

pub struct FilmPlayback {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub secret: FilmSecret,
    pub master: Bytes,
    /// Rendition name → (full playlist, preview playlist).
    media: HashMap<String, (Bytes, Bytes)>,
    pub preview: usize,
}

impl FilmPlayback {
    pub fn load(
        dir: &Path,
        secret: FilmSecret,
        preview_fraction: f64,
    ) -> Result<Self, transcoder::TranscodeError> {
        let manifest = Manifest::load(dir)?;
        let preview = preview_segments(manifest.segment_count(), preview_fraction);
        let media = manifest
            .renditions
            .iter()
            .map(|r| {
                let full = playlist::media(&manifest, &r.name, None).unwrap_or_default();
                let short = playlist::media(&manifest, &r.name, Some(preview)).unwrap_or_default();
                (r.name.clone(), (Bytes::from(full), Bytes::from(short)))
            })
            .collect();
        Ok(Self {
            master: Bytes::from(playlist::master(&manifest)),
            manifest,
            dir: dir.to_path_buf(),
            secret,
            media,
            preview,
        })
    }

    /// The playlist for `allowed` segments: the full one or the preview cut.
    pub fn media(&self, rendition: &str, full: bool) -> Option<Bytes> {
        self.media
            .get(rendition)
            .map(|(f, p)| if full { f.clone() } else { p.clone() })
    }

    pub fn segment_count(&self) -> usize {
        self.manifest.segment_count()
    }
}

#[derive(Default)]
pub struct PlaybackCache {
    films: RwLock<HashMap<Uuid, Arc<FilmPlayback>>>,
}

impl PlaybackCache {
    pub fn get(&self, film: &Uuid) -> Option<Arc<FilmPlayback>> {
        self.films
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(film)
            .cloned()
    }

    pub fn insert(&self, film: Uuid, playback: Arc<FilmPlayback>) {
        self.films
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(film, playback);
    }

    pub fn invalidate(&self, film: &Uuid) {
        self.films
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(film);
    }
}
