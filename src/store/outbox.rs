//! The notification outbox: what is to be delivered, rendered when its event was applied,
//! so a retry sends exactly what the first attempt would have. Secrets (SMTP password,
//! webhook keys, push credentials) never enter it: senders take them from the
//! configuration at send time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A mobile platform, as apps register it (`POST /api/v1/me/devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
}

/// One message to one recipient over one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Delivery {
    Email {
        to: String,
        subject: String,
        text: String,
        html: String,
        /// Set on mail that is not transactional (`List-Unsubscribe`).
        #[serde(default)]
        list_unsubscribe: Option<String>,
    },
    Push {
        user: Uuid,
        device: Uuid,
        platform: Platform,
        token: String,
        title: String,
        body: String,
        #[serde(default)]
        data: BTreeMap<String, String>,
    },
    Webhook {
        /// The configured endpoint's URL (its signing secret is looked up by it).
        url: String,
        /// The event's dotted name (`order.captured`).
        event: String,
        /// The exact JSON text sent and signed.
        body: String,
    },
}

impl Delivery {
    /// The channel's name, for logs, metrics and the dead-letter list.
    pub fn channel(&self) -> &'static str {
        match self {
            Delivery::Email { .. } => "email",
            Delivery::Push { .. } => "push",
            Delivery::Webhook { .. } => "webhook",
        }
    }
}

// ---------------------------------------------------------------------------------------
// The trees: `outbox` (due entries, in the order they fall due), `outbox_dead` (dead
// letters, by id) and `notification_prefs` (user → preferences).

use super::Transact;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{decode, encode, Result, Store, StoreError};

/// One delivery waiting in the outbox (or, after its last attempt, in the dead letters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: Uuid,
    /// Unix seconds (the service's clock) when its event was routed.
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix milliseconds (wall clock) from when the worker may try it; its key in `outbox`.
    pub next_attempt_at: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    pub delivery: Delivery,
}

impl OutboxEntry {
    /// A fresh entry, due at once.
    pub fn new(delivery: Delivery, created_at: i64, now_ms: i64) -> Self {
        Self {
            id: super::new_id(),
            created_at,
            attempts: 0,
            next_attempt_at: now_ms,
            last_error: None,
            delivery,
        }
    }
}

/// `outbox` key: the due time (milliseconds, biased so negatives sort first) ‖ the id, so
/// the due entries are a range from the start and a reschedule is one remove and insert.
fn due_key(at_ms: i64, id: &Uuid) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&((at_ms as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(id.as_bytes());
    k
}

fn key_of(entry: &OutboxEntry) -> [u8; 24] {
    due_key(entry.next_attempt_at, &entry.id)
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// Inside the router's transaction (which must include `outbox`): queues `entry`.
pub fn enqueue_in(outbox: &TransactionalTree, entry: &OutboxEntry) -> TxResult<()> {
    outbox.insert(&key_of(entry), encode(entry))?;
    Ok(())
}

/// A user's notification preferences. Transactional mail (receipts, refunds, tip thanks)
/// is always sent and has no switch here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationPrefs {
    /// "A new film is published" by e-mail.
    pub new_films_email: bool,
    /// "A new film is published" by mobile push.
    pub new_films_push: bool,
    /// The language of the mail and pushes sent to the user.
    pub language: Language,
}

impl Default for NotificationPrefs {
    fn default() -> Self {
        Self {
            new_films_email: false,
            new_films_push: false,
            language: Language::En,
        }
    }
}

/// A language notifications are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Ko,
}

impl Language {
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "en" => Some(Language::En),
            "ko" => Some(Language::Ko),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ko => "ko",
        }
    }
}

impl Store {
    /// Queues `entries` and moves consumer `cursor` to `event_id` in one transaction: an
    /// event's deliveries are queued exactly once, however the process stops.
    /// `marker`, when given, is a `meta` key set with them (a film announced once).
    pub fn enqueue_routed(
        &self,
        entries: &[OutboxEntry],
        cursor: &str,
        event_id: u64,
        marker: Option<&[u8]>,
    ) -> Result<()> {
        (&self.outbox, &self.meta).transaction(|(outbox, meta)| {
            for e in entries {
                enqueue_in(outbox, e)?;
            }
            if let Some(m) = marker {
                meta.insert(m, &[1u8][..])?;
            }
            super::events::advance_cursor(meta, cursor, event_id)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Whether `meta` holds `marker` (set by `enqueue_routed`).
    pub fn has_marker(&self, marker: &[u8]) -> Result<bool> {
        Ok(self.meta.contains_key(marker)?)
    }

    /// Sets `key` in `meta` to `at` unless it holds a time later than `at - interval`:
    /// whether it was set (a rate limit that survives restarts: the dead-letter alert).
    pub fn take_interval(&self, key: &[u8], at: i64, interval: i64) -> Result<bool> {
        loop {
            let current = self.meta.get(key)?;
            let last = current
                .as_ref()
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(i64::from_be_bytes);
            if last.is_some_and(|l| at - l < interval) {
                return Ok(false);
            }
            if self
                .meta
                .compare_and_swap(key, current, Some(&at.to_be_bytes()[..]))?
                .is_ok()
            {
                return Ok(true);
            }
        }
    }

    /// Queues one entry outside any event (the dead-letter alert).
    pub fn enqueue(&self, entry: &OutboxEntry) -> Result<()> {
        self.outbox.insert(key_of(entry), encode(entry))?;
        Ok(())
    }

    /// Up to `limit` entries due at `now_ms`, the longest due first, skipping those
    /// `skip` names (in flight).
    pub fn due_entries(
        &self,
        now_ms: i64,
        limit: usize,
        skip: &dyn Fn(&Uuid) -> bool,
    ) -> Result<Vec<OutboxEntry>> {
        let end = due_key(now_ms.saturating_add(1), &Uuid::nil());
        let mut out = Vec::new();
        for kv in self.outbox.range(..end.as_slice()) {
            let (_, v) = kv?;
            let e: OutboxEntry = decode("outbox", &v)?;
            if skip(&e.id) {
                continue;
            }
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// When the next entry that `skip` does not name falls due (Unix ms), if any.
    pub fn next_due(&self, skip: &dyn Fn(&Uuid) -> bool) -> Result<Option<i64>> {
        for kv in self.outbox.iter() {
            let (_, v) = kv?;
            let e: OutboxEntry = decode("outbox", &v)?;
            if !skip(&e.id) {
                return Ok(Some(e.next_attempt_at));
            }
        }
        Ok(None)
    }

    /// Every queued entry, soonest due first (tests and the operator).
    pub fn outbox_entries(&self) -> Result<Vec<OutboxEntry>> {
        super::scan(&self.outbox, "outbox", &[])
    }

    /// The provider confirmed `entry`: it leaves the outbox. `false` when it was no longer
    /// there (removed by an account deletion meanwhile).
    pub fn mark_delivered(&self, entry: &OutboxEntry) -> Result<bool> {
        Ok(self.outbox.remove(key_of(entry))?.is_some())
    }

    /// Another attempt failed: `entry` moves to `next_ms` with one more attempt counted
    /// and `error` kept. Returns the entry as stored.
    pub fn reschedule(
        &self,
        entry: &OutboxEntry,
        next_ms: i64,
        error: &str,
    ) -> Result<OutboxEntry> {
        let mut next = entry.clone();
        next.attempts = entry.attempts.saturating_add(1);
        next.next_attempt_at = next_ms;
        next.last_error = Some(error.to_string());
        let (old, new) = (key_of(entry), key_of(&next));
        let bytes = encode(&next);
        self.outbox.transaction(|outbox| {
            // Gone meanwhile (its recipient deleted): stays gone.
            if outbox.remove(&old)?.is_some() {
                outbox.insert(&new, bytes.clone())?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(())
        })?;
        Ok(next)
    }

    /// `entry` gives up (its last attempt failed, or it can never succeed as it is): it
    /// moves to the dead letters with the attempt counted and `error` kept, in one
    /// transaction. `false` when it was no longer in the outbox.
    pub fn move_to_dead(&self, entry: &OutboxEntry, error: &str) -> Result<bool> {
        let mut dead = entry.clone();
        dead.attempts = entry.attempts.saturating_add(1);
        dead.last_error = Some(error.to_string());
        let key = key_of(entry);
        let bytes = encode(&dead);
        let moved = (&self.outbox, &self.outbox_dead).transaction(|(outbox, dead_tree)| {
            if outbox.remove(&key)?.is_none() {
                return Ok(false);
            }
            dead_tree.insert(dead.id.as_bytes(), bytes.clone())?;
            Ok::<_, ConflictableTransactionError<StoreError>>(true)
        })?;
        Ok(moved)
    }

    /// How many entries wait in the outbox and how many are dead letters (`/metrics`):
    /// counted, not decoded.
    pub fn outbox_depth(&self) -> Result<(usize, usize)> {
        Ok((self.outbox.len(), self.outbox_dead.len()))
    }

    /// The dead letters, oldest first (ids are time-ordered).
    pub fn dead_letters(&self) -> Result<Vec<OutboxEntry>> {
        super::scan(&self.outbox_dead, "outbox_dead", &[])
    }

    /// Puts dead letter `id` back in the outbox, due at `now_ms` with its attempts reset.
    /// `None` when there is no such dead letter.
    pub fn retry_dead(&self, id: &Uuid, now_ms: i64) -> Result<Option<OutboxEntry>> {
        let retried = (&self.outbox, &self.outbox_dead).transaction(|(outbox, dead)| {
            let Some(bytes) = dead.remove(id.as_bytes())? else {
                return Ok(None);
            };
            let mut entry: OutboxEntry =
                decode("outbox_dead", &bytes).map_err(ConflictableTransactionError::Abort)?;
            entry.attempts = 0;
            entry.next_attempt_at = now_ms;
            outbox.insert(&key_of(&entry), encode(&entry))?;
            Ok::<_, ConflictableTransactionError<StoreError>>(Some(entry))
        })?;
        Ok(retried)
    }

    /// Drops every queued or dead e-mail addressed to `email` (an account deletion).
    /// Walks both trees: they are short (deliveries leave within seconds).
    pub fn drop_mail_to(&self, email: &str) -> Result<usize> {
        let mut dropped = 0;
        for tree in [&self.outbox, &self.outbox_dead] {
            for kv in tree.iter() {
                let (k, v) = kv?;
                let Ok(e) = serde_json::from_slice::<OutboxEntry>(&v) else {
                    continue;
                };
                if matches!(&e.delivery, Delivery::Email { to, .. } if to.eq_ignore_ascii_case(email))
                    && tree.remove(&k)?.is_some()
                {
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }

    /// A user's preferences (the defaults until they change one).
    pub fn notification_prefs(&self, user: &Uuid) -> Result<NotificationPrefs> {
        Ok(super::get(
            &self.notification_prefs,
            "notification_prefs",
            user.as_bytes(),
        )?
        .unwrap_or_default())
    }

    pub fn set_notification_prefs(&self, user: &Uuid, prefs: &NotificationPrefs) -> Result<()> {
        super::put(&self.notification_prefs, user.as_bytes(), prefs)
    }

    /// Changes a user's preferences atomically (a concurrent change is not undone).
    pub fn update_notification_prefs(
        &self,
        user: &Uuid,
        change: impl Fn(&mut NotificationPrefs),
    ) -> Result<NotificationPrefs> {
        let key = user.as_bytes();
        loop {
            let current = self.notification_prefs.get(key)?;
            let mut prefs: NotificationPrefs = match &current {
                Some(v) => decode("notification_prefs", v)?,
                None => NotificationPrefs::default(),
            };
            change(&mut prefs);
            if self
                .notification_prefs
                .compare_and_swap(key, current, Some(encode(&prefs)))?
                .is_ok()
            {
                return Ok(prefs);
            }
        }
    }

    pub fn delete_notification_prefs(&self, user: &Uuid) -> Result<()> {
        self.notification_prefs.remove(user.as_bytes())?;
        Ok(())
    }

    /// The users who asked for "new film" e-mail (a walk of the preferences tree, which
    /// holds only users who changed something).
    pub fn new_film_subscribers(&self) -> Result<Vec<(Uuid, NotificationPrefs)>> {
        self.prefs_where(|p| p.new_films_email)
    }

    /// The users who asked for "new film" pushes.
    pub fn new_film_push_subscribers(&self) -> Result<Vec<(Uuid, NotificationPrefs)>> {
        self.prefs_where(|p| p.new_films_push)
    }

    fn prefs_where(
        &self,
        wanted: impl Fn(&NotificationPrefs) -> bool,
    ) -> Result<Vec<(Uuid, NotificationPrefs)>> {
        let mut out = Vec::new();
        for kv in self.notification_prefs.iter() {
            let (k, v) = kv?;
            let Ok(id) = Uuid::from_slice(&k) else {
                continue;
            };
            let prefs: NotificationPrefs = decode("notification_prefs", &v)?;
            if wanted(&prefs) {
                out.push((id, prefs));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &str) -> Delivery {
        Delivery::Email {
            to: to.into(),
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            list_unsubscribe: None,
        }
    }

    #[test]
    fn an_entry_moves_through_the_outbox_states() -> Result<()> {
        let store = Store::temporary()?;
        let a = OutboxEntry::new(mail("a@example.com"), 1, 1_000);
        let b = OutboxEntry::new(mail("b@example.com"), 1, 5_000);
        store.enqueue_routed(&[a.clone(), b.clone()], "notify", 7, None)?;
        assert_eq!(store.event_cursor("notify")?, Some(7));
        // Only what is due, and not what is in flight.
        assert_eq!(store.due_entries(2_000, 10, &|_| false)?, vec![a.clone()]);
        assert!(store.due_entries(2_000, 10, &|id| *id == a.id)?.is_empty());
        assert_eq!(store.next_due(&|_| false)?, Some(1_000));
        assert_eq!(store.next_due(&|id| *id == a.id)?, Some(5_000));
        // A failed attempt moves it later and counts it.
        let a2 = store.reschedule(&a, 3_000, "421 busy")?;
        assert_eq!(
            (a2.attempts, a2.last_error.as_deref()),
            (1, Some("421 busy"))
        );
        assert!(store.due_entries(2_000, 10, &|_| false)?.is_empty());
        assert_eq!(
            store.due_entries(5_000, 10, &|_| false)?,
            vec![a2.clone(), b.clone()]
        );
        // Delivered: gone for good (the stale copy is not there to remove twice).
        assert!(store.mark_delivered(&a2)?);
        assert!(!store.mark_delivered(&a2)?);
        assert!(!store.mark_delivered(&a)?);
        // Dead: out of the outbox, into the dead letters, with the attempt counted.
        assert!(store.move_to_dead(&b, "550 no")?);
        assert!(store.outbox_entries()?.is_empty());
        let dead = store.dead_letters()?;
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].attempts, dead[0].last_error.as_deref()),
            (1, Some("550 no"))
        );
        // Retried: back, due now, attempts reset, and no longer dead.
        let back = store.retry_dead(&b.id, 9_000)?;
        assert!(back
            .as_ref()
            .is_some_and(|e| e.attempts == 0 && e.next_attempt_at == 9_000));
        assert!(store.dead_letters()?.is_empty());
        assert!(store.retry_dead(&b.id, 9_000)?.is_none());
        assert_eq!(store.due_entries(9_000, 10, &|_| false)?.len(), 1);
        // An account deletion drops what is addressed to it.
        assert_eq!(store.drop_mail_to("B@example.com")?, 1);
        assert!(store.outbox_entries()?.is_empty());
        Ok(())
    }

    #[test]
    fn due_keys_sort_by_time_then_id() {
        let id = Uuid::nil();
        assert!(due_key(-5, &id) < due_key(0, &id));
        assert!(due_key(0, &id) < due_key(1, &id));
        assert!(due_key(1_000, &id) < due_key(1_000_000_000_000, &id));
    }

    #[test]
    fn preferences_default_and_update() -> Result<()> {
        let store = Store::temporary()?;
        let user = super::super::new_id();
        assert_eq!(
            store.notification_prefs(&user)?,
            NotificationPrefs::default()
        );
        store.update_notification_prefs(&user, |p| {
            p.new_films_email = true;
            p.language = Language::Ko;
        })?;
        assert_eq!(store.new_film_subscribers()?.len(), 1);
        store.delete_notification_prefs(&user)?;
        assert!(store.new_film_subscribers()?.is_empty());
        Ok(())
    }
}
