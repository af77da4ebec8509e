//! Buying films: checkout, the payer's return/cancel/fail pages, order polling, purchases,
//! PayPal webhooks, and the admin's orders, refunds and reconciliation.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::api::extract::{Admin, Viewer};
use crate::payments::orders::{OrderError, Started};
use crate::payments::WebhookHeaders;
use crate::state::AppState;
use crate::store::orders::{Order, OrderState};
use crate::store::parse_id;

/// What a viewer sees of an order.
#[derive(Serialize)]
struct OrderView<'a> {
    id: Uuid,
    film_id: Uuid,
    kind: crate::store::orders::OrderKind,
    provider: &'a str,
    amount: u64,
    currency: &'a str,
    state: OrderState,
    failure: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
}

fn view(o: &Order) -> OrderView<'_> {
    OrderView {
        id: o.id,
        film_id: o.film_id,
        kind: o.kind,
        provider: &o.provider,
        amount: o.amount,
        currency: &o.currency,
        state: o.state,
        failure: o.failure.as_deref(),
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

pub async fn providers(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "providers": state.payments.ids() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    provider: String,
}

pub async fn checkout(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Json<CheckoutRequest>,
) -> ApiResult<HttpResponse> {
    let film = super::films::watchable_film(&state, &path)?;
    let started = state
        .orders()
        .checkout(&viewer.0.id, &film, &body.provider)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(started_view(&started)))
}

/// Where to send the payer: the answer to a checkout, and to a support with a tip.
pub(super) fn started_view(started: &Started) -> Value {
    serde_json::json!({
        "order_id": started.order.id,
        "redirect_url": started.redirect_url,
        "mobile_url": started.mobile_url,
        "app_url": started.app_url,
        "amount": started.order.amount,
        "currency": started.order.currency,
    })
}

pub async fn order(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    // Another user's order is as invisible as one that does not exist.
    let order = parse_id(&path)
        .map(|id| state.store.order(&id))
        .transpose()?
        .flatten()
        .filter(|o| o.user_id == viewer.0.id)
        .ok_or_else(|| ApiError::not_found("order"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(view(&order)))
}

pub async fn my_purchases(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    // Every purchase's order is among the viewer's orders: read them once.
    let orders = state.store.orders_of(&viewer.0.id)?;
    let by_id: HashMap<Uuid, &Order> = orders.iter().map(|o| (o.id, o)).collect();
    let mut out = Vec::new();
    for (film_id, p) in state.store.purchases_of(&viewer.0.id)? {
        let order = by_id.get(&p.order_id);
        out.push(serde_json::json!({
            "film_id": film_id,
            "title": state.store.film(&film_id)?.map(|f| f.title),
            "order_id": p.order_id,
            "purchased_at": p.purchased_at,
            "amount": order.as_ref().map(|o| o.amount),
            "currency": order.as_ref().map(|o| o.currency.clone()),
            "provider": order.as_ref().map(|o| o.provider.clone()),
        }));
    }
    let orders: Vec<_> = orders.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "purchases": out, "orders": orders })))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page a payer lands on after the provider. Apps poll `GET /api/v1/orders/{id}`.
fn page(status: StatusCode, title: &str, text: &str, order: Option<&Order>) -> HttpResponse {
    let order_line = order
        .map(|o| format!("<p>Order <code>{}</code>: {:?}</p>", o.id, o.state))
        .unwrap_or_default();
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title></head><body><h1>{t}</h1><p>{x}</p>{order_line}<p>You can close this page and return to the app.</p></body></html>",
            t = escape(title),
            x = escape(text)
        ))
}

fn order_param(params: &HashMap<String, String>) -> Option<Uuid> {
    params.get("order").and_then(|o| parse_id(o))
}

fn error_page(e: OrderError) -> HttpResponse {
    let api: ApiError = e.into();
    page(api.status, "Payment not completed", &api.message, None)
}

/// The page for an order as it stands after the payer's visit.
fn state_page(order: &Order) -> HttpResponse {
    match order.state {
        OrderState::Captured => page(
            StatusCode::OK,
            "Payment complete",
            "The whole film is yours.",
            Some(order),
        ),
        // The payer came back and the provider has not confirmed the capture yet.
        OrderState::Approved => page(
            StatusCode::ACCEPTED,
            "Payment being confirmed",
            "The payment provider has not confirmed this payment yet. Reload this page in a moment; if you paid, the film unlocks as soon as the provider confirms it.",
            Some(order),
        ),
        _ => page(
            StatusCode::PAYMENT_REQUIRED,
            "Payment not completed",
            order
                .failure
                .as_deref()
                .unwrap_or("the payment did not go through"),
            Some(order),
        ),
    }
}

/// The payer's pages need no session and a return may call the provider (a capture): a
/// per-address budget keeps anyone holding a link from turning it into a flood of writes
/// and provider calls. Answered as a page, like the rest.
fn pay_limited(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    super::auth::limit(state, req, crate::ratelimit::Budget::Pay)
        .err()
        .map(|e| {
            let mut page = page(e.status, "Too many requests", &e.message, None);
            if let Some(retry) = e.extra.get("retry_after") {
                if let Ok(value) = header::HeaderValue::from_str(&retry.to_string()) {
                    page.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            page
        })
}

pub async fn return_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(page) = pay_limited(&state, &req) {
        return page;
    }
    let Some(id) = order_param(&query) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown order",
            "the link has no order",
            None,
        );
    };
    match state.orders().complete(&path, &id, &query).await {
        Ok(order) => state_page(&order),
        Err(e) => error_page(e),
    }
}

pub async fn cancel_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(page) = pay_limited(&state, &req) {
        return page;
    }
    abandon(
        &state,
        &path,
        &query,
        OrderState::Cancelled,
        "cancelled by the payer",
    )
    .await
}

pub async fn fail_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    if let Some(page) = pay_limited(&state, &req) {
        return page;
    }
    abandon(
        &state,
        &path,
        &query,
        OrderState::Failed,
        "failed at the provider",
    )
    .await
}

async fn abandon(
    state: &AppState,
    provider: &str,
    query: &HashMap<String, String>,
    outcome: OrderState,
    why: &str,
) -> HttpResponse {
    let Some(id) = order_param(query) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown order",
            "the link has no order",
            None,
        );
    };
    match state.orders().abandon(provider, &id, outcome, why).await {
        Ok(order) if order.state == outcome => {
            page(StatusCode::OK, "Payment not completed", why, Some(&order))
        }
        Ok(order) if order.state == OrderState::Approved => page(
            StatusCode::CONFLICT,
            "Payment being confirmed",
            "This payment is being confirmed with the payment provider and cannot be cancelled here. If you paid, the film unlocks as soon as the provider confirms it.",
            Some(&order),
        ),
        Ok(order) => state_page(&order),
        Err(e) => error_page(e),
    }
}

/// PayPal's webhook: verified with PayPal before anything changes, de-duplicated by event
/// id (`OrderService::webhook`).
pub async fn paypal_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    // Each delivery costs a call to PayPal's verification API: a flood must not turn into one.
    super::auth::limit(&state, &req, crate::ratelimit::Budget::Webhook)?;
    if state.payments.get("paypal").is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    // The event as received: what PayPal verifies.
    let raw: &RawValue = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_json", "the webhook body is not JSON"))?;
    let headers: WebhookHeaders = req
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let status = state.orders().webhook("paypal", &headers, raw).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": status })))
}

pub async fn admin_orders(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    // Reads every order: off the runtime's threads.
    let store = state.store.clone();
    let mut orders = web::block(move || store.orders()).await??;
    orders.reverse();
    for o in &mut orders {
        // Kakao Pay's pg_token: only a retried capture needs it.
        o.capture_token = None;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "orders": orders })))
}

pub async fn admin_refund(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path).ok_or_else(|| ApiError::not_found("order"))?;
    let order = state
        .orders()
        .refund(&id, &format!("refunded by admin {}", admin.0.id))
        .await
        .map_err(ApiError::for_admin)?;
    Ok(HttpResponse::Ok().json(order))
}

pub async fn admin_reconcile(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    let changed = state
        .orders()
        .reconcile()
        .await
        .map_err(ApiError::for_admin)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "changed": changed })))
}
