//! `/api/docs/`: a readable reference of the JSON API, Swagger UI over the server's own
//! `GET /api/v1/openapi.json`. The Swagger UI files are the ones `utoipa-swagger-ui`
//! embeds at build time from its `vendored` copy, so nothing is fetched at build or run
//! time. The page is served by this handler rather than the crate's actix service: that
//! service would register a second, static copy of the document and answers its own
//! failures as plain-text 500s; here the document stays the one per-request route, and the
//! page carries the pages' CSP and headers like every other HTML answer.
//!
//! Swagger UI's online validator badge is off (`validatorUrl: "none"`): it would send the
//! document to validator.swagger.io and load an image from there, which the CSP refuses.

use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa_swagger_ui::Config;

/// The page's mount point; its files are below it (`/api/docs/index.html`, …).
pub const PATH: &str = "/api/docs";

static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new(["/api/v1/openapi.json"])
            .validator_url("none")
            // The standalone layout's top bar (a box to load any other document) brings an
            // inline `<style>` that the CSP refuses; the reference needs no such box.
            .use_base_layout()
            .try_it_out_enabled(false)
            .display_operation_id(true)
            .persist_authorization(false),
    )
});

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(PATH).route(web::get().to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header((header::LOCATION, "/api/docs/"))
            .finish()
    })))
    .service(
        web::resource("/api/docs/{path:.*}")
            .wrap(super::headers::page_headers())
            .route(web::get().to(file)),
    );
}

async fn file(path: web::Path<String>) -> HttpResponse {
    match utoipa_swagger_ui::serve(&path, CONFIG.clone()) {
        Ok(Some(file)) => HttpResponse::Ok()
            .content_type(file.content_type)
            // The files change only with the binary; a day's caching spares the 1.5 MB
            // bundle on every visit.
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(file.bytes.into_owned()),
        Ok(None) => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
        Err(e) => {
            // Only the initializer is templated, with a configuration fixed at compile time;
            // reaching this is a defect of the build, not of the request.
            tracing::error!(error = %e, "the API reference page could not be rendered");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the API reference is unavailable")
        }
    }
}
