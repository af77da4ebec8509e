//! `/api/v1/admin/uploads`: the tus protocol (`api::tus`) under bearer auth.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiResult;
use super::tus;
use crate::api::extract::Admin;
use crate::state::AppState;

const BASE: &str = "/api/v1/admin/uploads";

/// tus discovery (`OPTIONS`), the same on the collection and on an upload; documented once
/// per path, so the handler has two annotations' worth of operations: `options_item` below
/// only carries the second one.
#[utoipa::path(
    options,
    operation_id = "adminTusOptions",
    path = "/api/v1/admin/uploads",
    tag = "admin",
    summary = "tus discovery: version, extensions and the size limit",
    responses(
        (status = 204, description = "What this server speaks; no authentication needed", headers(
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Tus-Version" = String, description = "`1.0.0`"),
            ("Tus-Extension" = String, description = "`creation,termination`"),
            ("Tus-Max-Size" = u64, description = "The largest upload accepted, in bytes (`upload.max_bytes`)"),
        )),
    ),
)]
pub async fn options(state: web::Data<AppState>) -> HttpResponse {
    tus::options(&state)
}

#[utoipa::path(
    post,
    operation_id = "adminCreateUpload",
    path = "/api/v1/admin/uploads",
    tag = "admin",
    summary = "tus creation: announce a film's source, then send it with PATCH",
    params(
        ("Tus-Resumable" = String, Header, description = "The protocol version: `1.0.0`", example = "1.0.0", pattern = r"^1\.0\.0$"),
        ("Upload-Length" = u64, Header, minimum = 1, description = "The file's size in bytes, at most `Tus-Max-Size` (`Upload-Defer-Length` is refused)", example = 1048576),
        ("Upload-Metadata" = String, Header, description = "Comma-separated `key base64(value)` pairs: `film_id` (required) and `filename`", example = "film_id MDE5M2E4ZjAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAx,filename ZmlsbS5tcDQ="),
    ),
    responses(
        (status = 201, description = "Created: PATCH the bytes to `Location`", headers(
            ("Location" = String, description = "`/api/v1/admin/uploads/{id}`"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 400, description = "`length_required`: no `Upload-Length` (or a deferred one); `empty_upload`: length 0; `invalid_metadata`: a value not base64 UTF-8; `film_id_required`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
        (status = 412, description = "`tus_version`: `Tus-Resumable: 1.0.0` missing", body = crate::api::schemas::ErrorBody,
            headers(("Tus-Version" = String, description = "`1.0.0`, the version spoken"))),
        (status = 413, description = "`upload_too_large` (with `max_bytes`)", body = crate::api::schemas::ErrorBody),
        (status = 507, description = "`insufficient_storage`: `Upload-Length` more bytes would bring the media file system below `disk.min_free_bytes` (with `free_bytes`, `min_free_bytes`, `needed_bytes`); nothing is created", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    state: web::Data<AppState>,
    admin: Admin,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    tus::create(&state, admin.0.id, BASE, &req).await
}

#[utoipa::path(
    head,
    operation_id = "adminUploadOffset",
    path = "/api/v1/admin/uploads/{id}",
    tag = "admin",
    summary = "tus: how many bytes the server has (where to resume)",
    params(
        ("id" = String, Path, description = "The upload id (the last segment of `Location`)"),
        ("Tus-Resumable" = String, Header, description = "The protocol version: `1.0.0`", example = "1.0.0", pattern = r"^1\.0\.0$"),
    ),
    responses(
        (status = 200, description = "The upload's offset and length", headers(
            ("Upload-Offset" = u64, description = "Bytes received so far"),
            ("Upload-Length" = u64, description = "The announced size"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
        )),
        (status = 401, description = "`unauthenticated`, `invalid_token`, `token_expired` (a HEAD answer has no body)"),
        (status = 403, description = "`admin_only`, `account_disabled`"),
        (status = 404, description = "`not_found`: no such upload (finished, terminated or expired)"),
        (status = 412, description = "`tus_version`: `Tus-Resumable: 1.0.0` missing"),
    ),
    security(("bearer" = [])),
)]
pub async fn head(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    tus::head(&state, &req, &path)
}

#[utoipa::path(
    patch,
    operation_id = "adminUploadChunk",
    path = "/api/v1/admin/uploads/{id}",
    tag = "admin",
    summary = "tus: append bytes at the upload's offset; the last byte queues packaging",
    params(
        ("id" = String, Path, description = "The upload id (the last segment of `Location`)"),
        ("Tus-Resumable" = String, Header, description = "The protocol version: `1.0.0`", example = "1.0.0", pattern = r"^1\.0\.0$"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes start: the offset `HEAD` answers", example = 0),
    ),
    request_body(
        description = "The next bytes of the file",
        content(("application/offset+octet-stream")),
    ),
    responses(
        (status = 204, description = "Stored; on the last byte the source is accepted and a job queued", headers(
            ("Upload-Offset" = u64, description = "Bytes received so far"),
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Cinegate-Job-Id" = String, description = "On the last byte only: the packaging job queued"),
        )),
        (status = 400, description = "`offset_required`; `upload_too_long`: more bytes than `Upload-Length`; `upload_interrupted`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such upload, or its film was deleted", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`offset_mismatch` (with `offset`, where the upload is); `job_active`: a packaging job for the film is queued or running", body = crate::api::schemas::ErrorBody),
        (status = 412, description = "`tus_version`: `Tus-Resumable: 1.0.0` missing", body = crate::api::schemas::ErrorBody,
            headers(("Tus-Version" = String, description = "`1.0.0`, the version spoken"))),
        (status = 415, description = "`unsupported_media_type`: not `application/offset+octet-stream`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`not_media`, `no_video`, `zero_duration`, `truncated`: the complete file is not a film (it is deleted)", body = crate::api::schemas::ErrorBody),
        (status = 507, description = "`insufficient_storage`: the rest of the upload would bring the media file system below `disk.min_free_bytes` (with `free_bytes`, `min_free_bytes`, `needed_bytes`); the bytes stored so far are kept: resume from `HEAD`'s offset once space is freed", body = crate::api::schemas::ErrorBody, headers(("Tus-Resumable" = String, description = "`1.0.0`"))),
    ),
    security(("bearer" = [])),
)]
pub async fn patch(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    tus::patch(&state, &req, &path, body).await
}

#[utoipa::path(
    delete,
    operation_id = "adminTerminateUpload",
    path = "/api/v1/admin/uploads/{id}",
    tag = "admin",
    summary = "tus termination: drop an unfinished upload and its bytes",
    params(
        ("id" = String, Path, description = "The upload id (the last segment of `Location`)"),
        ("Tus-Resumable" = String, Header, description = "The protocol version: `1.0.0`", example = "1.0.0", pattern = r"^1\.0\.0$"),
    ),
    responses(
        (status = 204, description = "Terminated", headers(("Tus-Resumable" = String, description = "`1.0.0`"))),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such upload", body = crate::api::schemas::ErrorBody),
        (status = 412, description = "`tus_version`: `Tus-Resumable: 1.0.0` missing", body = crate::api::schemas::ErrorBody,
            headers(("Tus-Version" = String, description = "`1.0.0`, the version spoken"))),
    ),
    security(("bearer" = [])),
)]
pub async fn terminate(
    state: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    tus::terminate(&state, &req, &path).await
}

/// `OPTIONS /uploads/{id}` in the document; the route table serves it with `options`.
#[utoipa::path(
    options,
    operation_id = "adminTusUploadOptions",
    path = "/api/v1/admin/uploads/{id}",
    tag = "admin",
    summary = "tus discovery on an upload's address",
    params(
        ("id" = String, Path, description = "The upload id (the last segment of `Location`)"),
    ),
    responses(
        (status = 204, description = "What this server speaks; no authentication needed", headers(
            ("Tus-Resumable" = String, description = "`1.0.0`"),
            ("Tus-Version" = String, description = "`1.0.0`"),
            ("Tus-Extension" = String, description = "`creation,termination`"),
            ("Tus-Max-Size" = u64, description = "The largest upload accepted, in bytes (`upload.max_bytes`)"),
        )),
    ),
)]
#[allow(dead_code)]
fn options_item() {}
