//! `/account`: the signed-in viewer's linked providers (link starts the same flow as
//! `POST /auth/{provider}/link`, from `account.js`; unlink as `DELETE /me/identities/…`),
//! purchases and progress, signing out here or everywhere (the session epoch moves on, as
//! `POST /auth/logout-all` does) and deleting the account after a confirmation (as
//! `DELETE /me`).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use uuid::Uuid;

use super::Frame;
use crate::api::error::ApiError;
use crate::auth::identity::ProviderId;
use crate::server::session::ended_session_cookie;
use crate::state::AppState;
use crate::web::console::{render, view};
use crate::web::error::PageResult;
use crate::web::session::SignedIn;

pub struct LinkedRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub since: String,
}

pub struct LinkableRow {
    pub id: &'static str,
    pub name: &'static str,
}

pub struct PurchaseRow {
    pub film: String,
    pub title: String,
    pub at: String,
}

pub struct ProgressRow {
    pub film: String,
    pub title: String,
    pub percent: u32,
    pub unlocked: bool,
}

#[derive(Template)]
#[template(path = "viewer/account.html")]
struct AccountPage {
    f: Frame,
    email: String,
    linked: Vec<LinkedRow>,
    linkable: Vec<LinkableRow>,
    purchases: Vec<PurchaseRow>,
    progress: Vec<ProgressRow>,
    prefs: crate::notify::NotificationPrefs,
}

pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
) -> PageResult<HttpResponse> {
    let user = who.user.id;
    let st = state.clone();
    let (identities, purchases, mut films, prefs) =
        web::block(move || -> Result<_, crate::store::StoreError> {
            let identities = st.store.identities_of(&user)?;
            let mut purchases = Vec::new();
            for (film, p) in st.store.purchases_of(&user)? {
                let title = st.store.film(&film)?.map(|f| f.title).unwrap_or_default();
                purchases.push(PurchaseRow {
                    film: film.to_string(),
                    title,
                    at: view::time(p.purchased_at),
                });
            }
            let films: Vec<Uuid> = st
                .store
                .progress_of_user(&user)?
                .into_iter()
                .map(|(f, _)| f)
                .collect();
            let prefs = st.store.notification_prefs(&user)?;
            Ok((identities, purchases, films, prefs))
        })
        .await??;
    // As `/me/progress`: stored progress plus any not flushed yet, each read merging the
    // unflushed delta.
    films.extend(state.progress.pending_films(&user));
    films.sort_unstable();
    films.dedup();
    let mut progress = Vec::new();
    for film_id in films {
        let Some(film) = state.store.film(&film_id)?.filter(|f| f.is_watchable()) else {
            continue;
        };
        let Ok(playback) = state.playback_access().playback_of(&film).await else {
            continue;
        };
        let p = state.progress.view(
            &user,
            &film_id,
            &playback.manifest.segments,
            std::time::Instant::now(),
        )?;
        progress.push(ProgressRow {
            film: film_id.to_string(),
            title: film.title.clone(),
            percent: ((p.coverage * 100.0).floor() as u32).min(100),
            unlocked: p.unlocked,
        });
    }
    let linked_ids: Vec<&str> = identities.iter().map(|i| i.provider.as_str()).collect();
    let linkable = state
        .providers
        .configured()
        .into_iter()
        .filter(|p| !linked_ids.contains(&p.as_str()))
        .map(|p| LinkableRow {
            id: p.as_str(),
            name: p.display_name(),
        })
        .collect();
    let linked = identities
        .iter()
        .map(|i| LinkedRow {
            id: i.provider.clone(),
            name: ProviderId::parse(&i.provider)
                .map(|p| p.display_name().to_string())
                .unwrap_or_else(|| i.provider.clone()),
            email: i.email.clone().unwrap_or_default(),
            since: view::time(i.linked_at),
        })
        .collect();
    render(&AccountPage {
        f: Frame::new(&req, Some(&who.user)),
        email: who.user.email.clone().unwrap_or_default(),
        linked,
        linkable,
        purchases,
        progress,
        prefs,
    })
}

/// The notification form; a checkbox is sent only when checked.
#[derive(serde::Deserialize)]
pub struct NotificationsForm {
    #[serde(default)]
    new_films_email: Option<String>,
    #[serde(default)]
    new_films_push: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

/// `POST /account/notifications` (htmx): as `PUT /api/v1/me/notifications`; answers the
/// "saved" line.
pub async fn notifications(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: SignedIn,
    form: web::Form<NotificationsForm>,
) -> PageResult<HttpResponse> {
    let language = match form.language.as_deref() {
        None => None,
        Some(l) => Some(
            crate::notify::Language::parse(l)
                .ok_or_else(|| ApiError::validation("language must be \"en\" or \"ko\""))?,
        ),
    };
    let (email, push) = (
        form.new_films_email.is_some(),
        form.new_films_push.is_some(),
    );
    state.store.update_notification_prefs(&who.user.id, |p| {
        p.new_films_email = email;
        p.new_films_push = push;
        if let Some(l) = language {
            p.language = l;
        }
    })?;
    let t = crate::web::i18n::Lang::of(&req).texts();
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(t.account_saved))
}

/// `POST /account/unlink/{provider}`: then the page again.
pub async fn unlink(
    state: web::Data<AppState>,
    who: SignedIn,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let provider = ProviderId::parse(&path).ok_or_else(|| ApiError::not_found("provider"))?;
    if !crate::auth::accounts::unlink(&state.store, &who.user, provider.as_str())? {
        return Err(ApiError::not_found("linked provider").into());
    }
    Ok(HttpResponse::NoContent()
        .insert_header(("HX-Redirect", "/account"))
        .finish())
}

/// `POST /account/sign-out-everywhere`: every token and session of the account ends, this
/// browser's too.
pub async fn sign_out_everywhere(
    state: web::Data<AppState>,
    who: SignedIn,
) -> PageResult<HttpResponse> {
    // An update of the stored record, as the JSON logout-all: a concurrent change to the
    // account is neither undone by it nor undoes it.
    let id = who.user.id;
    state
        .store
        .update_user(&id, |u| u.session_epoch = u.session_epoch.wrapping_add(1))?;
    tracing::info!(user = %id, "signed out everywhere");
    Ok(HttpResponse::NoContent()
        .cookie(ended_session_cookie())
        .insert_header(("HX-Redirect", "/"))
        .finish())
}

/// `POST /account/delete` (after the page's confirmation): as `DELETE /me`.
pub async fn delete(state: web::Data<AppState>, who: SignedIn) -> PageResult<HttpResponse> {
    let id = who.user.id;
    state.progress.forget_user(&id);
    state.store.delete_user(&id)?;
    state.progress.forget_user(&id);
    tracing::info!(user = %id, "account deleted");
    Ok(HttpResponse::NoContent()
        .cookie(ended_session_cookie())
        .insert_header(("HX-Redirect", "/"))
        .finish())
}
