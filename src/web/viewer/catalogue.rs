//! The catalogue: every watchable film with its poster, duration and price; for a
//! signed-in viewer also "continue watching" (films begun and not finished, most recent
//! first) and "my films" (bought or granted).

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use uuid::Uuid;

use super::Frame;
use crate::state::AppState;
use crate::store::films::Film;
use crate::web::console::{render, view};
use crate::web::error::PageResult;
use crate::web::session::Visitor;

pub struct Card {
    pub id: String,
    pub title: String,
    pub duration: String,
    pub price: String,
    /// Share of the film the server has counted for this viewer, when begun.
    pub watched: Option<u32>,
    pub owned: bool,
}

#[derive(Template)]
#[template(path = "viewer/catalogue.html")]
struct CataloguePage {
    f: Frame,
    continuing: Vec<Card>,
    mine: Vec<Card>,
    all: Vec<Card>,
}

/// The film's first price as money ("4.99 USD"), or nothing when it has none.
pub fn first_price(film: &Film) -> String {
    film.prices
        .first()
        .map(|p| view::money(p.amount as i64, &p.currency))
        .unwrap_or_default()
}

pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
) -> PageResult<HttpResponse> {
    let st = state.clone();
    let user = visitor.user.as_ref().map(|u| u.id);
    let (films, progress, owned) = web::block(move || -> Result<_, crate::store::StoreError> {
        let films: Vec<Film> = st
            .store
            .films()?
            .into_iter()
            .filter(|f| f.is_watchable())
            .collect();
        let (progress, owned) = match user {
            Some(u) => {
                let mut owned: HashSet<Uuid> = st
                    .store
                    .purchases_of(&u)?
                    .into_iter()
                    .map(|(f, _)| f)
                    .collect();
                owned.extend(st.store.grants_of(&u)?.into_iter().map(|(f, _)| f));
                (st.store.progress_of_user(&u)?, owned)
            }
            None => (Vec::new(), HashSet::new()),
        };
        Ok((films, progress, owned))
    })
    .await??;
    let card = |f: &Film, watched: Option<u32>| Card {
        id: f.id.to_string(),
        title: f.title.clone(),
        duration: f
            .package
            .as_ref()
            .map(|p| view::duration(p.duration))
            .unwrap_or_default(),
        price: first_price(f),
        watched,
        owned: owned.contains(&f.id),
    };
    let mut begun: Vec<_> = progress
        .iter()
        .filter(|(_, p)| p.coverage() < 0.9 && p.covered_count() > 0)
        .collect();
    begun.sort_by_key(|(_, p)| std::cmp::Reverse(p.updated_at));
    let continuing = begun
        .iter()
        .filter_map(|(id, p)| {
            films
                .iter()
                .find(|f| f.id == *id)
                .map(|f| card(f, Some((p.coverage() * 100.0).floor() as u32)))
        })
        .collect();
    let mine = films
        .iter()
        .filter(|f| owned.contains(&f.id))
        .map(|f| card(f, None))
        .collect();
    render(&CataloguePage {
        f: Frame::new(&req, visitor.user.as_ref()),
        continuing,
        mine,
        all: films.iter().map(|f| card(f, None)).collect(),
    })
}
