//! The player (`/films/{id}/watch`), its paywall and the web checkout. The page gets a
//! playback token server-side (the same call as `POST /api/v1/films/{id}/playback`) and
//! hands `player.js` what it needs in data attributes; a non-buyer's playlist ends at the
//! preview boundary, where the paywall offers the providers that take one of the film's
//! currencies. The checkout is the JSON checkout's domain call, with the watch page as the
//! order's way back: the return lands here again, at the boundary, with the full playlist.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::Frame;
use crate::api::error::ApiError;
use crate::catalogue;
use crate::state::AppState;
use crate::store::films::Film;
use crate::stream::gate::{self, Entitlement};
use crate::stream::progress::ProgressView;
use crate::web::console::{render, view};
use crate::web::error::PageResult;
use crate::web::i18n::Texts;
use crate::web::session::{SignedIn, Visitor};

/// One way to pay on the paywall: a provider and the price it would charge.
struct PayOption {
    id: &'static str,
    name: &'static str,
    price: String,
}

#[derive(Template)]
#[template(path = "viewer/watch.html")]
struct WatchPage {
    f: Frame,
    id: String,
    title: String,
    master: String,
    start_at: f64,
    preview_segments: usize,
    total_segments: usize,
    boundary: f64,
    full: bool,
    expires_at: i64,
    coverage: u32,
    price: String,
    for_sale: bool,
    options: Vec<PayOption>,
    /// The answer the viewer came back with from a checkout, in words.
    paid: Option<&'static str>,
    unpaid: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "viewer/watch_coverage.html")]
struct CoverageBox {
    f: Frame,
    id: String,
    coverage: Option<u32>,
}

#[derive(Deserialize)]
pub struct WatchQuery {
    /// Where to start (the checkout's return: the preview boundary).
    t: Option<f64>,
    /// `paid|pending|cancelled|failed`, set by the payment return.
    payment: Option<String>,
}

/// Seconds of film in the first `segments` segments.
fn seconds_of(durations: &[f64], segments: usize) -> f64 {
    durations.iter().take(segments).sum()
}

fn percent(view: &ProgressView) -> u32 {
    (view.coverage * 100.0).floor().clamp(0.0, 100.0) as u32
}

fn provider_name(t: &'static Texts, id: &'static str) -> &'static str {
    match id {
        "dev" => t.provider_dev,
        "paypal" => t.provider_paypal,
        "kakaopay" => t.provider_kakaopay,
        "naverpay" => t.provider_naverpay,
        other => other,
    }
}

/// The providers that take one of the film's currencies, each with the first such price
/// (the one the checkout would charge: `OrderService::checkout` picks it the same way).
fn pay_options(state: &AppState, film: &Film, t: &'static Texts) -> Vec<PayOption> {
    state
        .payments
        .ids()
        .into_iter()
        .filter_map(|id| {
            let provider = state.payments.get(id)?;
            let price = film.prices.iter().find(|p| provider.accepts(&p.currency))?;
            Some(PayOption {
                id,
                name: provider_name(t, id),
                price: view::money(price.amount as i64, &price.currency),
            })
        })
        .collect()
}

/// `GET /films/{id}/watch`: the player.
pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: SignedIn,
    path: web::Path<String>,
    query: web::Query<WatchQuery>,
) -> PageResult<HttpResponse> {
    let user = viewer.user;
    let film = catalogue::watchable(&state.store, &path)?;
    let playback = state
        .playback_access()
        .playback_of(&film)
        .await
        .map_err(ApiError::from)?;
    let durations = &playback.manifest.segments;
    let progress = state
        .progress
        .view(&user.id, &film.id, durations, std::time::Instant::now())
        .map_err(ApiError::from)?;
    let entitlement = gate::playback_entitlement(&state.store, &user, &film.id)?;
    let (token, master, expires_at) =
        state
            .playback_access()
            .start(&user, &film, state.clock.now());
    tracing::info!(user = %user.id, film = %film.id, token = %token.id_hex(), ?entitlement, "playback started (web)");
    let f = Frame::new(&req, Some(&user));
    let t = f.t;
    let full = entitlement == Entitlement::Full;
    let total = seconds_of(durations, durations.len());
    // `t` is the boundary a purchase continues from: for a viewer still on the preview
    // (a payment not confirmed yet) it would start at the end, so the resume point it is.
    let start_at = query
        .t
        .filter(|s| full && s.is_finite() && *s >= 0.0)
        .unwrap_or(progress.resume_at_seconds)
        .min(total);
    let (paid, unpaid) = match query.payment.as_deref() {
        // The page's own word only: what plays is what the server grants.
        Some("paid") if full => (Some(t.payment_paid), None),
        Some("paid") | Some("pending") => (Some(t.payment_pending), None),
        Some("cancelled") => (None, Some(t.payment_cancelled)),
        Some("failed") => (None, Some(t.payment_failed)),
        _ => (None, None),
    };
    let page = WatchPage {
        id: film.id.to_string(),
        title: film.title.clone(),
        master,
        start_at,
        preview_segments: playback.preview,
        total_segments: playback.segment_count(),
        boundary: seconds_of(durations, playback.preview),
        full,
        expires_at,
        coverage: percent(&progress),
        price: super::catalogue::first_price(&film),
        for_sale: !film.prices.is_empty(),
        options: pay_options(&state, &film, t),
        paid,
        unpaid,
        f,
    };
    let mut response = render(&page)?;
    // The page carries a playback token.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `GET /films/{id}/watch/coverage`: the counted share, polled by the page. A visitor
/// whose session ended mid-film keeps watching (the playback token lives on): the box
/// says so instead of sending them away.
pub async fn coverage(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let coverage = match &visitor.user {
        Some(user) => {
            let playback = state
                .playback_access()
                .playback_of(&film)
                .await
                .map_err(ApiError::from)?;
            let view = state
                .progress
                .view(
                    &user.id,
                    &film.id,
                    &playback.manifest.segments,
                    std::time::Instant::now(),
                )
                .map_err(ApiError::from)?;
            Some(percent(&view))
        }
        None => None,
    };
    let mut page = Frame::new(&req, visitor.user.as_ref());
    // The sign-in link goes back to the player, not to this fragment.
    page.here = format!("/films/{}/watch", film.id);
    page.here_encoded = crate::web::error::encode_query(&page.here);
    render(&CoverageBox {
        f: page,
        id: film.id.to_string(),
        coverage,
    })
}

#[derive(Deserialize)]
pub struct CheckoutForm {
    provider: String,
    /// `1` when the page is laid out for a phone (player.js sets it from the viewport).
    #[serde(default)]
    mobile: Option<String>,
}

/// A phone's browser: the viewport hint from the page, else the User-Agent.
fn on_phone(req: &HttpRequest, hint: Option<&str>) -> bool {
    if let Some(hint) = hint.filter(|h| !h.is_empty()) {
        return hint == "1";
    }
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("Mobi") || ua.contains("Android") || ua.contains("iPhone"))
}

/// `POST /films/{id}/checkout` (htmx): starts the same checkout as the JSON API and sends
/// the browser to the provider (`HX-Redirect`). The payer comes back to the watch page at
/// the preview boundary.
pub async fn checkout(
    state: web::Data<AppState>,
    req: HttpRequest,
    viewer: SignedIn,
    path: web::Path<String>,
    form: web::Form<CheckoutForm>,
) -> PageResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let playback = state
        .playback_access()
        .playback_of(&film)
        .await
        .map_err(ApiError::from)?;
    let boundary = seconds_of(&playback.manifest.segments, playback.preview);
    let return_to = format!("/films/{}/watch?t={boundary}", film.id);
    let started = state
        .orders()
        .checkout_returning(&viewer.user.id, &film, &form.provider, Some(return_to))
        .await?;
    let to = match started.mobile_url {
        Some(mobile) if on_phone(&req, form.mobile.as_deref()) => mobile,
        _ => started.redirect_url,
    };
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("HX-Redirect", to))
        .finish())
}
