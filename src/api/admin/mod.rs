//! `/api/v1/admin/…`: every handler takes `Admin`, so a non-admin never reaches one.

pub mod analytics;
pub mod films;
pub mod grants;
pub mod jobs;
pub mod runners;
pub mod users;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics", web::get().to(analytics::report))
        .route(
            "/analytics/films/{id}/retention",
            web::get().to(analytics::retention),
        )
        .route("/films", web::get().to(films::list))
        .route("/films", web::post().to(films::create))
        .route("/films/{id}", web::get().to(films::get))
        .route("/films/{id}", web::patch().to(films::update))
        .route("/films/{id}", web::delete().to(films::delete))
        .route("/films/{id}/publish", web::post().to(films::publish))
        .route("/films/{id}/unpublish", web::post().to(films::unpublish))
        .route("/films/{id}/source", web::put().to(films::put_source))
        .route("/films/{id}/grants/{user_id}", web::put().to(grants::grant))
        .route(
            "/films/{id}/grants/{user_id}",
            web::delete().to(grants::revoke),
        )
        .route("/jobs", web::get().to(jobs::list))
        .route("/jobs/{id}", web::get().to(jobs::get))
        .route("/jobs/{id}/cancel", web::post().to(jobs::cancel))
        .route("/jobs/{id}/retry", web::post().to(jobs::retry))
        .route("/runners", web::get().to(runners::list))
        .route("/runners", web::post().to(runners::create))
        .route("/runners/{id}", web::delete().to(runners::revoke))
        .route("/users", web::get().to(users::list))
        .route("/orders", web::get().to(super::payments::admin_orders))
        .route(
            "/comments/queue",
            web::get().to(super::comments::admin_queue),
        )
        .route(
            "/comments/{id}/hide",
            web::post().to(super::comments::admin_hide),
        )
        .route(
            "/comments/{id}/restore",
            web::post().to(super::comments::admin_restore),
        )
        .route(
            "/comments/{id}",
            web::delete().to(super::comments::admin_delete),
        )
        .route(
            "/films/{id}/supporters",
            web::get().to(super::comments::admin_supporters),
        )
        .route(
            "/orders/{id}/refund",
            web::post().to(super::payments::admin_refund),
        )
        .route(
            "/notifications/dead",
            web::get().to(super::notifications::dead),
        )
        .route(
            "/notifications/dead/{id}/retry",
            web::post().to(super::notifications::retry_dead),
        )
        .route(
            "/payments/reconcile",
            web::post().to(super::payments::admin_reconcile),
        )
        .service(
            web::resource("/uploads")
                .route(web::post().to(super::uploads::create))
                .route(web::method(actix_web::http::Method::OPTIONS).to(super::uploads::options)),
        )
        .service(
            web::resource("/uploads/{id}")
                .route(web::head().to(super::uploads::head))
                .route(web::patch().to(super::uploads::patch))
                .route(web::delete().to(super::uploads::terminate))
                .route(web::method(actix_web::http::Method::OPTIONS).to(super::uploads::options)),
        );
}
