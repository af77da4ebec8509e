//! Operator operations shared by the control socket (server running) and the CLI's
//! direct mode (no server): the operator sees the same result either way.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::auth::session;
use crate::config::Config;
use crate::ingest::{self, IngestError};
use crate::store::films::Film;
use crate::store::jobs::Job;
use crate::store::users::{Role, User};
use crate::store::{now, Store};

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
}

pub fn user_create(store: &Store, email: &str, admin: bool) -> Response {
    let role = if admin { Role::Admin } else { Role::Viewer };
    match store.create_user(email, role, now()) {
        Ok(u) => Response::ok(
            format!(
                "created {} {} ({})",
                role_name(role),
                u.email.as_deref().unwrap_or("-"),
                u.id
            ),
            serde_json::to_value(&u).unwrap_or_default(),
        ),
        Err(e) => Response::err(e.to_string()),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    }
}

pub fn login_link(config: &Config, store: &Store, email: &str) -> Response {
    let user: User = match store.user_by_email(email) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Response::err(format!(
                "no user with e-mail {email}; create one with `cinegate user create`"
            ))
        }
        Err(e) => return Response::err(e.to_string()),
    };
    match session::create_login_link(store, &config.auth, &user, now()) {
        Ok(token) => {
            let base = config.public_url.trim_end_matches('/');
            let minutes = config.auth.login_link_ttl.as_secs() / 60;
            let url = format!("{base}/login?token={token}");
            Response::ok(
                format!(
                    "one-time sign-in link for {} (valid {minutes} minutes, works once):\n{url}",
                    user.email.as_deref().unwrap_or("-")
                ),
                serde_json::json!({ "url": url, "token": token, "user_id": user.id }),
            )
        }
        Err(e) => Response::err(e.to_string()),
    }
}

/// Creates a film from a file already on the server and queues its packaging. The file
/// is copied (the operator keeps the original).
pub fn ingest(
    config: &Config,
    store: &Store,
    file: &Path,
    title: &str,
    price: Option<u64>,
    currency: Option<&str>,
    publish: bool,
) -> Result<(Film, Job), String> {
    let title = ingest::validate_title(title).map_err(|e| e.to_string())?;
    let prices = match (price, currency) {
        (Some(a), Some(c)) => vec![ingest::validate_price(a, c).map_err(|e| e.to_string())?],
        (None, None) => vec![],
        _ => return Err("--price and --currency go together".into()),
    };
    if !file.is_file() {
        return Err(format!("{} is not a file", file.display()));
    }
    let mut film = ingest::new_film(title, String::new(), prices, now());
    film.publish_when_ready = publish;
    store.save_film(&film).map_err(|e| e.to_string())?;
    let scratch = ingest::scratch_path(config);
    let copied = scratch
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::copy(file, &scratch));
    if let Err(e) = copied {
        let _ = store.delete_film(&film.id);
        return Err(format!("copying {}: {e}", file.display()));
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match ingest::accept_source(config, store, &film.id, &scratch, &name, now()) {
        Ok(job) => Ok((film, job)),
        Err(e) => {
            let _ = store.delete_film(&film.id);
            Err(match e {
                IngestError::Rejected(t) => format!("{} ({})", t, t.code()),
                other => other.to_string(),
            })
        }
    }
}
