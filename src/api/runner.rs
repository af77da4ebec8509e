//! `/api/v1/runner/…`: the routes remote runners call (docs/RUNNERS.md), with the runner
//! token as `Authorization: Bearer` and, for a job, its lease token as `Cinegate-Lease`.
//! Both travel in headers, never in a path, so the access log never holds one.
//!
//! They are outside the general `/api/v1` budgets (`limits`): a runner uploads a package
//! file by file (hundreds to thousands of requests a film) from one address, and every
//! request is authenticated by a 256-bit token before anything else happens. They are
//! also left out of the published OpenAPI document: they are the contract between the
//! server and its own `cinegate runner`, not the apps' API.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::api::error::{ApiError, ApiResult, Code};
use crate::api::views::runners::{
    FilesAnswer, HeartbeatAnswer, JobStateAnswer, LeaseAnswer, TargetsAnswer,
};
use crate::runners::DeclaredFile;
use crate::state::AppState;
use crate::store::runners::Runner;

/// The header carrying the lease (fencing) token.
pub const LEASE_HEADER: &str = "cinegate-lease";

/// The largest JSON body a runner sends: the file list of a package (a 2-hour film in five
/// renditions is ~6,000 files, ~300 KB), past `limits.json_body_bytes`.
const RUNNER_JSON_BYTES: usize = 16 << 20;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(RUNNER_JSON_BYTES)
            .error_handler(crate::api::error::json_error),
    )
    .route("/lease", web::post().to(lease))
    .route("/jobs/{id}/source", web::get().to(source))
    .route("/jobs/{id}/source", web::head().to(source))
    .route("/jobs/{id}/progress", web::post().to(progress))
    .route("/jobs/{id}/uploads", web::post().to(uploads))
    .route("/jobs/{id}/files", web::get().to(files))
    .route("/jobs/{id}/files/{path:.*}", web::put().to(put_file))
    .route("/jobs/{id}/complete", web::post().to(complete))
    .route("/jobs/{id}/fail", web::post().to(fail));
}

/// A request from a runner whose token is issued and not revoked.
pub struct RunnerAuth(pub Runner);

impl FromRequest for RunnerAuth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let out = (|| {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::internal(&"application state missing"))?;
            let token = crate::api::extract::bearer(req).ok_or_else(|| {
                ApiError::unauthorized(Code::Unauthenticated, "a runner token is required")
            })?;
            Ok(RunnerAuth(state.runners().authenticate(token)?))
        })();
        std::future::ready(out)
    }
}

fn lease_token(req: &HttpRequest) -> ApiResult<String> {
    req.headers()
        .get(LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                Code::InvalidRequest,
                "the Cinegate-Lease header is required",
            )
        })
}

fn job_id(id: &str) -> ApiResult<uuid::Uuid> {
    crate::store::parse_id(id).ok_or_else(|| ApiError::not_found("job"))
}

/// Takes the oldest queued job: 200 with everything needed to package it, 204 when
/// nothing is queued.
pub async fn lease(state: web::Data<AppState>, runner: RunnerAuth) -> ApiResult<HttpResponse> {
    // May hash the source the first time: off the runtime's threads.
    let st = state.clone();
    let grant = web::block(move || st.runners().lease(&runner.0)).await??;
    Ok(match grant {
        Some(g) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(LeaseAnswer::from(g)),
        None => HttpResponse::NoContent().finish(),
    })
}

/// The job's source, with `Range` (206, 416) from actix-files and `If-Range` checked here:
/// the ETag is the source's SHA-256, and an `If-Range` naming another answers the whole
/// file (200), as RFC 9110 says.
pub async fn source(
    state: web::Data<AppState>,
    runner: RunnerAuth,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = job_id(&path)?;
    let token = lease_token(&req)?;
    let st = state.clone();
    let (file, info) = web::block(move || -> Result<_, ApiError> {
        let runners = st.runners();
        let job = runners.leased(&runner.0, &id, &token)?;
        let file = runners.source_path(&job);
        let info = crate::runners::lease::source_info(&file)?;
        Ok((file, info))
    })
    .await??;
    let etag = format!("\"{}\"", info.sha256);
    let stale = req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != etag);
    let named = actix_files::NamedFile::open_async(&file)
        .await?
        .use_etag(false)
        .use_last_modified(false)
        .disable_content_disposition()
        .set_content_type(mime::APPLICATION_OCTET_STREAM);
    if stale && req.headers().contains_key(header::RANGE) {
        // The validator changed: the whole file, not the range asked for.
        let len = info.length;
        let f = tokio::fs::File::open(&file).await?;
        let body = futures_util::stream::unfold(f, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(web::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        return Ok(HttpResponse::Ok()
            .insert_header((header::ETAG, etag))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .content_type(mime::APPLICATION_OCTET_STREAM)
            .body(actix_web::body::SizedStream::new(len, body.boxed_local())));
    }
    let mut res = named.into_response(&req);
    if let Ok(v) = header::HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    pub progress: f64,
}

/// The heartbeat: the runner's progress; the lease is extended by `runners.lease_ttl`.
pub async fn progress(
    state: web::Data<AppState>,
    runner: RunnerAuth,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ProgressBody>,
) -> ApiResult<HttpResponse> {
    let id = job_id(&path)?;
    let token = lease_token(&req)?;
    let expires = state
        .runners()
        .heartbeat(&runner.0, &id, &token, body.progress)?;
    Ok(HttpResponse::Ok().json(HeartbeatAnswer {
        lease_expires_at: expires,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesBody {
    pub files: Vec<DeclaredFile>,
}

/// Where each file of the package goes, and which the origin already has.
pub async fn uploads(
    state: web::Data<AppState>,
    runner: RunnerAuth,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<FilesBody>,
) -> ApiResult<HttpResponse> {
    let id = job_id(&path)?;
    let token = lease_token(&req)?;
    let st = state.clone();
    let targets = web::block(move || {
        st.runners()
            .upload_targets(&runner.0, &id, &token, &body.files)
    })
    .await??;
    Ok(HttpResponse::Ok().json(TargetsAnswer { targets }))
}

/// What the origin holds of this attempt's upload.
pub async fn files(
    state: web::Data<AppState>,
    runner: RunnerAuth,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = job_id(&path)?;
    let token = lease_token(&req)?;
    let st = state.clone();
    let files = web::block(move || st.runners().uploaded(&runner.0, &id, &token)).await??;
    Ok(HttpResponse::Ok().json(FilesAnswer { files }))
}

/// One package file, into the attempt's staging directory: written beside its name,
/// fsynced, renamed. 201 with its size.
pub async fn put_file(
    state: web::Data<AppState>,
    runner: RunnerAuth,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    mut payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let (id, file_path) = path.into_inner();
    let id = job_id(&id)?;
    let token = lease_token(&req)?;
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let st = state.clone();
    let upload = web::block(move || {
        st.runners()
            .begin_upload(&runner.0, &id, &token, &file_path, length)
    })
    .await?
    .map_err(|e| ApiError::from(e).close_connection())?;
    let file = tokio::fs::File::from_std(upload.create()?);
    let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut written: u64 = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request(Code::UploadInterrupted, "the upload's body ended early")
                .close_connection()
        })?;
        written += chunk.len() as u64;
        if written > crate::runners::lease::MAX_FILE_BYTES {
            return Err(ApiError::validation("a package file is at most 1 GiB").close_connection());
        }
        // Into a buffer, written by tokio's blocking pool; the sync happens once, at
        // commit, off the runtime too.
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    if length.is_some_and(|n| n != written) {
        return Err(ApiError::bad_request(
            Code::UploadInterrupted,
            "the upload's body is not Content-Length bytes",
        ));
    }
    let file = file.into_inner().into_std().await;
    let size = web::block(move || upload.commit(file)).await??;
    Ok(HttpResponse::Created().json(serde_json::json!({ "size": size })))
}

/// The package is uploaded: the origin checks it and records it, or says what is wrong.
pub async fn complete(
    state: web::Data<AppState>,
    runner: RunnerAuth,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<FilesBody>,
) -> ApiResult<HttpResponse> {
    let id = job_id(&path)?;
    let token = lease_token(&req)?;
    let st = state.clone();
    let job =
        web::block(move || st.runners().complete(&runner.0, &id, &token, &body.files)).await??;
    Ok(HttpResponse::Ok().json(JobStateAnswer {
        job_id: job.id,
        state: job.state,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    /// A stable code: the packager's (`not_media`, `truncated`, …) or the runner's own.
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// `true`: give the job back to the queue (the runner is stopping); `false`: the job
    /// failed.
    #[serde(default)]
    pub retryable: bool,
}

/// The runner gives the job back, or reports that it failed.
pub async fn fail(
    state: web::Data<AppState>,
    runner: RunnerAuth,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<FailBody>,
) -> ApiResult<HttpResponse> {
    let id = job_id(&path)?;
    let token = lease_token(&req)?;
    let st = state.clone();
    let job = web::block(move || {
        st.runners().fail(
            &runner.0,
            &id,
            &token,
            &body.code,
            &body.message,
            body.retryable,
        )
    })
    .await??;
    Ok(HttpResponse::Ok().json(JobStateAnswer {
        job_id: job.id,
        state: job.state,
    }))
}
