//! Getting a source into the system: where files live, probing, and queuing the job.
//! Shared by the upload endpoints, `cinegate ingest` and the control socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::config::Config;
use crate::store::films::{Film, Price, SourceSummary};
use crate::store::jobs::{Job, JobState};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("film not found")]
    NoFilm,
    /// The file is not a film we can package (typed reason inside).
    #[error(transparent)]
    Rejected(transcoder::TranscodeError),
    #[error("a packaging job for this film is already queued or running")]
    Busy,
    /// Over `upload.max_bytes`: refused before a byte is kept.
    #[error("the file is larger than the limit of {max} bytes")]
    TooLarge { max: u64 },
    /// The write would leave less than `disk.min_free_bytes` free under `media_dir`.
    #[error(transparent)]
    NoSpace(#[from] crate::disk::LowSpace),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("probing failed: {0}")]
    Fault(transcoder::TranscodeError),
    /// The blocking thread that accepted the source did not finish (shut down, panicked).
    #[error("accepting the source was interrupted: {0}")]
    Interrupted(String),
}

/// Refuses a source of `bytes` (declared or received so far) over `upload.max_bytes`.
pub fn check_size(config: &Config, bytes: u64) -> Result<(), IngestError> {
    let max = config.upload.max_bytes;
    if bytes > max {
        return Err(IngestError::TooLarge { max });
    }
    Ok(())
}

/// How often (in bytes written) a running upload measures the free space again: often
/// enough that a disk shared with other writers is caught well before it fills, rarely
/// enough that `statvfs(2)` costs nothing next to the writes.
pub const SPACE_CHECK_BYTES: u64 = 8 << 20;

/// Refuses an upload that would bring the media file system below `disk.min_free_bytes`
/// once `bytes` more are written (0: only whether it is below the floor now).
pub fn check_space(config: &Config, bytes: u64) -> Result<(), IngestError> {
    Ok(crate::disk::ensure_room(config, bytes)?)
}

/// `uploads/{film}/source`: the accepted source of a film (kept for retries).
pub fn source_path(config: &Config, film: &Uuid) -> PathBuf {
    config.uploads_dir().join(film.to_string()).join("source")
}

/// `uploads/partial/{upload}`: the bytes of a tus upload so far.
pub fn partial_upload_path(config: &Config, upload: &Uuid) -> PathBuf {
    config
        .uploads_dir()
        .join("partial")
        .join(upload.to_string())
}

/// Removes tus uploads idle for longer than `upload.expire_after` at `now`, record and
/// bytes (run at start and hourly). Blocking: it scans the uploads and removes files.
pub fn expire_stale_uploads(
    config: &Config,
    store: &Store,
    now: i64,
) -> crate::store::Result<usize> {
    let cutoff = now - config.upload.expire_after.as_secs() as i64;
    let mut removed = 0;
    for u in store.uploads()? {
        if u.updated_at < cutoff {
            store.delete_upload(&u.id)?;
            let _ = std::fs::remove_file(partial_upload_path(config, &u.id));
            removed += 1;
        }
    }
    Ok(removed)
}

/// `films/{film}`: holds the film's package directories.
/// A fresh path in the uploads' scratch directory (`incoming/`) for a source on its way in:
/// on the same filesystem as the films, so accepting it is a rename.
pub fn scratch_path(config: &Config) -> PathBuf {
    config
        .uploads_dir()
        .join("incoming")
        .join(crate::store::new_id().to_string())
}

pub fn film_dir(config: &Config, film: &Uuid) -> PathBuf {
    config.films_dir().join(film.to_string())
}

pub fn package_dir(config: &Config, film: &Uuid, job: &Uuid) -> PathBuf {
    film_dir(config, film).join(format!("pkg-{job}"))
}

/// Validates `file` with `probe`; if it is a film, moves it into place as the film's
/// source and queues a packaging job. A rejected file is deleted and nothing is queued.
/// Blocking: call from a blocking thread.
pub fn accept_source(
    config: &Config,
    store: &Store,
    film_id: &Uuid,
    file: &Path,
    file_name: &str,
    now: i64,
) -> Result<Job, IngestError> {
    let film = store.film(film_id)?.ok_or(IngestError::NoFilm)?;
    let active = store
        .jobs_for_film(film_id)?
        .into_iter()
        .any(|j| matches!(j.state, JobState::Queued | JobState::Running));
    if active {
        let _ = std::fs::remove_file(file);
        return Err(IngestError::Busy);
    }
    let info = match transcoder::probe(file) {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(file);
            return Err(if e.is_input_error() {
                IngestError::Rejected(e)
            } else {
                IngestError::Fault(e)
            });
        }
    };
    let bytes = std::fs::metadata(file)?.len();
    let dest = source_path(config, film_id);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(file, &dest)?;
    store.update_film(&film.id, |f| {
        f.source = Some(SourceSummary {
            file_name: file_name.to_string(),
            bytes,
            duration: info.duration,
        });
        f.updated_at = now;
    })?;
    let job = Job {
        id: crate::store::new_id(),
        film_id: *film_id,
        source: format!("{film_id}/source"),
        state: JobState::Queued,
        progress: 0.0,
        error: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
        lease: None,
    };
    store.save_job(&job)?;
    Ok(job)
}

/// `accept_source` on a blocking thread, for the upload endpoints: probing reads the file.
/// The caller wakes the job queue once it has the job.
pub async fn accept(
    config: Arc<Config>,
    store: Store,
    film_id: Uuid,
    file: PathBuf,
    file_name: String,
    now: i64,
) -> Result<Job, IngestError> {
    tokio::task::spawn_blocking(move || {
        accept_source(&config, &store, &film_id, &file, &file_name, now)
    })
    .await
    .map_err(|e| IngestError::Interrupted(e.to_string()))?
}

/// Why a film field was refused (the admin API answers 422 `invalid_input` with the
/// message; the operator's CLI prints it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("title must be 1–200 characters")]
    TitleLength,
    #[error("title must not contain control characters")]
    TitleControl,
    #[error("description must be at most 10000 characters")]
    DescriptionLength,
    #[error("{0:?} is not an ISO 4217 currency code")]
    Currency(String),
    #[error("price amount must be a positive integer in minor units")]
    Amount,
    #[error("two prices in {0}")]
    DuplicateCurrency(String),
    /// A price typed in major units (the console's form) that is no amount in its currency.
    #[error("{amount:?} is not an amount in {currency}")]
    Decimal { amount: String, currency: String },
}

/// Validated film fields shared by the admin API and the CLI.
pub fn validate_title(title: &str) -> Result<String, FieldError> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > 200 {
        return Err(FieldError::TitleLength);
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::TitleControl);
    }
    Ok(t.to_string())
}

pub fn validate_description(text: &str) -> Result<String, FieldError> {
    if text.chars().count() > 10_000 {
        return Err(FieldError::DescriptionLength);
    }
    Ok(text.trim().to_string())
}

pub fn validate_price(amount: u64, currency: &str) -> Result<Price, FieldError> {
    let currency = currency.trim().to_uppercase();
    if !crate::money::is_currency_code(&currency) {
        return Err(FieldError::Currency(currency));
    }
    if amount == 0 || amount > 100_000_000_000 {
        return Err(FieldError::Amount);
    }
    Ok(Price { amount, currency })
}

/// A film's prices, each validated, at most one per currency.
pub fn validate_prices(
    input: impl IntoIterator<Item = (u64, String)>,
) -> Result<Vec<Price>, FieldError> {
    let mut out: Vec<Price> = Vec::new();
    for (amount, currency) in input {
        let price = validate_price(amount, &currency)?;
        if out.iter().any(|q| q.currency == price.currency) {
            return Err(FieldError::DuplicateCurrency(price.currency));
        }
        out.push(price);
    }
    Ok(out)
}

/// A price typed in major units ("12.00" USD) as minor units, validated.
pub fn validate_decimal_price(amount: &str, currency: &str) -> Result<(u64, String), FieldError> {
    let currency = currency.trim().to_uppercase();
    if !crate::money::is_currency_code(&currency) {
        return Err(FieldError::Currency(currency));
    }
    let amount = amount.trim();
    match crate::money::from_decimal(amount, &currency) {
        Some(minor) => Ok((minor, currency)),
        None => Err(FieldError::Decimal {
            amount: amount.to_string(),
            currency,
        }),
    }
}

pub fn new_film(title: String, description: String, prices: Vec<Price>, now: i64) -> Film {
    Film {
        id: crate::store::new_id(),
        title,
        description,
        prices,
        published: false,
        publish_when_ready: false,
        source: None,
        package: None,
        created_at: now,
        updated_at: now,
    }
}

/// Removes everything a film owns on disk: packages, source, secret.
pub fn remove_film_files(config: &Config, film: &Uuid) {
    let _ = std::fs::remove_dir_all(film_dir(config, film));
    let _ = std::fs::remove_dir_all(config.uploads_dir().join(film.to_string()));
    crate::secrets::delete_film_secret(&config.keys_dir, film);
}

/// Every entry of every film's directory (`films/{film}/{name}`), as (name, path): what the
/// start-up clean-ups look through.
pub fn film_entries(config: &Config) -> Vec<(String, PathBuf)> {
    let Ok(films) = std::fs::read_dir(config.films_dir()) else {
        return Vec::new();
    };
    films
        .flatten()
        .filter_map(|film| std::fs::read_dir(film.path()).ok())
        .flat_map(|entries| entries.flatten())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// After a crash: staging directories the packager could not clean up.
pub fn remove_stale_staging(config: &Config) {
    for (name, path) in film_entries(config) {
        if name.starts_with('.') && name.contains(".partial-") {
            tracing::info!(dir = %path.display(), "removing an unfinished package left by a crash");
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn film_fields_are_refused_with_a_typed_reason() {
        assert_eq!(validate_title("  "), Err(FieldError::TitleLength));
        assert_eq!(validate_title("a\u{7}b"), Err(FieldError::TitleControl));
        assert_eq!(validate_title("  Night  ").as_deref(), Ok("Night"));
        assert_eq!(
            validate_description(&"x".repeat(10_001)),
            Err(FieldError::DescriptionLength)
        );
        assert_eq!(validate_price(0, "USD"), Err(FieldError::Amount));
        assert_eq!(
            validate_price(500, "dollars"),
            Err(FieldError::Currency("DOLLARS".into()))
        );
        assert_eq!(
            validate_price(500, " usd ").map(|p| p.currency),
            Ok("USD".to_string())
        );
        assert_eq!(
            validate_prices([(100, "usd".into()), (200, "USD".into())]),
            Err(FieldError::DuplicateCurrency("USD".into()))
        );
        assert_eq!(
            validate_decimal_price("12.00", "usd"),
            Ok((1200, "USD".into()))
        );
        assert_eq!(
            validate_decimal_price("15000", "KRW"),
            Ok((15000, "KRW".into()))
        );
        assert!(matches!(
            validate_decimal_price("12.345", "USD"),
            Err(FieldError::Decimal { .. })
        ));
        assert_eq!(
            FieldError::Currency("XYZ1".into()).to_string(),
            "\"XYZ1\" is not an ISO 4217 currency code"
        );
    }
}
