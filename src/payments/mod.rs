//! Checkout providers behind one interface (`PaymentProvider`): PayPal Orders v2, Kakao Pay,
//! Naver Pay, and `dev` (approves at once; demos and tests). The order state machine and
//! the rules (amount from the server, captured amount checked, one grant per capture) live
//! in `orders`; providers only speak their own HTTP API.

pub mod dev;
pub mod kakaopay;
pub mod naverpay;
pub mod orders;
pub mod paypal;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::config::Config;
use crate::store::orders::Order;

/// Where the provider sends the payer back, per order.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    pub approve: String,
    pub cancel: String,
    pub fail: String,
}

/// The provider's side of a new checkout.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub provider_ref: String,
    /// Where to send a browser (PC or mobile web).
    pub redirect_url: String,
    /// A page made for mobile browsers, when the provider has one (Kakao Pay).
    pub mobile_url: Option<String>,
    /// Where a mobile app should go instead, when the provider has one.
    pub app_url: Option<String>,
}

/// Money the provider says it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub payment_id: String,
    pub amount: u64,
    pub currency: String,
}

/// What the provider says about an order now (reconciliation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Not paid yet (or still in progress at the provider).
    Pending,
    /// The payer approved at the provider and nothing was taken yet: the money is taken
    /// only when we ask for the capture (PayPal `APPROVED`, Kakao Pay `AUTH_PASSWORD`, a
    /// Naver Pay payment the payer came back from that was never applied).
    Approved,
    Captured(Capture),
    /// Paid, then refunded at the provider.
    Refunded,
    /// The payer gave up, or the provider's window closed.
    Abandoned(String),
    /// The provider refused the payment for good (PayPal's `PAYMENT.CAPTURE.DENIED`).
    Declined(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The payment itself was refused (card declined, payer not approved, …).
    #[error("the payment was declined: {0}")]
    Declined(String),
    /// The payer gave up at the provider.
    #[error("{0}")]
    Cancelled(String),
    /// The provider could not be reached, timed out, or answered something unusable. The
    /// outcome is unknown; reconciliation asks again.
    #[error("the payment provider could not be reached or answered wrongly: {0}")]
    Unavailable(String),
    /// The provider refused our request (configuration, currency …).
    #[error("the payment provider refused the request: {0}")]
    Refused(String),
}

/// A webhook delivery's headers, names in lower case.
pub type WebhookHeaders = HashMap<String, String>;

/// What a provider's webhook event says, as the provider reads it (before it is verified).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The provider's event id: deliveries are de-duplicated by it.
    pub id: String,
    pub about: OrderRef,
    pub news: WebhookNews,
}

/// How an event names our order.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderRef {
    /// By our order id (PayPal's `custom_id`).
    Order(Uuid),
    /// By the provider's payment id (a refund made in PayPal's dashboard names the capture).
    Payment(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookNews {
    /// The money was taken; `None` when the event's amount cannot be read (then
    /// reconciliation asks the provider for the order itself).
    Captured(Option<Capture>),
    /// The provider refused the capture for good.
    Declined(String),
    Refunded,
}

/// The query or form parameters of a return to `/pay/{provider}/return`.
pub type ReturnParams = HashMap<String, String>;

/// One checkout provider's API, held as a trait object (`Payments`), so a test can put an
/// in-process fake in a real provider's place. Its futures are `Send`: reconciliation runs
/// them on a spawned task.
pub trait PaymentProvider: Send + Sync {
    fn id(&self) -> &'static str;
    /// ISO codes this provider takes.
    fn accepts(&self, currency: &str) -> bool;
    /// The same, for an error message.
    fn accepted(&self) -> String;
    /// How long the payer's link from `create` stays usable at the provider: an open order
    /// is answered again to the same checkout only while its link works.
    fn link_lifetime(&self) -> Duration;
    fn create<'a>(
        &'a self,
        order: &'a Order,
        item: &'a str,
        urls: &'a ReturnUrls,
    ) -> BoxFuture<'a, Result<Checkout, PaymentError>>;
    /// The provider's payment id when it arrives only with the payer's return (kept on the
    /// order before capture, so a lookup after a failed capture can find the payment).
    fn payment_id_on_return(&self, _params: &ReturnParams) -> Option<String> {
        None
    }
    /// What the provider needs from the payer's return to capture and will not tell us
    /// again (kept on the order as `capture_token`, so reconciliation can retry a capture).
    fn token_on_return(&self, _params: &ReturnParams) -> Option<String> {
        None
    }
    /// The `params` with which `capture` can be asked again from the server, without the
    /// payer (reconciliation retrying a capture whose outcome was unclear), or `None` when
    /// this order lacks what the provider needs. A retry must be as safe as a reloaded
    /// return: idempotent at the provider, or settled by its duplicate answer.
    fn retry_params(&self, _order: &Order) -> Option<ReturnParams> {
        None
    }
    /// Checks what came back with the payer, before the provider is asked anything:
    /// `Cancelled` (the payer gave up) or `Declined` (the return is not this order's).
    /// Anyone can send a return, so its verdict only ends an order that no capture was
    /// asked for yet (see `OrderService::complete`).
    fn check_return(&self, _order: &Order, _params: &ReturnParams) -> Result<(), PaymentError> {
        Ok(())
    }
    /// Takes the money after the payer approved (`params`: what came back with them).
    fn capture<'a>(
        &'a self,
        order: &'a Order,
        params: &'a ReturnParams,
    ) -> BoxFuture<'a, Result<Capture, PaymentError>>;
    fn lookup<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<Lookup, PaymentError>>;
    fn refund<'a>(&'a self, order: &'a Order) -> BoxFuture<'a, Result<(), PaymentError>>;
    /// Reads a webhook delivery: `None` for an event this server does not act on (or a
    /// provider without webhooks).
    fn webhook_event(&self, _event: &serde_json::Value) -> Option<WebhookEvent> {
        None
    }
    /// Asks the provider whether a delivery (`raw`: the body exactly as it arrived) is
    /// genuine. Nothing a webhook says is believed before this answers `true`.
    fn verify_webhook<'a>(
        &'a self,
        _headers: &'a WebhookHeaders,
        _raw: &'a serde_json::value::RawValue,
    ) -> BoxFuture<'a, Result<bool, PaymentError>> {
        Box::pin(async { Ok(false) })
    }
}

pub struct Payments {
    list: Vec<Arc<dyn PaymentProvider>>,
    public_url: String,
    /// `payments.order_ttl`: an order open longer is cancelled by reconciliation.
    pub order_ttl: Duration,
    /// `payments.max_open_orders`: open orders one user may have.
    pub max_open_orders: usize,
}

impl Payments {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let p = &config.payments;
        let http = reqwest::Client::builder()
            .timeout(p.provider_timeout)
            .connect_timeout(p.provider_timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cinegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut list: Vec<Arc<dyn PaymentProvider>> = Vec::new();
        if p.dev.enabled {
            list.push(Arc::new(dev::Dev));
        }
        if !p.paypal.client_id.is_empty() {
            list.push(Arc::new(paypal::Paypal::new(&p.paypal, http.clone())));
        }
        if !p.kakaopay.cid.is_empty() {
            list.push(Arc::new(kakaopay::KakaoPay::new(&p.kakaopay, http.clone())));
        }
        if !p.naverpay.client_id.is_empty() {
            list.push(Arc::new(naverpay::NaverPay::new(&p.naverpay, http)));
        }
        let mut payments = Self::with_providers(list, &config.public_url, p.order_ttl);
        payments.max_open_orders = p.max_open_orders as usize;
        Ok(payments)
    }

    /// The given providers (a test's fakes, or the configured ones), with the default
    /// limit of open orders.
    pub fn with_providers(
        list: Vec<Arc<dyn PaymentProvider>>,
        public_url: &str,
        order_ttl: Duration,
    ) -> Self {
        Self {
            list,
            public_url: public_url.trim_end_matches('/').to_string(),
            order_ttl,
            max_open_orders: 5,
        }
    }

    pub fn get(&self, id: &str) -> Option<&dyn PaymentProvider> {
        self.list.iter().find(|g| g.id() == id).map(|g| &**g)
    }

    pub fn ids(&self) -> Vec<&'static str> {
        self.list.iter().map(|g| g.id()).collect()
    }

    pub fn return_urls(&self, provider: &str, order: &Order) -> ReturnUrls {
        let base = format!("{}/pay/{provider}", self.public_url);
        ReturnUrls {
            approve: format!("{base}/return?order={}", order.id),
            cancel: format!("{base}/cancel?order={}", order.id),
            fail: format!("{base}/fail?order={}", order.id),
        }
    }
}

/// A provider's HTTP failure, classified: 5xx, timeouts and transport errors leave the
/// outcome unknown.
pub(crate) fn transport(provider: &str, e: reqwest::Error) -> PaymentError {
    PaymentError::Unavailable(format!("{provider}: {}", e.without_url()))
}
