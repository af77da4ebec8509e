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
use crate::api::views::analytics::{
    report_csv, retention_csv, ExportFormat, Granularity, ReportView, RetentionView,
};
use crate::catalogue;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// First day, `YYYY-MM-DD` in the server's analytics time zone (default: 29 days
    /// before `to`).
    #[param(example = "2026-11-01")]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today); at most 731 days after `from`.
    #[param(example = "2026-11-30")]
    to: Option<String>,
    /// Only this film's numbers (a film id).
    film: Option<String>,
    /// `day` (default), `week` or `month`.
    #[param(value_type = Option<Granularity>)]
    granularity: Option<String>,
    /// `json` (default) or `csv`: the series as a CSV download.
    #[param(value_type = Option<ExportFormat>)]
    format: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// `json` (default) or `csv`: the curve as a CSV download.
    #[param(value_type = Option<ExportFormat>)]
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

#[utoipa::path(
    get,
    operation_id = "adminAnalyticsReport",
    path = "/api/v1/admin/analytics",
    tag = "admin",
    summary = "A range's series, totals, funnel, conversion and top films",
    params(ReportParams),
    responses(
        (status = 200, description = "The report; with `format=csv` the series as a CSV attachment", content(
            (ReportView = "application/json"),
            (String = "text/csv"),
        ), headers(("Content-Disposition" = String, description = "On CSV only: `attachment; filename=\"analytics-{from}-{to}.csv\"`"))),
        (status = 400, description = "`invalid_query`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_range`: not a date, `from` after `to`, longer than 731 days (with `max_days`), an unknown granularity or format", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
    if as_csv {
        let report = crate::analytics::report::series(&state.store, query)?;
        let name = format!(
            "analytics-{}-{}",
            crate::analytics::calendar::format_day(from),
            crate::analytics::calendar::format_day(to)
        );
        return Ok(crate::api::views::csv::attachment(
            report_csv(&report),
            &name,
        ));
    }
    let report = crate::analytics::report(&state.store, query)?;
    Ok(HttpResponse::Ok().json(ReportView::new(&report, calendar.name())))
}

#[utoipa::path(
    get,
    operation_id = "adminFilmRetention",
    path = "/api/v1/admin/analytics/films/{id}/retention",
    tag = "admin",
    summary = "How many viewers reached each segment of a film",
    params(
        ("id" = String, Path, description = "The film id"),
        FormatParam,
    ),
    responses(
        (status = 200, description = "The curve; with `format=csv` as a CSV attachment", content(
            (RetentionView = "application/json"),
            (String = "text/csv"),
        ), headers(("Content-Disposition" = String, description = "On CSV only: `attachment; filename=\"retention-{id}.csv\"`"))),
        (status = 400, description = "`invalid_query`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
        (status = 404, description = "`not_found`: no such film", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_range`: an unknown format", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
        return Ok(crate::api::views::csv::attachment(
            retention_csv(&curve),
            &format!("retention-{}", film.id),
        ));
    }
    Ok(HttpResponse::Ok().json(RetentionView::new(&curve, Some(film.title))))
}
