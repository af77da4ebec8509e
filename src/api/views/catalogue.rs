//! What viewers see of films: the catalogue, starting playback, and progress.

use serde::Serialize;
use uuid::Uuid;

use crate::store::films::{Film, Price};
use crate::stream::gate;

use super::enums::EntitlementView;
use crate::stream::progress::ProgressView;

/// A price in one currency.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PriceView {
    /// Integer minor units (cents for USD, won for KRW).
    pub amount: u64,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

impl From<&Price> for PriceView {
    fn from(p: &Price) -> Self {
        Self {
            amount: p.amount,
            currency: p.currency.clone(),
        }
    }
}

pub fn prices(prices: &[Price]) -> Vec<PriceView> {
    prices.iter().map(PriceView::from).collect()
}

/// A film in the catalogue (`GET /films`, `GET /films/{id}`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "7b0e4c1a-5d2f-4f7e-9a61-3c8d2e9b4f10",
    "title": "Harbour Lights",
    "description": "A night ferry, two strangers.",
    "prices": [{"amount": 500, "currency": "USD"}, {"amount": 6500, "currency": "KRW"}],
    "duration_seconds": 5412.0,
    "poster_url": "/api/v1/films/7b0e4c1a-5d2f-4f7e-9a61-3c8d2e9b4f10/poster.jpg",
    "total_segments": 902,
    "preview_segments": 91,
    "preview_seconds": 546.0
}))]
pub struct FilmView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub prices: Vec<PriceView>,
    pub duration_seconds: f64,
    pub poster_url: String,
    pub total_segments: usize,
    pub preview_segments: usize,
    pub preview_seconds: f64,
}

impl FilmView {
    /// `preview_fraction` is `playback.preview_fraction`: what a non-buyer may watch.
    pub fn new(film: &Film, preview_fraction: f64) -> Self {
        let (duration, total) = film
            .package
            .as_ref()
            .map_or((0.0, 0), |p| (p.duration, p.segments));
        let preview = gate::preview_segments(total, preview_fraction);
        let preview_seconds = if total == 0 {
            0.0
        } else {
            (duration * preview as f64 / total as f64 * 10.0).round() / 10.0
        };
        Self {
            id: film.id,
            title: film.title.clone(),
            description: film.description.clone(),
            prices: prices(&film.prices),
            duration_seconds: duration,
            poster_url: format!("/api/v1/films/{}/poster.jpg", film.id),
            total_segments: total,
            preview_segments: preview,
            preview_seconds,
        }
    }
}

/// `GET /films`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FilmList {
    pub films: Vec<FilmView>,
}

/// `POST /films/{id}/playback`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "master_url": "https://films.example.com/hls/pt_2f9c…/master.m3u8",
    "entitlement": "preview",
    "preview_segments": 91,
    "total_segments": 902,
    "resume_at_seconds": 0.0,
    "expires_at": 1796601600,
    "token_id": "2f9c41d07a3b"
}))]
pub struct PlaybackResponse {
    pub master_url: String,
    pub entitlement: EntitlementView,
    pub preview_segments: usize,
    pub total_segments: usize,
    pub resume_at_seconds: f64,
    pub expires_at: i64,
    /// Names the token in support requests and logs; not a credential.
    pub token_id: String,
}

/// A viewer's progress in one film (`GET /films/{id}/progress`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "coverage": 0.42,
    "covered_segments": 379,
    "total_segments": 902,
    "last_segment": 378,
    "watch_seconds": 2274.0,
    "active_seconds": 2290.5,
    "required_active_seconds": 4870.8,
    "resume_at_seconds": 2268.0,
    "unlocked": false
}))]
pub struct ProgressResponse {
    pub coverage: f64,
    pub covered_segments: usize,
    pub total_segments: usize,
    pub last_segment: Option<u32>,
    pub watch_seconds: f64,
    /// Wall-clock seconds of watching at a believable pace (`null` for progress that had
    /// unlocked before it was measured).
    pub active_seconds: Option<f64>,
    /// What the unlock needs of it: `unlock_fraction × duration ÷ max_pace`.
    pub required_active_seconds: f64,
    pub resume_at_seconds: f64,
    pub unlocked: bool,
}

impl From<ProgressView> for ProgressResponse {
    fn from(p: ProgressView) -> Self {
        Self {
            coverage: p.coverage,
            covered_segments: p.covered_segments,
            total_segments: p.total_segments,
            last_segment: p.last_segment,
            watch_seconds: p.watch_seconds,
            active_seconds: p.active_seconds,
            required_active_seconds: p.required_active_seconds,
            resume_at_seconds: p.resume_at_seconds,
            unlocked: p.unlocked,
        }
    }
}

/// One film in `GET /me/progress`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FilmProgress {
    #[schema(value_type = String)]
    pub film_id: Uuid,
    pub title: String,
    #[serde(flatten)]
    pub progress: ProgressResponse,
}

/// `GET /me/progress`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProgressList {
    pub films: Vec<FilmProgress>,
}
