//! The admin console at `/admin`: one route table, one module per page. Every handler but
//! the sign-in page's takes `ConsoleAdmin` (session, admin, CSRF on writes) and calls the
//! domain services; `view` turns their records into what the templates print.

pub mod comments;
pub mod dashboard;
pub mod signin;
pub mod system;
pub mod view;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(super::headers::page_headers())
            // A form or query the console's own pages did not produce: shown as a page.
            .app_data(
                web::FormConfig::default()
                    .limit(64 * 1024)
                    .error_handler(|e, _| bad_request(e.to_string())),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| bad_request(e.to_string())))
            .route("", web::get().to(dashboard::page))
            .route("/", web::get().to(dashboard::page))
            .route("/fragments/jobs", web::get().to(dashboard::jobs_fragment))
            .route("/comments", web::get().to(comments::page))
            .route("/comments/{id}/hide", web::post().to(comments::hide))
            .route("/comments/{id}/restore", web::post().to(comments::restore))
            .route("/comments/{id}", web::delete().to(comments::delete))
            .route("/system", web::get().to(system::page))
            .route("/sign-in", web::get().to(signin::page))
            .route("/sign-in/link", web::post().to(signin::with_link))
            .route("/sign-out", web::post().to(signin::sign_out))
            .default_service(web::to(not_found)),
    );
}

fn bad_request(message: String) -> actix_web::Error {
    super::error::PageError::new(
        actix_web::http::StatusCode::BAD_REQUEST,
        crate::api::error::Code::InvalidRequest,
        message,
    )
    .into()
}

async fn not_found(
    _admin: super::session::ConsoleAdmin,
) -> super::error::PageResult<actix_web::HttpResponse> {
    Err(super::error::PageError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        crate::api::error::Code::NotFound,
        "there is no console page at this address",
    ))
}

/// An HTML answer from a rendered template.
pub(crate) fn html(body: String) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Renders a template; a template that fails to render is a server fault.
pub(crate) fn render<T: askama::Template>(
    page: &T,
) -> super::error::PageResult<actix_web::HttpResponse> {
    page.render()
        .map(html)
        .map_err(|e| crate::api::error::ApiError::internal(&e).into())
}
