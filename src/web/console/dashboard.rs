//! The dashboard: films by state, the packaging queue with live progress (the jobs box
//! polls its fragment every 2 s while any job is active), the latest orders, today's and
//! this week's revenue, the moderation queue's length and the disk.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::{render, view};
use crate::overview::{self, Overview};
use crate::state::AppState;
use crate::store::jobs::JobState;
use crate::web::error::PageResult;
use crate::web::session::ConsoleAdmin;

pub struct JobRow {
    pub film_id: String,
    pub title: String,
    pub state: &'static str,
    pub percent: u32,
    pub attempts: u32,
}

pub struct OrderRow {
    pub id: String,
    pub when: String,
    pub title: String,
    pub provider: String,
    pub amount: String,
    pub state: String,
}

pub struct StateCount {
    pub state: &'static str,
    pub count: usize,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    me: String,
    section: &'static str,
    films: Vec<StateCount>,
    films_total: usize,
    jobs: JobsBox,
    orders: Vec<OrderRow>,
    today: Vec<String>,
    week: Vec<String>,
    comments_waiting: usize,
    package_size: String,
    disk_free: Option<String>,
    disk_total: Option<String>,
    disk_free_percent: u32,
}

#[derive(Template)]
#[template(path = "console/jobs_box.html")]
pub struct JobsBox {
    pub jobs: Vec<JobRow>,
}

impl JobsBox {
    fn of(o: &Overview) -> Self {
        Self {
            jobs: o
                .jobs
                .iter()
                .map(|j| JobRow {
                    film_id: j.film_id.to_string(),
                    title: o.titles.get(&j.film_id).cloned().unwrap_or_default(),
                    state: match j.state {
                        JobState::Running => "running",
                        _ => "queued",
                    },
                    percent: (j.progress * 100.0).floor().clamp(0.0, 100.0) as u32,
                    attempts: j.attempts,
                })
                .collect(),
        }
    }
}

async fn load(state: &web::Data<AppState>) -> PageResult<Overview> {
    let st = state.clone();
    let now = state.clock.now();
    Ok(web::block(move || overview::overview(&st.store, &st.config.media_dir, now)).await??)
}

pub async fn page(admin: ConsoleAdmin, state: web::Data<AppState>) -> PageResult<HttpResponse> {
    let o = load(&state).await?;
    let money = |r: &overview::Revenue| -> Vec<String> {
        r.iter().map(|(c, a)| view::money(*a, c)).collect()
    };
    render(&DashboardPage {
        me: admin.user.email.clone().unwrap_or_default(),
        section: "dashboard",
        films: o
            .films_by_state
            .iter()
            .map(|(s, n)| StateCount {
                state: s.as_str(),
                count: *n,
            })
            .collect(),
        films_total: o.films_total,
        jobs: JobsBox::of(&o),
        orders: o
            .latest_orders
            .iter()
            .map(|x| OrderRow {
                id: x.id.to_string(),
                when: view::time(x.created_at),
                title: o.titles.get(&x.film_id).cloned().unwrap_or_default(),
                provider: x.provider.clone(),
                amount: view::money(x.amount as i64, &x.currency),
                state: format!("{:?}", x.state).to_lowercase(),
            })
            .collect(),
        today: money(&o.revenue_today),
        week: money(&o.revenue_week),
        comments_waiting: o.comments_waiting,
        package_size: view::size(o.package_bytes),
        disk_free: o.disk.map(|d| view::size(d.free_bytes)),
        disk_total: o.disk.map(|d| view::size(d.total_bytes)),
        disk_free_percent: o
            .disk
            .map(|d| (d.free_bytes as f64 / d.total_bytes.max(1) as f64 * 100.0) as u32)
            .unwrap_or(0),
    })
}

/// `GET /admin/fragments/jobs`: the jobs box alone, for its 2 s poll.
pub async fn jobs_fragment(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
) -> PageResult<HttpResponse> {
    let o = load(&state).await?;
    render(&JobsBox::of(&o))
}
