//! Films as the surfaces look them up by the id a request names: any film (admins manage
//! drafts too) or a watchable one (viewers see only what is published and packaged). An id
//! that does not parse is as unknown as one naming no film, and a draft is as unknown to a
//! viewer as a film that does not exist: all are `NotFound`, so nothing tells them apart.

use crate::events::Event;
use uuid::Uuid;

use crate::store::films::Film;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("film not found")]
    NotFound,
    /// Publishing a film that has no finished package.
    #[error("the film has no finished package yet; upload a source and wait for its job")]
    NotReady,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The film `id` names, published or not.
pub fn film(store: &Store, id: &str) -> Result<Film, CatalogueError> {
    let id = crate::store::parse_id(id).ok_or(CatalogueError::NotFound)?;
    store.film(&id)?.ok_or(CatalogueError::NotFound)
}

/// The film `id` names if a viewer may see it: published and packaged.
pub fn watchable(store: &Store, id: &str) -> Result<Film, CatalogueError> {
    let id = crate::store::parse_id(id).ok_or(CatalogueError::NotFound)?;
    watchable_by_id(store, &id)
}

/// `watchable` for an id already parsed (a comment's film).
pub fn watchable_by_id(store: &Store, id: &Uuid) -> Result<Film, CatalogueError> {
    store
        .film(id)?
        .filter(Film::is_watchable)
        .ok_or(CatalogueError::NotFound)
}

/// Publishes or unpublishes the film `id` names, at `now`: the rule both admin surfaces
/// follow (a film goes on sale only with a finished package). The film as it now stands.
pub fn set_published(
    store: &Store,
    id: &str,
    published: bool,
    now: i64,
) -> Result<Film, CatalogueError> {
    let film = film(store, id)?;
    if published && film.package.is_none() {
        return Err(CatalogueError::NotReady);
    }
    let updated = store
        .update_film(&film.id, |f| {
            f.published = published;
            f.updated_at = now;
        })?
        .ok_or(CatalogueError::NotFound)?;
    if film.published != published {
        let film = film.id;
        let event = if published {
            Event::FilmPublished { film }
        } else {
            Event::FilmUnpublished { film }
        };
        crate::events::record(store, now, event);
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::films::PackageSummary;

    fn package() -> PackageSummary {
        PackageSummary {
            dir: "pkg-1".into(),
            duration: 60.0,
            segments: 10,
            renditions: vec!["360".into()],
            packaged_at: 1,
            bytes: 0,
            stored: None,
        }
    }

    #[test]
    fn viewers_find_only_published_packaged_films() -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::temporary()?;
        let draft = crate::ingest::new_film("Draft".into(), String::new(), Vec::new(), 1);
        let unpublished = Film {
            package: Some(package()),
            ..crate::ingest::new_film("Ready".into(), String::new(), Vec::new(), 1)
        };
        let published = Film {
            published: true,
            package: Some(package()),
            ..crate::ingest::new_film("Out".into(), String::new(), Vec::new(), 1)
        };
        for f in [&draft, &unpublished, &published] {
            store.save_film(f)?;
        }
        for f in [&draft, &unpublished] {
            let id = f.id.to_string();
            assert!(matches!(film(&store, &id), Ok(found) if found.id == f.id));
            assert!(matches!(
                watchable(&store, &id),
                Err(CatalogueError::NotFound)
            ));
        }
        let id = published.id.to_string();
        assert!(matches!(watchable(&store, &id), Ok(found) if found.id == published.id));
        assert!(matches!(
            watchable_by_id(&store, &published.id),
            Ok(found) if found.id == published.id
        ));
        Ok(())
    }

    #[test]
    fn unknown_and_malformed_ids_are_not_found() -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::temporary()?;
        let unknown = crate::store::new_id().to_string();
        for id in [unknown.as_str(), "not-an-id", ""] {
            assert!(matches!(film(&store, id), Err(CatalogueError::NotFound)));
            assert!(matches!(
                watchable(&store, id),
                Err(CatalogueError::NotFound)
            ));
        }
        Ok(())
    }
}
