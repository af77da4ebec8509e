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
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::ops::{self, Request, Response};
use crate::state::AppState;

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

pub async fn serve(listener: UnixListener, state: Arc<AppState>) {
    serve_with_uid(listener, state, rustix::process::geteuid().as_raw()).await
}

/// `serve`, with the uid whose processes may operate given: tests use one that is not
/// theirs to reach the refusal without root.
pub async fn serve_with_uid(listener: UnixListener, state: Arc<AppState>, server_uid: u32) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, server_uid, |s| handle(s, state)).await {
                tracing::warn!(error = %e, "control connection failed");
            }
        });
    }
}

/// How much of a refused peer's request is read (and thrown away), and for how long:
/// enough for the one request line the CLI sends, so that closing does not reset the
/// connection under it before it reads the refusal; never more, so strangers cannot make
/// the server buffer anything.
const REFUSED_READ_BYTES: usize = 4096;
const REFUSED_READ_TIME: Duration = Duration::from_secs(1);

/// One connection: the peer check, then `operate` for a peer that may operate, or the
/// refusal for one that may not.
async fn connection<F, Fut>(stream: UnixStream, server_uid: u32, operate: F) -> std::io::Result<()>
where
    F: FnOnce(UnixStream) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    match admit(&stream, server_uid) {
        Ok(()) => operate(stream).await,
        Err(refusal) => refuse(stream, refusal).await,
    }
}

/// The peer's uid from `SO_PEERCRED`: `Err` with the refusal line (and a warning in the
/// log) unless it is the server's user or root.
fn admit(stream: &UnixStream, server_uid: u32) -> Result<(), String> {
    match stream.peer_cred() {
        Ok(peer) if may_operate(peer.uid(), server_uid) => Ok(()),
        Ok(peer) => {
            tracing::warn!(
                uid = peer.uid(),
                pid = ?peer.pid(),
                "operator socket: refused a connection from another user"
            );
            Err(format!(
                "refused: this server takes operator commands only from its own user (uid {server_uid}) or root"
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "operator socket: the peer's credentials are unknown; refused");
            Err("refused: the peer's credentials could not be checked".to_string())
        }
    }
}

/// Answers a refused peer without buffering its request: the refusal line goes out at
/// once, then at most `REFUSED_READ_BYTES` are read into a fixed buffer and dropped, for
/// at most `REFUSED_READ_TIME`.
async fn refuse(mut stream: UnixStream, refusal: String) -> std::io::Result<()> {
    let mut text = serde_json::to_string(&Response::err(refusal)).unwrap_or_default();
    text.push('\n');
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await?;
    let mut buf = [0u8; 1024];
    let mut left = REFUSED_READ_BYTES;
    let drain = async {
        while left > 0 {
            match stream.read(&mut buf[..left.min(1024)]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n,
            }
        }
    };
    let _ = tokio::time::timeout(REFUSED_READ_TIME, drain).await;
    Ok(())
}

async fn handle(stream: UnixStream, state: Arc<AppState>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(1 << 20);
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let state = state.clone();
            let redacted = match &request {
                Request::UserCreate { .. } => "user_create",
                Request::LoginLink { .. } => "login_link",
                Request::Ingest { .. } => "ingest",
                Request::StoreSnapshot => "store_snapshot",
                Request::StorageMigrate => "storage_migrate",
            };
            tracing::info!(command = redacted, "operator command");
            let inner = state.clone();
            tokio::task::spawn_blocking(move || {
                let response = execute(&inner, request);
                // The operator is told "done" only once it is on disk.
                if let Err(e) = inner.store.flush() {
                    return Response::err(format!("the change was made but not yet saved: {e}"));
                }
                response
            })
            .await
            .unwrap_or_else(|e| Response::err(format!("the command failed: {e}")))
        }
        Err(e) => Response::err(format!("bad request: {e}")),
    };
    let mut text = serde_json::to_string(&response).unwrap_or_default();
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

fn execute(state: &AppState, request: Request) -> Response {
    let now = state.clock.now();
    match request {
        Request::StoreSnapshot => Response::of(ops::store_snapshot(&state.config, &state.store)),
        Request::StorageMigrate => ops::storage_migrate(&state.jobs),
        Request::UserCreate { email, admin } => {
            Response::of(ops::user_create(&state.store, &email, admin, now))
        }
        Request::LoginLink { email } => {
            Response::of(ops::login_link(&state.config, &state.store, &email, now))
        }
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
                now,
            ) {
                Ok((film, job)) => {
                    state.jobs.notify();
                    Response::ok(
                    format!("film {} created; packaging job {} queued (the running server packages it)", film.id, job.id),
                    serde_json::json!({ "film_id": film.id, "job_id": job.id, "queued": true }),
                )
                }
                Err(e) => e.into(),
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
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    #[test]
    fn only_the_servers_user_and_root_may_operate() {
        assert!(may_operate(1000, 1000));
        assert!(may_operate(0, 1000));
        assert!(!may_operate(65534, 1000));
        assert!(!may_operate(1001, 1000));
        assert!(may_operate(0, 0));
        assert!(!may_operate(65534, 0));
    }

    /// A connected pair whose peer credentials (`SO_PEERCRED`, taken when the pair is
    /// made) are another user's than the returned server uid. Unprivileged: the pair is
    /// ours and the server's uid is one that is not. As root (whose peers may always
    /// operate): the pair is made by a thread of its own running as `nobody` — the
    /// per-thread `setresuid` changes that thread alone, and it ends right after — and
    /// the server is root.
    fn stranger_pair() -> std::io::Result<(UnixStream, UnixStream, u32)> {
        let ours = rustix::process::geteuid();
        let (server_uid, pair) = if ours.is_root() {
            let pair = std::thread::spawn(|| {
                let nobody = rustix::process::Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(None, nobody, None)?;
                std::os::unix::net::UnixStream::pair()
            })
            .join()
            .map_err(|_| std::io::Error::other("the pair thread panicked"))?;
            (0, pair)
        } else {
            (
                ours.as_raw().wrapping_add(1),
                std::os::unix::net::UnixStream::pair(),
            )
        };
        let (a, b) = pair?;
        for s in [&a, &b] {
            s.set_nonblocking(true)?;
        }
        Ok((
            UnixStream::from_std(a)?,
            UnixStream::from_std(b)?,
            server_uid,
        ))
    }

    /// Runs `connection` (the real `SO_PEERCRED` check) on `server` while `client_side`
    /// runs. Returns whether the peer was let through to the operations, and how long the
    /// connection took.
    async fn serve_peer(
        server: UnixStream,
        server_uid: u32,
        client_side: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<(bool, Duration)> {
        let operated = Arc::new(AtomicBool::new(false));
        let flag = operated.clone();
        let started = Instant::now();
        let client = tokio::spawn(client_side);
        let outcome = connection(server, server_uid, |_| async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await;
        let took = started.elapsed();
        assert!(outcome.is_ok(), "{outcome:?}");
        client.await.map_err(std::io::Error::other)?;
        Ok((operated.load(Ordering::SeqCst), took))
    }

    /// A peer of another user gets the refusal line at once, and the server buffers
    /// nothing of what it sends: of a 4 MiB request, no more than the socket's buffer is
    /// ever accepted (the old handler read a line of up to 1 MiB before answering).
    #[tokio::test]
    async fn a_peer_of_another_user_is_refused_without_reading_its_request() -> std::io::Result<()>
    {
        let (server, client, server_uid) = stranger_pair()?;
        let (read, mut write) = client.into_split();
        let written = Arc::new(AtomicUsize::new(0));
        let sent = written.clone();
        let answer = Arc::new(Mutex::new(String::new()));
        let heard = answer.clone();
        let client_side = async move {
            let writer = tokio::spawn(async move {
                let chunk = [b'x'; 4096];
                for _ in 0..1024 {
                    if write.write_all(&chunk).await.is_err() {
                        break;
                    }
                    sent.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            });
            let mut line = String::new();
            let _ = BufReader::new(read).read_line(&mut line).await;
            *heard.lock().unwrap_or_else(|p| p.into_inner()) = line;
            let _ = writer.await;
        };
        let (operated, took) = serve_peer(server, server_uid, client_side).await?;
        assert!(
            !operated,
            "another user's connection reached the operations"
        );
        let answer = answer.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let response: Response = serde_json::from_str(&answer)?;
        assert!(
            !response.ok && response.message.contains("refused"),
            "{answer}"
        );
        let taken = written.load(Ordering::SeqCst);
        assert!(
            taken < 1 << 20,
            "a refused peer got {taken} bytes of its request accepted"
        );
        assert!(took < Duration::from_secs(3), "the refusal took {took:?}");
        Ok(())
    }

    /// A refused peer that sends nothing and keeps its end open is let go promptly (the
    /// old handler waited 5 s for its request line).
    #[tokio::test]
    async fn a_silent_refused_peer_is_let_go_promptly() -> std::io::Result<()> {
        let (server, mut client, server_uid) = stranger_pair()?;
        // `client` stays open, silent, until the connection is over.
        let (operated, took) = serve_peer(server, server_uid, async {}).await?;
        assert!(
            !operated,
            "another user's connection reached the operations"
        );
        assert!(
            took < Duration::from_secs(3),
            "a silent stranger held the connection {took:?}"
        );
        let mut all = Vec::new();
        client.read_to_end(&mut all).await?;
        let response: Response = serde_json::from_slice(&all)?;
        assert!(
            !response.ok && response.message.contains("refused"),
            "{response:?}"
        );
        Ok(())
    }

    /// The server's own user is let through to the operations.
    #[tokio::test]
    async fn the_servers_own_user_is_let_through() -> std::io::Result<()> {
        let (server, _client) = UnixStream::pair()?;
        let ours = rustix::process::geteuid().as_raw();
        let (operated, _) = serve_peer(server, ours, async {}).await?;
        assert!(operated, "the server's own user was refused");
        Ok(())
    }
}
