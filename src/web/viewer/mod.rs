//! The viewer app at `/` (issue 16): the catalogue, a film's page, signing in, and (with
//! their modules) the player with its paywall, comments and support, and the account. Pages
//! anyone may read take `Visitor`; actions take `SignedIn` (session, CSRF on writes). Every
//! page is in English or Korean (`web::i18n`) and carries the same strict headers as the
//! console. It is an installable PWA: a manifest and a service worker that caches the app
//! shell (styles, scripts, icons) and never a playlist, key or segment.

pub mod account;
pub mod catalogue;
pub mod film;
pub mod signin;
pub mod social;
pub mod watch;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::PageResult;
use super::i18n::{Lang, LANG_COOKIE};

/// Registered after the JSON API, so `/api`, `/hls`, `/auth` and `/pay` keep their routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let page = super::headers::page_headers;
    cfg.service(
        web::resource("/")
            .wrap(page())
            .route(web::get().to(catalogue::page)),
    )
    .service(
        web::resource("/films/{id}")
            .wrap(page())
            .route(web::get().to(film::page)),
    )
    // The player, its coverage box and the web checkout (watch.rs).
    .service(
        web::resource("/films/{id}/watch")
            .wrap(page())
            .route(web::get().to(watch::page)),
    )
    .service(
        web::resource("/films/{id}/watch/coverage")
            .wrap(page())
            .route(web::get().to(watch::coverage)),
    )
    .service(
        web::resource("/films/{id}/checkout")
            .wrap(page())
            .route(web::post().to(watch::checkout)),
    )
    .service(web::resource("/films/{id}/poster").route(web::get().to(film::poster)))
    .service(
        web::resource("/sign-in")
            .wrap(page())
            .route(web::get().to(signin::page)),
    )
    .service(
        web::resource("/sign-in/link")
            .wrap(page())
            .route(web::post().to(signin::with_link)),
    )
    .service(
        web::resource("/sign-out")
            .wrap(page())
            .route(web::post().to(signin::sign_out)),
    )
    // Comments and support (`social`) and the account page (`account`).
    .service(
        web::resource("/films/{id}/social")
            .wrap(page())
            .route(web::get().to(social::panel)),
    )
    .service(
        web::resource("/films/{id}/comments")
            .wrap(page())
            .route(web::post().to(social::post)),
    )
    .service(
        web::resource("/films/{id}/support")
            .wrap(page())
            .route(web::post().to(social::support)),
    )
    .service(
        web::resource("/comments/{id}")
            .wrap(page())
            .route(web::get().to(social::one)),
    )
    .service(
        web::resource("/comments/{id}/edit")
            .wrap(page())
            .route(web::get().to(social::edit_form))
            .route(web::post().to(social::edit)),
    )
    .service(
        web::resource("/comments/{id}/delete")
            .wrap(page())
            .route(web::post().to(social::delete)),
    )
    .service(
        web::resource("/comments/{id}/report")
            .wrap(page())
            .route(web::post().to(social::report)),
    )
    .service(
        web::resource("/account")
            .wrap(page())
            .route(web::get().to(account::page)),
    )
    .service(
        web::resource("/account/unlink/{provider}")
            .wrap(page())
            .route(web::post().to(account::unlink)),
    )
    .service(
        web::resource("/account/sign-out-everywhere")
            .wrap(page())
            .route(web::post().to(account::sign_out_everywhere)),
    )
    .service(
        web::resource("/account/notifications")
            .wrap(page())
            .route(web::post().to(account::notifications)),
    )
    .service(
        web::resource("/account/delete")
            .wrap(page())
            .route(web::post().to(account::delete)),
    )
    .service(web::resource("/lang/{code}").route(web::get().to(switch_language)))
    .service(web::resource("/sw.js").route(web::get().to(service_worker)))
    .service(web::resource("/manifest.webmanifest").route(web::get().to(manifest)));
}

/// The template data every viewer page's layout needs.
pub struct Frame {
    pub t: &'static super::i18n::Texts,
    /// The signed-in viewer's e-mail (or name), if any.
    pub me: Option<String>,
    /// This page's path, for the language switch and sign-in's way back.
    pub here: String,
    pub here_encoded: String,
}

impl Frame {
    pub fn new(req: &HttpRequest, user: Option<&crate::store::users::User>) -> Frame {
        let here = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Frame {
            t: Lang::of(req).texts(),
            me: user.map(|u| {
                u.name
                    .clone()
                    .or_else(|| u.email.clone())
                    .unwrap_or_else(|| "—".into())
            }),
            here_encoded: super::error::encode_query(&here),
            here,
        }
    }
}

#[derive(Deserialize)]
pub struct BackQuery {
    back: Option<String>,
}

/// `GET /lang/{en|ko}?back=/path`: remembers the choice for a year and goes back.
async fn switch_language(path: web::Path<String>, query: web::Query<BackQuery>) -> HttpResponse {
    let back = query
        .back
        .as_deref()
        .filter(|b| crate::auth::signin::local_path(b))
        .unwrap_or("/")
        .to_string();
    let mut answer = HttpResponse::SeeOther();
    answer.insert_header((header::LOCATION, back));
    if let Some(lang) = Lang::parse(&path) {
        answer.cookie(
            actix_web::cookie::Cookie::build(LANG_COOKIE, lang.code())
                .path("/")
                .same_site(actix_web::cookie::SameSite::Lax)
                .max_age(actix_web::cookie::time::Duration::days(365))
                .finish(),
        );
    }
    answer.finish()
}

/// The service worker at the root, so that its scope is the whole app.
async fn service_worker() -> PageResult<HttpResponse> {
    super::assets::file_response("viewer/sw.js", "text/javascript; charset=utf-8")
}

async fn manifest() -> PageResult<HttpResponse> {
    super::assets::file_response("viewer/manifest.webmanifest", "application/manifest+json")
}
