//! Rendered playlists and key material per film, cached in memory: a package never
//! changes once written, so playlists are rendered once (full and preview) and served
//! as shared bytes ([`Playlist`]). Entries are dropped when a film is deleted or
//! repackaged, and an entry only ever answers for the package it was loaded from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use transcoder::{playlist, FilmSecret, Manifest};
use uuid::Uuid;

use crate::storage::{SegmentSource, Storage};
use crate::store::films::Film;
use crate::store::Store;
use crate::stream::gate::preview_segments;

/// A rendered playlist, shared: the HTTP surface wraps it without a copy.
pub type Playlist = Arc<[u8]>;

pub struct FilmPlayback {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub secret: FilmSecret,
    pub master: Playlist,
    /// Rendition name → (full playlist, preview playlist); empty with presigned segment
    /// URLs, which are made per request (`SegmentSource::Presigned`).
    media: HashMap<String, (Playlist, Playlist)>,
    pub preview: usize,
    /// Where the media playlists point players for segments.
    pub segments: SegmentSource,
}

impl FilmPlayback {
    pub fn load(
        dir: &Path,
        secret: FilmSecret,
        preview_fraction: f64,
        segments: SegmentSource,
    ) -> Result<Self, transcoder::TranscodeError> {
        let manifest = Manifest::load(dir)?;
        Ok(Self::from_manifest(manifest, dir, secret, preview_fraction).with_segments(segments))
    }

    /// The same playback with its media playlists naming segments at `segments`.
    pub fn with_segments(mut self, segments: SegmentSource) -> Self {
        match &segments {
            SegmentSource::Origin => {}
            SegmentSource::Public(base) => {
                let preview = self.preview;
                let manifest = &self.manifest;
                self.media = manifest
                    .renditions
                    .iter()
                    .map(|r| {
                        let uri = |i: usize| format!("{base}{}/{i:05}.ts", r.name);
                        let full =
                            playlist::media_with(manifest, &r.name, None, &uri).unwrap_or_default();
                        let short = playlist::media_with(manifest, &r.name, Some(preview), &uri)
                            .unwrap_or_default();
                        (r.name.clone(), (bytes(full), bytes(short)))
                    })
                    .collect();
            }
            SegmentSource::Presigned => self.media.clear(),
        }
        self.segments = segments;
        self
    }

    /// The package directory's name (`pkg-…`).
    pub fn package(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A media playlist whose segments are presigned GETs, for `allowed` segments
    /// (`SegmentSource::Presigned`): signed per request because the URLs expire.
    pub async fn presigned_media(
        &self,
        storage: &Storage,
        film: &Uuid,
        rendition: &str,
        allowed: usize,
    ) -> Result<Option<Playlist>, crate::storage::StorageError> {
        if self.manifest.rendition(rendition).is_none() {
            return Ok(None);
        }
        let count = allowed.min(self.segment_count());
        let base = storage.package_key(film, &self.package());
        let keys: Vec<String> = (0..count)
            .map(|i| format!("{base}{rendition}/{i:05}.ts"))
            .collect();
        let urls = storage.presign(&keys).await?;
        let uri = |i: usize| urls.get(i).cloned().unwrap_or_default();
        Ok(playlist::media_with(&self.manifest, rendition, Some(count), &uri).map(bytes))
    }

    /// Renders the playlists of a loaded `manifest` (what [`FilmPlayback::load`] does after
    /// reading it). Public for the fuzz targets (`fuzz/`).
    pub fn from_manifest(
        manifest: Manifest,
        dir: &Path,
        secret: FilmSecret,
        preview_fraction: f64,
    ) -> Self {
        let preview = preview_segments(manifest.segment_count(), preview_fraction);
        let media = manifest
            .renditions
            .iter()
            .map(|r| {
                let full = playlist::media(&manifest, &r.name, None).unwrap_or_default();
                let short = playlist::media(&manifest, &r.name, Some(preview)).unwrap_or_default();
                (r.name.clone(), (bytes(full), bytes(short)))
            })
            .collect();
        Self {
            master: bytes(playlist::master(&manifest)),
            manifest,
            dir: dir.to_path_buf(),
            secret,
            media,
            preview,
            segments: SegmentSource::Origin,
        }
    }

    /// The playlist for `allowed` segments: the full one or the preview cut.
    pub fn media(&self, rendition: &str, full: bool) -> Option<Playlist> {
        self.media
            .get(rendition)
            .map(|(f, p)| if full { f.clone() } else { p.clone() })
    }

    pub fn segment_count(&self) -> usize {
        self.manifest.segment_count()
    }

    /// A one-segment playback "loaded" from `films/f/{dir}`, for cache tests.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &str) -> Arc<Self> {
        Self::for_tests_with(dir, 1)
    }

    /// The same with `segments` six-second segments and its preview at 10%.
    #[cfg(test)]
    pub(crate) fn for_tests_with(dir: &str, segments: usize) -> Arc<Self> {
        let manifest = Manifest {
            version: 1,
            duration: 6.0 * segments as f64,
            segment_target: 6.0,
            rate_control: Default::default(),
            segments: vec![6.0; segments],
            has_audio: false,
            poster: "poster.jpg".into(),
            renditions: Vec::new(),
            source: transcoder::MediaInfo {
                container: "mp4".into(),
                duration: 6.0,
                bit_rate: None,
                streams: Vec::new(),
            },
        };
        Arc::new(Self {
            manifest,
            dir: PathBuf::from("films/f").join(dir),
            secret: FilmSecret::from_bytes([7; 32]),
            master: Arc::from(Vec::new()),
            media: HashMap::new(),
            preview: preview_segments(segments, 0.1),
            segments: SegmentSource::Origin,
        })
    }
}

fn bytes(text: String) -> Playlist {
    Arc::from(text.into_bytes())
}

/// Loaded films by id. A miss loads from disk off the cache's lock, so an invalidation
/// (re-package, delete) can land between a request's read of the film record and its
/// insert: that request would cache a package that is already gone. Three rules close it:
/// an entry answers only for the package directory the caller's film record names, an
/// insert is dropped when any invalidation happened since the caller's `ticket`, and the
/// caller re-reads the film after taking the ticket and inserts only if the record still
/// names that package (`PlaybackCache::load_current`; writers change the record before they
/// invalidate, so a change the ticket misses is one this read sees).
#[derive(Default)]
pub struct PlaybackCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    films: HashMap<Uuid, Entry>,
    /// Bumped by every invalidation (one counter for all films: invalidations are rare,
    /// and a dropped insert only costs the next request a reload).
    generation: u64,
}

struct Entry {
    /// The package directory name (`PackageSummary::dir`) it was loaded from.
    package: String,
    /// Whether it was loaded for the package's copy in the bucket (`PackageSummary::stored`):
    /// `storage migrate` flips that without a new directory, and the playlists change.
    stored: bool,
    playback: Arc<FilmPlayback>,
}

/// Taken before a load from disk; the load is cached only if no invalidation came since.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl PlaybackCache {
    /// The cached playback of `film`, if it was loaded from `package` (the directory the
    /// caller's film record names).
    pub fn get(&self, film: &Uuid, package: &str, stored: bool) -> Option<Arc<FilmPlayback>> {
        self.read()
            .films
            .get(film)
            .filter(|e| e.package == package && e.stored == stored)
            .map(|e| e.playback.clone())
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(self.read().generation)
    }

    /// Caches a load that began at `ticket`; returns whether it was cached.
    pub fn insert(
        &self,
        film: Uuid,
        package: &str,
        stored: bool,
        playback: Arc<FilmPlayback>,
        ticket: Ticket,
    ) -> bool {
        let mut inner = self.write();
        if inner.generation != ticket.0 {
            return false;
        }
        inner.films.insert(
            film,
            Entry {
                package: package.to_string(),
                stored,
                playback,
            },
        );
        true
    }

    pub fn invalidate(&self, film: &Uuid) {
        let mut inner = self.write();
        inner.films.remove(film);
        inner.generation += 1;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playback(dir: &str) -> Arc<FilmPlayback> {
        FilmPlayback::for_tests(dir)
    }

    /// Regression (fuzz target `manifest_playlists`, corpus `seed-crash-no-renditions`): a
    /// `manifest.json` without renditions panicked rendering the master playlist.
    #[test]
    fn a_manifest_without_renditions_renders_an_empty_master() -> Result<(), serde_json::Error> {
        let text = include_str!("../../fuzz/corpus/manifest_playlists/seed-crash-no-renditions");
        let manifest = Manifest::from_json(text)?;
        assert!(manifest.renditions.is_empty());
        let playback = FilmPlayback::from_manifest(
            manifest,
            Path::new("films/f/p"),
            FilmSecret::from_bytes([7; 32]),
            0.1,
        );
        let master = String::from_utf8_lossy(&playback.master).into_owned();
        assert!(master.starts_with("#EXTM3U"), "{master}");
        assert!(!master.contains("#EXT-X-STREAM-INF"), "{master}");
        assert_eq!(playback.preview, 1);
        assert!(playback.media("720", true).is_none());
        Ok(())
    }

    #[test]
    fn a_load_overtaken_by_an_invalidation_is_not_cached() {
        let cache = PlaybackCache::default();
        let film = crate::store::new_id();

        // A request misses and starts loading the package its film record names…
        let ticket = cache.ticket();
        let old = playback("pkg-old");
        // …the job records the new package and invalidates, then deletes the old one…
        cache.invalidate(&film);
        // …and the request's insert arrives last: it must not be kept.
        assert!(!cache.insert(film, "pkg-old", false, old, ticket));
        assert!(cache.get(&film, "pkg-old", false).is_none());
        assert!(cache.get(&film, "pkg-new", false).is_none());

        // The next request loads the new package and that one is cached.
        let ticket = cache.ticket();
        assert!(cache.insert(film, "pkg-new", false, playback("pkg-new"), ticket));
        let hit = cache.get(&film, "pkg-new", false).map(|p| p.dir.clone());
        assert_eq!(hit, Some(PathBuf::from("films/f/pkg-new")));
    }

    #[test]
    fn an_entry_answers_only_for_the_package_it_was_loaded_from() {
        let cache = PlaybackCache::default();
        let film = crate::store::new_id();
        // A request that read the film record before the re-package was recorded, and
        // took its ticket after the invalidation: its insert goes through…
        cache.invalidate(&film);
        let ticket = cache.ticket();
        assert!(cache.insert(film, "pkg-old", false, playback("pkg-old"), ticket));
        // …but a request holding the new record never gets the old package.
        assert!(cache.get(&film, "pkg-new", false).is_none());
        assert!(cache.get(&film, "pkg-old", false).is_some());
    }
}

/// Why a film's playback could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error("the film has no package")]
    NoPackage,
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    Load(#[from] transcoder::TranscodeError),
    #[error("loading the package did not finish: {0}")]
    Interrupted(String),
}

impl PlaybackCache {
    /// `film`'s rendered playlists and secret: from the cache, or loaded from
    /// `film_dir/{package}` (off the runtime's threads) and cached if the film still names
    /// that package (`cache_if_current`).
    pub async fn load_current(
        &self,
        store: &Store,
        keys_dir: &Path,
        film_dir: &Path,
        preview_fraction: f64,
        storage: &Storage,
        film: &Film,
    ) -> Result<Arc<FilmPlayback>, PlaybackError> {
        let package = film.package.as_ref().ok_or(PlaybackError::NoPackage)?;
        let stored = package.stored.is_some();
        if let Some(p) = self.get(&film.id, &package.dir, stored) {
            return Ok(p);
        }
        let segments = storage.segment_source(&film.id, &package.dir, stored);
        let ticket = self.ticket();
        let dir = film_dir.join(&package.dir);
        let keys_dir = keys_dir.to_path_buf();
        let film_id = film.id;
        let loaded = tokio::task::spawn_blocking(move || -> Result<FilmPlayback, PlaybackError> {
            let secret = crate::secrets::film_secret(&keys_dir, &film_id)?;
            Ok(FilmPlayback::load(
                &dir,
                secret,
                preview_fraction,
                segments,
            )?)
        })
        .await
        .map_err(|e| PlaybackError::Interrupted(e.to_string()))??;
        let loaded = Arc::new(loaded);
        cache_if_current(
            store,
            self,
            &film.id,
            &package.dir,
            stored,
            loaded.clone(),
            ticket,
        );
        Ok(loaded)
    }
}

/// Caches a load that began at `ticket` only if the film's record, read now, still names
/// the package it was loaded from. The ticket alone misses a delete or re-package that
/// landed after the caller read `film` but before it took the ticket: that load would be
/// cached — with the film's secret — for a film that is gone. The record is read after the
/// ticket, so whatever the ticket misses this read sees. Only on a miss, which reads the
/// disk anyway; a hit never reads the store here.
fn cache_if_current(
    store: &Store,
    cache: &PlaybackCache,
    film: &Uuid,
    package: &str,
    stored: bool,
    loaded: Arc<FilmPlayback>,
    ticket: Ticket,
) -> bool {
    let current = match store.film(film) {
        Ok(current) => current,
        // Not cached; the request itself was already authorised on the earlier read.
        Err(e) => {
            tracing::warn!(film = %film, error = %e, "playback cache: could not re-read the film; not cached");
            return false;
        }
    };
    let same = current
        .as_ref()
        .and_then(|f| f.package.as_ref())
        .is_some_and(|p| p.dir == package && p.stored.is_some() == stored);
    same && cache.insert(*film, package, stored, loaded, ticket)
}

#[cfg(test)]
mod load_tests {
    use super::*;

    fn packaged(id: Uuid, dir: &str) -> Film {
        let mut film = crate::ingest::new_film("A film".into(), String::new(), Vec::new(), 1);
        film.id = id;
        film.package = Some(crate::store::films::PackageSummary {
            dir: dir.into(),
            duration: 6.0,
            segments: 1,
            renditions: Vec::new(),
            packaged_at: 1,
            bytes: 0,
            stored: None,
        });
        film
    }

    /// A request read the film, then the film was deleted and the cache invalidated, and
    /// only then did the request take its ticket and load: the ticket has seen no
    /// invalidation, but the load must not be cached (it holds the deleted film's secret).
    #[test]
    fn a_load_for_a_film_deleted_before_its_ticket_is_not_cached() -> crate::store::Result<()> {
        let store = Store::temporary()?;
        let cache = PlaybackCache::default();
        let id = crate::store::new_id();
        store.save_film(&packaged(id, "pkg-a"))?;
        let _read_by_the_request = store.film(&id)?;

        store.delete_film(&id)?;
        cache.invalidate(&id);

        let ticket = cache.ticket();
        let loaded = FilmPlayback::for_tests("pkg-a");
        assert!(!cache_if_current(
            &store, &cache, &id, "pkg-a", false, loaded, ticket
        ));
        assert!(
            cache.get(&id, "pkg-a", false).is_none(),
            "a deleted film stayed cached"
        );
        Ok(())
    }

    /// The same race with a re-package instead of a delete, and the ordinary miss.
    #[test]
    fn only_a_load_of_the_package_the_film_names_now_is_cached() -> crate::store::Result<()> {
        let store = Store::temporary()?;
        let cache = PlaybackCache::default();
        let id = crate::store::new_id();
        store.save_film(&packaged(id, "pkg-a"))?;

        store.save_film(&packaged(id, "pkg-b"))?;
        cache.invalidate(&id);
        let ticket = cache.ticket();
        let old = FilmPlayback::for_tests("pkg-a");
        assert!(!cache_if_current(
            &store, &cache, &id, "pkg-a", false, old, ticket
        ));
        assert!(cache.get(&id, "pkg-a", false).is_none());

        let ticket = cache.ticket();
        let new = FilmPlayback::for_tests("pkg-b");
        assert!(cache_if_current(
            &store, &cache, &id, "pkg-b", false, new, ticket
        ));
        assert!(cache.get(&id, "pkg-b", false).is_some());
        Ok(())
    }
}
