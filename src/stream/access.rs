//! What a playback token may open, decided on every `/hls/` request from the store: the
//! token must be genuine and unexpired, its account present, enabled and still in the
//! sign-in epoch the token was issued in, its film published and packaged (or packaged, for an administrator); the viewer then
//! gets every segment with an entitlement, or the preview. Nothing here is cached per
//! viewer, so a refund, a ban or "sign out everywhere" takes effect on the next request.

use std::sync::Arc;

use uuid::Uuid;

use crate::config::Config;
use crate::store::films::Film;
use crate::store::users::User;
use crate::store::{Store, StoreError};
use crate::stream::gate;
use crate::stream::playlists::{FilmPlayback, PlaybackCache, PlaybackError};
use crate::stream::progress::{ProgressRecorder, ProgressView};
use crate::stream::token::{PlaybackToken, PlaybackTokenError};

/// What one request may open.
pub struct Access {
    /// The playback token's id (`PlaybackToken::id`).
    pub token: [u8; 8],
    pub user: Uuid,
    pub film: Uuid,
    pub playback: Arc<FilmPlayback>,
    /// Segments this viewer may receive: all, or the preview.
    pub allowed: usize,
}

impl Access {
    /// Whether this viewer gets the whole film (the full playlists).
    pub fn full(&self) -> bool {
        self.allowed >= self.playback.segment_count()
    }
}

/// Why a playback request opens nothing.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The token or its account (`PlaybackTokenError` says which).
    #[error(transparent)]
    Token(#[from] PlaybackTokenError),
    /// The film is gone, unpublished or not packaged.
    #[error("the film is not available")]
    NoFilm,
    #[error(transparent)]
    Playback(#[from] PlaybackError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The playback rules over this server's store, playlist cache, configuration and token
/// key. Borrowed per request (`AppState::playback_access`).
pub struct Playback<'a> {
    store: &'a Store,
    cache: &'a PlaybackCache,
    config: &'a Config,
    key: &'a [u8; 32],
    storage: &'a crate::storage::Storage,
}

impl<'a> Playback<'a> {
    pub fn new(
        store: &'a Store,
        cache: &'a PlaybackCache,
        config: &'a Config,
        key: &'a [u8; 32],
        storage: &'a crate::storage::Storage,
    ) -> Self {
        Self {
            store,
            cache,
            config,
            key,
            storage,
        }
    }

    /// The rendered playlists and secret of a packaged film, from the cache or disk.
    pub async fn playback_of(&self, film: &Film) -> Result<Arc<FilmPlayback>, PlaybackError> {
        self.cache
            .load_current(
                self.store,
                &self.config.keys_dir,
                &crate::ingest::film_dir(self.config, &film.id),
                self.config.playback.preview_fraction,
                self.storage,
                film,
            )
            .await
    }

    /// Where `user` stands against the bar that opens comments and support on `film`:
    /// `None` past it (administrators always are), else their progress — its coverage
    /// weighed by the film's segment durations, unflushed deliveries included.
    pub async fn below_unlock(
        &self,
        progress: &ProgressRecorder,
        user: &User,
        film: &Film,
    ) -> Result<Option<ProgressView>, AuthorizeError> {
        if user.is_admin() {
            return Ok(None);
        }
        let playback = self.playback_of(film).await?;
        let view = progress.view(
            &user.id,
            &film.id,
            &playback.manifest.segments,
            std::time::Instant::now(),
        )?;
        Ok((!view.unlocked).then_some(view))
    }

    /// A playback token for `user` and `film`, valid for `playback.token_ttl` from `now`,
    /// and the path of the film's master playlist it opens (`/hls/{token}/master.m3u8`).
    pub fn start(&self, user: &User, film: &Film, now: i64) -> (PlaybackToken, String, i64) {
        let expires_at = now + self.config.playback.token_ttl.as_secs() as i64;
        let token = PlaybackToken::new(user.id, film.id, user.session_epoch, expires_at);
        let path = format!("/hls/{}/master.m3u8", token.encode(self.key));
        // Whether this start is a preview: read for analytics only, so a store failure
        // counts it as one rather than refuse the token.
        let entitled = gate::playback_entitlement(self.store, user, &film.id)
            .is_ok_and(|e| e == gate::Entitlement::Full);
        crate::events::record(
            self.store,
            now,
            crate::events::Event::PlaybackStarted {
                user: user.id,
                film: film.id,
                entitled,
            },
        );
        (token, path, expires_at)
    }

    /// What the playback token `token` may open at `now`.
    pub async fn authorize(&self, token: &str, now: i64) -> Result<Access, AuthorizeError> {
        let token = PlaybackToken::decode(self.key, token, now)?;
        let user = self
            .store
            .user(&token.user)?
            .ok_or(PlaybackTokenError::NoAccount)?;
        // The user record is read here anyway, so "sign out everywhere" reaches playback
        // tokens at no extra cost.
        if user.session_epoch != token.epoch {
            return Err(PlaybackTokenError::Ended.into());
        }
        if user.disabled {
            return Err(PlaybackTokenError::Disabled.into());
        }
        // Administrators also play what is packaged but not yet published (the console's
        // preview); viewers only what is on sale.
        let film = self
            .store
            .film(&token.film)?
            .filter(|f| f.is_watchable() || (user.is_admin() && f.package.is_some()))
            .ok_or(AuthorizeError::NoFilm)?;
        let playback = self.playback_of(&film).await?;
        let entitlement = gate::playback_entitlement(self.store, &user, &film.id)?;
        let allowed = gate::allowed_segments(
            entitlement,
            playback.segment_count(),
            self.config.playback.preview_fraction,
        );
        Ok(Access {
            token: token.id,
            user: user.id,
            film: film.id,
            playback,
            allowed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static LOCAL_STORAGE: crate::storage::Storage = crate::storage::Storage::local();
    use crate::store::films::PackageSummary;
    use crate::store::grants::Grant;
    use crate::store::users::Role;

    type R = Result<(), Box<dyn std::error::Error>>;
    const T0: i64 = 1_800_000_000;
    const KEY: [u8; 32] = [9; 32];
    /// Segments in the test package: the preview at 10% is 2 of them.
    const SEGMENTS: usize = 20;

    struct Fixture {
        store: Store,
        cache: PlaybackCache,
        config: Config,
        user: crate::store::users::User,
        film: Film,
    }

    impl Fixture {
        /// A viewer and a published film whose package is already in the cache (so no
        /// package is read from disk).
        fn new() -> Result<Self, Box<dyn std::error::Error>> {
            let store = Store::temporary()?;
            let user = store.create_user("viewer@example.com", Role::Viewer, T0)?;
            let mut film = crate::ingest::new_film("A film".into(), String::new(), vec![], T0);
            film.published = true;
            film.package = Some(PackageSummary {
                dir: "pkg-a".into(),
                duration: 6.0 * SEGMENTS as f64,
                segments: SEGMENTS,
                renditions: Vec::new(),
                packaged_at: T0,
                bytes: 0,
                stored: None,
            });
            store.save_film(&film)?;
            let cache = PlaybackCache::default();
            let ticket = cache.ticket();
            cache.insert(
                film.id,
                "pkg-a",
                false,
                FilmPlayback::for_tests_with("pkg-a", SEGMENTS),
                ticket,
            );
            Ok(Self {
                store,
                cache,
                config: Config::default(),
                user,
                film,
            })
        }

        fn playback(&self) -> Playback<'_> {
            Playback::new(&self.store, &self.cache, &self.config, &KEY, &LOCAL_STORAGE)
        }

        fn token(&self, expires_at: i64) -> String {
            PlaybackToken::new(
                self.user.id,
                self.film.id,
                self.user.session_epoch,
                expires_at,
            )
            .encode(&KEY)
        }
    }

    #[tokio::test]
    async fn a_viewer_without_entitlement_gets_the_preview_and_a_buyer_everything() -> R {
        let f = Fixture::new()?;
        let token = f.token(T0 + 60);
        let access = f.playback().authorize(&token, T0).await?;
        assert_eq!((access.user, access.film), (f.user.id, f.film.id));
        assert_eq!(access.allowed, 2);
        assert!(!access.full());

        f.store.grant(
            &f.film.id,
            &f.user.id,
            &Grant {
                granted_by: f.user.id,
                granted_at: T0,
            },
        )?;
        // The same token: what it opens is decided anew on every request.
        let access = f.playback().authorize(&token, T0 + 1).await?;
        assert_eq!(access.allowed, SEGMENTS);
        assert!(access.full());
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_or_forged_token_opens_nothing() -> R {
        let f = Fixture::new()?;
        let token = f.token(T0 + 60);
        assert!(matches!(
            f.playback().authorize(&token, T0 + 60).await,
            Err(AuthorizeError::Token(PlaybackTokenError::Expired))
        ));
        let forged = PlaybackToken::new(f.user.id, f.film.id, 0, T0 + 60).encode(&[1; 32]);
        assert!(matches!(
            f.playback().authorize(&forged, T0).await,
            Err(AuthorizeError::Token(PlaybackTokenError::Invalid))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn signing_out_everywhere_disabling_or_deleting_the_account_ends_the_token() -> R {
        let f = Fixture::new()?;
        let token = f.token(T0 + 60);
        f.store.update_user(&f.user.id, |u| u.session_epoch += 1)?;
        assert!(matches!(
            f.playback().authorize(&token, T0).await,
            Err(AuthorizeError::Token(PlaybackTokenError::Ended))
        ));

        let f = Fixture::new()?;
        let token = f.token(T0 + 60);
        f.store.update_user(&f.user.id, |u| u.disabled = true)?;
        assert!(matches!(
            f.playback().authorize(&token, T0).await,
            Err(AuthorizeError::Token(PlaybackTokenError::Disabled))
        ));

        let f = Fixture::new()?;
        let token = f.token(T0 + 60);
        f.store.delete_user(&f.user.id)?;
        assert!(matches!(
            f.playback().authorize(&token, T0).await,
            Err(AuthorizeError::Token(PlaybackTokenError::NoAccount))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn an_unpublished_or_deleted_film_opens_nothing() -> R {
        let f = Fixture::new()?;
        let token = f.token(T0 + 60);
        let mut draft = f.film.clone();
        draft.published = false;
        f.store.save_film(&draft)?;
        assert!(matches!(
            f.playback().authorize(&token, T0).await,
            Err(AuthorizeError::NoFilm)
        ));
        f.store.delete_film(&f.film.id)?;
        assert!(matches!(
            f.playback().authorize(&token, T0).await,
            Err(AuthorizeError::NoFilm)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn an_admin_plays_every_film_whole_even_before_it_is_published() -> R {
        let f = Fixture::new()?;
        let admin = f.store.create_user("admin@example.com", Role::Admin, T0)?;
        let mut draft = f.film.clone();
        draft.published = false;
        f.store.save_film(&draft)?;
        let (token, path, expires_at) = f.playback().start(&admin, &draft, T0);
        assert_eq!(
            expires_at,
            T0 + f.config.playback.token_ttl.as_secs() as i64
        );
        assert_eq!(path, format!("/hls/{}/master.m3u8", token.encode(&KEY)));
        let access = f.playback().authorize(&token.encode(&KEY), T0).await?;
        assert!(access.full());
        // The viewer still gets nothing of the unpublished film.
        assert!(matches!(
            f.playback().authorize(&f.token(T0 + 60), T0).await,
            Err(AuthorizeError::NoFilm)
        ));
        Ok(())
    }
}
