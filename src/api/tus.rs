//! Resumable uploads: the tus 1.0 core protocol with the creation and termination
//! extensions, shared by the two surfaces that serve it (the JSON API under bearer auth,
//! `api::uploads`, and the console under its session cookie): each authenticates, then
//! calls these with who uploads and the address its uploads live under. `Upload-Metadata` carries `film_id` (and optionally `filename`). Bytes are
//! streamed to `uploads/partial/{id}` with constant memory; the offset is saved after every
//! chunk, so a dropped connection resumes from the last byte on disk. When the last byte
//! arrives the file is probed: a non-film is refused (422) and deleted, a film is queued.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use futures_util::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Code};
use crate::catalogue;
use crate::ingest;
use crate::state::AppState;
use crate::store::uploads::Upload;

const TUS_VERSION: &str = "1.0.0";

fn tus_headers(
    builder: &mut actix_web::HttpResponseBuilder,
) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header(("Tus-Resumable", TUS_VERSION))
        .insert_header(("Cache-Control", "no-store"))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn require_tus(req: &HttpRequest) -> ApiResult<()> {
    match header(req, "Tus-Resumable") {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            Code::TusVersion,
            "send `Tus-Resumable: 1.0.0`",
        )
        .header("Tus-Version", TUS_VERSION)),
    }
}

/// An `Upload-Length` or `Upload-Offset` value: a byte count. Public for the fuzz targets.
pub fn parse_bytes(value: &str) -> Option<u64> {
    value.parse().ok()
}

fn partial_path(state: &AppState, id: &Uuid) -> std::path::PathBuf {
    ingest::partial_upload_path(&state.config, id)
}

/// `key base64,key base64` → map. An empty header is an empty map (some clients send one).
/// Public for the fuzz targets (`fuzz/`).
pub fn parse_metadata(text: &str) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    Code::InvalidMetadata,
                    format!("Upload-Metadata value of {key:?} is not base64 UTF-8"),
                )
            })?;
        out.insert(key.to_string(), decoded);
    }
    Ok(out)
}

pub fn options(state: &AppState) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Resumable", TUS_VERSION))
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", "creation,termination"))
        .insert_header(("Tus-Max-Size", state.config.upload.max_bytes.to_string()))
        .finish()
}

/// Creation: `POST {base}` → `201` with `Location: {base}/{id}`.
pub async fn create(
    state: &AppState,
    uploader: Uuid,
    base: &str,
    req: &HttpRequest,
) -> ApiResult<HttpResponse> {
    require_tus(req)?;
    if header(req, "Upload-Defer-Length").is_some() {
        return Err(ApiError::bad_request(
            Code::LengthRequired,
            "send Upload-Length; deferred lengths are not supported",
        ));
    }
    let length: u64 = header(req, "Upload-Length")
        .and_then(parse_bytes)
        .ok_or_else(|| {
            ApiError::bad_request(
                Code::LengthRequired,
                "send Upload-Length with the file size in bytes",
            )
        })?;
    ingest::check_size(&state.config, length)?;
    // Refused up front: an upload whose bytes would bring the media file system below the
    // floor is never started (space is not reserved: each PATCH checks again).
    ingest::check_space(&state.config, length)?;
    if length == 0 {
        return Err(ApiError::bad_request(
            Code::EmptyUpload,
            "the file is empty",
        ));
    }
    let metadata = parse_metadata(header(req, "Upload-Metadata").unwrap_or(""))?;
    let film_id = metadata.get("film_id").ok_or_else(|| {
        ApiError::bad_request(Code::FilmIdRequired, "Upload-Metadata must carry film_id")
    })?;
    let film = catalogue::film(&state.store, film_id)?;
    let upload = Upload {
        id: crate::store::new_id(),
        film_id: film.id,
        length,
        offset: 0,
        metadata,
        created_by: uploader,
        created_at: state.clock.now(),
        updated_at: state.clock.now(),
    };
    let path = partial_path(state, &upload.id);
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::File::create(&path).await?;
    state.store.save_upload(&upload)?;
    Ok(tus_headers(&mut HttpResponse::Created())
        .insert_header(("Location", format!("{base}/{}", upload.id)))
        .finish())
}

fn find(state: &AppState, id: &str) -> ApiResult<Upload> {
    crate::store::parse_id(id)
        .and_then(|id| state.store.upload(&id).ok().flatten())
        .ok_or_else(|| ApiError::not_found("upload").header("Tus-Resumable", TUS_VERSION))
}

pub fn head(state: &AppState, req: &HttpRequest, id: &str) -> ApiResult<HttpResponse> {
    require_tus(req)?;
    let upload = find(state, id)?;
    Ok(tus_headers(&mut HttpResponse::Ok())
        .insert_header(("Upload-Offset", upload.offset.to_string()))
        .insert_header(("Upload-Length", upload.length.to_string()))
        .finish())
}

pub async fn patch(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    mut body: web::Payload,
) -> ApiResult<HttpResponse> {
    require_tus(req)?;
    if header(req, "Content-Type") != Some("application/offset+octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "PATCH bodies must be application/offset+octet-stream",
        ));
    }
    let mut upload = find(state, id)?;
    let offset: u64 = header(req, "Upload-Offset")
        .and_then(parse_bytes)
        .ok_or_else(|| ApiError::bad_request(Code::OffsetRequired, "send Upload-Offset"))?;
    if offset != upload.offset {
        return Err(ApiError::conflict(
            Code::OffsetMismatch,
            format!("the upload is at byte {}", upload.offset),
        )
        .with("offset", upload.offset)
        .header("Tus-Resumable", TUS_VERSION));
    }
    // The rest of this upload must fit above the floor; refused before a byte is written
    // (the client resumes from HEAD's offset once space is freed).
    ingest::check_space(&state.config, upload.length - upload.offset).map_err(|e| {
        ApiError::from(e)
            .header("Tus-Resumable", TUS_VERSION)
            .close_connection()
    })?;
    let file_path = partial_path(state, &upload.id);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&file_path)
        .await?;
    // Bytes past the recorded offset are from an interrupted request: overwrite them.
    file.set_len(upload.offset).await?;
    file.seek(std::io::SeekFrom::Start(upload.offset)).await?;
    let mut received = upload.offset;
    let mut failure = None;
    // Other writers share the disk: the floor is measured again every SPACE_CHECK_BYTES.
    let mut unchecked = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if received + chunk.len() as u64 > upload.length {
                    failure = Some(ApiError::bad_request(
                        Code::UploadTooLong,
                        "more bytes than Upload-Length",
                    ));
                    break;
                }
                unchecked += chunk.len() as u64;
                if unchecked >= ingest::SPACE_CHECK_BYTES {
                    unchecked = 0;
                    if let Err(e) = ingest::check_space(&state.config, chunk.len() as u64) {
                        failure = Some(ApiError::from(e));
                        break;
                    }
                }
                if let Err(e) = file.write_all(&chunk).await {
                    failure = Some(ApiError::internal(&e));
                    break;
                }
                received += chunk.len() as u64;
            }
            Err(e) => {
                failure = Some(ApiError::bad_request(
                    Code::UploadInterrupted,
                    format!("the upload was interrupted: {e}"),
                ));
                break;
            }
        }
    }
    file.flush().await?;
    file.sync_data().await?;
    drop(file);
    upload.offset = received;
    upload.updated_at = state.clock.now();
    state.store.save_upload(&upload)?;
    if let Some(e) = failure {
        // The rest of the body is still on the wire.
        return Err(e.header("Tus-Resumable", TUS_VERSION).close_connection());
    }
    if upload.offset == upload.length {
        state.store.delete_upload(&upload.id)?;
        let name = upload
            .metadata
            .get("filename")
            .cloned()
            .unwrap_or_else(|| "source".into());
        let job = ingest::accept(
            state.config.clone(),
            state.store.clone(),
            upload.film_id,
            file_path,
            name,
            state.clock.now(),
        )
        .await
        .map_err(|e| ApiError::from(e).header("Tus-Resumable", TUS_VERSION))?;
        state.jobs.notify();
        return Ok(tus_headers(&mut HttpResponse::NoContent())
            .insert_header(("Upload-Offset", upload.offset.to_string()))
            .insert_header(("Cinegate-Job-Id", job.id.to_string()))
            .finish());
    }
    Ok(tus_headers(&mut HttpResponse::NoContent())
        .insert_header(("Upload-Offset", upload.offset.to_string()))
        .finish())
}

pub async fn terminate(state: &AppState, req: &HttpRequest, id: &str) -> ApiResult<HttpResponse> {
    require_tus(req)?;
    let upload = find(state, id)?;
    state.store.delete_upload(&upload.id)?;
    let _ = tokio::fs::remove_file(partial_path(state, &upload.id)).await;
    Ok(tus_headers(&mut HttpResponse::NoContent()).finish())
}

#[cfg(test)]
mod tests {
    use super::parse_metadata;

    #[test]
    fn metadata_parses_and_tolerates_empty() {
        let m = parse_metadata("film_id MTIz,filename YS5tcDQ=").unwrap_or_default();
        assert_eq!(m.get("film_id").map(String::as_str), Some("123"));
        assert_eq!(m.get("filename").map(String::as_str), Some("a.mp4"));
        assert!(parse_metadata("").is_ok_and(|m| m.is_empty()));
        assert!(parse_metadata("film_id !!!").is_err());
    }
}
