//! `GET /api/v1/admin/analytics` and `…/films/{id}/retention`: JSON and CSV.

use std::collections::BTreeSet;

use serde::Serialize;
use uuid::Uuid;

use super::csv;
use crate::analytics::calendar::format_day;
use crate::analytics::report::{Bucket, Ranked, Report, Retention};
use crate::store::analytics::DayRollup;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revenue {
    pub provider: String,
    pub currency: String,
    /// Minor units, captures minus refunds.
    pub amount: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Amount {
    pub currency: String,
    pub amount: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub viewers: u64,
    pub active_viewers: u64,
    pub preview_starts: u64,
    pub preview_completions: u64,
    pub checkouts: u64,
    pub checkout_viewers: u64,
    pub purchases: u64,
    pub buyers: u64,
    pub converted: u64,
    pub refunds: u64,
    pub revenue: Vec<Revenue>,
    pub watch_seconds: f64,
    pub watch_hours: f64,
    pub completions: u64,
    pub new_users: u64,
    pub supports: u64,
    pub tips: u64,
    pub tip_amounts: Vec<Amount>,
}

impl From<&DayRollup> for Counts {
    fn from(c: &DayRollup) -> Self {
        Counts {
            viewers: c.viewers,
            active_viewers: c.active_viewers,
            preview_starts: c.preview_starts,
            preview_completions: c.preview_completions,
            checkouts: c.checkouts,
            checkout_viewers: c.checkout_viewers,
            purchases: c.purchases,
            buyers: c.buyers,
            converted: c.converted,
            refunds: c.refunds,
            revenue: c
                .revenue
                .iter()
                .flat_map(|(provider, amounts)| {
                    amounts.iter().map(move |(currency, amount)| Revenue {
                        provider: provider.clone(),
                        currency: currency.clone(),
                        amount: *amount,
                    })
                })
                .collect(),
            watch_seconds: c.watch_seconds,
            watch_hours: c.watch_seconds / 3600.0,
            completions: c.completions,
            new_users: c.new_users,
            supports: c.supports,
            tips: c.tips,
            tip_amounts: c
                .tip_amounts
                .iter()
                .map(|(currency, amount)| Amount {
                    currency: currency.clone(),
                    amount: *amount,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BucketView {
    /// First and last day of the bucket (clipped to the range), `YYYY-MM-DD`.
    pub start: String,
    pub end: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FunnelView {
    pub viewers: u64,
    pub preview_completions: u64,
    pub checkouts: u64,
    pub purchases: u64,
    pub completions: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversionView {
    pub preview_viewers: u64,
    pub buyers: u64,
    pub rate: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RankedAmount {
    #[schema(value_type = String)]
    pub film: Uuid,
    pub title: Option<String>,
    pub amount: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TopRevenue {
    pub currency: String,
    pub films: Vec<RankedAmount>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RankedHours {
    #[schema(value_type = String)]
    pub film: Uuid,
    pub title: Option<String>,
    pub hours: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub from: String,
    pub to: String,
    #[schema(value_type = Granularity)]
    pub granularity: &'static str,
    pub timezone: String,
    #[schema(value_type = Option<String>)]
    pub film: Option<Uuid>,
    pub series: Vec<BucketView>,
    pub totals: Counts,
    pub funnel: FunnelView,
    pub conversion: ConversionView,
    pub completion_rate: Option<f64>,
    pub top_by_revenue: Vec<TopRevenue>,
    pub top_by_watch_hours: Vec<RankedHours>,
}

impl ReportView {
    pub fn new(r: &Report, timezone: &str) -> Self {
        let bucket = |b: &Bucket| BucketView {
            start: format_day(b.start),
            end: format_day(b.end),
            counts: Counts::from(&b.counts),
        };
        ReportView {
            from: format_day(r.query.from),
            to: format_day(r.query.to),
            granularity: r.query.granularity.as_str(),
            timezone: timezone.to_string(),
            film: r.query.film,
            series: r.series.iter().map(bucket).collect(),
            totals: Counts::from(&r.totals),
            funnel: FunnelView {
                viewers: r.funnel.viewers,
                preview_completions: r.funnel.preview_completions,
                checkouts: r.funnel.checkouts,
                purchases: r.funnel.purchases,
                completions: r.funnel.completions,
            },
            conversion: ConversionView {
                preview_viewers: r.conversion.preview_viewers,
                buyers: r.conversion.buyers,
                rate: r.conversion.rate,
            },
            completion_rate: r.completion_rate,
            top_by_revenue: r
                .top_by_revenue
                .iter()
                .map(|(currency, films)| TopRevenue {
                    currency: currency.clone(),
                    films: films
                        .iter()
                        .map(|f: &Ranked<i64>| RankedAmount {
                            film: f.film,
                            title: f.title.clone(),
                            amount: f.value,
                        })
                        .collect(),
                })
                .collect(),
            top_by_watch_hours: r
                .top_by_watch_hours
                .iter()
                .map(|f| RankedHours {
                    film: f.film,
                    title: f.title.clone(),
                    hours: f.value,
                })
                .collect(),
        }
    }
}

/// The series as CSV: one row per bucket; revenue in a column per provider and currency
/// (`revenue:dev:USD`) and tip amounts per currency (`tip_amount:USD`), minor units.
pub fn report_csv(r: &Report) -> String {
    let mut revenue = BTreeSet::new();
    let mut tips = BTreeSet::new();
    for b in &r.series {
        for (provider, amounts) in &b.counts.revenue {
            for currency in amounts.keys() {
                revenue.insert((provider.clone(), currency.clone()));
            }
        }
        tips.extend(b.counts.tip_amounts.keys().cloned());
    }
    let mut header: Vec<String> = [
        "start",
        "end",
        "viewers",
        "active_viewers",
        "preview_starts",
        "preview_completions",
        "checkouts",
        "checkout_viewers",
        "purchases",
        "buyers",
        "converted",
        "refunds",
        "watch_hours",
        "completions",
        "new_users",
        "supports",
        "tips",
    ]
    .map(String::from)
    .to_vec();
    header.extend(revenue.iter().map(|(p, c)| format!("revenue:{p}:{c}")));
    header.extend(tips.iter().map(|c| format!("tip_amount:{c}")));
    let mut out = String::new();
    csv::record(&mut out, &header);
    for b in &r.series {
        let c = &b.counts;
        let mut row = vec![
            format_day(b.start),
            format_day(b.end),
            c.viewers.to_string(),
            c.active_viewers.to_string(),
            c.preview_starts.to_string(),
            c.preview_completions.to_string(),
            c.checkouts.to_string(),
            c.checkout_viewers.to_string(),
            c.purchases.to_string(),
            c.buyers.to_string(),
            c.converted.to_string(),
            c.refunds.to_string(),
            format!("{:.4}", c.watch_seconds / 3600.0),
            c.completions.to_string(),
            c.new_users.to_string(),
            c.supports.to_string(),
            c.tips.to_string(),
        ];
        row.extend(revenue.iter().map(|(p, cur)| {
            c.revenue
                .get(p)
                .and_then(|a| a.get(cur))
                .copied()
                .unwrap_or(0)
                .to_string()
        }));
        row.extend(
            tips.iter()
                .map(|cur| c.tip_amounts.get(cur).copied().unwrap_or(0).to_string()),
        );
        csv::record(&mut out, &row);
    }
    out
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PointView {
    pub index: u32,
    pub viewers: u64,
    pub share: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RetentionView {
    #[schema(value_type = String)]
    pub film: Uuid,
    pub title: Option<String>,
    pub viewers: u64,
    pub segments: Vec<PointView>,
}

impl RetentionView {
    pub fn new(r: &Retention, title: Option<String>) -> Self {
        RetentionView {
            film: r.film,
            title,
            viewers: r.viewers,
            segments: r
                .points
                .iter()
                .map(|p| PointView {
                    index: p.segment,
                    viewers: p.viewers,
                    share: p.share,
                })
                .collect(),
        }
    }
}

/// The curve as CSV: `segment,viewers,share`.
pub fn retention_csv(r: &Retention) -> String {
    let mut out = String::new();
    csv::record(&mut out, &["segment", "viewers", "share"]);
    for p in &r.points {
        csv::record(
            &mut out,
            &[
                p.segment.to_string(),
                p.viewers.to_string(),
                format!("{:.6}", p.share),
            ],
        );
    }
    out
}

/// `granularity` of `GET /admin/analytics`, for the document (the query stays a string:
/// an unknown value is answered 422 `invalid_range`, not an extractor's 400). An empty
/// `granularity=` is taken as absent (a form's empty field), so `""` is a value too.
pub struct Granularity;

impl utoipa::PartialSchema for Granularity {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        query_enum(
            "`day` (default, also for an empty value), `week` or `month`",
            &["day", "week", "month", ""],
        )
    }
}

impl utoipa::ToSchema for Granularity {}

/// `format` of the analytics exports, for the document; empty is taken as absent (JSON).
pub struct ExportFormat;

impl utoipa::PartialSchema for ExportFormat {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        query_enum(
            "`json` (default, also for an empty value) or `csv`",
            &["json", "csv", ""],
        )
    }
}

impl utoipa::ToSchema for ExportFormat {}

fn query_enum(
    description: &str,
    values: &[&'static str],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .enum_values(Some(values.iter().copied()))
        .into()
}
