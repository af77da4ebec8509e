//! A whole small file as an answer (posters): `actix_files` for the conditional and range
//! handling, with the content type and caching the caller names.

use std::path::Path;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL};
use actix_web::{HttpRequest, HttpResponse};

/// The JPEG at `path`, or `None` when it cannot be opened. `cache` is its
/// `Cache-Control`, if any.
pub async fn jpeg(
    req: &HttpRequest,
    path: &Path,
    cache: Option<&'static str>,
) -> Option<HttpResponse> {
    let file = actix_files::NamedFile::open_async(path)
        .await
        .ok()?
        .set_content_type(mime::IMAGE_JPEG);
    let mut response = file.into_response(req);
    if let Some(cache) = cache {
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    Some(response)
}
