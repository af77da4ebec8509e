//! The orders pages: the list (filtered by state, provider, film and creation date, newest
//! first, 50 a page over the time-ordered ids), an order's detail with its history, the
//! refund (the `OrderService` refund the JSON API calls) and reconciliation.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::{render, view};
use crate::api::error::{ApiError, Code};
use crate::state::AppState;
use crate::store::orders::{Order, OrderKind, OrderState};
use crate::store::{parse_id, Store};
use crate::web::error::{PageError, PageResult};
use crate::web::session::ConsoleAdmin;

const PAGE: usize = 50;
/// Orders read per page at most: a filter matching little pages on through the range
/// instead of reading all of it at once.
const SCAN: usize = 2_000;

const STATES: [&str; 6] = [
    "created",
    "approved",
    "captured",
    "refunded",
    "cancelled",
    "failed",
];

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    film: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The cursor: the page holds orders older than this one.
    #[serde(default)]
    before: String,
}

pub struct Row {
    pub id: String,
    pub when: String,
    pub film_id: String,
    pub title: String,
    pub buyer_id: String,
    pub buyer: String,
    pub provider: String,
    pub kind: &'static str,
    pub amount: String,
    pub state: &'static str,
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/orders.html")]
struct OrdersPage {
    me: String,
    section: &'static str,
    rows: Vec<Row>,
    states: Vec<Choice>,
    providers: Vec<Choice>,
    films: Vec<Choice>,
    from: String,
    to: String,
    filtered: bool,
    /// The next page's address, when there is one.
    next: Option<String>,
    first_page: bool,
}

pub struct Event {
    pub when: String,
    pub state: &'static str,
    pub note: String,
}

#[derive(Template)]
#[template(path = "console/orders_detail.html")]
struct OrderPage {
    me: String,
    section: &'static str,
    order: OrderBox,
}

/// The order's fields and history: the part of the detail page a refund redraws.
#[derive(Template)]
#[template(path = "console/orders_box.html")]
pub struct OrderBox {
    id: String,
    film_id: String,
    title: String,
    buyer_id: String,
    buyer: String,
    kind: &'static str,
    provider: String,
    amount: String,
    state: &'static str,
    provider_ref: String,
    payment_id: String,
    failure: String,
    created: String,
    updated: String,
    refund_requested: String,
    refundable: bool,
    events: Vec<Event>,
    /// What the action just done did, shown above the fields.
    notice: String,
}

#[derive(Template)]
#[template(path = "console/orders_reconciled.html")]
struct Reconciled {
    changed: usize,
}

pub fn state_name(s: OrderState) -> &'static str {
    match s {
        OrderState::Created => "created",
        OrderState::Approved => "approved",
        OrderState::Captured => "captured",
        OrderState::Refunded => "refunded",
        OrderState::Cancelled => "cancelled",
        OrderState::Failed => "failed",
    }
}

fn kind_name(k: OrderKind) -> &'static str {
    match k {
        OrderKind::Purchase => "purchase",
        OrderKind::Tip => "tip",
    }
}

fn invalid(message: impl Into<String>) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, Code::InvalidQuery, message)
}

/// `YYYY-MM-DD` → Unix seconds at 00:00 UTC that day.
fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // H. Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

/// An optional day from the query; empty is no bound.
fn day(text: &str, name: &str) -> PageResult<Option<i64>> {
    if text.is_empty() {
        return Ok(None);
    }
    parse_day(text)
        .map(Some)
        .ok_or_else(|| invalid(format!("`{name}` must be a date like 2026-12-31")))
}

/// Film titles and buyer e-mails for the orders shown (one read of each).
struct Names {
    films: HashMap<Uuid, String>,
    users: HashMap<Uuid, String>,
}

impl Names {
    fn of(store: &Store, orders: &[Order]) -> PageResult<Self> {
        let mut names = Names {
            films: HashMap::new(),
            users: HashMap::new(),
        };
        for o in orders {
            if let Entry::Vacant(slot) = names.films.entry(o.film_id) {
                slot.insert(
                    store
                        .film(&o.film_id)?
                        .map(|f| f.title)
                        .unwrap_or_else(|| "(deleted film)".into()),
                );
            }
            if let Entry::Vacant(slot) = names.users.entry(o.user_id) {
                slot.insert(
                    store
                        .user(&o.user_id)?
                        .map(|u| u.email.unwrap_or_else(|| u.id.to_string()))
                        .unwrap_or_else(|| "(deleted account)".into()),
                );
            }
        }
        Ok(names)
    }

    fn film(&self, id: &Uuid) -> String {
        self.films.get(id).cloned().unwrap_or_default()
    }

    fn user(&self, id: &Uuid) -> String {
        self.users.get(id).cloned().unwrap_or_default()
    }
}

/// `GET /admin/orders`.
pub async fn list(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    query: web::Query<Filter>,
) -> PageResult<HttpResponse> {
    let f = query.into_inner();
    if !f.state.is_empty() && !STATES.contains(&f.state.as_str()) {
        return Err(invalid(format!("{:?} is not an order state", f.state)));
    }
    let film = match f.film.as_str() {
        "" => None,
        id => Some(parse_id(id).ok_or_else(|| invalid("`film` is not a film id"))?),
    };
    let before = match f.before.as_str() {
        "" => None,
        id => Some(parse_id(id).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidCursor,
                "`before` is not an order id",
            )
        })?),
    };
    let from = day(&f.from, "from")?;
    // The whole last day counts.
    let to = day(&f.to, "to")?.map(|t| t + 86_400);
    let st = state.clone();
    let (want_state, want_provider) = (f.state.clone(), f.provider.clone());
    let (orders, next, names, films) = web::block(move || -> PageResult<_> {
        let (orders, next) = st.store.orders_page((from, to), before, PAGE, SCAN, |o| {
            (want_state.is_empty() || state_name(o.state) == want_state)
                && (want_provider.is_empty() || o.provider == want_provider)
                && film.is_none_or(|f| o.film_id == f)
        })?;
        let names = Names::of(&st.store, &orders)?;
        let mut films: Vec<(String, Uuid)> = st
            .store
            .films()?
            .into_iter()
            .map(|f| (f.title, f.id))
            .collect();
        films.sort();
        Ok((orders, next, names, films))
    })
    .await??;
    let mut providers: Vec<String> = state
        .payments
        .ids()
        .into_iter()
        .map(str::to_string)
        .collect();
    if !f.provider.is_empty() && !providers.contains(&f.provider) {
        providers.push(f.provider.clone());
    }
    let choice = |value: String, label: String, current: &str| Choice {
        selected: value == current,
        value,
        label,
    };
    let next = next.map(|id| {
        format!(
            "/admin/orders?state={}&provider={}&film={}&from={}&to={}&before={id}",
            enc(&f.state),
            enc(&f.provider),
            enc(&f.film),
            enc(&f.from),
            enc(&f.to)
        )
    });
    render(&OrdersPage {
        me: admin.user.email.clone().unwrap_or_default(),
        section: "orders",
        rows: orders
            .iter()
            .map(|o| Row {
                id: o.id.to_string(),
                when: view::time(o.created_at),
                film_id: o.film_id.to_string(),
                title: names.film(&o.film_id),
                buyer_id: o.user_id.to_string(),
                buyer: names.user(&o.user_id),
                provider: o.provider.clone(),
                kind: kind_name(o.kind),
                amount: view::money(o.amount as i64, &o.currency),
                state: state_name(o.state),
            })
            .collect(),
        states: STATES
            .iter()
            .map(|s| choice(s.to_string(), s.to_string(), &f.state))
            .collect(),
        providers: providers
            .into_iter()
            .map(|p| choice(p.clone(), p, &f.provider))
            .collect(),
        films: films
            .into_iter()
            .map(|(title, id)| choice(id.to_string(), title, &f.film))
            .collect(),
        filtered: !(f.state.is_empty()
            && f.provider.is_empty()
            && f.film.is_empty()
            && f.from.is_empty()
            && f.to.is_empty()),
        from: f.from,
        to: f.to,
        next,
        first_page: before.is_none(),
    })
}

fn enc(text: &str) -> String {
    crate::web::error::encode_query(text)
}

fn order_id(text: &str) -> PageResult<Uuid> {
    parse_id(text).ok_or_else(|| ApiError::not_found("order").into())
}

async fn order_box(
    state: &web::Data<AppState>,
    order: Order,
    notice: String,
) -> PageResult<OrderBox> {
    let st = state.clone();
    let o = order.clone();
    let names = web::block(move || Names::of(&st.store, std::slice::from_ref(&o))).await??;
    let when = |t: Option<i64>| t.map(view::time).unwrap_or_default();
    Ok(OrderBox {
        id: order.id.to_string(),
        film_id: order.film_id.to_string(),
        title: names.film(&order.film_id),
        buyer_id: order.user_id.to_string(),
        buyer: names.user(&order.user_id),
        kind: kind_name(order.kind),
        provider: order.provider.clone(),
        amount: view::money(order.amount as i64, &order.currency),
        state: state_name(order.state),
        provider_ref: order.provider_ref.clone().unwrap_or_default(),
        payment_id: order.payment_id.clone().unwrap_or_default(),
        failure: order.failure.clone().unwrap_or_default(),
        created: view::time(order.created_at),
        updated: view::time(order.updated_at),
        refund_requested: when(order.refund_requested_at),
        refundable: order.state == OrderState::Captured,
        events: order
            .events
            .iter()
            .map(|e| Event {
                when: view::time(e.at),
                state: state_name(e.state),
                note: e.note.clone(),
            })
            .collect(),
        notice,
    })
}

/// `GET /admin/orders/{id}`.
pub async fn detail(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = order_id(&path)?;
    let order = state
        .store
        .order(&id)?
        .ok_or_else(|| ApiError::not_found("order"))?;
    render(&OrderPage {
        me: admin.user.email.clone().unwrap_or_default(),
        section: "orders",
        order: order_box(&state, order, String::new()).await?,
    })
}

/// `POST /admin/orders/{id}/refund`: the order box redrawn with its new state; the
/// provider's refusal (with its code) is the page's error.
pub async fn refund(
    admin: ConsoleAdmin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let id = order_id(&path)?;
    let order = state
        .orders()
        .refund(&id, &format!("refunded by admin {}", admin.user.id))
        .await
        .map_err(ApiError::for_admin)?;
    tracing::info!(order = %id, admin = %admin.user.id, "refunded from the console");
    let notice = format!("The order is now {}.", state_name(order.state));
    render(&order_box(&state, order, notice).await?)
}

/// `POST /admin/orders/reconcile`: asks the providers about unsettled orders.
pub async fn reconcile(
    _admin: ConsoleAdmin,
    state: web::Data<AppState>,
) -> PageResult<HttpResponse> {
    let changed = state
        .orders()
        .reconcile()
        .await
        .map_err(ApiError::for_admin)?;
    render(&Reconciled { changed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_to_midnight_utc() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2000-02-29"), Some(951_782_400));
        assert_eq!(
            parse_day("2026-12-05").map(view::time).as_deref(),
            Some("2026-12-05 00:00 UTC")
        );
        assert_eq!(parse_day("2026-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
    }
}
