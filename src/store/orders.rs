//! Orders (a persisted state machine per checkout) and purchases (the entitlement an order
//! buys). Capture and refund change the order and the purchase in one sled transaction, so
//! an entitlement exists exactly when its order is captured; processed provider webhook
//! events are remembered so a replay changes nothing.

use super::Transact;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decode, encode, get, pair, scan, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Our record exists and the provider has (or is getting) its side of it.
    Created,
    /// The payer approved at the provider; capture is next.
    Approved,
    /// The money is taken and the film unlocked.
    Captured,
    Refunded,
    /// The payer gave up (or the order expired) before paying.
    Cancelled,
    /// The provider declined, or its answer did not match the order.
    Failed,
}

impl OrderState {
    /// Nothing more happens to an order in these states, except a refund of a capture.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderState::Captured
                | OrderState::Refunded
                | OrderState::Cancelled
                | OrderState::Failed
        )
    }
}

/// What an order pays for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    /// The whole film: capturing it grants a purchase.
    #[default]
    Purchase,
    /// A tip to the film's makers, amount chosen by the viewer within configured bounds;
    /// it never unlocks anything.
    Tip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub at: i64,
    pub state: OrderState,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub film_id: Uuid,
    #[serde(default)]
    pub kind: OrderKind,
    pub provider: String,
    /// In minor units. A purchase: the film's price when the order was made, never from the
    /// client. A tip: the viewer's choice, checked against `social.tips` bounds.
    pub amount: u64,
    pub currency: String,
    pub state: OrderState,
    /// The provider's id for the checkout (PayPal order id, Kakao Pay tid, Naver Pay
    /// reserve id).
    #[serde(default)]
    pub provider_ref: Option<String>,
    /// The provider's id for the money movement (PayPal capture id, Kakao Pay aid, Naver
    /// Pay paymentId), needed to refund.
    #[serde(default)]
    pub payment_id: Option<String>,
    #[serde(default)]
    pub failure: Option<String>,
    /// Set (and on disk) before a refund is asked of the provider, so a crash between the
    /// provider's refund and ours is found by reconciliation.
    #[serde(default)]
    pub refund_requested_at: Option<i64>,
    /// Where the checkout sent the payer (browser, mobile web, app), kept so that the same
    /// checkout asked again answers this open order instead of making another.
    #[serde(default)]
    pub redirect_url: Option<String>,
    #[serde(default)]
    pub mobile_url: Option<String>,
    #[serde(default)]
    pub app_url: Option<String>,
    /// When reconciliation had the provider's word on this order after it was cancelled
    /// or failed with the payer's return seen: a capture may have been in doubt then, so
    /// such an order is asked about once.
    #[serde(default)]
    pub rechecked_at: Option<i64>,
    /// What a provider needs from the payer's return to take the money and has no other
    /// way to give us (Kakao Pay's `pg_token`), kept so that a capture whose outcome was
    /// unclear can be asked again by reconciliation without the payer. Useless without our
    /// provider credentials, and never shown to viewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_token: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub events: Vec<OrderEvent>,
    /// The viewer app's page (a local path) to bring the payer back to after the
    /// provider, set by the web checkout; orders from apps have none and get the plain
    /// return page.
    #[serde(default)]
    pub return_to: Option<String>,
}

impl Order {
    /// A new order, not yet known to its provider.
    pub fn new(
        kind: OrderKind,
        user: Uuid,
        film: Uuid,
        provider: &str,
        amount: u64,
        currency: &str,
        now: i64,
    ) -> Self {
        Order {
            id: super::new_id(),
            user_id: user,
            film_id: film,
            kind,
            provider: provider.to_string(),
            amount,
            currency: currency.to_string(),
            state: OrderState::Created,
            provider_ref: None,
            payment_id: None,
            failure: None,
            refund_requested_at: None,
            redirect_url: None,
            mobile_url: None,
            app_url: None,
            rechecked_at: None,
            capture_token: None,
            created_at: now,
            updated_at: now,
            events: Vec::new(),
            return_to: None,
        }
    }

    /// The payer came back from the provider at least once (the order was `approved`), so
    /// a capture may have been asked for.
    pub fn return_seen(&self) -> bool {
        self.events.iter().any(|e| e.state == OrderState::Approved)
    }

    pub fn record(&mut self, state: OrderState, note: impl Into<String>, now: i64) {
        self.state = state;
        self.updated_at = now;
        self.events.push(OrderEvent {
            at: now,
            state,
            note: note.into(),
        });
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    pub order_id: Uuid,
    pub purchased_at: i64,
}

impl Order {
    /// This order as an event reports it, with the amount as it is now.
    pub fn facts(&self) -> super::events::OrderFacts {
        super::events::OrderFacts {
            user: self.user_id,
            film: self.film_id,
            order: self.id,
            provider: self.provider.clone(),
            amount: self.amount,
            currency: self.currency.clone(),
            tip: self.kind == OrderKind::Tip,
        }
    }
}

/// The domain event of a captured or refunded order, with the amount as it was.
fn order_event(o: &Order, state: OrderState) -> super::events::Event {
    use super::events::Event;
    if state == OrderState::Refunded {
        Event::OrderRefunded(o.facts())
    } else {
        Event::OrderCaptured(o.facts())
    }
}

/// What `capture_order` did.
#[derive(Debug, PartialEq)]
pub enum Captured {
    /// Now captured and granted.
    Now(Order),
    /// It already was (a duplicate callback, a webhook after the return, a retry).
    Already(Order),
    /// It cannot be: the order was refunded.
    Refused(Order),
}

impl Store {
    pub fn create_order(&self, order: &Order) -> Result<()> {
        (&self.orders, &self.orders_by_user, &self.tips_by_film).transaction(
            |(orders, by_user, tips)| {
                orders.insert(order.id.as_bytes().as_slice(), encode(order))?;
                by_user.insert(pair(&order.user_id, &order.id).as_slice(), &[])?;
                // An order's kind and film never change, so this entry never moves.
                if order.kind == OrderKind::Tip {
                    tips.insert(pair(&order.film_id, &order.id).as_slice(), &[])?;
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    /// A film's tip orders, oldest first, through `tips_by_film` (no scan of the orders).
    pub fn tips_for_film(&self, film: &Uuid) -> Result<Vec<Order>> {
        let mut out = Vec::new();
        for key in self.tips_by_film.scan_prefix(film.as_bytes()).keys() {
            let key = key?;
            if let Some(o) = get(&self.orders, "orders", &key[16..])? {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// Builds `tips_by_film` from the orders of a store written before it existed; once
    /// (a meta record says it ran). Clears and rebuilds, so a crash half-way just runs it
    /// again. An unreadable record is logged and left unindexed.
    pub(crate) fn index_tips_once(&self) -> Result<()> {
        if self.meta.get(TIPS_INDEXED)?.is_some() {
            return Ok(());
        }
        self.tips_by_film.clear()?;
        let mut indexed = 0usize;
        for kv in self.orders.iter() {
            let (k, v) = kv?;
            match decode::<Order>("orders", &v) {
                Ok(o) if o.kind == OrderKind::Tip => {
                    self.tips_by_film
                        .insert(pair(&o.film_id, &o.id).as_slice(), &[])?;
                    indexed += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(tree = "orders", key = %hex::encode(&k), error = %e, "indexing tips: skipped an unreadable order record (left in place)");
                }
            }
        }
        self.meta.insert(TIPS_INDEXED, &[1u8])?;
        if indexed > 0 {
            tracing::info!(tips = indexed, "indexed the stored tips by film (once)");
        }
        Ok(())
    }

    pub fn order(&self, id: &Uuid) -> Result<Option<Order>> {
        get(&self.orders, "orders", id.as_bytes())
    }

    /// Applies `change` atomically (compare-and-swap, retried on a concurrent write).
    /// `change` returns whether it changed anything; the stored order is returned.
    pub fn update_order(
        &self,
        id: &Uuid,
        change: impl FnMut(&mut Order) -> bool,
    ) -> Result<Option<Order>> {
        super::update(&self.orders, "orders", id.as_bytes(), change)
    }

    /// Marks the order captured and grants the purchase, in one transaction.
    pub fn capture_order(
        &self,
        id: &Uuid,
        payment_id: &str,
        note: &str,
        now: i64,
    ) -> Result<Captured> {
        self.with_event_id(|event_id| self.capture_in_log(id, payment_id, note, now, event_id))
    }

    fn capture_in_log(
        &self,
        id: &Uuid,
        payment_id: &str,
        note: &str,
        now: i64,
        event_id: u64,
    ) -> Result<Captured> {
        let outcome = (
            &self.orders,
            &self.purchases,
            &self.purchases_by_user,
            &self.orders_by_payment,
            &self.event_log,
        )
            .transaction(|(orders, purchases, by_user, by_payment, log)| {
                let Some(bytes) = orders.get(id.as_bytes())? else {
                    return sled::transaction::abort(StoreError::Conflict(format!(
                        "order {id} does not exist"
                    )));
                };
                let mut order: Order = decode("orders", &bytes)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                match order.state {
                    OrderState::Captured => return Ok(Captured::Already(order)),
                    OrderState::Refunded => return Ok(Captured::Refused(order)),
                    // Money taken counts even if the payer had been told "cancelled" or an
                    // earlier attempt "failed": the provider's capture is the truth.
                    _ => {}
                }
                order.payment_id = Some(payment_id.to_string());
                order.failure = None;
                order.record(OrderState::Captured, note, now);
                orders.insert(id.as_bytes().as_slice(), encode(&order))?;
                // Logged with the capture itself: exactly one `order.captured` per order.
                super::events::append_in(
                    log,
                    event_id,
                    now,
                    order_event(&order, OrderState::Captured),
                )?;
                by_payment.insert(
                    payment_key(&order.provider, payment_id),
                    order.id.as_bytes().as_slice(),
                )?;
                if order.kind == OrderKind::Tip {
                    return Ok(Captured::Now(order));
                }
                let purchase = Purchase {
                    order_id: order.id,
                    purchased_at: now,
                };
                purchases.insert(
                    pair(&order.film_id, &order.user_id).as_slice(),
                    encode(&purchase),
                )?;
                by_user.insert(pair(&order.user_id, &order.film_id).as_slice(), &[])?;
                Ok(Captured::Now(order))
            })?;
        Ok(outcome)
    }

    /// The order whose capture is `payment_id` at `provider` (a PayPal capture id, …).
    pub fn order_by_payment(&self, provider: &str, payment_id: &str) -> Result<Option<Order>> {
        let Some(id) = self
            .orders_by_payment
            .get(payment_key(provider, payment_id))?
        else {
            return Ok(None);
        };
        match Uuid::from_slice(&id) {
            Ok(id) => self.order(&id),
            Err(_) => Err(StoreError::Corrupt {
                tree: "orders_by_payment",
                message: "not an order id".into(),
            }),
        }
    }

    /// Indexes the captures of orders stored before `orders_by_payment` existed; once
    /// (a marker key records that it ran).
    pub(crate) fn index_payments_once(&self) -> Result<()> {
        if self.orders_by_payment.contains_key(INDEXED)? {
            return Ok(());
        }
        for order in self.orders()? {
            if let (OrderState::Captured | OrderState::Refunded, Some(p)) =
                (order.state, order.payment_id.as_deref())
            {
                self.orders_by_payment.insert(
                    payment_key(&order.provider, p),
                    order.id.as_bytes().as_slice(),
                )?;
            }
        }
        self.orders_by_payment.insert(INDEXED, &[])?;
        Ok(())
    }

    /// Marks a captured order refunded and revokes the purchase it bought, in one
    /// transaction. Returns the order, or `None` if it was not captured.
    pub fn refund_order(&self, id: &Uuid, note: &str, now: i64) -> Result<Option<Order>> {
        self.with_event_id(|event_id| self.refund_in_log(id, note, now, event_id))
    }

    fn refund_in_log(
        &self,
        id: &Uuid,
        note: &str,
        now: i64,
        event_id: u64,
    ) -> Result<Option<Order>> {
        let outcome = (
            &self.orders,
            &self.purchases,
            &self.purchases_by_user,
            &self.event_log,
        )
            .transaction(|(orders, purchases, by_user, log)| {
                let Some(bytes) = orders.get(id.as_bytes())? else {
                    return Ok(None);
                };
                let mut order: Order = decode("orders", &bytes)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                if order.state != OrderState::Captured {
                    return Ok(None);
                }
                order.record(OrderState::Refunded, note, now);
                orders.insert(id.as_bytes().as_slice(), encode(&order))?;
                super::events::append_in(
                    log,
                    event_id,
                    now,
                    order_event(&order, OrderState::Refunded),
                )?;
                let key = pair(&order.film_id, &order.user_id);
                if let Some(p) = purchases.get(key.as_slice())? {
                    let p: Purchase = decode("purchases", &p)
                        .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                    // Only the purchase this order made; a later purchase stays.
                    if p.order_id == order.id {
                        purchases.remove(key.as_slice())?;
                        by_user.remove(pair(&order.user_id, &order.film_id).as_slice())?;
                    }
                }
                Ok(Some(order))
            })?;
        Ok(outcome)
    }

    pub fn purchase(&self, film: &Uuid, user: &Uuid) -> Result<Option<Purchase>> {
        get(&self.purchases, "purchases", &pair(film, user))
    }

    /// A user's purchases: (film, purchase).
    pub fn purchases_of(&self, user: &Uuid) -> Result<Vec<(Uuid, Purchase)>> {
        let mut out = Vec::new();
        for key in self.purchases_by_user.scan_prefix(user.as_bytes()).keys() {
            let key = key?;
            let film = Uuid::from_slice(&key[16..]).unwrap_or_default();
            if let Some(p) = self.purchase(&film, user)? {
                out.push((film, p));
            }
        }
        Ok(out)
    }

    pub fn orders_of(&self, user: &Uuid) -> Result<Vec<Order>> {
        let mut out = Vec::new();
        for key in self.orders_by_user.scan_prefix(user.as_bytes()).keys() {
            let key = key?;
            let id = Uuid::from_slice(&key[16..]).unwrap_or_default();
            if let Some(o) = self.order(&id)? {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// Every order, oldest first (ids are time-ordered).
    pub fn orders(&self) -> Result<Vec<Order>> {
        scan(&self.orders, "orders", &[])
    }

    /// The newest `limit` orders, newest first (ids are time-ordered, so this reads only
    /// the tail of the tree).
    pub fn latest_orders(&self, limit: usize) -> Result<Vec<Order>> {
        self.orders
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                super::decode("orders", &v)
            })
            .collect()
    }

    /// Orders created at or after `since` (Unix seconds), oldest first: a key range from
    /// the smallest time-ordered id of that second, not a scan of the tree.
    pub fn orders_created_since(&self, since: i64) -> Result<Vec<Order>> {
        let start = super::first_id_at(since);
        self.orders
            .range(start.as_bytes().as_slice()..)
            .map(|kv| {
                let (_, v) = kv?;
                super::decode("orders", &v)
            })
            .collect()
    }

    /// One page of the admin's order list, newest first: orders created in `[from, to)`
    /// (Unix seconds) and older than the cursor `before` (an order id), that `keep`
    /// accepts, at most `limit` of them. A key range over the time-ordered ids, walked
    /// from its newest end; at most `scan_limit` records are read per page, so a filter
    /// that matches little still answers quickly. The cursor of the next page is returned
    /// when the range holds more (the last order read, matched or not).
    pub fn orders_page(
        &self,
        range: (Option<i64>, Option<i64>),
        before: Option<Uuid>,
        limit: usize,
        scan_limit: usize,
        keep: impl Fn(&Order) -> bool,
    ) -> Result<(Vec<Order>, Option<Uuid>)> {
        let low = range.0.map(super::first_id_at).unwrap_or_default();
        let mut high = range.1.map(super::first_id_at).unwrap_or(Uuid::max());
        if let Some(b) = before {
            high = high.min(b);
        }
        let mut out = Vec::new();
        let mut last = None;
        for (read, kv) in self
            .orders
            .range(low.as_bytes().as_slice()..high.as_bytes().as_slice())
            .rev()
            .enumerate()
        {
            let (_, v) = kv?;
            if out.len() == limit || read == scan_limit {
                return Ok((out, last));
            }
            let order: Order = decode("orders", &v)?;
            last = Some(order.id);
            if keep(&order) {
                out.push(order);
            }
        }
        Ok((out, None))
    }

    /// Records a provider's webhook event id; `false` when it was already seen (a replay).
    pub fn first_sighting(&self, provider: &str, event_id: &str, now: i64) -> Result<bool> {
        Ok(self
            .payment_events
            .compare_and_swap(
                event_key(provider, event_id),
                None as Option<&[u8]>,
                Some(now.to_be_bytes().as_slice()),
            )?
            .is_ok())
    }

    /// Whether a provider's webhook event id was seen already (nothing is recorded).
    pub fn event_seen(&self, provider: &str, event_id: &str) -> Result<bool> {
        Ok(self
            .payment_events
            .contains_key(event_key(provider, event_id))?)
    }

    /// Forgets that an event was seen (its processing failed, so the provider's retry must
    /// be processed).
    pub fn forget_sighting(&self, provider: &str, event_id: &str) -> Result<()> {
        self.payment_events.remove(event_key(provider, event_id))?;
        Ok(())
    }
}

/// Marks the meta record saying `tips_by_film` was built.
const TIPS_INDEXED: &str = "tips_indexed";

/// The key in `orders_by_payment` that says the orders stored before it were indexed (no
/// provider id is empty, so no payment key starts with 0).
pub(crate) const INDEXED: &[u8] = &[0];

/// `provider ‖ 0 ‖ payment id`: the key of the `orders_by_payment` tree.
fn payment_key(provider: &str, payment_id: &str) -> Vec<u8> {
    event_key(provider, payment_id)
}

/// `provider ‖ 0 ‖ event id`: the key of the `payment_events` tree.
fn event_key(provider: &str, event_id: &str) -> Vec<u8> {
    let mut key = provider.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(event_id.as_bytes());
    key
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn order(user: Uuid, film: Uuid) -> Order {
        Order {
            id: crate::store::new_id(),
            user_id: user,
            film_id: film,
            kind: OrderKind::Purchase,
            provider: "dev".into(),
            amount: 500,
            currency: "USD".into(),
            state: OrderState::Created,
            provider_ref: None,
            payment_id: None,
            failure: None,
            refund_requested_at: None,
            redirect_url: None,
            mobile_url: None,
            app_url: None,
            rechecked_at: None,
            capture_token: None,
            created_at: 1,
            updated_at: 1,
            events: Vec::new(),
            return_to: None,
        }
    }

    #[test]
    fn capture_grants_once_and_refund_revokes() -> Result<()> {
        let store = Store::temporary()?;
        let (user, film) = (crate::store::new_id(), crate::store::new_id());
        let o = order(user, film);
        store.create_order(&o)?;
        assert!(store.purchase(&film, &user)?.is_none());
        assert!(matches!(
            store.capture_order(&o.id, "CAP-1", "x", 2)?,
            Captured::Now(_)
        ));
        assert!(matches!(
            store.capture_order(&o.id, "CAP-1", "again", 3)?,
            Captured::Already(_)
        ));
        assert_eq!(
            store.purchase(&film, &user)?.map(|p| p.order_id),
            Some(o.id)
        );
        assert_eq!(store.purchases_of(&user)?.len(), 1);

        let refunded = store.refund_order(&o.id, "admin", 4)?;
        assert_eq!(refunded.map(|o| o.state), Some(OrderState::Refunded));
        assert!(store.purchase(&film, &user)?.is_none());
        assert!(store.refund_order(&o.id, "twice", 5)?.is_none());
        assert!(matches!(
            store.capture_order(&o.id, "CAP-1", "late webhook", 6)?,
            Captured::Refused(_)
        ));
        assert!(store.purchase(&film, &user)?.is_none());
        Ok(())
    }

    #[test]
    fn pages_of_orders_run_newest_first_within_the_range() -> Result<()> {
        let store = Store::temporary()?;
        let (user, film) = (crate::store::new_id(), crate::store::new_id());
        let mut ids = Vec::new();
        for _ in 0..5 {
            let o = order(user, film);
            store.create_order(&o)?;
            ids.push(o.id);
            // Distinct milliseconds keep the ids' order the creation order.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let ids_of = |os: &[Order]| os.iter().map(|o| o.id).collect::<Vec<_>>();
        let (first, next) = store.orders_page((None, None), None, 2, 100, |_| true)?;
        assert_eq!(ids_of(&first), [ids[4], ids[3]]);
        assert_eq!(next, Some(ids[3]));
        let (second, next) = store.orders_page((None, None), next, 2, 100, |_| true)?;
        assert_eq!(ids_of(&second), [ids[2], ids[1]]);
        let (last, next) = store.orders_page((None, None), next, 2, 100, |_| true)?;
        assert_eq!((ids_of(&last), next), (vec![ids[0]], None));
        // A filter reads on; a scan limit stops the page early with a cursor to go on.
        let odd = |o: &Order| o.id == ids[1] || o.id == ids[3];
        let (found, next) = store.orders_page((None, None), None, 10, 100, odd)?;
        assert_eq!((ids_of(&found), next), (vec![ids[3], ids[1]], None));
        let (found, next) = store.orders_page((None, None), None, 10, 2, odd)?;
        assert_eq!((ids_of(&found), next), (vec![ids[3]], Some(ids[3])));
        // Time bounds: nothing before 1970-01-02, everything from it on.
        let (none, _) = store.orders_page((None, Some(86_400)), None, 10, 100, |_| true)?;
        assert!(none.is_empty());
        let (all, _) = store.orders_page((Some(86_400), None), None, 10, 100, |_| true)?;
        assert_eq!(all.len(), 5);
        Ok(())
    }

    #[test]
    fn captures_are_indexed_by_payment_id_and_old_ones_once_at_open() -> Result<()> {
        let store = Store::temporary()?;
        let (user, film) = (crate::store::new_id(), crate::store::new_id());
        let o = order(user, film);
        store.create_order(&o)?;
        assert!(store.order_by_payment("dev", "CAP-9")?.is_none());
        store.capture_order(&o.id, "CAP-9", "x", 2)?;
        let found = store.order_by_payment("dev", "CAP-9")?.map(|o| o.id);
        assert_eq!(found, Some(o.id));
        assert!(store.order_by_payment("paypal", "CAP-9")?.is_none());
        // A store from before the index: built from the orders at open, once.
        store.orders_by_payment.clear()?;
        store.index_payments_once()?;
        let found = store.order_by_payment("dev", "CAP-9")?.map(|o| o.id);
        assert_eq!(found, Some(o.id));
        store
            .orders_by_payment
            .remove(payment_key("dev", "CAP-9"))?;
        store.index_payments_once()?;
        assert!(
            store.order_by_payment("dev", "CAP-9")?.is_none(),
            "ran once"
        );
        Ok(())
    }

    #[test]
    fn a_captured_tip_grants_nothing() -> Result<()> {
        let store = Store::temporary()?;
        let (user, film) = (crate::store::new_id(), crate::store::new_id());
        let tip = Order {
            kind: OrderKind::Tip,
            ..order(user, film)
        };
        store.create_order(&tip)?;
        assert!(matches!(
            store.capture_order(&tip.id, "T", "x", 2)?,
            Captured::Now(_)
        ));
        assert!(store.purchase(&film, &user)?.is_none());
        Ok(())
    }

    #[test]
    fn webhook_events_are_seen_once() -> Result<()> {
        let store = Store::temporary()?;
        assert!(store.first_sighting("paypal", "WH-1", 1)?);
        assert!(!store.first_sighting("paypal", "WH-1", 2)?);
        assert!(store.event_seen("paypal", "WH-1")?);
        assert!(!store.event_seen("paypal", "WH-2")?);
        assert!(store.first_sighting("kakaopay", "WH-1", 2)?);
        store.forget_sighting("paypal", "WH-1")?;
        assert!(store.first_sighting("paypal", "WH-1", 3)?);
        Ok(())
    }

    #[test]
    fn tips_are_indexed_by_film_and_old_ones_once_at_open() -> Result<()> {
        let store = Store::temporary()?;
        let (user, film, other) = (
            crate::store::new_id(),
            crate::store::new_id(),
            crate::store::new_id(),
        );
        let tip = |film| Order {
            kind: OrderKind::Tip,
            ..order(user, film)
        };
        let (t1, bought, t2, elsewhere) = (tip(film), order(user, film), tip(film), tip(other));
        for o in [&t1, &bought, &t2, &elsewhere] {
            store.create_order(o)?;
        }
        let tips = |film| -> Result<Vec<Uuid>> {
            Ok(store.tips_for_film(&film)?.iter().map(|o| o.id).collect())
        };
        assert_eq!(tips(film)?, [t1.id, t2.id], "a film's tips, oldest first");
        assert_eq!(tips(other)?, [elsewhere.id]);
        // State changes keep the entry (a tip stays a tip of its film).
        store.capture_order(&t1.id, "T1", "x", 2)?;
        assert_eq!(store.tips_for_film(&film)?[0].state, OrderState::Captured);

        // A store from before the index: built from the orders at open, once.
        store.tips_by_film.clear()?;
        store.meta.remove(TIPS_INDEXED)?;
        let bytes: &[u8] = br#"{"id":"schema-2","kind":"tip"}"#;
        store
            .orders
            .insert(crate::store::new_id().as_bytes(), bytes)?;
        store.index_tips_once()?;
        assert_eq!(tips(film)?, [t1.id, t2.id]);
        assert_eq!(tips(other)?, [elsewhere.id]);
        store.tips_by_film.remove(pair(&other, &elsewhere.id))?;
        store.index_tips_once()?;
        assert!(tips(other)?.is_empty(), "ran once");
        Ok(())
    }
}
