//! A film's page: poster, description, duration, price, the play button, and the public
//! support and comment counts. The player, the paywall and the comments panel join it in
//! their own modules.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::catalogue::first_price;
use super::Frame;
use crate::api::error::ApiError;
use crate::catalogue;
use crate::state::AppState;
use crate::web::console::{render, view};
use crate::web::error::PageResult;
use crate::web::session::Visitor;

#[derive(Template)]
#[template(path = "viewer/film.html")]
struct FilmPage {
    f: Frame,
    id: String,
    title: String,
    description: String,
    duration: String,
    prices: Vec<String>,
    price: String,
    supporters: u64,
    comments: u64,
    signed_in: bool,
    preview_percent: u32,
}

pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let counts = state.store.social_counts(&film.id)?;
    render(&FilmPage {
        f: Frame::new(&req, visitor.user.as_ref()),
        id: film.id.to_string(),
        title: film.title.clone(),
        description: film.description.clone(),
        duration: film
            .package
            .as_ref()
            .map(|p| view::duration(p.duration))
            .unwrap_or_default(),
        prices: film
            .prices
            .iter()
            .map(|p| view::money(p.amount as i64, &p.currency))
            .collect(),
        price: first_price(&film),
        supporters: counts.supporters,
        comments: counts.comments,
        signed_in: visitor.user.is_some(),
        preview_percent: (state.config.playback.preview_fraction * 100.0).round() as u32,
    })
}

/// `GET /films/{id}/poster`: a watchable film's poster, cacheable for an hour.
pub async fn poster(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let playback = state
        .playback_access()
        .playback_of(&film)
        .await
        .map_err(ApiError::from)?;
    let poster = playback.dir.join(transcoder::POSTER_FILE);
    Ok(
        crate::server::files::jpeg(&req, &poster, Some("public, max-age=3600"))
            .await
            .ok_or_else(|| ApiError::not_found("poster"))?,
    )
}
