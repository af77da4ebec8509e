//! The order state machine around the providers: checkout, the payer's return (capture),
//! cancel/fail returns, refunds, PayPal webhooks and reconciliation. The rules that protect
//! the money live here:
//! - the amount is the film's price read on the server when the order is made;
//! - the provider's captured amount and currency must equal the order's, else it fails;
//! - captures of one order are serialised in this process, carry the provider's
//!   idempotency key, and the grant happens in the same store transaction that marks the
//!   order captured, so duplicates grant once;
//! - an order whose outcome is unknown (timeout, crash) is settled by asking the provider,
//!   at start and on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{Capture, Gateway, Lookup, PaymentError, Payments, ReturnParams};
use crate::store::films::Film;
use crate::store::orders::{Captured, Order, OrderKind, OrderState};
use crate::store::{Store, StoreError};
use crate::stream::gate::{self, Entitlement};

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
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One async lock per order in flight, so two returns (a double click, a return racing a
/// webhook) never capture at the same time in this process.
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
    pub now: i64,
}

/// The result of a checkout.
pub struct Started {
    pub order: Order,
    pub redirect_url: String,
    pub mobile_url: Option<String>,
    pub app_url: Option<String>,
}

fn unsupported(gateway: &Gateway) -> OrderError {
    OrderError::CurrencyUnsupported {
        provider: gateway.id().to_string(),
        accepts: gateway.accepted(),
    }
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
    fn gateway(&self, provider: &str) -> Result<&Gateway, OrderError> {
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
        self.start(
            gateway,
            Order::new(
                OrderKind::Purchase,
                *user,
                film.id,
                provider,
                price.amount,
                &price.currency,
                self.now,
            ),
            &film.title,
        )
        .await
    }

    /// The provider for a tip in `currency`, or why there is none. Callers check this before
    /// they record anything that goes with the tip.
    pub fn tip_gateway(&self, provider: &str, currency: &str) -> Result<&Gateway, OrderError> {
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
            Order::new(
                OrderKind::Tip,
                *user,
                film.id,
                provider,
                amount,
                currency,
                self.now,
            ),
            &format!("Tip: {}", film.title),
        )
        .await
    }

    async fn start(
        &self,
        gateway: &Gateway,
        mut order: Order,
        item: &str,
    ) -> Result<Started, OrderError> {
        let provider = order.provider.clone();
        order.record(OrderState::Created, "checkout started", self.now);
        // Persisted before the provider hears of it: whatever happens next, there is a
        // record to reconcile.
        self.store.create_order(&order)?;
        self.store.flush_async().await?;
        let urls = self.payments.return_urls(&provider, &order);
        match gateway.create(&order, item, &urls).await {
            Ok(checkout) => {
                let order = self
                    .store
                    .update_order(&order.id, |o| {
                        o.provider_ref = Some(checkout.provider_ref.clone());
                        o.updated_at = self.now;
                        true
                    })?
                    .ok_or(OrderError::NotFound)?;
                Ok(Started {
                    order,
                    redirect_url: checkout.redirect_url,
                    mobile_url: checkout.mobile_url,
                    app_url: checkout.app_url,
                })
            }
            Err(e) => {
                self.store.update_order(&order.id, |o| {
                    o.failure = Some(e.to_string());
                    o.record(
                        OrderState::Failed,
                        "the provider refused the checkout",
                        self.now,
                    );
                    true
                })?;
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
        if order.kind == OrderKind::Purchase && self.owned(&order.film_id, &order.user_id)? {
            // Bought meanwhile through another order: do not take the money twice.
            return self
                .store
                .update_order(id, |o| {
                    o.record(
                        OrderState::Cancelled,
                        "already owned; not captured",
                        self.now,
                    );
                    true
                })?
                .ok_or(OrderError::NotFound);
        }
        let order = self
            .store
            .update_order(id, |o| {
                if o.state == OrderState::Approved && o.payment_id.is_some() {
                    return false;
                }
                if let Some(p) = gateway.payment_id_on_return(params) {
                    o.payment_id = Some(p);
                }
                o.record(OrderState::Approved, "the payer returned", self.now);
                true
            })?
            .ok_or(OrderError::NotFound)?;
        match gateway.capture(&order, params).await {
            Ok(capture) => self.settle(&order, &capture, "captured on return").await,
            Err(PaymentError::Cancelled(why)) => self
                .store
                .update_order(id, |o| {
                    o.failure = Some(why.clone());
                    o.record(OrderState::Cancelled, "cancelled by the payer", self.now);
                    true
                })?
                .ok_or(OrderError::NotFound),
            Err(PaymentError::Declined(why)) => Ok(self
                .store
                .update_order(id, |o| {
                    o.failure = Some(why.clone());
                    o.record(OrderState::Failed, "declined", self.now);
                    true
                })?
                .ok_or(OrderError::NotFound)?),
            // Unknown outcome: the order stays approved and reconciliation settles it.
            Err(e) => Err(e.into()),
        }
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
            tracing::error!(order = %order.id, "{why}");
            return self
                .store
                .update_order(&order.id, |o| {
                    o.payment_id = Some(capture.payment_id.clone());
                    o.failure = Some(why.clone());
                    o.record(OrderState::Failed, "amount mismatch; not granted", self.now);
                    true
                })?
                .ok_or(OrderError::NotFound);
        }
        Ok(
            match self
                .store
                .capture_order(&order.id, &capture.payment_id, note, self.now)?
            {
                Captured::Now(o) => {
                    tracing::info!(order = %o.id, provider = %o.provider, "order captured; film unlocked");
                    o
                }
                Captured::Already(o) | Captured::Refused(o) => o,
            },
        )
    }

    /// The payer cancelled, or the provider reported a failure, on the way back.
    /// `state` is `Cancelled` (the payer gave up) or `Failed` (the provider refused).
    pub async fn abandon(
        &self,
        provider: &str,
        id: &Uuid,
        state: OrderState,
        why: &str,
    ) -> Result<Order, OrderError> {
        let lock = self.locks.get(id);
        let _held = lock.lock().await;
        self.store
            .update_order(id, |o| {
                if o.provider != provider || o.state.is_final() {
                    return false;
                }
                o.failure = Some(why.to_string());
                o.record(state, why, self.now);
                true
            })?
            .filter(|o| o.provider == provider)
            .ok_or(OrderError::NotFound)
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
        match refunded {
            Some(order) => Ok(order),
            // Refunded meanwhile (a webhook): as it stands now.
            None => self.store.order(id)?.ok_or(OrderError::NotFound),
        }
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
                Ok(refunded.unwrap_or_else(|| order.clone()))
            }
            Lookup::Abandoned(why) if !order.state.is_final() => Ok(self
                .store
                .update_order(&order.id, |o| {
                    if o.state.is_final() {
                        return false;
                    }
                    o.failure = Some(why.clone());
                    o.record(OrderState::Cancelled, note, self.now);
                    true
                })?
                .unwrap_or_else(|| order.clone())),
            _ => Ok(order.clone()),
        }
    }

    /// Asks the provider about every order still open; cancels the ones past `ttl`
    /// seconds that the provider has not settled. Returns how many changed.
    pub async fn reconcile(&self, ttl: i64) -> Result<usize, OrderError> {
        let mut changed = 0;
        // Open orders, and captured ones whose refund was asked for but not recorded.
        let unsettled = |o: &Order| {
            !o.state.is_final()
                || (o.state == OrderState::Captured && o.refund_requested_at.is_some())
        };
        for order in self.store.orders()? {
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
            let lookup = match lookup {
                Lookup::Pending if order.created_at + ttl <= self.now => {
                    Lookup::Abandoned("not paid in time".into())
                }
                other => other,
            };
            let after = self
                .apply_lookup(&order, lookup, "reconciled with the provider")
                .await?;
            if after.state != order.state {
                changed += 1;
                tracing::info!(order = %order.id, state = ?after.state, "reconciled");
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_must_match_the_order() {
        let order = Order {
            id: crate::store::new_id(),
            user_id: crate::store::new_id(),
            film_id: crate::store::new_id(),
            kind: OrderKind::Purchase,
            provider: "paypal".into(),
            amount: 499,
            currency: "USD".into(),
            state: OrderState::Approved,
            provider_ref: None,
            payment_id: None,
            failure: None,
            refund_requested_at: None,
            created_at: 0,
            updated_at: 0,
            events: Vec::new(),
        };
        let c = |amount, currency: &str| Capture {
            payment_id: "C".into(),
            amount,
            currency: currency.into(),
        };
        assert!(mismatch(&order, &c(499, "USD")).is_none());
        assert!(mismatch(&order, &c(1, "USD")).is_some());
        assert!(mismatch(&order, &c(499, "EUR")).is_some());
    }
}
