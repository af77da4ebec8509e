//! `GET /admin/analytics` (a range's series, totals, funnel, conversion and top films) and
//! `GET /admin/analytics/films/{id}/retention`. JSON by default; `?format=csv` answers the
//! series (or the curve) as CSV, so an export is a plain link.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::analytics::calendar::{parse_date, Calendar};
use crate::analytics::{Granularity, Query};
use crate::api::codes::Code;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::Admin;
use crate::api::views::analytics::{report_csv, retention_csv, ReportView, RetentionView};
use crate::catalogue;
use crate::state::AppState;

/// The range a report covers without `from`: the 30 days ending with `to`.
const DEFAULT_DAYS: i32 = 30;

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

fn date(name: &str, text: Option<&str>) -> ApiResult<Option<i32>> {
    match text {
        None | Some("") => Ok(None),
        Some(t) => parse_date(t)
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} {t:?} is not a date (YYYY-MM-DD)"))),
    }
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
    let to =
        date("to", params.to.as_deref())?.unwrap_or_else(|| calendar.day_of(state.clock.now()));
    let from = date("from", params.from.as_deref())?.unwrap_or(to - (DEFAULT_DAYS - 1));
    let granularity = match params.granularity.as_deref() {
        None | Some("") => Granularity::Day,
        Some(g) => Granularity::parse(g)
            .ok_or_else(|| invalid(format!("granularity {g:?} is not day, week or month")))?,
    };
    let film = match params.film.as_deref() {
        None | Some("") => None,
        Some(id) => Some(catalogue::film(&state.store, id)?.id),
    };
    let query = Query {
        from,
        to,
        film,
        granularity,
    };
    query.check()?;
    if as_csv {
        let report = crate::analytics::report::series(&state.store, query)?;
        let name = format!(
            "analytics-{}-{}",
            crate::analytics::calendar::format_day(from),
            crate::analytics::calendar::format_day(to)
        );
        return Ok(csv(report_csv(&report), &name));
    }
    let report = crate::analytics::report(&state.store, query)?;
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
