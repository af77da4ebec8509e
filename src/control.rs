//! The operator's line to a running server: a Unix socket in the data root (mode 0600,
//! owner only, never on the network). sled lets one process open the store, so
//! `cinegate user …` and `cinegate ingest …` send their request here when a server runs,
//! and open the store themselves only when none does.
//!
//! Two locks: the socket is created under the process umask 077 (set at start by
//! `startup::prepare_data_root`) in the 0700 data root, so there is no moment at which
//! another user could connect; and every connection's peer is checked with
//! `SO_PEERCRED`, so a socket exposed by mistake (a loosened directory, a copied path)
//! still answers only the server's own user and root (who can read the store and keys
//! anyway).
//!
//! Protocol: one JSON `ops::Request` line in, one JSON `ops::Response` line out.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::api::AppState;
use crate::ops::{self, Request, Response};

pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    // A socket file left by a crash would make bind fail; nobody can be listening on it
    // because we hold the store lock.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}

/// Who may give the server orders: its own user, and root.
fn may_operate(peer_uid: u32, server_uid: u32) -> bool {
    peer_uid == server_uid || peer_uid == 0
}

pub async fn serve(listener: UnixListener, state: actix_web::web::Data<AppState>) {
    let server_uid = rustix::process::geteuid().as_raw();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let refusal = match stream.peer_cred() {
            Ok(peer) if may_operate(peer.uid(), server_uid) => None,
            Ok(peer) => {
                tracing::warn!(
                    uid = peer.uid(),
                    pid = ?peer.pid(),
                    "operator socket: refused a connection from another user"
                );
                Some(format!(
                    "refused: this server takes operator commands only from its own user (uid {server_uid}) or root"
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "operator socket: the peer's credentials are unknown; refused");
                Some("refused: the peer's credentials could not be checked".to_string())
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, state, refusal).await {
                tracing::warn!(error = %e, "control connection failed");
            }
        });
    }
}

async fn handle(
    stream: UnixStream,
    state: actix_web::web::Data<AppState>,
    refusal: Option<String>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(1 << 20);
    let reading = reader.read_line(&mut line);
    let response = if let Some(refusal) = refusal {
        // The request is read (and ignored) first so the client sees the refusal rather
        // than a broken pipe; a stranger gets a few seconds, not a held connection.
        let _ = tokio::time::timeout(Duration::from_secs(5), reading).await;
        Response::err(refusal)
    } else {
        reading.await?;
        match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                let state = state.clone();
                let redacted = match &request {
                    Request::UserCreate { .. } => "user_create",
                    Request::LoginLink { .. } => "login_link",
                    Request::Ingest { .. } => "ingest",
                };
                tracing::info!(command = redacted, "operator command");
                let inner = state.clone();
                tokio::task::spawn_blocking(move || {
                    let response = execute(&inner, request);
                    // The operator is told "done" only once it is on disk.
                    if let Err(e) = inner.store.flush() {
                        return Response::err(format!(
                            "the change was made but not yet saved: {e}"
                        ));
                    }
                    response
                })
                .await
                .unwrap_or_else(|e| Response::err(format!("the command failed: {e}")))
            }
            Err(e) => Response::err(format!("bad request: {e}")),
        }
    };
    let mut text = serde_json::to_string(&response).unwrap_or_default();
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

fn execute(state: &AppState, request: Request) -> Response {
    match request {
        Request::UserCreate { email, admin } => ops::user_create(&state.store, &email, admin),
        Request::LoginLink { email } => ops::login_link(&state.config, &state.store, &email),
        Request::Ingest {
            file,
            title,
            price,
            currency,
            publish,
        } => {
            match ops::ingest(
                &state.config,
                &state.store,
                &file,
                &title,
                price,
                currency.as_deref(),
                publish,
            ) {
                Ok((film, job)) => {
                    state.jobs.notify();
                    Response::ok(
                    format!("film {} created; packaging job {} queued (the running server packages it)", film.id, job.id),
                    serde_json::json!({ "film_id": film.id, "job_id": job.id, "queued": true }),
                )
                }
                Err(e) => Response::err(e),
            }
        }
    }
}

/// Client side: `Ok(None)` when no server is listening (use the store directly).
pub fn send(path: &Path, request: &Request) -> std::io::Result<Option<Response>> {
    use std::io::{BufRead, Write};
    let mut stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut text = serde_json::to_string(request).map_err(std::io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line)
        .map(Some)
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::may_operate;

    #[test]
    fn only_the_servers_user_and_root_may_operate() {
        assert!(may_operate(1000, 1000));
        assert!(may_operate(0, 1000));
        assert!(!may_operate(65534, 1000));
        assert!(!may_operate(1001, 1000));
        assert!(may_operate(0, 0));
        assert!(!may_operate(65534, 0));
    }
}
