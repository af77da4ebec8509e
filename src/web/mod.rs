//! The HTML surfaces, rendered on the server from askama templates (checked at compile
//! time, escaping by default) with htmx for partial updates: the admin console at `/admin`
//! (`console`); the viewer app at `/` arrives with its issue. They sign in with the
//! HttpOnly session cookie, carry the CSRF header on every state-changing request
//! (`session`), answer under a strict CSP with no inline script (`headers`), and call the
//! domain services — never the JSON handlers. Errors are classified by `api::error` (the
//! one map from domain errors to a status and a stable code) and shown as pages
//! (`error`). `assets` serves the embedded CSS, ES modules and vendored libraries; `api_docs` the
//! JSON API's reference page (Swagger UI over the OpenAPI document).

pub mod api_docs;
pub mod assets;
pub mod console;
pub mod error;
pub mod headers;
pub mod i18n;
pub mod session;
pub mod viewer;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/assets/{path:.*}").route(web::get().to(assets::serve)));
    api_docs::configure(cfg);
    console::configure(cfg);
    viewer::configure(cfg);
}
