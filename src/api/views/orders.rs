//! Orders and purchases: what the payer, the buyer and admins see.

use serde::Serialize;
use uuid::Uuid;

use super::enums::{OrderKindView, OrderStateView};
use crate::payments::orders::Started;
use crate::store::orders::{Order, OrderEvent, OrderKind, OrderState};

/// An order as its payer sees it (`GET /orders/{id}`, `/me/purchases`): no provider ids,
/// no event log.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "0d4f1b2c-8e7a-4c3d-b5f6-a1e2d3c4b5a6",
    "film_id": "7b0e4c1a-5d2f-4f7e-9a61-3c8d2e9b4f10",
    "kind": "purchase",
    "provider": "dev",
    "amount": 500,
    "currency": "USD",
    "state": "captured",
    "failure": null,
    "created_at": 1796598000,
    "updated_at": 1796598042
}))]
pub struct OrderView<'a> {
    #[schema(value_type = String)]
    pub id: Uuid,
    #[schema(value_type = String)]
    pub film_id: Uuid,
    pub kind: OrderKindView,
    pub provider: &'a str,
    pub amount: u64,
    pub currency: &'a str,
    pub state: OrderStateView,
    pub failure: Option<&'a str>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl<'a> From<&'a Order> for OrderView<'a> {
    fn from(o: &'a Order) -> Self {
        Self {
            id: o.id,
            film_id: o.film_id,
            kind: o.kind.into(),
            provider: &o.provider,
            amount: o.amount,
            currency: &o.currency,
            state: o.state.into(),
            failure: o.failure.as_deref(),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// Where to send the payer: the answer to a checkout, and to a support with a tip.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "order_id": "0d4f1b2c-8e7a-4c3d-b5f6-a1e2d3c4b5a6",
    "redirect_url": "https://films.example.com/pay/dev/return?order=0d4f1b2c-8e7a-4c3d-b5f6-a1e2d3c4b5a6",
    "mobile_url": null,
    "app_url": null,
    "amount": 500,
    "currency": "USD"
}))]
pub struct CheckoutView<'a> {
    #[schema(value_type = String)]
    pub order_id: Uuid,
    pub redirect_url: &'a str,
    pub mobile_url: Option<&'a str>,
    pub app_url: Option<&'a str>,
    pub amount: u64,
    pub currency: &'a str,
}

impl<'a> From<&'a Started> for CheckoutView<'a> {
    fn from(s: &'a Started) -> Self {
        Self {
            order_id: s.order.id,
            redirect_url: &s.redirect_url,
            mobile_url: s.mobile_url.as_deref(),
            app_url: s.app_url.as_deref(),
            amount: s.order.amount,
            currency: &s.order.currency,
        }
    }
}

/// One film the viewer owns, with what they paid (`null`s if the order is gone).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PurchaseView {
    #[schema(value_type = String)]
    pub film_id: Uuid,
    /// `null` when the film was deleted.
    pub title: Option<String>,
    #[schema(value_type = String)]
    pub order_id: Uuid,
    pub purchased_at: i64,
    pub amount: Option<u64>,
    pub currency: Option<String>,
    pub provider: Option<String>,
}

/// `GET /me/purchases`: the films owned, and every order of the viewer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Purchases<'a> {
    pub purchases: Vec<PurchaseView>,
    pub orders: Vec<OrderView<'a>>,
}

/// `GET /payments/providers`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PaymentProviderList)]
pub struct ProviderList {
    pub providers: Vec<&'static str>,
}

/// The answer to a webhook delivery: what became of it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "captured"}))]
pub struct WebhookAnswer {
    /// `captured`, `failed`, `refunded`, `ignored` (not about an order of ours, or news
    /// it already has), `duplicate` (an event seen before), `unreadable capture`.
    pub status: &'static str,
}

/// An order as admins see it: the provider's ids and the order's history, but not the
/// capture token (Kakao Pay's `pg_token`, only a retried capture needs it).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminOrderView {
    #[schema(value_type = String)]
    pub id: Uuid,
    #[schema(value_type = String)]
    pub user_id: Uuid,
    #[schema(value_type = String)]
    pub film_id: Uuid,
    #[schema(value_type = super::enums::OrderKindView)]
    pub kind: OrderKind,
    pub provider: String,
    pub amount: u64,
    pub currency: String,
    #[schema(value_type = super::enums::OrderStateView)]
    pub state: OrderState,
    pub provider_ref: Option<String>,
    pub payment_id: Option<String>,
    pub failure: Option<String>,
    pub refund_requested_at: Option<i64>,
    pub redirect_url: Option<String>,
    pub mobile_url: Option<String>,
    pub app_url: Option<String>,
    pub rechecked_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub events: Vec<OrderEventView>,
}

impl From<Order> for AdminOrderView {
    fn from(o: Order) -> Self {
        Self {
            id: o.id,
            user_id: o.user_id,
            film_id: o.film_id,
            kind: o.kind,
            provider: o.provider,
            amount: o.amount,
            currency: o.currency,
            state: o.state,
            provider_ref: o.provider_ref,
            payment_id: o.payment_id,
            failure: o.failure,
            refund_requested_at: o.refund_requested_at,
            redirect_url: o.redirect_url,
            mobile_url: o.mobile_url,
            app_url: o.app_url,
            rechecked_at: o.rechecked_at,
            created_at: o.created_at,
            updated_at: o.updated_at,
            events: o.events.iter().map(OrderEventView::from).collect(),
        }
    }
}

/// One step of an order's history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderEventView {
    pub at: i64,
    #[schema(value_type = super::enums::OrderStateView)]
    pub state: OrderState,
    pub note: String,
}

impl From<&OrderEvent> for OrderEventView {
    fn from(e: &OrderEvent) -> Self {
        Self {
            at: e.at,
            state: e.state,
            note: e.note.clone(),
        }
    }
}

/// `GET /admin/orders`, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminOrderList {
    pub orders: Vec<AdminOrderView>,
}

/// `POST /admin/payments/reconcile`: how many orders changed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Reconciled {
    pub changed: usize,
}
