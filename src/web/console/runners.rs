//! `/admin/runners`: remote packaging runners — issue a token (shown once, with the command
//! that uses it), the list (last contact, the job each holds and its progress), revoke
//! (`hx-confirm`; its job goes back to the queue). The same `runners::Runners` calls as
//! `/api/v1/admin/runners`.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{render, view};
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::web::error::PageResult;
use crate::web::session::ConsoleAdmin;

pub struct Row {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_seen: String,
    /// The job it holds: film id, film title, percent, attempt.
    pub job: Option<(String, String, u32, u32)>,
}

#[derive(Template)]
#[template(path = "console/runners.html")]
struct RunnersPage {
    me: String,
    section: &'static str,
    list: RunnersBox,
}

#[derive(Template)]
#[template(path = "console/runners_box.html")]
pub struct RunnersBox {
    rows: Vec<Row>,
    notice: String,
    /// A token just issued (shown this once) and the command that uses it.
    issued: Option<(String, String)>,
    lease_ttl: String,
}

#[derive(Deserialize)]
pub struct IssueForm {
    name: String,
}

fn runners_box(
    state: &AppState,
    notice: String,
    issued: Option<(String, String)>,
) -> PageResult<RunnersBox> {
    let statuses = state.runners().list()?;
    let rows = statuses
        .iter()
        .map(|s| Row {
            id: s.runner.id.to_string(),
            name: s.runner.name.clone(),
            created: view::time(s.runner.created_at),
            last_seen: s
                .runner
                .last_seen_at
                .map(view::time)
                .unwrap_or_else(|| "never".into()),
            job: s.job.as_ref().map(|j| {
                let title = state
                    .store
                    .film(&j.film_id)
                    .ok()
                    .flatten()
                    .map(|f| f.title)
                    .unwrap_or_else(|| j.film_id.to_string());
                (
                    j.film_id.to_string(),
                    title,
                    (j.progress * 100.0).round() as u32,
                    j.lease.as_ref().map(|l| l.attempt).unwrap_or(j.attempts),
                )
            }),
        })
        .collect();
    Ok(RunnersBox {
        rows,
        notice,
        issued,
        lease_ttl: format!("{} seconds", state.config.runners.lease_ttl.as_secs()),
    })
}

/// `GET /admin/runners`.
pub async fn page(admin: ConsoleAdmin, state: web::Data<AppState>) -> PageResult<HttpResponse> {
    let st = state.clone();
    let list = web::block(move || runners_box(&st, String::new(), None)).await??;
    render(&RunnersPage {
        me: admin.user.email.clone().unwrap_or_default(),
        section: "runners",
        list,
    })
}

/// `POST /admin/runners`: as `POST /api/v1/admin/runners`; the box again, with the token.
pub async fn issue(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    form: web::Form<IssueForm>,
) -> PageResult<HttpResponse> {
    let (runner, token) = state.runners().issue(&form.name)?;
    tracing::info!(runner = %runner.id, admin = %admin.user.id, "runner token issued from the console");
    let command = format!(
        "CINEGATE_RUNNER_TOKEN={token} cinegate runner --origin {}",
        state.config.public_url
    );
    let notice = format!(
        "Runner «{}» issued. Its token is shown this once.",
        runner.name
    );
    let st = state.clone();
    let body = web::block(move || runners_box(&st, notice, Some((token, command)))).await??;
    let mut res = render(&body)?;
    res.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// `POST /admin/runners/{id}/revoke`: as `DELETE /api/v1/admin/runners/{id}`.
pub async fn revoke(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = crate::store::parse_id(&path).ok_or_else(|| ApiError::not_found("runner"))?;
    let name = state.store.runner(&id)?.map(|r| r.name).unwrap_or_default();
    let st = state.clone();
    let requeued = web::block(move || st.runners().revoke(&id)).await??;
    tracing::info!(runner = %id, admin = %admin.user.id, "runner revoked from the console");
    let notice = if requeued.is_empty() {
        format!("Runner «{name}» revoked.")
    } else {
        format!("Runner «{name}» revoked; its job is queued again.")
    };
    let st = state.clone();
    let body = web::block(move || runners_box(&st, notice, None)).await??;
    render(&body)
}
