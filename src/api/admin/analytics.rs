//! `GET /admin/analytics` (a range's series, totals, funnel, conversion and top films) and
//! `GET /admin/analytics/films/{id}/retention`. JSON by default; `?format=csv` answers the
//! series (or the curve) as CSV, so an export is a plain link.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::analytics::calendar::Calendar;
use crate::analytics::Query;
use crate::api::codes::Code;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::Admin;
use crate::api::views::analytics::{report_csv, retention_csv, ReportView, RetentionView};
use crate::catalogue;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    film: Option<String>,
    granularity: Option<String>,
    format: Option<String>,
}

#[derive(Deserialize)]
pub struct FormatParam {
    format: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Code::InvalidRange,
        message,
    )
}

/// Whether CSV was asked for (`format=csv`; `json` or nothing: JSON).
fn wants_csv(format: Option<&str>) -> ApiResult<bool> {
    match format {
        None | Some("") | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(invalid(format!("format {other:?} is not json or csv"))),
    }
}

fn calendar(state: &AppState) -> Calendar {
    // Checked at start; a zone file removed since falls back to UTC days.
    Calendar::new(&state.config.analytics.timezone).unwrap_or_else(|_| Calendar::utc())
}

fn csv(body: String, name: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}.csv\""),
        ))
        .body(body)
}

pub async fn report(
    state: web::Data<AppState>,
    _admin: Admin,
    params: web::Query<ReportParams>,
) -> ApiResult<HttpResponse> {
    let calendar = calendar(&state);
    let as_csv = wants_csv(params.format.as_deref())?;
    let mut query = Query::from_request(
        params.from.as_deref(),
        params.to.as_deref(),
        params.granularity.as_deref(),
        None,
        calendar.day_of(state.clock.now()),
    )?;
    query.film = match params.film.as_deref() {
        None | Some("") => None,
        Some(id) => Some(catalogue::film(&state.store, id)?.id),
    };
    let (from, to) = (query.from, query.to);
    let report = crate::analytics::report(&state.store, query)?;
    if as_csv {
        let name = format!(
            "analytics-{}-{}",
            crate::analytics::calendar::format_day(from),
            crate::analytics::calendar::format_day(to)
        );
        return Ok(csv(report_csv(&report), &name));
    }
    Ok(HttpResponse::Ok().json(ReportView::new(&report, calendar.name())))
}

pub async fn retention(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    params: web::Query<FormatParam>,
) -> ApiResult<HttpResponse> {
    let as_csv = wants_csv(params.format.as_deref())?;
    let film = catalogue::film(&state.store, &path)?;
    let curve = crate::analytics::retention(&state.store, &film.id)?;
    if as_csv {
        return Ok(csv(
            retention_csv(&curve),
            &format!("retention-{}", film.id),
        ));
    }
    Ok(HttpResponse::Ok().json(RetentionView::new(&curve, Some(film.title))))
}
