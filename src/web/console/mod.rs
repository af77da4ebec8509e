//! The admin console at `/admin`: one route table, one module per page. Every handler but
//! the sign-in page's takes `ConsoleAdmin` (session, admin, CSRF on writes) and calls the
//! domain services; `view` turns their records into what the templates print.

pub mod analytics;
pub mod comments;
pub mod dashboard;
pub mod film_page;
pub mod films;
pub mod films_upload;
pub mod orders;
pub mod runners;
pub mod signin;
pub mod system;
pub mod users;
pub mod view;

use actix_web::http::Method;
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
            .route("/analytics", web::get().to(analytics::page))
            .route(
                "/analytics/report.csv",
                web::get().to(analytics::report_export),
            )
            .route(
                "/analytics/films/{id}/retention.csv",
                web::get().to(analytics::retention_export),
            )
            .route("/orders", web::get().to(orders::list))
            .route("/orders/reconcile", web::post().to(orders::reconcile))
            .route("/orders/{id}", web::get().to(orders::detail))
            .route("/orders/{id}/refund", web::post().to(orders::refund))
            .route("/users", web::get().to(users::list))
            .route("/users/{id}", web::get().to(users::detail))
            .route("/users/{id}/role", web::post().to(users::set_role))
            .route("/users/{id}/disabled", web::post().to(users::set_disabled))
            .route("/users/{id}/grants", web::post().to(users::grant))
            .route(
                "/users/{id}/grants/{film}/revoke",
                web::post().to(users::revoke),
            )
            .route("/users/{id}/login-link", web::post().to(users::login_link))
            // Films (list, new, the film page, its packaging box, the console's tus).
            .route("/films", web::get().to(films::list))
            .route("/films", web::post().to(films::create))
            .route("/films/new", web::get().to(films::new))
            .route("/films/{id}", web::get().to(film_page::show))
            .route("/films/{id}", web::post().to(film_page::update))
            .route("/films/{id}/delete", web::post().to(film_page::delete))
            .route("/films/{id}/publish", web::post().to(film_page::publish))
            .route(
                "/films/{id}/unpublish",
                web::post().to(film_page::unpublish),
            )
            .route("/films/{id}/poster", web::get().to(film_page::poster))
            .route("/films/{id}/packaging", web::get().to(film_page::packaging))
            .route(
                "/films/{id}/jobs/{job}/cancel",
                web::post().to(film_page::cancel),
            )
            .route(
                "/films/{id}/jobs/{job}/retry",
                web::post().to(film_page::retry),
            )
            .service(
                web::resource("/uploads")
                    .route(web::post().to(films_upload::create))
                    .route(web::method(Method::OPTIONS).to(films_upload::options)),
            )
            .service(
                web::resource("/uploads/{id}")
                    .route(web::head().to(films_upload::head))
                    .route(web::patch().to(films_upload::patch))
                    .route(web::delete().to(films_upload::terminate))
                    .route(web::method(Method::OPTIONS).to(films_upload::options)),
            )
            .route("/comments", web::get().to(comments::page))
            .route("/comments/{id}/hide", web::post().to(comments::hide))
            .route("/comments/{id}/restore", web::post().to(comments::restore))
            .route("/comments/{id}", web::delete().to(comments::delete))
            .route("/runners", web::get().to(runners::page))
            .route("/runners", web::post().to(runners::issue))
            .route("/runners/{id}/revoke", web::post().to(runners::revoke))
            .route("/system", web::get().to(system::page))
            .route(
                "/system/dead/{id}/retry",
                web::post().to(system::retry_dead),
            )
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
