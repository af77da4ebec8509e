//! The comments and support panel under a film's page (`#social`, loaded by htmx). Below
//! the bar (`playback.unlock_fraction` of the film counted at a believable pace, as the
//! progress view computes it) it says how much more to watch and is locked; at the bar it
//! lists the thread newest first with paging, and takes posts, edits and deletes of one's
//! own comments, reports, and support with an optional tip paid through a provider. Every
//! action calls the same `social::comments` and `OrderService` functions, with the same bar
//! and rate limit, as `api/comments`; comment text is printed escaped, never as markup.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::error::{ApiError, Code};
use crate::catalogue;
use crate::social::{comments, support};
use crate::state::AppState;
use crate::store::comments::{Comment, CommentState};
use crate::store::films::Film;
use crate::store::users::User;
use crate::web::console::{render, view};
use crate::web::error::{PageError, PageResult};
use crate::web::i18n::{Lang, Texts};
use crate::web::session::{SignedIn, Visitor};

/// Comments a page of the panel shows.
const PAGE: usize = 20;

/// One comment as the panel prints it.
pub struct Item {
    pub id: String,
    pub author: String,
    pub body: String,
    pub at: String,
    pub edited: bool,
    pub deleted: bool,
    /// Held by the word list: only its author (and moderators) see it.
    pub held: bool,
    pub mine: bool,
    pub reported: bool,
}

/// What the panel shows: one of its three states.
enum Shown {
    SignedOut,
    Locked {
        coverage: f64,
        watched: u32,
        more: u32,
        /// Enough segments, counted too fast: only watching longer opens it.
        pace: bool,
    },
    Open {
        items: Vec<Item>,
        next: Option<String>,
        paged: bool,
        supported: bool,
    },
}

#[derive(Template)]
#[template(path = "viewer/social.html")]
struct Panel {
    t: &'static Texts,
    film: String,
    required: u32,
    signed_out: bool,
    locked: bool,
    pace: bool,
    watched: u32,
    more: u32,
    items: Vec<Item>,
    next: String,
    paged: bool,
    supported: bool,
    thanks: bool,
    tip_currencies: Vec<String>,
    tip_bounds: String,
    tip_providers: Vec<String>,
}

#[derive(Template)]
#[template(path = "viewer/social_comment.html")]
struct OneComment {
    t: &'static Texts,
    c: Item,
}

#[derive(Template)]
#[template(path = "viewer/social_edit.html")]
struct EditForm {
    t: &'static Texts,
    c: Item,
}

#[derive(Deserialize)]
pub struct PanelQuery {
    before: Option<String>,
}

/// `GET /films/{id}/social`: the panel in the state the visitor is in.
pub async fn panel(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    path: web::Path<String>,
    query: web::Query<PanelQuery>,
) -> PageResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let before = match query.before.as_deref() {
        Some(b) => Some(crate::store::parse_id(b).ok_or_else(|| {
            ApiError::bad_request(Code::InvalidCursor, "`before` is not a comment id")
        })?),
        None => None,
    };
    let shown = match &visitor.user {
        None => Shown::SignedOut,
        Some(user) => shown(&state, user, &film, before).await?,
    };
    panel_page(&state, &req, &film, shown, false)
}

/// The bar as `api/comments` checks it: the progress view's `unlocked`; admins always.
async fn bar(state: &AppState, user: &User, film: &Film) -> PageResult<Option<Shown>> {
    let Some(progress) = state
        .playback_access()
        .below_unlock(&state.progress, user, film)
        .await
        .map_err(ApiError::from)?
    else {
        return Ok(None);
    };
    let required = (state.config.playback.unlock_fraction * 100.0).round() as u32;
    // Floored as the JSON refusal's message floors it: 89.9% is not yet 90%.
    let watched = ((progress.coverage * 100.0).floor() as u32).min(100);
    Ok(Some(Shown::Locked {
        coverage: progress.coverage,
        watched,
        more: required.saturating_sub(watched),
        pace: progress.coverage + 1e-9 >= state.config.playback.unlock_fraction,
    }))
}

/// Refuses an action below the bar with the JSON API's code (`watch_more`).
async fn require_unlocked(state: &AppState, user: &User, film: &Film) -> PageResult<()> {
    match bar(state, user, film).await? {
        Some(Shown::Locked { coverage, .. }) => Err(PageError::new(
            StatusCode::FORBIDDEN,
            Code::WatchMore,
            comments::watch_more_message(coverage, state.config.playback.unlock_fraction),
        )),
        _ => Ok(()),
    }
}

async fn shown(
    state: &AppState,
    user: &User,
    film: &Film,
    before: Option<Uuid>,
) -> PageResult<Shown> {
    if let Some(locked) = bar(state, user, film).await? {
        return Ok(locked);
    }
    let reader = actor(user);
    let store = state.store.clone();
    let film_id = film.id;
    let me = user.id;
    // Decodes a page of records and their authors: off the runtime's threads.
    let (items, next, supported) = web::block(move || -> Result<_, crate::store::StoreError> {
        let page = store.comments_page(&film_id, before.as_ref(), PAGE, |c| {
            comments::visible_to(c, &reader)
        })?;
        let next = (page.len() == PAGE)
            .then(|| page.last().map(|c| c.id.to_string()))
            .flatten();
        let items = page.iter().map(|c| item(&store, c, &me)).collect();
        let supported = store.support(&film_id, &me)?.is_some();
        Ok((items, next, supported))
    })
    .await??;
    Ok(Shown::Open {
        items,
        next,
        paged: before.is_some(),
        supported,
    })
}

fn item(store: &crate::store::Store, c: &Comment, me: &Uuid) -> Item {
    let author = match store.user(&c.user_id) {
        Ok(Some(u)) => u.name.unwrap_or_else(|| "viewer".into()),
        _ => "—".into(),
    };
    let deleted = c.state == CommentState::Deleted;
    Item {
        id: c.id.to_string(),
        author,
        body: if deleted {
            String::new()
        } else {
            c.body.clone()
        },
        at: view::time(c.created_at),
        edited: c.edited_at.is_some(),
        deleted,
        held: c.state == CommentState::Held,
        mine: &c.user_id == me,
        reported: false,
    }
}

fn actor(user: &User) -> comments::Actor {
    comments::Actor {
        id: user.id,
        admin: user.is_admin(),
    }
}

fn panel_page(
    state: &AppState,
    req: &HttpRequest,
    film: &Film,
    shown: Shown,
    thanks: bool,
) -> PageResult<HttpResponse> {
    let t = Lang::of(req).texts();
    let tips = &state.config.social.tips;
    let mut page = Panel {
        t,
        film: film.id.to_string(),
        required: (state.config.playback.unlock_fraction * 100.0).round() as u32,
        signed_out: false,
        locked: false,
        pace: false,
        watched: 0,
        more: 0,
        items: Vec::new(),
        next: String::new(),
        paged: false,
        supported: false,
        thanks,
        tip_currencies: tips.iter().map(|b| b.currency.clone()).collect(),
        tip_bounds: tips
            .iter()
            .map(|b| {
                format!(
                    "{}–{}",
                    view::money(b.min as i64, &b.currency),
                    view::money(b.max as i64, &b.currency)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        tip_providers: state
            .payments
            .ids()
            .into_iter()
            .map(|p| p.to_string())
            .collect(),
    };
    match shown {
        Shown::SignedOut => page.signed_out = true,
        Shown::Locked {
            watched,
            more,
            pace,
            ..
        } => {
            page.locked = true;
            page.watched = watched;
            page.more = more;
            page.pace = pace;
        }
        Shown::Open {
            items,
            next,
            paged,
            supported,
        } => {
            page.items = items;
            page.next = next.unwrap_or_default();
            page.paged = paged;
            page.supported = supported;
        }
    }
    render(&page)
}

/// Posts and edits share `social.comments_per_minute` per user, as in the JSON API;
/// admins are not limited.
fn limit_writes(state: &AppState, user: &User) -> PageResult<()> {
    if user.is_admin() {
        return Ok(());
    }
    state
        .comment_limiter
        .check(
            Some(user.id),
            state.config.social.comments_per_minute,
            state.clock.now(),
        )
        .map_err(|e| ApiError::from(e).into())
}

#[derive(Deserialize)]
pub struct BodyForm {
    body: String,
}

/// `POST /films/{id}/comments`: posts, then answers the panel's first page.
pub async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    path: web::Path<String>,
    form: web::Form<BodyForm>,
) -> PageResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    require_unlocked(&state, &who.user, &film).await?;
    let text = comments::checked_text(&form.body, "")?;
    limit_writes(&state, &who.user)?;
    comments::post(
        &state.store,
        &film.id,
        &who.user.id,
        text,
        &state.config.social.held_words,
        state.clock.now(),
    )?;
    let shown = shown(&state, &who.user, &film, None).await?;
    panel_page(&state, &req, &film, shown, false)
}

fn comment_id(id: &str) -> PageResult<Uuid> {
    crate::store::parse_id(id).ok_or_else(|| ApiError::not_found("comment").into())
}

/// The viewer's own comment, for the edit form and its cancel.
fn own(state: &AppState, id: &str, user: &User) -> PageResult<Comment> {
    let c = state
        .store
        .comment(&comment_id(id)?)?
        .filter(|c| comments::visible_to(c, &actor(user)))
        .ok_or_else(|| ApiError::not_found("comment"))?;
    Ok(c)
}

/// `GET /comments/{id}`: one comment (an edit's cancel).
pub async fn one(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let c = own(&state, &path, &who.user)?;
    render(&OneComment {
        t: Lang::of(&req).texts(),
        c: item(&state.store, &c, &who.user.id),
    })
}

/// `GET /comments/{id}/edit`: the edit form in the comment's place.
pub async fn edit_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let c = own(&state, &path, &who.user)?;
    if c.user_id != who.user.id {
        return Err(comments::CommentError::NotYours.into());
    }
    render(&EditForm {
        t: Lang::of(&req).texts(),
        c: item(&state.store, &c, &who.user.id),
    })
}

/// `POST /comments/{id}/edit`: the new text; answers the comment as it now reads.
pub async fn edit(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    path: web::Path<String>,
    form: web::Form<BodyForm>,
) -> PageResult<HttpResponse> {
    let id = comment_id(&path)?;
    let text = comments::checked_text(&form.body, "")?;
    limit_writes(&state, &who.user)?;
    let updated = comments::edit(
        &state.store,
        &id,
        &who.user.id,
        &text,
        &state.config.social.held_words,
        state.clock.now(),
    )?;
    render(&OneComment {
        t: Lang::of(&req).texts(),
        c: item(&state.store, &updated, &who.user.id),
    })
}

/// `POST /comments/{id}/delete`: the tombstone takes its place.
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = comment_id(&path)?;
    comments::delete(&state.store, &id, &who.user.id, who.user.is_admin())?;
    let c = state
        .store
        .comment(&id)?
        .ok_or_else(|| ApiError::not_found("comment"))?;
    render(&OneComment {
        t: Lang::of(&req).texts(),
        c: item(&state.store, &c, &who.user.id),
    })
}

/// `POST /comments/{id}/report`: answers the comment marked as reported.
pub async fn report(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let c = comments::reportable(&state.store, &comment_id(&path)?)?;
    let film = catalogue::watchable_by_id(&state.store, &c.film_id)?;
    require_unlocked(&state, &who.user, &film).await?;
    comments::report(&state.store, &c, &who.user.id, state.clock.now())?;
    let mut shown = item(&state.store, &c, &who.user.id);
    shown.reported = true;
    render(&OneComment {
        t: Lang::of(&req).texts(),
        c: shown,
    })
}

#[derive(Deserialize)]
pub struct SupportForm {
    message: Option<String>,
    /// Major units as typed ("5" or "5.00"); empty for no tip.
    amount: Option<String>,
    currency: Option<String>,
    provider: Option<String>,
}

/// `POST /films/{id}/support`: records the support (once per viewer and film) and, with a
/// tip, sends the browser to the provider's checkout — the JSON support call's steps in
/// its order, so a refused tip leaves no support behind.
pub async fn support(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    path: web::Path<String>,
    form: web::Form<SupportForm>,
) -> PageResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let user = &who.user;
    require_unlocked(&state, user, &film).await?;
    let tip = match form.amount.as_deref().map(str::trim) {
        Some(amount) if !amount.is_empty() => {
            let currency = form.currency.as_deref().unwrap_or("").trim().to_string();
            Some(support::TipAsk {
                provider: form.provider.as_deref().unwrap_or("").trim().to_string(),
                amount: crate::money::from_decimal(amount, &currency),
                currency,
            })
        }
        _ => None,
    };
    let done = support::support(
        &state.store,
        &state.orders(),
        &state.config.social.tips,
        &film,
        &user.id,
        form.message.as_deref(),
        tip,
        state.clock.now(),
    )
    .await?;
    if let Some(started) = done.tip {
        return Ok(HttpResponse::NoContent()
            .insert_header(("HX-Redirect", started.redirect_url.as_str()))
            .finish());
    }
    let shown = shown(&state, user, &film, None).await?;
    panel_page(&state, &req, &film, shown, true)
}
