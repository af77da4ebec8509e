//! The order state machine around the providers: checkout, the payer's return (capture),
//! cancel/fail returns, refunds, PayPal webhooks and reconciliation. The rules that protect
//! the money live here:
//! - the amount is the film's price read on the server when the order is made;
//! - the provider's captured amount and currency must equal the order's, else it fails;
//! - captures of one order are serialised in this process, carry the provider's
//!   idempotency key, and the grant happens in the same store transaction that marks the
//!   order captured, so duplicates grant once;
//! - an order whose outcome is unknown (timeout, crash) is settled by asking the provider,
//!   at start, periodically and on demand; nothing anyone can send without a session (a
//!   cancel or fail link, a return's query) ends an order once a capture was asked for;
//! - a checkout asked again answers the same open order, and a user's open orders are
//!   capped, so checkouts cannot be used to fill the store or flood the providers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::{
    Capture, Lookup, OrderRef, PaymentError, PaymentProvider, Payments, ReturnParams,
    WebhookHeaders, WebhookNews,
};
use crate::events::Event;
use crate::store::films::Film;
use crate::store::orders::{Captured, Order, OrderKind, OrderState};
use crate::store::{Store, StoreError};
use crate::stream::gate::{self, Entitlement};
use crate::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{0} is not a payment provider on this server")]
    UnknownProvider(String),
    #[error("the film is not for sale")]
    NotForSale,
    #[error("{provider} takes {accepts}; this film has no price in those currencies")]
    CurrencyUnsupported { provider: String, accepts: String },
    #[error("you already have this film")]
    AlreadyOwned,
    #[error("order not found")]
    NotFound,
    #[error("the order is {0:?}; that cannot be done now")]
    WrongState(OrderState),
    #[error("too many payments are open; finish or abandon one, or try again later")]
    TooManyOpenOrders {
        /// Seconds until the oldest open order stops counting.
        retry_after: u64,
    },
    /// A webhook delivery the provider did not vouch for.
    #[error("the webhook could not be verified with {0}")]
    WebhookUnverified(String),
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One async lock per order in flight, so two returns (a double click, a return racing a
/// webhook) never capture at the same time in this process; and one per user making a
/// checkout, so two checkouts at once cannot both miss the open order or the cap.
#[derive(Default)]
pub struct OrderLocks {
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl OrderLocks {
    pub fn get(&self, id: &Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(*id).or_default().clone()
    }
}

pub struct OrderService<'a> {
    pub store: &'a Store,
    pub payments: &'a Payments,
    pub locks: &'a OrderLocks,
    /// Where order outcomes are counted (`payments_total`), on the transition only.
    pub telemetry: &'a Telemetry,
    pub now: i64,
}

impl<'a> OrderService<'a> {
    /// The order rules over `store`, `payments` and `locks`, deciding at `now`: one
    /// constructor for the handlers, the reconciler and the tests.
    pub fn new(
        store: &'a Store,
        payments: &'a Payments,
        locks: &'a OrderLocks,
        telemetry: &'a Telemetry,
        now: i64,
    ) -> Self {
        Self {
            store,
            payments,
            locks,
            telemetry,
            now,
        }
    }
}

/// The result of a checkout.
pub struct Started {
    pub order: Order,
    /// The user's open order for the same thing, answered again (nothing new was made).
    pub reused: bool,
    pub redirect_url: String,
    pub mobile_url: Option<String>,
    pub app_url: Option<String>,
}

fn unsupported(gateway: &dyn PaymentProvider) -> OrderError {
    OrderError::CurrencyUnsupported {
        provider: gateway.id().to_string(),
        accepts: gateway.accepted(),
    }
}

/// A provider error as the payer may read it on the order: what went wrong with the
/// provider or our configuration is for the log and the admins.
fn public_failure(e: &PaymentError) -> String {
    match e {
        PaymentError::Declined(_) | PaymentError::Cancelled(_) => e.to_string(),
        PaymentError::Unavailable(_) | PaymentError::Refused(_) => {
            "the payment provider was not available".into()
        }
    }
}

/// The payer has this long at least to use a link answered again.
const REUSE_MARGIN: Duration = Duration::from_secs(5 * 60);

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn mismatch(order: &Order, c: &Capture) -> Option<String> {
    (c.amount != order.amount || c.currency != order.currency).then(|| {
        format!(
            "the provider reported {} {} for an order of {} {}",
            c.amount, c.currency, order.amount, order.currency
        )
    })
}

impl OrderService<'_> {
    fn gateway(&self, provider: &str) -> Result<&dyn PaymentProvider, OrderError> {
        self.payments
            .get(provider)
            .ok_or_else(|| OrderError::UnknownProvider(provider.chars().take(32).collect()))
    }

    fn owned(&self, film: &Uuid, user: &Uuid) -> Result<bool, StoreError> {
        Ok(gate::entitlement(self.store, user, film)? == Entitlement::Full)
    }

    /// Starts a checkout of `film` for `user` through `provider`.
    pub async fn checkout(
        &self,
        user: &Uuid,
        film: &Film,
        provider: &str,
    ) -> Result<Started, OrderError> {
        self.checkout_returning(user, film, provider, None).await
    }

    /// A checkout whose payer comes back to `return_to` (a local page of the viewer app)
    /// instead of the plain return page.
    pub async fn checkout_returning(
        &self,
        user: &Uuid,
        film: &Film,
        provider: &str,
        return_to: Option<String>,
    ) -> Result<Started, OrderError> {
        let gateway = self.gateway(provider)?;
        if self.owned(&film.id, user)? {
            return Err(OrderError::AlreadyOwned);
        }
        if film.prices.is_empty() {
            return Err(OrderError::NotForSale);
        }
        let price = film
            .prices
            .iter()
            .find(|p| gateway.accepts(&p.currency))
            .ok_or_else(|| unsupported(gateway))?;
        let mut order = Order::new(
            OrderKind::Purchase,
            *user,
            film.id,
            provider,
            price.amount,
            &price.currency,
            self.now,
        );
        order.return_to = return_to;
        self.start(gateway, order, &film.title).await
    }

    /// The provider for a tip in `currency`, or why there is none. Callers check this before
    /// they record anything that goes with the tip.
    pub fn tip_gateway(
        &self,
        provider: &str,
        currency: &str,
    ) -> Result<&dyn PaymentProvider, OrderError> {
        let gateway = self.gateway(provider)?;
        if !gateway.accepts(currency) {
            return Err(unsupported(gateway));
        }
        Ok(gateway)
    }

    /// Starts a tip of `amount` (minor units of `currency`, already checked against the
    /// configured bounds) for `film` through `provider`.
    pub async fn tip(
        &self,
        user: &Uuid,
        film: &Film,
        provider: &str,
        amount: u64,
        currency: &str,
    ) -> Result<Started, OrderError> {
        let gateway = self.tip_gateway(provider, currency)?;
        self.start(
            gateway,
            tip_order(user, film, provider, amount, currency, self.now),
            &format!("Tip: {}", film.title),
        )
        .await
    }

    /// Whether `tip` would be taken now: the provider takes the currency, and the user has
    /// the same tip open (answered again) or room for another. Callers check this before
    /// they record anything that goes with the tip; `tip` checks again under the user's lock.
    pub fn tip_room(
        &self,
        user: &Uuid,
        film: &Film,
        provider: &str,
        amount: u64,
        currency: &str,
    ) -> Result<(), OrderError> {
        let gateway = self.tip_gateway(provider, currency)?;
        let order = tip_order(user, film, provider, amount, currency, self.now);
        let open = self.open_orders(user)?;
        if self.reusable(gateway, &open, &order).is_some() {
            return Ok(());
        }
        self.room(&open)
    }

    /// The user's orders that are open and not yet past `order_ttl` (reconciliation
    /// cancels those on its next pass).
    fn open_orders(&self, user: &Uuid) -> Result<Vec<Order>, OrderError> {
        let ttl = secs(self.payments.order_ttl);
        Ok(self
            .store
            .orders_of(user)?
            .into_iter()
            .filter(|o| !o.state.is_final() && o.created_at.saturating_add(ttl) > self.now)
            .collect())
    }

    /// `TooManyOpenOrders` when `open` fills the user's cap.
    fn room(&self, open: &[Order]) -> Result<(), OrderError> {
        if open.len() < self.payments.max_open_orders {
            return Ok(());
        }
        let ttl = secs(self.payments.order_ttl);
        let free_at = open
            .iter()
            .map(|o| o.created_at.saturating_add(ttl))
            .min()
            .unwrap_or(self.now);
        Err(OrderError::TooManyOpenOrders {
            retry_after: u64::try_from(free_at - self.now).unwrap_or(0).max(1),
        })
    }

    /// The open order that `order` would repeat, if its payer link still works.
    fn reusable<'o>(
        &self,
        gateway: &dyn PaymentProvider,
        open: &'o [Order],
        order: &Order,
    ) -> Option<&'o Order> {
        let usable = secs(
            gateway
                .link_lifetime()
                .min(self.payments.order_ttl)
                .saturating_sub(REUSE_MARGIN),
        );
        open.iter().find(|o| {
            o.state == OrderState::Created
                && (
                    o.kind,
                    o.film_id,
                    o.provider.as_str(),
                    o.amount,
                    o.currency.as_str(),
                ) == (
                    order.kind,
                    order.film_id,
                    order.provider.as_str(),
                    order.amount,
                    order.currency.as_str(),
                )
                && o.provider_ref.is_some()
                && o.redirect_url.is_some()
                && o.created_at.saturating_add(usable) > self.now
        })
    }

    /// Answers the user's open order for the same thing, or makes a new one if the user
    /// has room for it.
    async fn start(
        &self,
        gateway: &dyn PaymentProvider,
        order: Order,
        item: &str,
    ) -> Result<Started, OrderError> {
        let lock = self.locks.get(&order.user_id);
        let _held = lock.lock().await;
        let open = self.open_orders(&order.user_id)?;
        if let Some(same) = self.reusable(gateway, &open, &order) {
            if let Some(redirect_url) = same.redirect_url.clone() {
                return Ok(Started {
                    order: same.clone(),
                    reused: true,
                    redirect_url,
                    mobile_url: same.mobile_url.clone(),
                    app_url: same.app_url.clone(),
                });
            }
        }
        self.room(&open)?;
        self.create(gateway, order, item).await
    }

    async fn create(
        &self,
        gateway: &dyn PaymentProvider,
        mut order: Order,
        item: &str,
    ) -> Result<Started, OrderError> {
        let provider = order.provider.clone();
        order.record(OrderState::Created, "checkout started", self.now);
        // Persisted before the provider hears of it: whatever happens next, there is a
        // record to reconcile.
        self.store.create_order(&order)?;
        self.store.flush_async().await?;
        self.telemetry.payment(gateway.id(), "created");
        crate::events::record(self.store, self.now, Event::CheckoutStarted(order.facts()));
        let urls = self.payments.return_urls(&provider, &order);
        match gateway.create(&order, item, &urls).await {
            Ok(checkout) => {
                let order = self
                    .store
                    .update_order(&order.id, |o| {
                        o.provider_ref = Some(checkout.provider_ref.clone());
                        o.redirect_url = Some(checkout.redirect_url.clone());
                        o.mobile_url = checkout.mobile_url.clone();
                        o.app_url = checkout.app_url.clone();
                        o.updated_at = self.now;
                        true
                    })?
                    .ok_or(OrderError::NotFound)?;
                Ok(Started {
                    order,
                    reused: false,
                    redirect_url: checkout.redirect_url,
                    mobile_url: checkout.mobile_url,
                    app_url: checkout.app_url,
                })
            }
            Err(e) => {
                // The payer never got a link, so nobody can approve this order.
                let failed = self.store.update_order(&order.id, |o| {
                    o.failure = Some(public_failure(&e));
                    o.record(
                        OrderState::Failed,
                        format!("the checkout failed at the provider: {e}"),
                        self.now,
                    );
                    true
                })?;
                self.note_failed(order.state, failed.as_ref());
                Err(e.into())
            }
        }
    }

    /// The payer came back from the provider: capture, check, grant.
    pub async fn complete(
        &self,
        provider: &str,
        id: &Uuid,
        params: &ReturnParams,
    ) -> Result<Order, OrderError> {
        let gateway = self.gateway(provider)?;
        let lock = self.locks.get(id);
        let _held = lock.lock().await;
        let order = self
            .store
            .order(id)?
            .filter(|o| o.provider == provider)
            .ok_or(OrderError::NotFound)?;
        if order.state.is_final() {
            // A duplicate return, or the webhook got there first.
            return Ok(order);
        }
        if let Err(e) = gateway.check_return(&order, params) {
            if order.state != OrderState::Created {
                // A capture was asked for and its outcome is not known: a return's query,
                // which anyone can send, does not end that. The order stays open for a
                // retried return or reconciliation.
                tracing::warn!(order = %order.id, error = %e, "a return that does not match an order in doubt; ignored");
                return Ok(order);
            }
            return self.finish_unpaid(&order.id, e);
        }
        if order.kind == OrderKind::Purchase && self.owned(&order.film_id, &order.user_id)? {
            // Bought meanwhile through another order: do not take the money twice. An
            // order whose capture was asked for already may have been paid: the provider
            // says which.
            if order.state != OrderState::Created {
                if let Lookup::Captured(c) = gateway.lookup(&order).await? {
                    return self.settle(&order, &c, "captured (found on return)").await;
                }
            }
            let mut before = order.state;
            let after = self.store.update_order(id, |o| {
                before = o.state;
                o.record(
                    OrderState::Cancelled,
                    "already owned; not captured",
                    self.now,
                );
                true
            })?;
            self.note_failed(before, after.as_ref());
            return after.ok_or(OrderError::NotFound);
        }
        let payment_id = gateway.payment_id_on_return(params);
        let token = gateway.token_on_return(params);
        let order = self
            .store
            .update_order(id, |o| {
                // The provider's payment id is the first return's; a later one may be anyone's.
                if o.payment_id.is_none() && payment_id.is_some() {
                    o.payment_id.clone_from(&payment_id);
                } else if o.state == OrderState::Approved && o.capture_token == token {
                    // A reload, or anyone with the link: nothing new to record (the link
                    // must not be a way to grow the order without bound).
                    return false;
                }
                // The latest return's token: the payer reloading fixes what a stray
                // request may have left; a wrong one only makes a retried capture fail.
                if token.is_some() {
                    o.capture_token.clone_from(&token);
                }
                if o.state != OrderState::Approved {
                    o.record(OrderState::Approved, "the payer returned", self.now);
                }
                true
            })?
            .ok_or(OrderError::NotFound)?;
        match gateway.capture(&order, params).await {
            Ok(capture) => self.settle(&order, &capture, "captured on return").await,
            // The provider's own answer: nothing was taken.
            Err(e @ (PaymentError::Cancelled(_) | PaymentError::Declined(_))) => {
                self.finish_unpaid(id, e)
            }
            // Unknown outcome (timeout, 5xx, 429): the order stays approved; a retried
            // return or reconciliation settles it.
            Err(e) => Err(e.into()),
        }
    }

    /// Ends an order that was not paid: `Cancelled` (the payer gave up) or `Failed`.
    fn finish_unpaid(&self, id: &Uuid, e: PaymentError) -> Result<Order, OrderError> {
        let (state, note) = match &e {
            PaymentError::Cancelled(_) => (OrderState::Cancelled, "cancelled by the payer"),
            _ => (OrderState::Failed, "declined"),
        };
        let why = match e {
            PaymentError::Cancelled(why) | PaymentError::Declined(why) => why,
            other => return Err(other.into()),
        };
        let mut before = None;
        let after = self.store.update_order(id, |o| {
            before = Some(o.state);
            o.failure = Some(why.clone());
            o.record(state, note, self.now);
            true
        })?;
        if let Some(before) = before {
            self.note_failed(before, after.as_ref());
        }
        after.ok_or(OrderError::NotFound)
    }

    /// Records `order.failed` when a change took an order to `Failed` from another state,
    /// and counts an order that changed state (to `failed` or `cancelled`).
    fn note_failed(&self, before: OrderState, after: Option<&Order>) {
        self.count_outcome(before, after);
        if let Some(o) =
            after.filter(|o| o.state == OrderState::Failed && before != OrderState::Failed)
        {
            crate::events::record(
                self.store,
                self.now,
                Event::OrderFailed {
                    user: o.user_id,
                    film: o.film_id,
                    order: o.id,
                    provider: o.provider.clone(),
                    reason: o.failure.clone().unwrap_or_default(),
                },
            );
        }
    }

    /// Counts the outcome a change took an order to, if it took it anywhere new: called
    /// after the write went in, so a replayed return or webhook (no change) counts nothing.
    fn count_outcome(&self, before: OrderState, after: Option<&Order>) {
        let Some(o) = after.filter(|o| o.state != before) else {
            return;
        };
        let outcome = match o.state {
            OrderState::Captured => "captured",
            OrderState::Failed => "failed",
            OrderState::Cancelled => "cancelled",
            OrderState::Refunded => "refunded",
            OrderState::Created | OrderState::Approved => return,
        };
        // The provider's own id (`'static`), not the stored string: a label stays one of
        // the configured providers.
        let provider = self.payments.get(&o.provider).map_or("other", |g| g.id());
        self.telemetry.payment(provider, outcome);
    }

    /// Records a capture the provider reported: grant if it matches the order, fail it
    /// (no grant) if it does not.
    async fn settle(
        &self,
        order: &Order,
        capture: &Capture,
        note: &str,
    ) -> Result<Order, OrderError> {
        let settled = self.settle_in_store(order, capture, note)?;
        // Acknowledged only once on disk: money moved.
        self.store.flush_async().await?;
        Ok(settled)
    }

    fn settle_in_store(
        &self,
        order: &Order,
        capture: &Capture,
        note: &str,
    ) -> Result<Order, OrderError> {
        if let Some(why) = mismatch(order, capture) {
            if order.state == OrderState::Failed
                && order.payment_id.as_deref() == Some(capture.payment_id.as_str())
            {
                // Recorded and reported when it was first seen.
                return Ok(order.clone());
            }
            tracing::error!(order = %order.id, "{why}");
            let mut before = order.state;
            let failed = self.store.update_order(&order.id, |o| {
                before = o.state;
                o.payment_id = Some(capture.payment_id.clone());
                o.failure = Some(why.clone());
                o.record(OrderState::Failed, "amount mismatch; not granted", self.now);
                true
            })?;
            self.note_failed(before, failed.as_ref());
            // Money was taken and nothing granted: only a person can settle that.
            crate::events::record(
                self.store,
                self.now,
                Event::OrderNeedsAttention {
                    order: order.id,
                    reason: why.clone(),
                },
            );
            return failed.ok_or(OrderError::NotFound);
        }
        Ok(
            match self
                .store
                .capture_order(&order.id, &capture.payment_id, note, self.now)?
            {
                Captured::Now(o) => {
                    self.count_outcome(order.state, Some(&o));
                    tracing::info!(order = %o.id, provider = %o.provider, "order captured; film unlocked");
                    o
                }
                Captured::Already(o) | Captured::Refused(o) => o,
            },
        )
    }

    /// The payer cancelled, or the provider reported a failure, on the way back (the
    /// cancel and fail links). `state` is `Cancelled` (the payer gave up) or `Failed`.
    /// Those links need no session, so they end only an order no capture was asked for
    /// yet (`created`); one the payer came back for stays as it is, and a retried return
    /// or reconciliation settles it with the provider.
    pub async fn abandon(
        &self,
        provider: &str,
        id: &Uuid,
        state: OrderState,
        why: &str,
    ) -> Result<Order, OrderError> {
        let lock = self.locks.get(id);
        let _held = lock.lock().await;
        // Set by the closure's last run, the one whose write went in.
        let mut ended = false;
        let after = self
            .store
            .update_order(id, |o| {
                ended = o.provider == provider && o.state == OrderState::Created;
                if !ended {
                    return false;
                }
                o.failure = Some(why.to_string());
                o.record(state, why, self.now);
                true
            })?
            .filter(|o| o.provider == provider);
        if ended {
            self.note_failed(OrderState::Created, after.as_ref());
        }
        after.ok_or(OrderError::NotFound)
    }

    /// Refunds a captured order at the provider, then revokes the purchase.
    pub async fn refund(&self, id: &Uuid, note: &str) -> Result<Order, OrderError> {
        let lock = self.locks.get(id);
        let _held = lock.lock().await;
        let order = self.store.order(id)?.ok_or(OrderError::NotFound)?;
        match order.state {
            OrderState::Captured => {}
            OrderState::Refunded => return Ok(order),
            other => return Err(OrderError::WrongState(other)),
        }
        // On disk before the provider is asked: if the process dies between the provider's
        // refund and ours, reconciliation finds the order and asks.
        let order = self
            .store
            .update_order(id, |o| {
                o.refund_requested_at = Some(self.now);
                true
            })?
            .ok_or(OrderError::NotFound)?;
        self.store.flush_async().await?;
        self.gateway(&order.provider)?.refund(&order).await?;
        let refunded = self.store.refund_order(id, note, self.now)?;
        self.store.flush_async().await?;
        self.count_outcome(OrderState::Captured, refunded.as_ref());
        match refunded {
            Some(order) => Ok(order),
            // Refunded meanwhile (a webhook): as it stands now.
            None => self.store.order(id)?.ok_or(OrderError::NotFound),
        }
    }

    /// A webhook delivery from `provider` (`raw`: the body exactly as it arrived), answered
    /// with what was done: `ignored`, `duplicate`, `unknown order`, `unreadable capture`,
    /// `captured`, `failed` or `refunded`. Only an event about an order of ours in a state
    /// it can change is verified with the provider — so a flood of deliveries that would be
    /// ignored anyway costs no calls to it — and nothing changes before it is verified. A
    /// delivery is recorded as seen only once applied: if applying fails, the provider's
    /// retry is processed.
    pub async fn webhook(
        &self,
        provider: &str,
        headers: &WebhookHeaders,
        raw: &serde_json::value::RawValue,
    ) -> Result<&'static str, OrderError> {
        let gateway = self.gateway(provider)?;
        let Ok(event) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
            return Ok("ignored");
        };
        let Some(event) = gateway.webhook_event(&event) else {
            return Ok("ignored");
        };
        if self.store.event_seen(provider, &event.id)? {
            return Ok("duplicate");
        }
        let order = match &event.about {
            OrderRef::Order(id) => self.store.order(id)?.filter(|o| o.provider == provider),
            OrderRef::Payment(payment) => self.store.order_by_payment(provider, payment)?,
        };
        let worth = order.as_ref().is_some_and(|o| match event.news {
            // Money taken counts even for an order ended meanwhile, if a capture could have
            // been asked for (its return was seen).
            WebhookNews::Captured(_) => {
                !o.state.is_final()
                    || (matches!(o.state, OrderState::Cancelled | OrderState::Failed)
                        && o.return_seen())
            }
            WebhookNews::Declined(_) => !o.state.is_final(),
            WebhookNews::Refunded => o.state == OrderState::Captured,
        });
        let Some(order) = order.filter(|_| worth) else {
            return Ok("ignored");
        };
        if !gateway.verify_webhook(headers, raw).await? {
            tracing::warn!(provider, "a webhook failed verification; ignored");
            return Err(OrderError::WebhookUnverified(provider.to_string()));
        }
        if !self.store.first_sighting(provider, &event.id, self.now)? {
            return Ok("duplicate");
        }
        let applied = match event.news {
            // Without a readable amount there is nothing to compare with the price;
            // reconciliation asks the provider for the order itself.
            WebhookNews::Captured(None) => Ok("unreadable capture"),
            WebhookNews::Captured(Some(capture)) => self
                .notice(
                    &order.id,
                    Lookup::Captured(capture),
                    &format!("captured ({provider} webhook)"),
                )
                .await
                .map(|_| "captured"),
            WebhookNews::Declined(why) => self
                .notice(
                    &order.id,
                    Lookup::Declined(why),
                    &format!("failed ({provider} webhook)"),
                )
                .await
                .map(|_| "failed"),
            WebhookNews::Refunded => self
                .notice(
                    &order.id,
                    Lookup::Refunded,
                    &format!("refunded ({provider} webhook)"),
                )
                .await
                .map(|_| "refunded"),
        };
        if applied.is_err() {
            // Not processed: the provider's retry must be.
            self.store.forget_sighting(provider, &event.id)?;
        }
        applied
    }

    /// A provider's notice about order `id` (a webhook): applied under the order's lock to
    /// the order as it stands then, like a return or a reconciliation.
    pub async fn notice(&self, id: &Uuid, lookup: Lookup, note: &str) -> Result<Order, OrderError> {
        let lock = self.locks.get(id);
        let _held = lock.lock().await;
        let order = self.store.order(id)?.ok_or(OrderError::NotFound)?;
        self.apply_lookup(&order, lookup, note).await
    }

    /// Applies what the provider says now about an order (reconciliation, notices); the
    /// caller holds the order's lock.
    async fn apply_lookup(
        &self,
        order: &Order,
        lookup: Lookup,
        note: &str,
    ) -> Result<Order, OrderError> {
        match lookup {
            Lookup::Captured(c) => self.settle(order, &c, note).await,
            Lookup::Refunded if order.state == OrderState::Captured => {
                let refunded = self.store.refund_order(&order.id, note, self.now)?;
                self.store.flush_async().await?;
                self.count_outcome(OrderState::Captured, refunded.as_ref());
                Ok(refunded.unwrap_or_else(|| order.clone()))
            }
            Lookup::Abandoned(why) => self.end_open(order, OrderState::Cancelled, &why, note),
            Lookup::Declined(why) => self.end_open(order, OrderState::Failed, &why, note),
            _ => Ok(order.clone()),
        }
    }

    /// Ends an order that is still open (a final one stays as it is).
    fn end_open(
        &self,
        order: &Order,
        state: OrderState,
        why: &str,
        note: &str,
    ) -> Result<Order, OrderError> {
        let mut from = None;
        let after = self.store.update_order(&order.id, |o| {
            from = (!o.state.is_final()).then_some(o.state);
            if from.is_none() {
                return false;
            }
            o.failure = Some(why.to_string());
            o.record(state, note, self.now);
            true
        })?;
        if let Some(from) = from {
            self.note_failed(from, after.as_ref());
        }
        Ok(after.unwrap_or_else(|| order.clone()))
    }

    /// Asks the provider about every order whose outcome is not settled here, and
    /// finishes it: open orders (cancelled once past `payments.order_ttl` unpaid), captured
    /// ones whose refund was asked for but not recorded, and cancelled or failed ones whose
    /// return was seen (a capture may have been in doubt when they ended; each is asked
    /// about once). Returns how many changed.
    pub async fn reconcile(&self) -> Result<usize, OrderError> {
        let ttl = secs(self.payments.order_ttl);
        let mut changed = 0;
        let unsettled = |o: &Order| match o.state {
            OrderState::Created | OrderState::Approved => true,
            OrderState::Captured => o.refund_requested_at.is_some(),
            OrderState::Cancelled | OrderState::Failed => {
                o.return_seen() && o.rechecked_at.is_none()
            }
            OrderState::Refunded => false,
        };
        // Reads every order: off the runtime's threads.
        let store = self.store.clone();
        let orders = match tokio::task::spawn_blocking(move || store.orders()).await {
            Ok(orders) => orders?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        for order in orders {
            if !unsettled(&order) {
                continue;
            }
            let Some(gateway) = self.payments.get(&order.provider) else {
                continue;
            };
            let lock = self.locks.get(&order.id);
            let _held = lock.lock().await;
            let Some(order) = self.store.order(&order.id)?.filter(unsettled) else {
                continue;
            };
            let lookup = match gateway.lookup(&order).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(order = %order.id, error = %e, "reconciliation: provider unavailable");
                    continue;
                }
            };
            let mut note = "reconciled with the provider";
            // The payer came back and the provider holds their approval, but our capture's
            // outcome was unclear (429, 5xx, timeout): ask for it again, or the approval
            // would lapse at `order_ttl` unless the payer happened to reload the return page.
            // Only a purchase still in time and not bought meanwhile: a payer told to "try
            // again" may have bought the film through a new order (or tipped again), and a
            // retried capture would charge them twice. A tip in doubt lapses at `order_ttl`
            // without money moving.
            let in_time = order.created_at + ttl > self.now;
            let retry = (lookup == Lookup::Approved
                && order.state == OrderState::Approved
                && order.kind == OrderKind::Purchase
                && in_time)
                .then(|| gateway.retry_params(&order))
                .flatten();
            let lookup = match (lookup, retry) {
                (Lookup::Approved, Some(_)) if self.owned(&order.film_id, &order.user_id)? => {
                    Lookup::Abandoned("already owned; not captured".into())
                }
                (Lookup::Approved, Some(params)) => {
                    note = "captured by reconciliation (capture retried)";
                    match gateway.capture(&order, &params).await {
                        Ok(c) => Lookup::Captured(c),
                        Err(PaymentError::Declined(why)) => Lookup::Declined(why),
                        Err(PaymentError::Cancelled(why)) => Lookup::Abandoned(why),
                        Err(e) => {
                            tracing::warn!(order = %order.id, error = %e, "reconciliation: the retried capture did not go through");
                            continue;
                        }
                    }
                }
                (Lookup::Pending | Lookup::Approved, _) if order.created_at + ttl <= self.now => {
                    Lookup::Abandoned("not paid in time".into())
                }
                (other, _) => other,
            };
            let recheck = matches!(order.state, OrderState::Cancelled | OrderState::Failed);
            let mut after = self.apply_lookup(&order, lookup, note).await?;
            if recheck && after.rechecked_at.is_none() {
                // Asked once: nothing here asks a provider to capture a final order, so
                // what it says now will not change (a late PayPal capture still comes as a
                // webhook).
                after = self
                    .store
                    .update_order(&order.id, |o| {
                        o.rechecked_at = Some(self.now);
                        true
                    })?
                    .unwrap_or(after);
            }
            if after.state != order.state {
                changed += 1;
                tracing::info!(order = %order.id, state = ?after.state, "reconciled");
            }
        }
        Ok(changed)
    }
}

/// The order a tip of `amount` `currency` on `film` would be: the same for starting it and
/// for asking whether it would be taken.
fn tip_order(
    user: &Uuid,
    film: &Film,
    provider: &str,
    amount: u64,
    currency: &str,
    now: i64,
) -> Order {
    Order::new(
        OrderKind::Tip,
        *user,
        film.id,
        provider,
        amount,
        currency,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_must_match_the_order() {
        let order = Order::new(
            OrderKind::Purchase,
            crate::store::new_id(),
            crate::store::new_id(),
            "paypal",
            499,
            "USD",
            0,
        );
        let c = |amount, currency: &str| Capture {
            payment_id: "C".into(),
            amount,
            currency: currency.into(),
        };
        assert!(mismatch(&order, &c(499, "USD")).is_none());
        assert!(mismatch(&order, &c(1, "USD")).is_some());
        assert!(mismatch(&order, &c(499, "EUR")).is_some());
    }

    // -----------------------------------------------------------------------------------
    // The order state machine against an in-process fake provider and the test clock
    // (`OrderService::now`), without HTTP: the end-to-end tests keep one path per provider
    // against the contract fakes in tests/peers.
    // -----------------------------------------------------------------------------------

    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::BoxFuture;

    use crate::payments::{Checkout, ReturnUrls, WebhookEvent};
    use crate::store::films::{Film, Price};

    /// Takes USD only; captures what `pays` says (the order's own amount by default);
    /// answers lookups with `lookup`.
    struct Fake {
        creates: AtomicUsize,
        captures: AtomicUsize,
        pays: Mutex<Option<u64>>,
        lookup: Mutex<Lookup>,
    }

    impl Fake {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                creates: AtomicUsize::new(0),
                captures: AtomicUsize::new(0),
                pays: Mutex::new(None),
                lookup: Mutex::new(Lookup::Pending),
            })
        }
    }

    impl PaymentProvider for Fake {
        fn id(&self) -> &'static str {
            "fake"
        }
        fn accepts(&self, currency: &str) -> bool {
            currency == "USD"
        }
        fn accepted(&self) -> String {
            "USD".into()
        }
        fn link_lifetime(&self) -> Duration {
            Duration::from_secs(3600)
        }
        fn create<'a>(
            &'a self,
            order: &'a Order,
            _item: &'a str,
            urls: &'a ReturnUrls,
        ) -> BoxFuture<'a, Result<Checkout, PaymentError>> {
            self.creates.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Ok(Checkout {
                    provider_ref: format!("FAKE-{}", order.id.simple()),
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
            self.captures.fetch_add(1, Ordering::SeqCst);
            let amount = self
                .pays
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or(order.amount);
            Box::pin(async move {
                Ok(Capture {
                    payment_id: format!("PAY-{}", order.id.simple()),
                    amount,
                    currency: order.currency.clone(),
                })
            })
        }
        fn lookup<'a>(&'a self, _order: &'a Order) -> BoxFuture<'a, Result<Lookup, PaymentError>> {
            let answer = self
                .lookup
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            Box::pin(async move { Ok(answer) })
        }
        fn refund<'a>(&'a self, _order: &'a Order) -> BoxFuture<'a, Result<(), PaymentError>> {
            Box::pin(async { Ok(()) })
        }
        /// `{"id": …, "order": …, "paid": minor units}`: a capture of our order.
        fn webhook_event(&self, event: &serde_json::Value) -> Option<WebhookEvent> {
            Some(WebhookEvent {
                id: event["id"].as_str()?.to_string(),
                about: OrderRef::Order(event["order"].as_str()?.parse().ok()?),
                news: WebhookNews::Captured(Some(Capture {
                    payment_id: "PAY-HOOK".into(),
                    amount: event["paid"].as_u64()?,
                    currency: "USD".into(),
                })),
            })
        }
        /// Genuine when the delivery carries `x-fake-signature: ok`.
        fn verify_webhook<'a>(
            &'a self,
            headers: &'a WebhookHeaders,
            _raw: &'a serde_json::value::RawValue,
        ) -> BoxFuture<'a, Result<bool, PaymentError>> {
            let genuine = headers.get("x-fake-signature").is_some_and(|v| v == "ok");
            Box::pin(async move { Ok(genuine) })
        }
    }

    struct World {
        store: Store,
        payments: Payments,
        locks: OrderLocks,
        telemetry: Telemetry,
        fake: Arc<Fake>,
        film: Film,
        user: Uuid,
    }

    const TTL: Duration = Duration::from_secs(3600);
    const T0: i64 = 1_800_000_000;

    type R = Result<(), Box<dyn std::error::Error>>;

    fn world() -> Result<World, StoreError> {
        let store = Store::temporary()?;
        let fake = Fake::new();
        let payments = Payments::with_providers(vec![fake.clone()], "http://127.0.0.1:1", TTL);
        let film = Film {
            id: crate::store::new_id(),
            title: "A film".into(),
            description: String::new(),
            prices: vec![
                Price {
                    amount: 1000,
                    currency: "KRW".into(),
                },
                Price {
                    amount: 499,
                    currency: "USD".into(),
                },
            ],
            published: true,
            publish_when_ready: false,
            source: None,
            package: None,
            created_at: T0,
            updated_at: T0,
        };
        store.save_film(&film)?;
        Ok(World {
            store,
            payments,
            locks: OrderLocks::default(),
            telemetry: Telemetry::new(),
            fake,
            film,
            user: crate::store::new_id(),
        })
    }

    impl World {
        /// What the playback gate says: a captured purchase entitles.
        fn owns(&self) -> Result<bool, StoreError> {
            Ok(gate::entitlement(&self.store, &self.user, &self.film.id)? == Entitlement::Full)
        }

        fn state(&self, id: &Uuid) -> Result<OrderState, Box<dyn std::error::Error>> {
            Ok(self.store.order(id)?.ok_or("no such order")?.state)
        }

        fn at(&self, now: i64) -> OrderService<'_> {
            OrderService {
                store: &self.store,
                payments: &self.payments,
                locks: &self.locks,
                telemetry: &self.telemetry,
                now,
            }
        }
    }

    #[tokio::test]
    async fn checkout_charges_the_films_price_and_a_reloaded_return_captures_once() -> R {
        let w = world()?;
        let started = w.at(T0).checkout(&w.user, &w.film, "fake").await?;
        // The price is the film's, in a currency the provider takes; nothing from a client.
        assert_eq!(
            (started.order.amount, started.order.currency.as_str()),
            (499, "USD")
        );
        assert_eq!(started.order.state, OrderState::Created);
        // The same checkout again answers the open order, with no second order made.
        let again = w.at(T0 + 5).checkout(&w.user, &w.film, "fake").await?;
        assert!(again.reused);
        assert_eq!(again.order.id, started.order.id);
        assert_eq!(w.fake.creates.load(Ordering::SeqCst), 1);

        let params = ReturnParams::new();
        let done = w
            .at(T0 + 10)
            .complete("fake", &started.order.id, &params)
            .await?;
        assert_eq!(done.state, OrderState::Captured);
        assert!(w.owns()?);
        // A reloaded return page: the answer stands, the provider is not asked again.
        let reloaded = w
            .at(T0 + 11)
            .complete("fake", &started.order.id, &params)
            .await?;
        assert_eq!(reloaded.state, OrderState::Captured);
        assert_eq!(w.fake.captures.load(Ordering::SeqCst), 1);
        // Counted on the transitions, once each: the reused checkout and the reload
        // changed nothing.
        let counted = |outcome| {
            w.telemetry
                .payments
                .get_or_create(&crate::telemetry::PaymentLabels {
                    provider: "fake",
                    outcome,
                })
                .get()
        };
        assert_eq!(["created", "captured", "failed"].map(counted), [1, 1, 0]);
        // Owned now: no second purchase.
        let owned = w.at(T0 + 12).checkout(&w.user, &w.film, "fake").await;
        assert!(
            matches!(owned, Err(OrderError::AlreadyOwned)),
            "{:?}",
            owned.err()
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_capture_of_another_amount_fails_the_order_and_grants_nothing() -> R {
        let w = world()?;
        *w.fake.pays.lock().unwrap_or_else(|p| p.into_inner()) = Some(1);
        let started = w.at(T0).checkout(&w.user, &w.film, "fake").await?;
        let done = w
            .at(T0 + 10)
            .complete("fake", &started.order.id, &ReturnParams::new())
            .await?;
        assert_eq!(done.state, OrderState::Failed, "{done:?}");
        assert!(!w.owns()?);
        Ok(())
    }

    #[tokio::test]
    async fn reconciliation_ends_an_unpaid_order_only_after_its_time_to_live() -> R {
        let w = world()?;
        let started = w.at(T0).checkout(&w.user, &w.film, "fake").await?;
        let id = started.order.id;
        let ttl = secs(TTL);
        // Within its time the provider's "not paid yet" leaves it open…
        w.at(T0 + ttl - 60).reconcile().await?;
        assert_eq!(w.state(&id)?, OrderState::Created);
        // …after it, the order is cancelled, by the clock the service was given.
        w.at(T0 + ttl + 60).reconcile().await?;
        assert_eq!(w.state(&id)?, OrderState::Cancelled);
        assert!(!w.owns()?);
        Ok(())
    }

    #[tokio::test]
    async fn a_provider_that_reports_the_payment_later_is_believed_by_reconciliation() -> R {
        let w = world()?;
        let started = w.at(T0).checkout(&w.user, &w.film, "fake").await?;
        let id = started.order.id;
        *w.fake.lookup.lock().unwrap_or_else(|p| p.into_inner()) = Lookup::Captured(Capture {
            payment_id: "PAY-LATE".into(),
            amount: 499,
            currency: "USD".into(),
        });
        w.at(T0 + 120).reconcile().await?;
        let order = w.store.order(&id)?.ok_or("no such order")?;
        assert_eq!(order.state, OrderState::Captured);
        assert_eq!(order.payment_id.as_deref(), Some("PAY-LATE"));
        assert!(w.owns()?);
        // An unknown provider is refused by name, before anything is recorded.
        let unknown = w.at(T0 + 130).checkout(&w.user, &w.film, "paypal").await;
        assert!(matches!(unknown, Err(OrderError::UnknownProvider(_))));
        Ok(())
    }

    #[tokio::test]
    async fn a_webhook_changes_nothing_until_the_provider_vouches_for_it_and_counts_once() -> R {
        let w = world()?;
        let started = w.at(T0).checkout(&w.user, &w.film, "fake").await?;
        let id = started.order.id;
        let body = serde_json::json!({"id": "EV-1", "order": id.to_string(), "paid": 499});
        let raw = serde_json::value::RawValue::from_string(body.to_string())?;
        let forged = WebhookHeaders::new();
        let refused = w.at(T0 + 10).webhook("fake", &forged, &raw).await;
        assert!(matches!(refused, Err(OrderError::WebhookUnverified(_))));
        assert_eq!(w.state(&id)?, OrderState::Created);
        assert!(!w.owns()?);
        let signed: WebhookHeaders = [("x-fake-signature".to_string(), "ok".to_string())].into();
        assert_eq!(
            w.at(T0 + 20).webhook("fake", &signed, &raw).await?,
            "captured"
        );
        assert_eq!(w.state(&id)?, OrderState::Captured);
        assert!(w.owns()?);
        // The provider's retry of the same event is recognised, not applied again.
        assert_eq!(
            w.at(T0 + 30).webhook("fake", &signed, &raw).await?,
            "duplicate"
        );
        // An event about an order that is not ours is not even verified.
        let other = serde_json::json!({"id": "EV-2", "order": crate::store::new_id().to_string(), "paid": 1});
        let raw = serde_json::value::RawValue::from_string(other.to_string())?;
        assert_eq!(
            w.at(T0 + 40).webhook("fake", &forged, &raw).await?,
            "ignored"
        );
        Ok(())
    }
}
