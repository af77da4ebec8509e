//! The `dev` provider: no money moves. Checkout sends the payer straight back to the
//! return URL, which "captures" the order's own amount. On only when
//! `payments.dev.enabled` is set (the demo does); start-up warns loudly when it is.

use super::{Capture, Checkout, Lookup, PaymentError, PaymentProvider, ReturnParams, ReturnUrls};
use crate::store::orders::Order;

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

    async fn create(
        &self,
        order: &Order,
        _item: &str,
        urls: &ReturnUrls,
    ) -> Result<Checkout, PaymentError> {
        Ok(Checkout {
            provider_ref: format!("DEV-{}", order.id.simple()),
            redirect_url: urls.approve.clone(),
            mobile_url: None,
            app_url: None,
        })
    }

    async fn capture(
        &self,
        order: &Order,
        _params: &ReturnParams,
    ) -> Result<Capture, PaymentError> {
        Ok(Capture {
            payment_id: format!("DEVPAY-{}", order.id.simple()),
            amount: order.amount,
            currency: order.currency.clone(),
        })
    }

    async fn lookup(&self, _order: &Order) -> Result<Lookup, PaymentError> {
        Ok(Lookup::Pending)
    }

    async fn refund(&self, _order: &Order) -> Result<(), PaymentError> {
        Ok(())
    }
}
