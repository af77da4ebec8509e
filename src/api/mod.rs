//! The HTTP surface: one route table (`configure`), shared by the server and its tests,
//! thin handlers (one file per noun) over the store and domain functions, the `Viewer` and
//! `Admin` extractors (`extract`), and the one map from errors to HTTP (`error`). The
//! state they share is `crate::state::AppState`.

pub mod admin;
pub mod auth;
pub mod codes;
pub mod comments;
pub mod devices;
pub mod error;
pub mod extract;
pub mod films;
pub mod health;
pub mod hls;
pub mod limits;
pub mod me;
pub mod notifications;
pub mod openapi;
pub mod pages;
pub mod payments;
pub mod runner;
pub mod schemas;
pub mod signin;
pub mod tus;
pub mod uploads;
pub mod views;

use actix_web::web;

/// The `metrics.listen` listener's one route.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(health::metrics_listener)));
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The playback scope comes first: nearly every request is a segment, key or playlist,
    // and the router tries entries in order. Its prefix is static and the rest of the path
    // is classified by `hls::route`: actix-router matches dynamic patterns with a regex
    // (regex-lite, a backtracking-free but slow PikeVM), which cost a quarter of the CPU
    // of a key request (bench/serve.sh under perf).
    cfg.service(web::scope("/hls").default_service(web::to(hls::dispatch)))
        .service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/login").route(web::get().to(pages::login)))
        .service(
            web::resource("/unsubscribe")
                .route(web::get().to(notifications::unsubscribe_page))
                .route(web::post().to(notifications::unsubscribe)),
        )
        .service(
            web::scope("/pay/{provider}")
                .route("/return", web::get().to(payments::return_page))
                .route("/cancel", web::get().to(payments::cancel_page))
                .route("/fail", web::get().to(payments::fail_page)),
        )
        .service(
            web::scope("/auth/{provider}")
                .route("/start", web::get().to(signin::start))
                .route("/link", web::post().to(signin::link))
                .route("/callback", web::get().to(signin::callback_get))
                .route("/callback", web::post().to(signin::callback_post)),
        )
        // Before `/api/v1`, whose budgets it stays out of (`runner`'s docs say why).
        .service(web::scope("/api/v1/runner").configure(runner::configure))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(limits::api_budgets))
                .route("/openapi.json", web::get().to(openapi::document))
                .route("/auth/link", web::post().to(auth::link))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/auth/logout-all", web::post().to(me::logout_all))
                .route("/auth/providers", web::get().to(signin::providers))
                .route("/auth/exchange", web::post().to(signin::exchange))
                .route("/auth/session", web::post().to(signin::session_token))
                .route("/auth/session", web::delete().to(signin::session_end))
                .route("/auth/{provider}/native", web::post().to(signin::native))
                .route("/me", web::get().to(me::me))
                .route("/me", web::delete().to(me::delete))
                .route("/me/identities/{provider}", web::delete().to(me::unlink))
                .route("/me/devices", web::get().to(devices::list))
                .route("/me/devices", web::post().to(devices::register))
                .route("/me/devices/{id}", web::delete().to(devices::delete))
                .route("/me/progress", web::get().to(me::progress))
                .route("/me/purchases", web::get().to(payments::my_purchases))
                .route("/me/notifications", web::get().to(notifications::prefs))
                .route("/me/notifications", web::put().to(notifications::set_prefs))
                .route("/payments/providers", web::get().to(payments::providers))
                .route(
                    "/payments/paypal/webhook",
                    web::post().to(payments::paypal_webhook),
                )
                .route("/orders/{id}", web::get().to(payments::order))
                .route("/films/{id}/checkout", web::post().to(payments::checkout))
                .route("/films/{id}/comments", web::get().to(comments::list))
                .route("/films/{id}/comments", web::post().to(comments::create))
                .route("/films/{id}/social", web::get().to(comments::counts))
                .route("/films/{id}/support", web::post().to(comments::support))
                .route("/comments/{id}", web::patch().to(comments::edit))
                .route("/comments/{id}", web::delete().to(comments::delete))
                .route("/comments/{id}/report", web::post().to(comments::report))
                .route("/films", web::get().to(films::list))
                .route("/films/{id}", web::get().to(films::detail))
                .route("/films/{id}/poster.jpg", web::get().to(films::poster))
                .route("/films/{id}/playback", web::post().to(films::playback))
                .route("/films/{id}/progress", web::get().to(films::progress))
                .service(web::scope("/admin").configure(admin::configure)),
        );
}
