//! `/admin/analytics`: a range's figures from the analytics rollups — totals, revenue over
//! time by currency, the funnel, a film's retention curve, the top films by revenue and by
//! watch hours — as charts (chart.js, fed from `data-chart` attributes by
//! `web/assets/console/analytics.js`) with the same figures in tables, and CSV exports of
//! the series and the curve. The range is read as the JSON API reads it
//! (`analytics::Query::from_request`), days in `analytics.timezone`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{render, view};
use crate::analytics::calendar::{format_day, Calendar};
use crate::analytics::report::{Report, Retention};
use crate::analytics::Query;
use crate::api::views::analytics::{report_csv, retention_csv};
use crate::catalogue;
use crate::state::AppState;
use crate::web::error::PageResult;
use crate::web::session::ConsoleAdmin;

#[derive(Deserialize)]
pub struct Params {
    from: Option<String>,
    to: Option<String>,
    film: Option<String>,
    granularity: Option<String>,
}

/// One chart as `analytics.js` draws it (serialised into the canvas's `data-chart`).
#[derive(Serialize)]
struct Chart {
    #[serde(rename = "type")]
    kind: &'static str,
    labels: Vec<String>,
    datasets: Vec<Dataset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'static str>,
    horizontal: bool,
    x: &'static str,
    y: &'static str,
}

#[derive(Serialize)]
struct Dataset {
    label: String,
    data: Vec<f64>,
}

impl Chart {
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub struct FilmOption {
    pub id: String,
    pub title: String,
    pub selected: bool,
}

pub struct Figure {
    pub label: &'static str,
    pub value: String,
}

pub struct Row {
    pub cells: Vec<String>,
}

pub struct TopRow {
    pub film_id: String,
    pub title: String,
    pub value: String,
}

pub struct TopList {
    pub heading: String,
    pub rows: Vec<TopRow>,
}

pub struct RetentionBox {
    pub film_id: String,
    pub title: String,
    pub viewers: u64,
    pub chart: String,
    pub rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "console/analytics.html")]
struct AnalyticsPage {
    me: String,
    section: &'static str,
    zone: String,
    from: String,
    to: String,
    granularity: String,
    films: Vec<FilmOption>,
    film_selected: bool,
    error: Option<String>,
    figures: Vec<Figure>,
    revenue_chart: String,
    revenue_head: Vec<String>,
    revenue_rows: Vec<Row>,
    funnel_chart: String,
    funnel_rows: Vec<Row>,
    retention: Option<RetentionBox>,
    top_revenue: Vec<TopList>,
    top_hours: TopList,
    export: String,
}

fn calendar(state: &AppState) -> Calendar {
    // Checked at start; a zone file removed since falls back to UTC days.
    Calendar::new(&state.config.analytics.timezone).unwrap_or_else(|_| Calendar::utc())
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Watch time as hours and minutes (`12:05:00`), so a small figure is not `0.0 h`.
fn hours(seconds: f64) -> String {
    view::duration(seconds)
}

/// Minor units → major units as a number, for a chart's axis (tables print `view::money`).
fn major(amount: i64, currency: &str) -> f64 {
    amount as f64 / 10f64.powi(crate::money::exponent(currency) as i32)
}

/// The query string that asks for the same range (the export links).
fn same_range(q: &Query) -> String {
    let mut s = format!(
        "from={}&to={}&granularity={}",
        format_day(q.from),
        format_day(q.to),
        q.granularity.as_str()
    );
    if let Some(f) = q.film {
        s.push_str(&format!("&film={f}"));
    }
    s
}

fn revenue_by_currency(c: &crate::store::analytics::DayRollup) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for amounts in c.revenue.values() {
        for (currency, amount) in amounts {
            *out.entry(currency.clone()).or_insert(0) += amount;
        }
    }
    out
}

pub async fn page(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> PageResult<HttpResponse> {
    let calendar = calendar(&state);
    let today = calendar.day_of(state.clock.now());
    let film = match params.film.as_deref() {
        None | Some("") => None,
        Some(id) => Some(catalogue::film(&state.store, id)?),
    };
    let asked = Query::from_request(
        params.from.as_deref(),
        params.to.as_deref(),
        params.granularity.as_deref(),
        film.as_ref().map(|f| f.id),
        today,
    );
    // A range the form cannot make (typed into the address): the form again, with why,
    // over the default range.
    let (query, error) = match asked {
        Ok(q) => (q, None),
        Err(e) => (
            Query::from_request(None, None, None, film.as_ref().map(|f| f.id), today)?,
            Some(e.to_string()),
        ),
    };
    let store = state.store.clone();
    let (report, all_films) = web::block(move || -> Result<_, crate::store::StoreError> {
        Ok((crate::analytics::report(&store, query)?, store.films()?))
    })
    .await??;
    // The curve of the chosen film, else of the film most watched in the range.
    let curve_film = film
        .clone()
        .or_else(|| {
            let id = report.top_by_watch_hours.first()?.film;
            all_films.iter().find(|f| f.id == id).cloned()
        })
        .filter(|f| f.package.is_some());
    let retention = match curve_film {
        Some(f) => {
            let store = state.store.clone();
            let id = f.id;
            let curve = web::block(move || crate::analytics::retention(&store, &id)).await??;
            // Segment start times label the curve; the film's cached playlists have them.
            let starts = match state.playback_access().playback_of(&f).await {
                Ok(p) => p
                    .manifest
                    .segments
                    .iter()
                    .scan(0.0, |t, d| {
                        let start = *t;
                        *t += d;
                        Some(start)
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            Some(retention_box(&f.id, &f.title, &curve, &starts))
        }
        None => None,
    };
    let mut films: Vec<FilmOption> = all_films
        .iter()
        .map(|f| FilmOption {
            id: f.id.to_string(),
            title: f.title.clone(),
            selected: Some(f.id) == query.film,
        })
        .collect();
    films.sort_by_key(|f| f.title.to_lowercase());
    let titles: BTreeMap<Uuid, String> =
        all_films.iter().map(|f| (f.id, f.title.clone())).collect();
    let page = build(
        admin.user.email.clone().unwrap_or_default(),
        calendar.name().to_string(),
        &query,
        films,
        error,
        &report,
        retention,
        &titles,
    );
    let status = if page.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut answer = render(&page)?;
    *answer.status_mut() = status;
    Ok(answer)
}

#[allow(clippy::too_many_arguments)]
fn build(
    me: String,
    zone: String,
    query: &Query,
    films: Vec<FilmOption>,
    error: Option<String>,
    report: &Report,
    retention: Option<RetentionBox>,
    titles: &BTreeMap<Uuid, String>,
) -> AnalyticsPage {
    let t = &report.totals;
    let mut figures = vec![
        Figure {
            label: "Viewers",
            value: report.funnel.viewers.to_string(),
        },
        Figure {
            label: "Preview starts",
            value: t.preview_starts.to_string(),
        },
        Figure {
            label: "Preview completions",
            value: t.preview_completions.to_string(),
        },
        Figure {
            label: "Purchases",
            value: t.purchases.to_string(),
        },
        Figure {
            label: "Refunds",
            value: t.refunds.to_string(),
        },
        Figure {
            label: "Preview → purchase",
            value: percent(report.conversion.rate),
        },
        Figure {
            label: "Watch time",
            value: hours(t.watch_seconds),
        },
        Figure {
            label: "Completion (90%)",
            value: percent(report.completion_rate),
        },
        Figure {
            label: "New users",
            value: t.new_users.to_string(),
        },
        Figure {
            label: "Supports",
            value: t.supports.to_string(),
        },
        Figure {
            label: "Tips",
            value: t.tips.to_string(),
        },
    ];
    let totals = revenue_by_currency(t);
    figures.insert(
        4,
        Figure {
            label: "Revenue (net of refunds)",
            value: if totals.is_empty() {
                "—".into()
            } else {
                totals
                    .iter()
                    .map(|(c, a)| view::money(*a, c))
                    .collect::<Vec<_>>()
                    .join(" · ")
            },
        },
    );

    // Revenue over time: one line per currency, in major units.
    let currencies: Vec<String> = totals.keys().cloned().collect();
    let labels: Vec<String> = report.series.iter().map(|b| format_day(b.start)).collect();
    let per_bucket: Vec<BTreeMap<String, i64>> = report
        .series
        .iter()
        .map(|b| revenue_by_currency(&b.counts))
        .collect();
    let revenue_chart = Chart {
        kind: "line",
        labels: labels.clone(),
        datasets: currencies
            .iter()
            .map(|c| Dataset {
                label: c.clone(),
                data: per_bucket
                    .iter()
                    .map(|m| major(m.get(c).copied().unwrap_or(0), c))
                    .collect(),
            })
            .collect(),
        unit: None,
        horizontal: false,
        x: "",
        y: "revenue",
    }
    .json();
    let mut revenue_head = vec!["From".to_string()];
    revenue_head.extend(currencies.iter().cloned());
    revenue_head.extend(["Purchases".into(), "Viewers".into(), "Watch time".into()]);
    let revenue_rows = report
        .series
        .iter()
        .zip(&per_bucket)
        .map(|(b, m)| {
            let mut cells = vec![format_day(b.start)];
            cells.extend(
                currencies
                    .iter()
                    .map(|c| view::money(m.get(c).copied().unwrap_or(0), c)),
            );
            cells.push(b.counts.purchases.to_string());
            cells.push(b.counts.viewers.to_string());
            cells.push(hours(b.counts.watch_seconds));
            Row { cells }
        })
        .collect();

    let f = &report.funnel;
    let steps = [
        ("Viewers", f.viewers),
        ("Preview completions", f.preview_completions),
        ("Checkouts", f.checkouts),
        ("Purchases", f.purchases),
        ("Completions", f.completions),
    ];
    let funnel_chart = Chart {
        kind: "bar",
        labels: steps.iter().map(|(l, _)| (*l).to_string()).collect(),
        datasets: vec![Dataset {
            label: "viewers".into(),
            data: steps.iter().map(|(_, n)| *n as f64).collect(),
        }],
        unit: None,
        horizontal: true,
        x: "",
        y: "",
    }
    .json();
    let funnel_rows = steps
        .iter()
        .map(|(label, n)| Row {
            cells: vec![
                (*label).to_string(),
                n.to_string(),
                percent((f.viewers > 0).then(|| *n as f64 / f.viewers as f64)),
            ],
        })
        .collect();

    let title = |id: &Uuid, known: &Option<String>| {
        known
            .clone()
            .or_else(|| titles.get(id).cloned())
            .unwrap_or_else(|| "(deleted film)".into())
    };
    let top_revenue = report
        .top_by_revenue
        .iter()
        .map(|(currency, ranked)| TopList {
            heading: format!("Top films by revenue ({currency})"),
            rows: ranked
                .iter()
                .map(|r| TopRow {
                    film_id: r.film.to_string(),
                    title: title(&r.film, &r.title),
                    value: view::money(r.value, currency),
                })
                .collect(),
        })
        .collect();
    let top_hours = TopList {
        heading: "Top films by watch time".into(),
        rows: report
            .top_by_watch_hours
            .iter()
            .map(|r| TopRow {
                film_id: r.film.to_string(),
                title: title(&r.film, &r.title),
                value: hours(r.value * 3600.0),
            })
            .collect(),
    };
    AnalyticsPage {
        me,
        section: "analytics",
        zone,
        from: format_day(query.from),
        to: format_day(query.to),
        granularity: query.granularity.as_str().into(),
        films,
        film_selected: query.film.is_some(),
        error,
        figures,
        revenue_chart,
        revenue_head,
        revenue_rows,
        funnel_chart,
        funnel_rows,
        retention,
        top_revenue,
        top_hours,
        export: same_range(query),
    }
}

fn retention_box(film: &Uuid, title: &str, curve: &Retention, starts: &[f64]) -> RetentionBox {
    let label = |segment: u32| match starts.get(segment as usize) {
        Some(t) => view::duration(*t),
        None => format!("#{segment}"),
    };
    let chart = Chart {
        kind: "line",
        labels: curve.points.iter().map(|p| label(p.segment)).collect(),
        datasets: vec![Dataset {
            label: "share of viewers".into(),
            data: curve.points.iter().map(|p| p.share).collect(),
        }],
        unit: Some("percent"),
        horizontal: false,
        x: "position in the film",
        y: "",
    }
    .json();
    RetentionBox {
        film_id: film.to_string(),
        title: title.to_string(),
        viewers: curve.viewers,
        chart,
        rows: curve
            .points
            .iter()
            .map(|p| Row {
                cells: vec![
                    p.segment.to_string(),
                    label(p.segment),
                    p.viewers.to_string(),
                    percent(Some(p.share)),
                ],
            })
            .collect(),
    }
}

/// `/admin/analytics/report.csv`: the series of the range, as the JSON API's
/// `?format=csv` writes it.
pub async fn report_export(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    params: web::Query<Params>,
) -> PageResult<HttpResponse> {
    let today = calendar(&state).day_of(state.clock.now());
    let film = match params.film.as_deref() {
        None | Some("") => None,
        Some(id) => Some(catalogue::film(&state.store, id)?.id),
    };
    let query = Query::from_request(
        params.from.as_deref(),
        params.to.as_deref(),
        params.granularity.as_deref(),
        film,
        today,
    )?;
    let store = state.store.clone();
    let report = web::block(move || crate::analytics::report(&store, query)).await??;
    let name = format!(
        "analytics-{}-{}",
        format_day(query.from),
        format_day(query.to)
    );
    Ok(crate::api::views::csv::attachment(
        report_csv(&report),
        &name,
    ))
}

/// `/admin/analytics/films/{id}/retention.csv`: the film's retention curve.
pub async fn retention_export(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let film = catalogue::film(&state.store, &path)?;
    let store = state.store.clone();
    let id = film.id;
    let curve = web::block(move || crate::analytics::retention(&store, &id)).await??;
    Ok(crate::api::views::csv::attachment(
        retention_csv(&curve),
        &format!("retention-{}", film.id),
    ))
}
