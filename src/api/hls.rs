//! `/hls/{token}/…`: playlists, segments and keys. Every request re-decides what the
//! token may open from the store — the preview gate is enforced here three times
//! (playlist, segment, key) — and segment and key requests feed the progress recorder.
//! Paths on disk come from the manifest, never from the request.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{ApiError, ApiResult};
use crate::server::sendfile::{ConnHandle, FileBody};
use crate::state::AppState;
use crate::storage::SegmentSource;
use crate::stream::access::Access;
use crate::stream::playlists::Playlist;
use crate::stream::progress::{Event, Signal};
use crate::stream::sharing::Use;

/// A segment's body: sendfile(2) on the plain listener, a stream over TLS.
type SegmentBody = EitherBody<FileBody, BoxBody>;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// What the token may open, for a client address the token may still be used from
/// (`playback.max_addresses_per_token`).
async fn authorize(state: &AppState, req: &HttpRequest, token: &str) -> ApiResult<Access> {
    let now = state.clock.now();
    let access = state.playback_access().authorize(token, now).await?;
    state
        .token_addresses
        .admit(Use {
            store: &state.store,
            token: access.token,
            user: access.user,
            film: access.film,
            client: state.trusted_proxies.key_of(req),
            now,
        })
        .map_err(|e| ApiError::forbidden(super::error::Code::TokenShared, e.to_string()))?;
    Ok(access)
}

/// Feeds the progress recorder (memory only) for a delivered segment or key. A delivery
/// beyond the believable pace is served all the same; it counts once the viewer's credit
/// has caught up with it.
fn record(state: &AppState, access: &Access, index: usize, signal: Signal) {
    state.progress.record(Event {
        user: access.user,
        film: access.film,
        index: index as u32,
        segments: &access.playback.manifest.segments,
        signal,
        now: state.clock.now(),
        at: std::time::Instant::now(),
    });
}

fn playlist_response(body: Playlist) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(PLAYLIST_TYPE)
        // Per viewer and entitlement: a purchase must show on the next request.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(web::Bytes::from_owner(body))
}

fn preview_ended(access: &Access, index: usize) -> ApiError {
    ApiError::forbidden(
        super::error::Code::PreviewEnded,
        "this part of the film needs a purchase",
    )
    .with("segment", index)
    .with("preview_segments", access.allowed)
}

async fn master(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    token: &str,
) -> ApiResult<HttpResponse> {
    let access = authorize(state, req, token).await?;
    Ok(playlist_response(access.playback.master.clone()))
}

async fn media(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    token: &str,
    rendition: &str,
) -> ApiResult<HttpResponse> {
    let access = authorize(state, req, token).await?;
    let body = if access.playback.segments == SegmentSource::Presigned {
        access
            .playback
            .presigned_media(&state.storage, &access.film, rendition, access.allowed)
            .await
            .map_err(|e| ApiError::internal(&format!("presigning segment URLs: {e}")))?
    } else {
        access.playback.media(rendition, access.full())
    }
    .ok_or_else(|| ApiError::not_found("rendition"))?;
    Ok(playlist_response(body))
}

/// What a path under `/hls/` names. Borrowed from the raw request path: tokens, rendition
/// names and file names are unreserved characters, so nothing needs percent-decoding, and
/// anything encoded (`%2e%2e`, `%2f`) simply names nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Master {
        token: &'a str,
    },
    Key {
        token: &'a str,
        name: &'a str,
    },
    Media {
        token: &'a str,
        rendition: &'a str,
    },
    Segment {
        token: &'a str,
        rendition: &'a str,
        name: &'a str,
    },
}

/// `rest` is the path after `/hls/`. Public for the fuzz targets (`fuzz/`).
pub fn route(rest: &str) -> Option<Route<'_>> {
    let mut parts = rest.split('/');
    let token = parts.next().filter(|t| !t.is_empty())?;
    let first = parts.next()?;
    let second = parts.next();
    if parts.next().is_some() || first.is_empty() {
        return None;
    }
    match (first, second) {
        ("master.m3u8", None) => Some(Route::Master { token }),
        ("keys", Some(name)) if !name.is_empty() => Some(Route::Key { token, name }),
        (rendition, Some("index.m3u8")) => Some(Route::Media { token, rendition }),
        (rendition, Some(name)) if !name.is_empty() => Some(Route::Segment {
            token,
            rendition,
            name,
        }),
        _ => None,
    }
}

/// Every `/hls/…` request. GET only: a HEAD or any other method must not count as watching.
pub async fn dispatch(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let Some(found) = req.path().strip_prefix("/hls/").and_then(route) else {
        return Err(ApiError::not_found("route"));
    };
    if req.method() != actix_web::http::Method::GET {
        return Err(ApiError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            super::error::Code::MethodNotAllowed,
            "playback resources are read with GET",
        )
        .header("Allow", "GET"));
    }
    match found {
        Route::Master { token } => master(&state, &req, token).await,
        Route::Key { token, name } => key(&state, &req, token, name).await,
        Route::Media { token, rendition } => media(&state, &req, token, rendition).await,
        Route::Segment {
            token,
            rendition,
            name,
        } => segment(&state, &req, token, rendition, name).await,
    }
}

/// `00012.ts` → 12; anything else is not a segment name.
pub fn segment_index(name: &str) -> Option<usize> {
    let digits = name.strip_suffix(".ts")?;
    (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// `12.key` → 12.
pub fn key_index(name: &str) -> Option<usize> {
    let digits = name.strip_suffix(".key")?;
    (!digits.is_empty() && digits.len() <= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

async fn segment(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    token: &str,
    rendition: &str,
    name: &str,
) -> ApiResult<HttpResponse> {
    let access = authorize(state, req, token).await?;
    let rendition = access
        .playback
        .manifest
        .rendition(rendition)
        .map(|r| r.name.clone())
        .ok_or_else(|| ApiError::not_found("rendition"))?;
    let index = segment_index(name)
        .filter(|&i| i < access.playback.segment_count())
        .ok_or_else(|| ApiError::not_found("segment"))?;
    if index >= access.allowed {
        state.telemetry.gate_refusals.inc();
        return Err(preview_ended(&access, index));
    }
    let file_path = access
        .playback
        .dir
        .join(&rendition)
        .join(format!("{index:05}.ts"));
    let unreadable = |e: std::io::Error| {
        ApiError::internal(&format!("segment file {}: {e}", file_path.display()))
    };
    // A plain open and fstat on the worker: the directory entries are hot, and nginx does
    // the same per request.
    let file = match std::fs::File::open(&file_path) {
        Ok(file) => file,
        // The package is in the bucket and its local copy is gone (removed after publishing,
        // or after `storage migrate`'s grace period): a player still holding a playlist
        // that names the origin is sent there, past the same gate.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && access.playback.segments != SegmentSource::Origin =>
        {
            let location = match &access.playback.segments {
                SegmentSource::Public(base) => format!("{base}{rendition}/{index:05}.ts"),
                _ => {
                    let key = format!(
                        "{}{rendition}/{index:05}.ts",
                        state
                            .storage
                            .package_key(&access.film, &access.playback.package())
                    );
                    state
                        .storage
                        .presign(&[key])
                        .await
                        .map_err(|e| ApiError::internal(&format!("presigning a segment URL: {e}")))?
                        .pop()
                        .unwrap_or_default()
                }
            };
            record(state, &access, index, Signal::Segment);
            return Ok(HttpResponse::Found()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish());
        }
        Err(e) => return Err(unreadable(e)),
    };
    let size = file.metadata().map_err(unreadable)?.len();
    // sendfile(2) on plain connections; an ordinary stream over TLS, where the kernel
    // cannot write the bytes for us.
    let conn = req.conn_data::<ConnHandle>().cloned();
    let response = ranged(req, size, |start, len| match conn {
        Some(conn) => Ok(EitherBody::left(FileBody::new(conn, file, start, len))),
        None => crate::server::files::range_stream(file, start, len)
            .map(EitherBody::right)
            .map_err(unreadable),
    })?;
    record(state, &access, index, Signal::Segment);
    state.telemetry.segments_served.inc();
    Ok(response)
}

/// The one part of a `size`-byte segment a `Range` header asks for, as `(start, length)`
/// with `length > 0`; `None` when nothing in it is satisfiable (a 416). Only the first
/// range of a list is served. Public for the fuzz targets (`fuzz/`).
pub fn satisfiable_range(header: &str, size: u64) -> Option<(u64, u64)> {
    actix_files::HttpRange::parse(header, size)
        .ok()
        .and_then(|r| r.into_iter().next())
        .filter(|r| r.length > 0)
        .map(|r| (r.start, r.length))
}

/// 200 with the whole segment, or 206 for one satisfiable `Range` (what players send);
/// 416 for an unsatisfiable one. `body(start, len)` sends that part of the file. Encrypted,
/// so a shared cache may keep it.
fn ranged(
    req: &HttpRequest,
    size: u64,
    body: impl FnOnce(u64, u64) -> ApiResult<SegmentBody>,
) -> ApiResult<HttpResponse> {
    let mut response = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => HttpResponse::Ok().no_chunking(size).body(body(0, size)?),
        Some(range) => match satisfiable_range(range, size) {
            Some((start, length)) => {
                let end = start + length;
                HttpResponse::PartialContent()
                    .insert_header((
                        header::CONTENT_RANGE,
                        format!("bytes {start}-{}/{size}", end - 1),
                    ))
                    .no_chunking(length)
                    .body(body(start, length)?)
            }
            None => {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::RANGE_NOT_SATISFIABLE,
                    super::error::Code::RangeNotSatisfiable,
                    "the requested range is outside the segment",
                )
                .header("Content-Range", format!("bytes */{size}")));
            }
        },
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}

async fn key(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    token: &str,
    name: &str,
) -> ApiResult<HttpResponse> {
    let no_store = |e: ApiError| e.header("Cache-Control", "no-store");
    let access = authorize(state, req, token).await.map_err(no_store)?;
    let index = key_index(name)
        .filter(|&i| i < access.playback.segment_count())
        .ok_or_else(|| no_store(ApiError::not_found("key")))?;
    if index >= access.allowed {
        state.telemetry.gate_refusals.inc();
        return Err(no_store(preview_ended(&access, index)));
    }
    let key = transcoder::segment_key(&access.playback.secret, index as u64);
    record(state, &access, index, Signal::Key);
    state.telemetry.keys_served.inc();
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(key.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_strict() {
        assert_eq!(segment_index("00012.ts"), Some(12));
        assert_eq!(segment_index("12.ts"), None);
        assert_eq!(segment_index("../00012.ts"), None);
        assert_eq!(segment_index("0001a.ts"), None);
        assert_eq!(segment_index("000012.ts"), None);
        assert_eq!(key_index("12.key"), Some(12));
        assert_eq!(key_index(".key"), None);
        assert_eq!(key_index("1/2.key"), None);
        assert_eq!(key_index("-1.key"), None);
    }

    #[test]
    fn routes() {
        assert_eq!(route("t/master.m3u8"), Some(Route::Master { token: "t" }));
        assert_eq!(
            route("t/keys/3.key"),
            Some(Route::Key {
                token: "t",
                name: "3.key"
            })
        );
        assert_eq!(
            route("t/720/index.m3u8"),
            Some(Route::Media {
                token: "t",
                rendition: "720"
            })
        );
        assert_eq!(
            route("t/720/00001.ts"),
            Some(Route::Segment {
                token: "t",
                rendition: "720",
                name: "00001.ts"
            })
        );
        for nothing in [
            "",
            "t",
            "t/",
            "/master.m3u8",
            "t//00001.ts",
            "t/720/",
            "t/keys/",
            "t/720/00001.ts/x",
            "t/../../etc/passwd",
        ] {
            assert_eq!(route(nothing), None, "{nothing:?}");
        }
        // Shaped like a segment: the manifest has no rendition of that name, so it is a 404.
        assert!(matches!(
            route("t/master.m3u8/x"),
            Some(Route::Segment {
                rendition: "master.m3u8",
                ..
            })
        ));
    }
}
