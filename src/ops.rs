//! Operator operations shared by the control socket (server running) and the CLI's
//! direct mode (no server): the operator sees the same result either way. Each runs at
//! the time it is given (the server's clock, or the system's in direct mode).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::session::{self, SessionError};
use crate::config::Config;
use crate::ingest::{self, FieldError, IngestError};
use crate::store::films::Film;
use crate::store::jobs::Job;
use crate::store::users::{Role, User};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    UserCreate {
        email: String,
        admin: bool,
    },
    LoginLink {
        email: String,
    },
    Ingest {
        file: std::path::PathBuf,
        title: String,
        price: Option<u64>,
        currency: Option<String>,
        publish: bool,
    },
    /// A point-in-time snapshot of the store, written by whoever holds it to a 0600 file
    /// in the data root (`backup::snapshot_to_file`); the answer's `data` has its `path`
    /// and `stats`. The CLI archives it and removes it (`cinegate backup`).
    StoreSnapshot,
    /// `cinegate storage migrate`: every package still on the origin's disk to the bucket
    /// (`JobQueue::move_to_bucket`); the answer's `data` is the report.
    StorageMigrate,
}

/// Why an operator command did nothing. Its text is what the operator reads, from the
/// socket or in direct mode alike (`Response::from`); sources are not chained onto it.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("no user with e-mail {0}; create one with `cinegate user create`")]
    NoUser(String),
    #[error("--price and --currency go together")]
    PriceWithoutCurrency,
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("copying {}: {error}", .file.display())]
    Copy {
        file: PathBuf,
        error: std::io::Error,
    },
    /// Not a film that can be packaged: the reason and its stable code.
    #[error("{} ({})", .0, .0.code())]
    Rejected(transcoder::TranscodeError),
    #[error("{0}")]
    Field(#[from] FieldError),
    #[error("{0}")]
    Ingest(IngestError),
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Backup(#[from] crate::backup::BackupError),
}

impl From<IngestError> for OpsError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Rejected(t) => OpsError::Rejected(t),
            other => OpsError::Ingest(other),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub message: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(message: String, data: serde_json::Value) -> Self {
        Self {
            ok: true,
            message,
            data,
        }
    }

    pub fn err(message: String) -> Self {
        Self {
            ok: false,
            message,
            data: serde_json::Value::Null,
        }
    }

    /// The answer to a command that either answered or failed.
    pub fn of(result: Result<Response, OpsError>) -> Self {
        result.unwrap_or_else(Self::from)
    }
}

/// The one place an operation's failure becomes what the operator reads.
impl From<OpsError> for Response {
    fn from(e: OpsError) -> Self {
        Response::err(e.to_string())
    }
}

pub fn user_create(
    store: &Store,
    email: &str,
    admin: bool,
    now: i64,
) -> Result<Response, OpsError> {
    let role = if admin { Role::Admin } else { Role::Viewer };
    let u = store.create_user(email, role, now)?;
    crate::events::record(
        store,
        now,
        crate::events::Event::UserSignedUp {
            user: u.id,
            provider: "cli".into(),
        },
    );
    Ok(Response::ok(
        format!(
            "created {} {} ({})",
            role_name(role),
            u.email.as_deref().unwrap_or("-"),
            u.id
        ),
        serde_json::to_value(&u).unwrap_or_default(),
    ))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    }
}

pub fn login_link(
    config: &Config,
    store: &Store,
    email: &str,
    now: i64,
) -> Result<Response, OpsError> {
    let user: User = store
        .user_by_email(email)?
        .ok_or_else(|| OpsError::NoUser(email.to_string()))?;
    let token = session::create_login_link(store, &config.auth, &user, now)?;
    let base = config.public_url.trim_end_matches('/');
    let minutes = config.auth.login_link_ttl.as_secs() / 60;
    // An admin's link opens the console's sign-in; a viewer's the viewer app's.
    let page = if user.is_admin() {
        "admin/sign-in"
    } else {
        "sign-in"
    };
    let url = format!("{base}/{page}?token={token}");
    Ok(Response::ok(
        format!(
            "one-time sign-in link for {} (valid {minutes} minutes, works once):\n{url}",
            user.email.as_deref().unwrap_or("-")
        ),
        serde_json::json!({ "url": url, "token": token, "user_id": user.id }),
    ))
}

/// Creates a film from a file already on the server and queues its packaging. The file
/// is copied (the operator keeps the original).
#[allow(clippy::too_many_arguments)]
pub fn ingest(
    config: &Config,
    store: &Store,
    file: &Path,
    title: &str,
    price: Option<u64>,
    currency: Option<&str>,
    publish: bool,
    now: i64,
) -> Result<(Film, Job), OpsError> {
    let title = ingest::validate_title(title)?;
    let prices = match (price, currency) {
        (Some(a), Some(c)) => vec![ingest::validate_price(a, c)?],
        (None, None) => vec![],
        _ => return Err(OpsError::PriceWithoutCurrency),
    };
    if !file.is_file() {
        return Err(OpsError::NotAFile(file.to_path_buf()));
    }
    let mut film = ingest::new_film(title, String::new(), prices, now);
    film.publish_when_ready = publish;
    store.save_film(&film)?;
    let scratch = ingest::scratch_path(config);
    let copied = scratch
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::copy(file, &scratch));
    if let Err(e) = copied {
        let _ = store.delete_film(&film.id);
        return Err(OpsError::Copy {
            file: file.to_path_buf(),
            error: e,
        });
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match ingest::accept_source(config, store, &film.id, &scratch, &name, now) {
        Ok(job) => Ok((film, job)),
        Err(e) => {
            let _ = store.delete_film(&film.id);
            Err(e.into())
        }
    }
}

/// The store's snapshot for a backup, in the data root (`Request::StoreSnapshot`).
pub fn store_snapshot(config: &Config, store: &Store) -> Result<Response, OpsError> {
    let (path, stats) = crate::backup::snapshot_to_file(store, &config.media_dir)?;
    Ok(Response::ok(
        format!(
            "store snapshot of {} records written; writes paused {} ms",
            stats.records,
            stats.writes_paused.as_millis()
        ),
        serde_json::json!({ "path": path, "stats": stats }),
    ))
}

/// `Request::StorageMigrate`, through whichever queue holds the store.
pub fn storage_migrate(jobs: &crate::jobs::JobQueue) -> Response {
    match jobs.move_to_bucket() {
        Ok(report) => {
            let mut message = format!(
                "{} film(s) moved to the bucket ({} objects, {} bytes)",
                report.films, report.objects, report.bytes
            );
            if !report.failed.is_empty() {
                message.push_str(&format!(
                    "; {} left local (run it again to resume): {}",
                    report.failed.len(),
                    report.failed.join("; ")
                ));
            }
            let data = serde_json::to_value(&report).unwrap_or_default();
            if report.failed.is_empty() {
                Response::ok(message, data)
            } else {
                Response {
                    ok: false,
                    message,
                    data,
                }
            }
        }
        Err(e) => Response::err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator reads the same words the untyped version wrote.
    #[test]
    fn the_operator_reads_the_same_messages() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let config = Config::default();
        let r = Response::of(login_link(&config, &store, "nobody@example.com", 1));
        assert!(!r.ok);
        assert_eq!(
            r.message,
            "no user with e-mail nobody@example.com; create one with `cinegate user create`"
        );
        let r = Response::of(user_create(&store, "ada@example.com", true, 1));
        assert!(r.ok && r.message.starts_with("created admin ada@example.com ("));
        let again = Response::of(user_create(&store, "ada@example.com", false, 2));
        assert!(!again.ok);

        let e = ingest(
            &config,
            &store,
            Path::new("/x"),
            "T",
            Some(1),
            None,
            false,
            1,
        );
        assert_eq!(
            e.map(|_| ()).map_err(|e| e.to_string()),
            Err("--price and --currency go together".to_string())
        );
        let e = ingest(
            &config,
            &store,
            Path::new("/nonexistent/film.mp4"),
            "T",
            None,
            None,
            false,
            1,
        );
        assert_eq!(
            e.map(|_| ()).map_err(|e| e.to_string()),
            Err("/nonexistent/film.mp4 is not a file".to_string())
        );
        let e = OpsError::from(IngestError::Rejected(transcoder::TranscodeError::NoVideo));
        assert_eq!(
            e.to_string(),
            format!("{} (no_video)", transcoder::TranscodeError::NoVideo)
        );
        Ok(())
    }
}
