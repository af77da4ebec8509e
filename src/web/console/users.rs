//! The users pages: the list (newest first, or a search of the e-mail index, 50 a page)
//! and a user's page: role, disable/enable (disabling ends every session), grants (the
//! store calls of `PUT`/`DELETE /api/v1/admin/films/{id}/grants/{user}`), a one-time
//! sign-in link (`ops::login_link`, as `cinegate user login-link`), and their purchases and
//! progress.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{render, view};
use crate::api::error::{ApiError, Code};
use crate::catalogue;
use crate::ops::{self, OpsError};
use crate::state::AppState;
use crate::store::grants::Grant;
use crate::store::orders::OrderKind;
use crate::store::parse_id;
use crate::store::users::{Role, User};
use crate::web::error::{PageError, PageResult};
use crate::web::session::ConsoleAdmin;

const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    q: String,
    /// The cursor: a user id (the list) or an e-mail (a search).
    #[serde(default)]
    after: String,
}

pub struct Row {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub disabled: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    me: String,
    section: &'static str,
    q: String,
    /// The first page of the same search, as an address.
    first: String,
    rows: Vec<Row>,
    next: Option<String>,
    first_page: bool,
}

#[derive(Template)]
#[template(path = "console/users_detail.html")]
struct UserPage {
    me: String,
    section: &'static str,
    account: AccountBox,
    grants: GrantsBox,
    id: String,
    email: String,
    films: Vec<FilmRow>,
    orders: Vec<OrderRow>,
}

/// One of the user's orders, newest first.
pub struct OrderRow {
    pub id: String,
    pub when: String,
    pub title: String,
    pub kind: &'static str,
    pub amount: String,
    pub state: &'static str,
}

/// Role and state, with their buttons: what those buttons redraw.
#[derive(Template)]
#[template(path = "console/users_account.html")]
pub struct AccountBox {
    id: String,
    email: String,
    name: String,
    role: &'static str,
    disabled: bool,
    created: String,
    myself: bool,
    notice: String,
}

pub struct Granted {
    pub film_id: String,
    pub title: String,
    pub when: String,
}

pub struct FilmChoice {
    pub id: String,
    pub title: String,
}

#[derive(Template)]
#[template(path = "console/users_grants.html")]
pub struct GrantsBox {
    id: String,
    email: String,
    granted: Vec<Granted>,
    films: Vec<FilmChoice>,
    notice: String,
}

#[derive(Template)]
#[template(path = "console/users_link.html")]
struct LinkBox {
    url: String,
    email: String,
}

/// A film the user bought, was given, or watched.
pub struct FilmRow {
    pub film_id: String,
    pub title: String,
    pub bought: String,
    pub order_id: String,
    pub granted: bool,
    pub coverage: String,
    pub unlocked: bool,
    pub last_watched: String,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Viewer => "viewer",
    }
}

fn me(admin: &ConsoleAdmin) -> String {
    admin.user.email.clone().unwrap_or_default()
}

fn email_of(u: &User) -> String {
    u.email
        .clone()
        .unwrap_or_else(|| format!("(no e-mail) {}", u.id))
}

/// `GET /admin/users`.
pub async fn list(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    query: web::Query<Search>,
) -> PageResult<HttpResponse> {
    let Search { q, after } = query.into_inner();
    let q = q.trim().to_string();
    let before = if q.is_empty() && !after.is_empty() {
        Some(parse_id(&after).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidCursor,
                "`after` is not a user id",
            )
        })?)
    } else {
        None
    };
    let st = state.clone();
    let (needle, cursor) = (q.clone(), after.clone());
    let (users, next) = web::block(move || {
        if needle.is_empty() {
            st.store.users_page(before, PAGE)
        } else {
            st.store.search_users(
                &needle,
                Some(cursor.as_str()).filter(|c| !c.is_empty()),
                PAGE,
            )
        }
    })
    .await??;
    let next = next.map(|c| {
        format!(
            "/admin/users?q={}&after={}",
            crate::web::error::encode_query(&q),
            crate::web::error::encode_query(&c)
        )
    });
    render(&UsersPage {
        me: me(&admin),
        section: "users",
        rows: users
            .iter()
            .map(|u| Row {
                id: u.id.to_string(),
                email: email_of(u),
                role: role_name(u.role),
                disabled: u.disabled,
                created: view::time(u.created_at),
            })
            .collect(),
        first: format!("/admin/users?q={}", crate::web::error::encode_query(&q)),
        q,
        next,
        first_page: after.is_empty(),
    })
}

fn user_of(state: &AppState, id: &str) -> PageResult<User> {
    Ok(parse_id(id)
        .map(|id| state.store.user(&id))
        .transpose()?
        .flatten()
        .ok_or_else(|| ApiError::not_found("user"))?)
}

fn account_box(admin: &ConsoleAdmin, u: &User, notice: String) -> AccountBox {
    AccountBox {
        id: u.id.to_string(),
        email: email_of(u),
        name: u.name.clone().unwrap_or_default(),
        role: role_name(u.role),
        disabled: u.disabled,
        created: view::time(u.created_at),
        myself: u.id == admin.user.id,
        notice,
    }
}

async fn grants_box(
    state: &web::Data<AppState>,
    user: &User,
    notice: String,
) -> PageResult<GrantsBox> {
    let (st, id) = (state.clone(), user.id);
    let (granted, mut films) = web::block(move || -> PageResult<_> {
        let films = st.store.films()?;
        let titles: BTreeMap<Uuid, String> =
            films.iter().map(|f| (f.id, f.title.clone())).collect();
        let granted: Vec<Granted> = st
            .store
            .grants_of(&id)?
            .into_iter()
            .map(|(film, g)| Granted {
                film_id: film.to_string(),
                title: titles
                    .get(&film)
                    .cloned()
                    .unwrap_or_else(|| "(deleted film)".into()),
                when: view::time(g.granted_at),
            })
            .collect();
        let choices: Vec<FilmChoice> = films
            .into_iter()
            .filter(|f| !granted.iter().any(|g| g.film_id == f.id.to_string()))
            .map(|f| FilmChoice {
                id: f.id.to_string(),
                title: f.title,
            })
            .collect();
        Ok((granted, choices))
    })
    .await??;
    films.sort_by(|a, b| a.title.cmp(&b.title));
    Ok(GrantsBox {
        id: user.id.to_string(),
        email: email_of(user),
        granted,
        films,
        notice,
    })
}

/// The films the user bought, was given or has progress in, with their progress as the
/// viewer's own `/me/progress` reports it.
async fn films_of(state: &web::Data<AppState>, user: &User) -> PageResult<Vec<FilmRow>> {
    let (st, id) = (state.clone(), user.id);
    let (purchases, grants, progress) = web::block(move || -> PageResult<_> {
        Ok((
            st.store.purchases_of(&id)?,
            st.store.grants_of(&id)?,
            st.store.progress_of_user(&id)?,
        ))
    })
    .await??;
    let mut films: Vec<Uuid> = purchases
        .iter()
        .map(|(f, _)| *f)
        .chain(grants.iter().map(|(f, _)| *f))
        .chain(progress.iter().map(|(f, _)| *f))
        .chain(state.progress.pending_films(&id))
        .collect();
    films.sort_unstable();
    films.dedup();
    let mut rows = Vec::new();
    for film_id in films {
        let film = state.store.film(&film_id)?;
        let bought = purchases.iter().find(|(f, _)| *f == film_id);
        let stored = progress.iter().find(|(f, _)| *f == film_id).map(|(_, r)| r);
        let mut row = FilmRow {
            film_id: film_id.to_string(),
            title: film
                .as_ref()
                .map(|f| f.title.clone())
                .unwrap_or_else(|| "(deleted film)".into()),
            bought: bought
                .map(|(_, p)| view::time(p.purchased_at))
                .unwrap_or_default(),
            order_id: bought
                .map(|(_, p)| p.order_id.to_string())
                .unwrap_or_default(),
            granted: grants.iter().any(|(f, _)| *f == film_id),
            coverage: stored
                .map(|r| format!("{:.0}%", r.coverage() * 100.0))
                .unwrap_or_else(|| "—".into()),
            unlocked: false,
            last_watched: stored.map(|r| view::time(r.updated_at)).unwrap_or_default(),
        };
        // Coverage against the current package, unflushed progress included.
        if let Some(film) = film.filter(|f| f.is_watchable()) {
            if let Ok(playback) = state.playback_access().playback_of(&film).await {
                let v = state.progress.view(
                    &id,
                    &film_id,
                    &playback.manifest.segments,
                    std::time::Instant::now(),
                )?;
                row.coverage = format!("{:.0}%", v.coverage * 100.0);
                row.unlocked = v.unlocked;
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The user's orders, newest first, through `orders_by_user`.
async fn orders_of(state: &web::Data<AppState>, user: &User) -> PageResult<Vec<OrderRow>> {
    let (st, id) = (state.clone(), user.id);
    web::block(move || -> PageResult<Vec<OrderRow>> {
        let mut titles: BTreeMap<Uuid, String> = BTreeMap::new();
        let mut rows = Vec::new();
        for o in st.store.orders_of(&id)?.into_iter().rev() {
            let title = match titles.get(&o.film_id) {
                Some(t) => t.clone(),
                None => {
                    let t = st
                        .store
                        .film(&o.film_id)?
                        .map(|f| f.title)
                        .unwrap_or_else(|| "(deleted film)".into());
                    titles.insert(o.film_id, t.clone());
                    t
                }
            };
            rows.push(OrderRow {
                id: o.id.to_string(),
                when: view::time(o.created_at),
                title,
                kind: match o.kind {
                    OrderKind::Purchase => "purchase",
                    OrderKind::Tip => "tip",
                },
                amount: view::money(o.amount as i64, &o.currency),
                state: super::orders::state_name(o.state),
            });
        }
        Ok(rows)
    })
    .await?
}

/// `GET /admin/users/{id}`.
pub async fn detail(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let user = user_of(&state, &path)?;
    render(&UserPage {
        me: me(&admin),
        section: "users",
        account: account_box(&admin, &user, String::new()),
        grants: grants_box(&state, &user, String::new()).await?,
        films: films_of(&state, &user).await?,
        orders: orders_of(&state, &user).await?,
        id: user.id.to_string(),
        email: email_of(&user),
    })
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

/// Refuses what would lock the acting admin out of their own console.
fn not_on_myself(admin: &ConsoleAdmin, user: &User, what: &str) -> PageResult<()> {
    if admin.user.id == user.id {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            Code::Conflict,
            format!("you cannot {what} your own account from the console; another admin can"),
        ));
    }
    Ok(())
}

/// `POST /admin/users/{id}/role` (`role=admin|viewer`). The role is read from the store on
/// every request (`auth::access`, the console's extractor), so it takes effect at once.
pub async fn set_role(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<RoleForm>,
) -> PageResult<HttpResponse> {
    let role = match form.role.as_str() {
        "admin" => Role::Admin,
        "viewer" => Role::Viewer,
        other => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidInput,
                format!("{other:?} is not a role (admin or viewer)"),
            ))
        }
    };
    let user = user_of(&state, &path)?;
    if role == Role::Viewer {
        not_on_myself(&admin, &user, "demote")?;
    }
    let user = state
        .store
        .update_user(&user.id, |u| u.role = role)?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tracing::info!(user = %user.id, role = role_name(role), admin = %admin.user.id, "role changed from the console");
    let notice = format!("{} is now {}.", email_of(&user), role_name(role));
    render(&account_box(&admin, &user, notice))
}

#[derive(Deserialize)]
pub struct DisabledForm {
    disabled: bool,
}

/// `POST /admin/users/{id}/disabled` (`disabled=true|false`). A disabled account opens
/// nothing (`auth::access`, `auth::session`, refresh rotation); disabling also moves the
/// session epoch on, as "sign out everywhere" does, so enabling it again does not bring
/// back the sessions and tokens it had.
pub async fn set_disabled(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<DisabledForm>,
) -> PageResult<HttpResponse> {
    let disabled = form.disabled;
    let user = user_of(&state, &path)?;
    if disabled {
        not_on_myself(&admin, &user, "disable")?;
    }
    let user = state
        .store
        .update_user(&user.id, |u| {
            if disabled && !u.disabled {
                u.session_epoch = u.session_epoch.wrapping_add(1);
            }
            u.disabled = disabled;
        })?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tracing::info!(user = %user.id, disabled, admin = %admin.user.id, "account state changed from the console");
    let notice = if disabled {
        format!(
            "{} is disabled; their sessions have ended.",
            email_of(&user)
        )
    } else {
        format!("{} is enabled; they can sign in again.", email_of(&user))
    };
    render(&account_box(&admin, &user, notice))
}

#[derive(Deserialize)]
pub struct GrantForm {
    film: String,
}

/// `POST /admin/users/{id}/grants` (`film=…`): as `PUT /api/v1/admin/films/{film}/grants/{user}`.
pub async fn grant(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<GrantForm>,
) -> PageResult<HttpResponse> {
    let user = user_of(&state, &path)?;
    let film = catalogue::film(&state.store, &form.film)?;
    state.store.grant(
        &film.id,
        &user.id,
        &Grant {
            granted_by: admin.user.id,
            granted_at: state.clock.now(),
        },
    )?;
    tracing::info!(film = %film.id, user = %user.id, admin = %admin.user.id, "access granted");
    let notice = format!(
        "{} can now watch «{}» in full.",
        email_of(&user),
        film.title
    );
    render(&grants_box(&state, &user, notice).await?)
}

/// `POST /admin/users/{id}/grants/{film}/revoke`: as `DELETE /api/v1/admin/films/{film}/grants/{user}`.
pub async fn revoke(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> PageResult<HttpResponse> {
    let (user_id, film_id) = path.into_inner();
    let user = user_of(&state, &user_id)?;
    let film = catalogue::film(&state.store, &film_id)?;
    state.store.revoke_grant(&film.id, &user.id)?;
    tracing::info!(film = %film.id, user = %user.id, admin = %admin.user.id, "access revoked");
    let notice = format!(
        "The grant of «{}» to {} is revoked.",
        film.title,
        email_of(&user)
    );
    render(&grants_box(&state, &user, notice).await?)
}

/// `POST /admin/users/{id}/login-link`: a one-time sign-in link, shown once.
pub async fn login_link(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let user = user_of(&state, &path)?;
    let email = user.email.clone().ok_or_else(|| {
        PageError::new(
            StatusCode::CONFLICT,
            Code::Conflict,
            "this account has no e-mail address; a sign-in link needs one",
        )
    })?;
    let answer = ops::login_link(&state.config, &state.store, &email, state.clock.now())
        .map_err(ops_error)?;
    let url = answer.data["url"].as_str().unwrap_or_default().to_string();
    tracing::info!(user = %user.id, admin = %admin.user.id, "sign-in link made from the console");
    render(&LinkBox { url, email })
}

fn ops_error(e: OpsError) -> PageError {
    match e {
        OpsError::Session(e) => e.into(),
        OpsError::Store(e) => e.into(),
        OpsError::NoUser(_) => ApiError::not_found("user").into(),
        other => ApiError::internal(&other).into(),
    }
}
