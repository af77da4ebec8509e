//! The films list (`/admin/films`: state filter, title search, 50 a page) and the new-film
//! form. The film form's fields and their validation (the JSON API's, from `ingest`) live
//! here too; the film page (`film_page`) edits with the same form.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{render, view};
use crate::api::error::{ApiError, Code};
use crate::ingest::{self, FieldError};
use crate::overview::{self, FilmState};
use crate::state::AppState;
use crate::store::films::{Film, Price};
use crate::web::error::{encode_query, PageError, PageResult};
use crate::web::session::ConsoleAdmin;

const PAGE_SIZE: usize = 50;
/// Empty price rows offered on the form besides the film's own.
const SPARE_PRICE_ROWS: usize = 2;

pub struct FilmRow {
    pub id: String,
    pub title: String,
    pub state: &'static str,
    pub duration: String,
    pub segments: String,
    pub prices: Vec<String>,
    pub poster: bool,
}

#[derive(Template)]
#[template(path = "console/films.html")]
struct ListPage {
    me: String,
    section: &'static str,
    rows: Vec<FilmRow>,
    q: String,
    state: String,
    states: Vec<&'static str>,
    /// Films matching the search, over all pages.
    matching: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    q: Option<String>,
    state: Option<String>,
    page: Option<usize>,
}

/// `GET /admin/films`.
pub async fn list(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> PageResult<HttpResponse> {
    let query = query.into_inner();
    let q = query.q.unwrap_or_default().trim().to_string();
    let wanted = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            FilmState::ALL
                .into_iter()
                .find(|x| x.as_str() == s)
                .ok_or_else(|| {
                    PageError::new(
                        StatusCode::BAD_REQUEST,
                        Code::InvalidRequest,
                        format!("{s:?} is not a film state (draft, packaging, failed, ready, published)"),
                    )
                })?,
        ),
    };
    let page = query.page.unwrap_or(1).max(1);
    let st = state.clone();
    let needle = q.to_lowercase();
    // Every film is read (the state filter needs each film's newest job), but only the
    // page's rows are turned into views.
    let (rows, matching) = web::block(move || -> PageResult<(Vec<FilmRow>, usize)> {
        let mut matched = Vec::new();
        for film in st.store.films()? {
            if !needle.is_empty() && !film.title.to_lowercase().contains(&needle) {
                continue;
            }
            let film_state = state_of(&st, &film)?;
            if wanted.is_some_and(|w| w != film_state) {
                continue;
            }
            matched.push((film, film_state));
        }
        let matching = matched.len();
        let rows = matched
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|(f, s)| row(&f, s))
            .collect();
        Ok((rows, matching))
    })
    .await??;
    let pages = matching.div_ceil(PAGE_SIZE).max(1);
    let state_name = wanted.map(|s| s.as_str().to_string()).unwrap_or_default();
    let href = |p: usize| {
        let mut h = format!("/admin/films?page={p}");
        if !q.is_empty() {
            h.push_str(&format!("&q={}", encode_query(&q)));
        }
        if !state_name.is_empty() {
            h.push_str(&format!("&state={state_name}"));
        }
        h
    };
    render(&ListPage {
        me: admin.user.email.clone().unwrap_or_default(),
        section: "films",
        rows,
        prev: (page > 1).then(|| href(page - 1)),
        next: (page < pages).then(|| href(page + 1)),
        q,
        state: state_name,
        states: FilmState::ALL.iter().map(|s| s.as_str()).collect(),
        matching,
        page,
        pages,
    })
}

/// The film's state by its newest job.
pub(crate) fn state_of(state: &AppState, film: &Film) -> PageResult<FilmState> {
    let newest = state
        .store
        .jobs_for_film(&film.id)?
        .into_iter()
        .max_by_key(|j| j.id);
    Ok(overview::film_state(film, newest.as_ref()))
}

fn row(film: &Film, state: FilmState) -> FilmRow {
    FilmRow {
        id: film.id.to_string(),
        title: film.title.clone(),
        state: state.as_str(),
        duration: film
            .package
            .as_ref()
            .map(|p| p.duration)
            .or(film.source.as_ref().map(|s| s.duration))
            .map(view::duration)
            .unwrap_or_else(|| "—".into()),
        segments: film
            .package
            .as_ref()
            .map(|p| p.segments.to_string())
            .unwrap_or_else(|| "—".into()),
        prices: film
            .prices
            .iter()
            .map(|p| view::money(p.amount as i64, &p.currency))
            .collect(),
        poster: film.package.is_some(),
    }
}

/// What the film form shows: the values as typed (or the film's), and the refusal.
pub struct FilmForm {
    pub title: String,
    pub description: String,
    /// (amount in major units, currency) rows, spare empty rows included.
    pub prices: Vec<(String, String)>,
    pub publish_when_ready: bool,
    pub error: Option<FormError>,
}

pub struct FormError {
    pub code: &'static str,
    pub message: String,
}

impl FilmForm {
    pub fn blank() -> Self {
        Self::with_spare_rows(Self {
            title: String::new(),
            description: String::new(),
            prices: Vec::new(),
            publish_when_ready: false,
            error: None,
        })
    }

    pub fn of(film: &Film) -> Self {
        Self::with_spare_rows(Self {
            title: film.title.clone(),
            description: film.description.clone(),
            prices: film
                .prices
                .iter()
                .map(|p| {
                    (
                        crate::money::to_decimal(p.amount, &p.currency),
                        p.currency.clone(),
                    )
                })
                .collect(),
            publish_when_ready: film.publish_when_ready,
            error: None,
        })
    }

    /// The form as posted: repeated `price_amount` / `price_currency` pairs, in order.
    pub fn posted(fields: Vec<(String, String)>) -> Self {
        let mut form = Self {
            title: String::new(),
            description: String::new(),
            prices: Vec::new(),
            publish_when_ready: false,
            error: None,
        };
        let mut amounts = Vec::new();
        let mut currencies = Vec::new();
        for (k, v) in fields {
            match k.as_str() {
                "title" => form.title = v,
                "description" => form.description = v,
                "price_amount" => amounts.push(v),
                "price_currency" => currencies.push(v),
                "publish_when_ready" => form.publish_when_ready = true,
                _ => {}
            }
        }
        currencies.resize(amounts.len().max(currencies.len()), String::new());
        amounts.resize(currencies.len(), String::new());
        form.prices = amounts.into_iter().zip(currencies).collect();
        form.prices
            .retain(|(a, c)| !a.trim().is_empty() || !c.trim().is_empty());
        Self::with_spare_rows(form)
    }

    fn with_spare_rows(mut self) -> Self {
        self.prices
            .extend((0..SPARE_PRICE_ROWS).map(|_| (String::new(), "USD".to_string())));
        self
    }

    /// The fields, validated as the JSON API validates them.
    pub fn validate(&self) -> Result<(String, String, Vec<Price>), FieldError> {
        let title = ingest::validate_title(&self.title)?;
        let description = ingest::validate_description(&self.description)?;
        let mut typed = Vec::new();
        for (amount, currency) in &self.prices {
            // A spare row keeps its currency preset; without an amount it is no price.
            if amount.trim().is_empty() {
                continue;
            }
            typed.push(ingest::validate_decimal_price(amount, currency)?);
        }
        Ok((title, description, ingest::validate_prices(typed)?))
    }

    /// This form shown again with `e`'s code and words.
    pub fn refused(mut self, e: FieldError) -> Self {
        let e = ApiError::from(e);
        self.error = Some(FormError {
            code: e.code.as_str(),
            message: e.message,
        });
        self.prices.retain(|(a, _)| !a.trim().is_empty());
        Self::with_spare_rows(self)
    }
}

#[derive(Template)]
#[template(path = "console/films_new.html")]
struct NewPage {
    me: String,
    section: &'static str,
    form: FilmForm,
    action: &'static str,
    submit: &'static str,
}

/// `GET /admin/films/new`.
pub async fn new(admin: ConsoleAdmin) -> PageResult<HttpResponse> {
    render(&NewPage {
        me: admin.user.email.clone().unwrap_or_default(),
        section: "films",
        form: FilmForm::blank(),
        action: "/admin/films",
        submit: "Create film",
    })
}

/// `POST /admin/films` (htmx): creates the draft and goes to its page, or shows the form
/// again with the refusal (422).
pub async fn create(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Form<Vec<(String, String)>>,
) -> PageResult<HttpResponse> {
    let form = FilmForm::posted(body.into_inner());
    let (title, description, prices) = match form.validate() {
        Ok(fields) => fields,
        Err(e) => {
            let page = NewPage {
                me: admin.user.email.clone().unwrap_or_default(),
                section: "films",
                form: form.refused(e),
                action: "/admin/films",
                submit: "Create film",
            };
            return refused(&page);
        }
    };
    let mut film = ingest::new_film(title, description, prices, state.clock.now());
    film.publish_when_ready = form.publish_when_ready;
    state.store.save_film(&film)?;
    Ok(go_to(&req, &format!("/admin/films/{}", film.id)))
}

/// A page re-rendered with a refusal in it: 422, swapped in place by htmx.
pub(crate) fn refused<T: Template>(page: &T) -> PageResult<HttpResponse> {
    let mut answer = render(page)?;
    *answer.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(answer)
}

/// After a write: htmx loads `to` (`HX-Redirect`), a plain request is sent there (303).
pub(crate) fn go_to(req: &HttpRequest, to: &str) -> HttpResponse {
    if req.headers().contains_key("HX-Request") {
        HttpResponse::Ok()
            .insert_header(("HX-Redirect", to.to_string()))
            .finish()
    } else {
        HttpResponse::SeeOther()
            .insert_header(("Location", to.to_string()))
            .finish()
    }
}
