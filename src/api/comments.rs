//! Comments and support, open to a viewer whose coverage of the film (segments the server
//! delivered to them ÷ all segments) has reached `playback.unlock_fraction`; admins always.
//! Counts are public. Comment text is plain data: returned verbatim, escaped by any view.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Code};
use crate::api::extract::{Admin, Viewer};
use crate::api::views::orders::CheckoutView;
use crate::api::views::social::{
    AdminCommentView, CommentPage, CommentView, ModerationQueue, Reported, SocialCountsView,
    SupportAnswer, SupportView, SupporterView, Supporters, TipView,
};
use crate::catalogue;
use crate::social::{comments, support};
use crate::state::AppState;
use crate::store::comments::{Comment, CommentState};
use crate::store::films::Film;

const PAGE_DEFAULT: usize = 20;
const PAGE_MAX: usize = 100;

/// Refuses a viewer below the bar, telling them where they are.
async fn require_unlocked(
    state: &web::Data<AppState>,
    viewer: &Viewer,
    film: &Film,
) -> ApiResult<()> {
    let Some(progress) = state
        .playback_access()
        .below_unlock(&state.progress, &viewer.0, film)
        .await?
    else {
        return Ok(());
    };
    let required = state.config.playback.unlock_fraction;
    let message = comments::watch_more_message(progress.coverage, required);
    Err(ApiError::forbidden(Code::WatchMore, message)
        .with("coverage", progress.coverage)
        .with("required_coverage", required)
        .with("active_seconds", progress.active_seconds)
        .with("required_active_seconds", progress.required_active_seconds))
}

/// `c` as `me` sees it, with its author's name.
fn view<'a>(state: &AppState, c: &'a Comment, me: &Uuid) -> CommentView<'a> {
    let author = match state.store.user(&c.user_id) {
        Ok(Some(u)) => Some(u.name.unwrap_or_else(|| "viewer".into())),
        _ => None,
    };
    CommentView::new(c, author, me)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    before: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    operation_id = "listComments",
    path = "/api/v1/films/{id}/comments",
    tag = "social",
    summary = "A film's comments, newest first",
    params(
        ("id" = String, Path, description = "The film id"),
        ("before" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
        ("limit" = Option<usize>, Query, description = "Comments a page"),
    ),
    responses(
        (status = 200, description = "A page of comments", body = CommentPage),
        (status = 400, description = "`invalid_cursor`, `invalid_query`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::Unauthenticated,
        (status = 403, description = "`watch_more`: below the coverage bar (`coverage`); `account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    require_unlocked(&state, &viewer, &film).await?;
    let before = match query.before.as_deref() {
        Some(b) => Some(crate::store::parse_id(b).ok_or_else(|| {
            ApiError::bad_request(Code::InvalidCursor, "`before` is not a comment id")
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
    let me = viewer.0.id;
    let reader = actor(&viewer);
    let page = state
        .store
        .comments_page(&film.id, before.as_ref(), limit, |c| {
            comments::visible_to(c, &reader)
        })?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|c| c.id))
        .flatten();
    let comments = page.iter().map(|c| view(&state, c, &me)).collect();
    Ok(HttpResponse::Ok().json(CommentPage {
        comments,
        next_cursor: next,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "The last shot stayed with me all day."}))]
pub struct BodyRequest {
    body: String,
}

#[utoipa::path(
    post,
    operation_id = "postComment",
    path = "/api/v1/films/{id}/comments",
    tag = "social",
    summary = "Post a comment",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    request_body = BodyRequest,
    responses(
        (status = 201, description = "The comment", body = CommentView),
        (status = 400, description = "`invalid_json`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::Unauthenticated,
        (status = 403, description = "`watch_more`; `account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_input`: the text rules", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Json<BodyRequest>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    require_unlocked(&state, &viewer, &film).await?;
    let text = comments::checked_text(&body.body, "")?;
    limit_writes(&state, &viewer)?;
    let c = comments::post(
        &state.store,
        &film.id,
        &viewer.0.id,
        text,
        &state.config.social.held_words,
        state.clock.now(),
    )?;
    Ok(HttpResponse::Created().json(view(&state, &c, &viewer.0.id)))
}

fn actor(viewer: &Viewer) -> comments::Actor {
    comments::Actor {
        id: viewer.0.id,
        admin: viewer.0.is_admin(),
    }
}

/// Posts and edits share `social.comments_per_minute` per user; admins (moderators, the
/// film's own people) are not rate limited.
fn limit_writes(state: &AppState, viewer: &Viewer) -> ApiResult<()> {
    if viewer.0.is_admin() {
        return Ok(());
    }
    state
        .comment_limiter
        .check(
            Some(viewer.0.id),
            state.config.social.comments_per_minute,
            state.clock.now(),
        )
        .map_err(ApiError::from)
}

fn comment_id(id: &str) -> ApiResult<Uuid> {
    crate::store::parse_id(id).ok_or_else(|| ApiError::not_found("comment"))
}

/// Edits count against the same per-minute limit as posts: each one rewrites the record
/// every page decodes.
#[utoipa::path(
    patch,
    operation_id = "editComment",
    path = "/api/v1/comments/{id}",
    tag = "social",
    summary = "Edit one's own comment",
    params(
        ("id" = String, Path, description = "The comment id"),
    ),
    request_body = BodyRequest,
    responses(
        (status = 200, description = "The comment as edited", body = CommentView),
        (status = 400, description = "`invalid_json`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::Unauthenticated,
        (status = 403, description = "`not_yours`; `account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`conflict`: a concurrent change won; retry", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_input`: the text rules", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn edit(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Json<BodyRequest>,
) -> ApiResult<HttpResponse> {
    let id = comment_id(&path)?;
    let text = comments::checked_text(&body.body, "")?;
    limit_writes(&state, &viewer)?;
    let updated = comments::edit(
        &state.store,
        &id,
        &viewer.0.id,
        &text,
        &state.config.social.held_words,
        state.clock.now(),
    )?;
    Ok(HttpResponse::Ok().json(view(&state, &updated, &viewer.0.id)))
}

/// The author's own, or any as an admin; the comment keeps its place with no text.
#[utoipa::path(
    delete,
    operation_id = "deleteComment",
    path = "/api/v1/comments/{id}",
    tag = "social",
    summary = "Delete a comment",
    params(
        ("id" = String, Path, description = "The comment id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        crate::api::schemas::Unauthenticated,
        (status = 403, description = "`not_yours`; `account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`not_found` (a deleted comment too)", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`conflict`: a concurrent change won; retry", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn delete(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = comment_id(&path)?;
    comments::delete(&state.store, &id, &viewer.0.id, viewer.0.is_admin())?;
    Ok(HttpResponse::NoContent().finish())
}

/// Puts the comment in the moderation queue; open to viewers past the coverage bar, as
/// reading comments is.
#[utoipa::path(
    post,
    operation_id = "reportComment",
    path = "/api/v1/comments/{id}/report",
    tag = "social",
    summary = "Report a comment to the moderators",
    params(
        ("id" = String, Path, description = "The comment id"),
    ),
    responses(
        (status = 202, description = "Reported", body = Reported),
        crate::api::schemas::Unauthenticated,
        (status = 403, description = "`watch_more`: below the coverage bar (`coverage`); `account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such visible comment", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`conflict`: a concurrent change won; retry", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn report(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let c = comments::reportable(&state.store, &comment_id(&path)?)?;
    let film = catalogue::watchable_by_id(&state.store, &c.film_id)?;
    require_unlocked(&state, &viewer, &film).await?;
    comments::report(&state.store, &c, &viewer.0.id, state.clock.now())?;
    Ok(HttpResponse::Accepted().json(Reported { reported: true }))
}

/// Public: how many visible comments and supporters a film has (kept as counters, so this
/// reads one record).
#[utoipa::path(
    get,
    operation_id = "getSocialCounts",
    path = "/api/v1/films/{id}/social",
    tag = "social",
    summary = "A film's public comment and supporter counts",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "The counts", body = SocialCountsView),
        (status = 404, description = "`not_found`", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn counts(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    Ok(HttpResponse::Ok().json(SocialCountsView::from(state.store.social_counts(&film.id)?)))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportRequest {
    #[serde(default)]
    message: Option<String>,
    /// An optional tip through a payment provider; it never unlocks anything.
    #[serde(default)]
    tip: Option<TipRequest>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TipRequest {
    provider: String,
    /// Minor units, within `social.tips` for the currency.
    amount: u64,
    currency: String,
}

/// Once per viewer and film; a repeat answers 200 with the first support. A tip (allowed
/// with every call, first or not) answers the checkout to send the payer to.
#[utoipa::path(
    post,
    operation_id = "supportFilm",
    path = "/api/v1/films/{id}/support",
    tag = "social",
    summary = "Support a film, with an optional tip",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    request_body = Option<SupportRequest>,
    responses(
        (status = 201, description = "The first support", body = SupportAnswer),
        (status = 200, description = "Supported before: the first support", body = SupportAnswer),
        (status = 400, description = "`invalid_json`: a body that does not parse or has the wrong shape (no body at all is a support without a message or tip)", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::Unauthenticated,
        (status = 403, description = "`watch_more`; `account_disabled`", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`not_found`, `unknown_provider` (a tip's)", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`invalid_input`: a tip out of bounds", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`too_many_open_orders`", body = crate::api::schemas::ErrorBody),
        (status = 502, description = "`provider_unavailable` (a tip's checkout)", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn support(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let request = optional_json::<SupportRequest>(&req, payload).await?;
    Ok(support_with(state, viewer, &path, request).await?)
}

/// The body as `T`, or `T::default()` when the request has none. (`Option<web::Json<T>>`
/// would also make `None` of a body that is not JSON, does not parse or has unknown
/// fields, and so drop a malformed tip without a word: schemathesis found it.) A body is
/// read by `web::Json`, so it is refused as every JSON body is (`error::json_error`).
async fn optional_json<T: serde::de::DeserializeOwned + Default + 'static>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, actix_web::Error> {
    use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    use actix_web::FromRequest;
    let headers = req.headers();
    let empty = match headers.get(CONTENT_LENGTH) {
        Some(len) => len.as_bytes() == b"0",
        None => !headers.contains_key(TRANSFER_ENCODING),
    };
    if empty {
        return Ok(T::default());
    }
    let mut payload = payload.into_inner();
    // Read as an object first: serde's derived structs also take a JSON array of their
    // fields in order (`[null, null]` was a support), which no client means.
    let object =
        web::Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, &mut payload)
            .await?
            .into_inner();
    T::deserialize(serde_json::Value::Object(object)).map_err(|e| {
        ApiError::bad_request(
            Code::InvalidJson,
            format!("the JSON body is not valid: {e}"),
        )
        .into()
    })
}

async fn support_with(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: &str,
    request: SupportRequest,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, path)?;
    require_unlocked(&state, &viewer, &film).await?;
    let done = support::support(
        &state.store,
        &state.orders(),
        &state.config.social.tips,
        &film,
        &viewer.0.id,
        request.message.as_deref(),
        request.tip.map(|t| support::TipAsk {
            provider: t.provider,
            currency: t.currency,
            amount: Some(t.amount),
        }),
        state.clock.now(),
    )
    .await?;
    let (first, recorded, tip) = (done.first, done.support, done.tip);
    let body = SupportAnswer {
        supported: true,
        support: recorded.map(SupportView::from),
        tip: tip.as_ref().map(CheckoutView::from),
    };
    Ok(if first {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

#[utoipa::path(
    post,
    operation_id = "adminHideComment",
    path = "/api/v1/admin/comments/{id}/hide",
    tag = "admin",
    summary = "Hide a comment from everyone but its author",
    params(
        ("id" = String, Path, description = "The comment id"),
    ),
    responses(
        (status = 200, description = "The comment, hidden", body = AdminCommentView),
        (status = 404, description = "`not_found`: no such comment", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`comment_deleted` (with `deleted_by`): a deleted comment stays deleted", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn admin_hide(
    state: web::Data<AppState>,
    _a: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let c = comments::moderate(&state.store, &comment_id(&path)?, CommentState::Hidden)?;
    Ok(HttpResponse::Ok().json(AdminCommentView::from(c)))
}

#[utoipa::path(
    post,
    operation_id = "adminRestoreComment",
    path = "/api/v1/admin/comments/{id}/restore",
    tag = "admin",
    summary = "Show a hidden or held comment to everyone",
    params(
        ("id" = String, Path, description = "The comment id"),
    ),
    responses(
        (status = 200, description = "The comment, visible", body = AdminCommentView),
        (status = 404, description = "`not_found`: no such comment", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`comment_deleted` (with `deleted_by`): a deleted comment stays deleted", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
/// Shows a hidden or held comment to everyone; a deleted one is refused (`comment_deleted`).
pub async fn admin_restore(
    state: web::Data<AppState>,
    _a: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let c = comments::moderate(&state.store, &comment_id(&path)?, CommentState::Visible)?;
    Ok(HttpResponse::Ok().json(AdminCommentView::from(c)))
}

#[utoipa::path(
    delete,
    operation_id = "adminDeleteComment",
    path = "/api/v1/admin/comments/{id}",
    tag = "admin",
    summary = "Delete a comment's text and history (a tombstone stays)",
    params(
        ("id" = String, Path, description = "The comment id"),
    ),
    responses(
        (status = 204, description = "Deleted (or already was)"),
        (status = 404, description = "`not_found`: no such comment", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn admin_delete(
    state: web::Data<AppState>,
    _a: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    comments::remove(&state.store, &comment_id(&path)?)?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    operation_id = "adminModerationQueue",
    path = "/api/v1/admin/comments/queue",
    tag = "admin",
    summary = "Reported comments (most reported first) and held ones",
    responses(
        (status = 200, description = "The queue", body = ModerationQueue),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
/// The moderation queue: reported comments (most reported first) and held ones.
pub async fn admin_queue(state: web::Data<AppState>, _a: Admin) -> ApiResult<HttpResponse> {
    // Reads every flagged comment (`comments_flagged`): off the runtime's threads.
    let store = state.store.clone();
    let queue = web::block(move || store.reported_comments()).await??;
    let queue = queue.into_iter().map(AdminCommentView::from).collect();
    Ok(HttpResponse::Ok().json(ModerationQueue { queue }))
}

#[utoipa::path(
    get,
    operation_id = "adminFilmSupporters",
    path = "/api/v1/admin/films/{id}/supporters",
    tag = "admin",
    summary = "A film's supporters and tips",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    responses(
        (status = 200, description = "Supporters and tips (empty for a film without any)", body = Supporters),
        (status = 404, description = "`not_found`: not a film id", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn admin_supporters(
    state: web::Data<AppState>,
    _a: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let film = crate::store::parse_id(&path).ok_or_else(|| ApiError::not_found("film"))?;
    let supporters = state
        .store
        .supports_of(&film)?
        .into_iter()
        .map(|(user, s)| SupporterView::new(user, s))
        .collect();
    let tips = state
        .store
        .tips_for_film(&film)?
        .into_iter()
        .map(TipView::from)
        .collect();
    Ok(HttpResponse::Ok().json(Supporters { supporters, tips }))
}
