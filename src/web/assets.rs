//! The pages' static files, embedded in the binary at build time (`web/assets/`: the
//! console's CSS and ES modules, and the vendored libraries `web/vendor.sh` copies from
//! the pinned npm packages), so nothing is fetched at build or run time. Each answer
//! carries the file's SHA-256 as its ETag: browsers revalidate and get 304 until the
//! binary changes.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/assets/"]
struct Assets;

pub async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(file) = Assets::get(&path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found");
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut answer = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    answer
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if fresh {
        return answer.finish();
    }
    answer
        .content_type(file.metadata.mimetype())
        .body(file.data.into_owned())
}

/// An embedded file at a fixed path of its own (the service worker must be served from the
/// scope it controls), revalidated on every use.
pub fn file_response(
    path: &str,
    content_type: &str,
) -> crate::web::error::PageResult<HttpResponse> {
    let file = Assets::get(path).ok_or_else(|| crate::api::error::ApiError::not_found("file"))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(file.data.into_owned()))
}
