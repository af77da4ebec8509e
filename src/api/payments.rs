//! Buying films: checkout, the payer's return/cancel/fail pages, order polling, purchases,
//! PayPal webhooks, and the admin's orders, refunds and reconciliation.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Code};
use crate::api::extract::{Admin, Viewer};
use crate::api::views::orders::{
    AdminOrderList, AdminOrderView, CheckoutView, OrderView, ProviderList, PurchaseView, Purchases,
    Reconciled, WebhookAnswer,
};
use crate::catalogue;
use crate::payments::orders::OrderError;
use crate::payments::WebhookHeaders;
use crate::ratelimit::Budget;
use crate::state::AppState;
use crate::store::orders::{Order, OrderState};
use crate::store::parse_id;

#[utoipa::path(
    get,
    operation_id = "listPaymentProviders",
    path = "/api/v1/payments/providers",
    tag = "payments",
    summary = "The configured payment providers",
    responses(
        (status = 200, description = "Their ids", body = ProviderList),
    ),
)]
pub async fn providers(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ProviderList {
        providers: state.payments.ids(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "dev"}))]
pub struct CheckoutRequest {
    provider: String,
}

#[utoipa::path(
    post,
    operation_id = "checkout",
    path = "/api/v1/films/{id}/checkout",
    tag = "payments",
    summary = "Buy a film: an order and the provider's page to pay on",
    params(
        ("id" = String, Path, description = "The film id"),
    ),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "The order started", body = CheckoutView),
        (status = 400, description = "`invalid_json`", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::SignedInRefusals,
        (status = 404, description = "`not_found`, `unknown_provider`", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`already_owned`, `not_for_sale`", body = crate::api::schemas::ErrorBody),
        (status = 413, description = "`body_too_large`", body = crate::api::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send `application/json`", body = crate::api::schemas::ErrorBody),
        (status = 422, description = "`currency_unsupported`: the provider takes none of the film's currencies", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`too_many_open_orders`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
        (status = 502, description = "`provider_unavailable`", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn checkout(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    body: web::Json<CheckoutRequest>,
) -> ApiResult<HttpResponse> {
    let film = catalogue::watchable(&state.store, &path)?;
    let started = state
        .orders()
        .checkout(&viewer.0.id, &film, &body.provider)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CheckoutView::from(&started)))
}

#[utoipa::path(
    get,
    operation_id = "getOrder",
    path = "/api/v1/orders/{id}",
    tag = "payments",
    summary = "One of the viewer's orders",
    params(
        ("id" = String, Path, description = "The order id"),
    ),
    responses(
        (status = 200, description = "The order", body = OrderView),
        crate::api::schemas::SignedInRefusals,
        (status = 404, description = "`not_found`: no such order of this viewer", body = crate::api::schemas::ErrorBody),
    ),
    security(("bearer" = [])),
)]
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
        .json(OrderView::from(&order)))
}

#[utoipa::path(
    get,
    operation_id = "listMyPurchases",
    path = "/api/v1/me/purchases",
    tag = "payments",
    summary = "The viewer's purchases and orders",
    responses(
        (status = 200, description = "Purchases and every order", body = Purchases),
        crate::api::schemas::SignedInRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn my_purchases(state: web::Data<AppState>, viewer: Viewer) -> ApiResult<HttpResponse> {
    // Every purchase's order is among the viewer's orders: read them once.
    let orders = state.store.orders_of(&viewer.0.id)?;
    let by_id: HashMap<Uuid, &Order> = orders.iter().map(|o| (o.id, o)).collect();
    let mut purchases = Vec::new();
    for (film_id, p) in state.store.purchases_of(&viewer.0.id)? {
        let order = by_id.get(&p.order_id);
        purchases.push(PurchaseView {
            film_id,
            title: state.store.film(&film_id)?.map(|f| f.title),
            order_id: p.order_id,
            purchased_at: p.purchased_at,
            amount: order.map(|o| o.amount),
            currency: order.map(|o| o.currency.clone()),
            provider: order.map(|o| o.provider.clone()),
        });
    }
    let orders = orders.iter().map(OrderView::from).collect();
    Ok(HttpResponse::Ok().json(Purchases { purchases, orders }))
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

/// A payer who started in the viewer app goes back to its page, which says in the
/// viewer's language how the payment went (`payment=paid|pending|cancelled|failed`); a
/// payer from an app has no `return_to` and gets the page above.
fn back_to_app(order: &Order) -> Option<HttpResponse> {
    let to = order
        .return_to
        .as_deref()
        .filter(|p| crate::auth::signin::local_path(p))?;
    let outcome = match order.state {
        OrderState::Captured => "paid",
        OrderState::Approved => "pending",
        OrderState::Cancelled => "cancelled",
        _ => "failed",
    };
    let sep = if to.contains('?') { '&' } else { '?' };
    Some(
        HttpResponse::SeeOther()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((
                header::LOCATION,
                format!("{to}{sep}from=checkout&payment={outcome}"),
            ))
            .finish(),
    )
}

/// The payer's pages need no session and a return may call the provider (a capture): a
/// per-address budget keeps anyone holding a link from turning it into a flood of writes
/// and provider calls. Answered as a page, like the rest.
fn pay_limited(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    let limited = state
        .limits
        .client(
            Budget::Pay,
            state.trusted_proxies.key_of(req),
            state.clock.now(),
        )
        .err()?;
    let e = ApiError::from(limited);
    let mut page = page(e.status, "Too many requests", &e.message, None);
    if let Some(retry) = e.extra.get("retry_after") {
        if let Ok(value) = header::HeaderValue::from_str(&retry.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    Some(page)
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
        Ok(order) => back_to_app(&order).unwrap_or_else(|| state_page(&order)),
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
        Ok(order) if order.return_to.is_some() => {
            back_to_app(&order).unwrap_or_else(|| state_page(&order))
        }
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
#[utoipa::path(
    post,
    operation_id = "paypalWebhook",
    path = "/api/v1/payments/paypal/webhook",
    tag = "payments",
    summary = "PayPal's webhook deliveries (called by PayPal, not by apps)",
    description = "An event that concerns one of our orders is verified with PayPal's \
                   verification API (the `Paypal-Transmission-*` headers) before anything \
                   changes; anything else is answered `ignored`, a repeat `duplicate`.",
    request_body(content = Object, description = "A PayPal webhook event, as PayPal sends it", content_type = "application/json"),
    responses(
        (status = 200, description = "What became of the delivery", body = WebhookAnswer),
        (status = 400, description = "`invalid_json`: the body is not JSON", body = crate::api::schemas::ErrorBody),
        (status = 401, description = "`invalid_signature`: PayPal did not verify the delivery", body = crate::api::schemas::ErrorBody),
        (status = 404, description = "`not_found`: PayPal is not configured here", body = crate::api::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: wait `retry_after` seconds", body = crate::api::schemas::ErrorBody),
        (status = 502, description = "`provider_unavailable`: the verification could not be asked", body = crate::api::schemas::ErrorBody),
    ),
)]
pub async fn paypal_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    // Each delivery costs a call to PayPal's verification API: a flood must not turn into one.
    state.limits.client(
        Budget::Webhook,
        state.trusted_proxies.key_of(&req),
        state.clock.now(),
    )?;
    if state.payments.get("paypal").is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    // The event as received: what PayPal verifies.
    let raw: &RawValue = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request(Code::InvalidJson, "the webhook body is not JSON"))?;
    let headers: WebhookHeaders = req
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let status = state.orders().webhook("paypal", &headers, raw).await?;
    Ok(HttpResponse::Ok().json(WebhookAnswer { status }))
}

#[utoipa::path(
    get,
    operation_id = "adminListOrders",
    path = "/api/v1/admin/orders",
    tag = "admin",
    summary = "Every order, newest first, with its history",
    responses(
        (status = 200, description = "The orders", body = AdminOrderList),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn admin_orders(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    // Reads every order: off the runtime's threads.
    let store = state.store.clone();
    let orders = web::block(move || store.orders()).await??;
    // Newest first.
    let orders = orders.into_iter().rev().map(AdminOrderView::from).collect();
    Ok(HttpResponse::Ok().json(AdminOrderList { orders }))
}

#[utoipa::path(
    post,
    operation_id = "adminRefundOrder",
    path = "/api/v1/admin/orders/{id}/refund",
    tag = "admin",
    summary = "Refund a paid order with its provider",
    params(
        ("id" = String, Path, description = "The order id"),
    ),
    responses(
        (status = 200, description = "The order, refunded", body = AdminOrderView),
        (status = 404, description = "`not_found`: no such order; `unknown_provider`: its provider is no longer configured", body = crate::api::schemas::ErrorBody),
        (status = 409, description = "`order_state`: not a paid order", body = crate::api::schemas::ErrorBody),
        (status = 502, description = "`provider_unavailable`, `provider_refused`: the payment provider failed or refused (the message says why)", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
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
    Ok(HttpResponse::Ok().json(AdminOrderView::from(order)))
}

#[utoipa::path(
    post,
    operation_id = "adminReconcilePayments",
    path = "/api/v1/admin/payments/reconcile",
    tag = "admin",
    summary = "Ask the providers about every unsettled order now",
    responses(
        (status = 200, description = "How many orders changed", body = Reconciled, example = json!({"changed": 2})),
        (status = 502, description = "`provider_unavailable`, `provider_refused`: the payment provider failed or refused (the message says why)", body = crate::api::schemas::ErrorBody),
        crate::api::schemas::AdminRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn admin_reconcile(state: web::Data<AppState>, _admin: Admin) -> ApiResult<HttpResponse> {
    let changed = state
        .orders()
        .reconcile()
        .await
        .map_err(ApiError::for_admin)?;
    Ok(HttpResponse::Ok().json(Reconciled { changed }))
}
