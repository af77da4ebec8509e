//! The `dev` provider: no money moves. Checkout sends the payer straight back to the
//! return URL, which "captures" the order's own amount. On only when
//! `payments.dev.enabled` is set (the demo does); start-up warns loudly when it is.

use super::{Capture, Checkout, Lookup, PaymentError, PaymentProvider, ReturnParams, ReturnUrls};
use crate::store::orders::Order;
use futures_util::future::BoxFuture;

pub struct Dev;

impl PaymentProvider for Dev {
    fn id(&self) -> &'static str {
        "dev"
    }

    fn accepts(&self, _currency: &str) -> bool {
        true
    }

    fn accepted(&self) -> String {
        "any currency".into()
    }

    fn link_lifetime(&self) -> std::time::Duration {
        // The link is our own return URL; `payments.order_ttl` bounds it.
        std::time::Duration::MAX
    }

    fn create<'a>(
        &'a self,
        order: &'a Order,
        _item: &'a str,
        urls: &'a ReturnUrls,
    ) -> BoxFuture<'a, Result<Checkout, PaymentError>> {
        Box::pin(async move {
            Ok(Checkout {
                provider_ref: format!("DEV-{}", order.id.simple()),
                redirect_url: urls.approve.clone(),
                mobile_url: None,
                app_url: None,
            })
        })
    }

    fn capture<'a>(
        &'a self,
        order: &'a Order,
        _params: &'a ReturnParams,
    ) -> BoxFuture<'a, Result<Capture, PaymentError>> {
        Box::pin(async move {
            Ok(Capture {
                payment_id: format!("DEVPAY-{}", order.id.simple()),
                amount: order.amount,
                currency: order.currency.clone(),
            })
        })
    }

    fn lookup<'a>(&'a self, _order: &'a Order) -> BoxFuture<'a, Result<Lookup, PaymentError>> {
        Box::pin(async move { Ok(Lookup::Pending) })
    }

    fn refund<'a>(&'a self, _order: &'a Order) -> BoxFuture<'a, Result<(), PaymentError>> {
        Box::pin(async move { Ok(()) })
    }
}
