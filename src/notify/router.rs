//! The notification router: a consumer of the event log ("notify") that turns each event
//! into the deliveries it calls for — e-mail here, push and webhooks from their modules —
//! rendered now and queued in the outbox in the same transaction as its cursor move, so
//! an event's deliveries are queued exactly once. Only configured channels get any.

use std::sync::Arc;

use uuid::Uuid;

use super::messages::{self, Mail, Payment};
use super::{push, unsubscribe, webhook, Delivery, Senders};
use crate::config::Config;
use crate::events::{Consumer, Event, EventRecord};
use crate::store::outbox::{Language, OutboxEntry};
use crate::store::{Store, StoreError};

pub const NAME: &str = "notify";

pub struct Router {
    config: Arc<Config>,
    senders: Senders,
    /// Signs the unsubscribe links of "new film" mail.
    unsubscribe_key: [u8; 32],
    wake: Arc<tokio::sync::Notify>,
}

/// The wall clock in Unix milliseconds, which the outbox schedules by.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn announced_key(film: &Uuid) -> Vec<u8> {
    let mut k = b"notify:announced:".to_vec();
    k.extend_from_slice(film.as_bytes());
    k
}

impl Router {
    pub fn new(
        config: Arc<Config>,
        senders: Senders,
        unsubscribe_key: [u8; 32],
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            config,
            senders,
            unsubscribe_key,
            wake,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.public_url.trim_end_matches('/'))
    }

    /// Every delivery `record` calls for on the configured channels, and the `meta`
    /// marker to set with them.
    pub fn deliveries(
        &self,
        store: &Store,
        record: &EventRecord,
    ) -> Result<(Vec<Delivery>, Option<Vec<u8>>), StoreError> {
        let mut out = Vec::new();
        let mut marker = None;
        if self.senders.mail.is_some() {
            let (mail, m) = self.mail(store, &record.event)?;
            out.extend(mail);
            marker = m;
        }
        if self.senders.push.is_some() {
            out.extend(push::deliveries(&self.config, store, record)?);
        }
        if self.senders.webhook.is_some() {
            out.extend(webhook::deliveries(&self.config, record));
        }
        Ok((out, marker))
    }

    /// The user's address (verified only) and language, if mail can reach them.
    fn recipient(
        &self,
        store: &Store,
        user: &Uuid,
    ) -> Result<Option<(String, Language)>, StoreError> {
        let Some(u) = store.user(user)? else {
            return Ok(None);
        };
        let Some(email) = u.email.filter(|_| u.email_verified && !u.disabled) else {
            return Ok(None);
        };
        Ok(Some((email, store.notification_prefs(user)?.language)))
    }

    fn to_admins(&self, store: &Store, mail: &Mail) -> Result<Vec<Delivery>, StoreError> {
        Ok(admin_addresses(store)?
            .iter()
            .filter_map(|to| mail.to(to, Language::En, None))
            .collect())
    }

    fn film_title(&self, store: &Store, film: &Uuid) -> Result<String, StoreError> {
        Ok(store
            .film(film)?
            .map_or_else(|| film.to_string(), |f| f.title))
    }

    fn mail(
        &self,
        store: &Store,
        event: &Event,
    ) -> Result<(Vec<Delivery>, Option<Vec<u8>>), StoreError> {
        let mut out = Vec::new();
        match event {
            Event::OrderCaptured {
                user,
                film,
                order,
                provider,
                amount,
                currency,
                tip,
            }
            | Event::OrderRefunded {
                user,
                film,
                order,
                provider,
                amount,
                currency,
                tip,
            } => {
                if let Some((to, lang)) = self.recipient(store, user)? {
                    let title = self.film_title(store, film)?;
                    let p = Payment {
                        film_title: &title,
                        amount: *amount,
                        currency,
                        provider,
                        order: *order,
                        film_url: self.url(&format!("/films/{film}")),
                    };
                    let mail = match (event, tip) {
                        (Event::OrderRefunded { .. }, _) => messages::refund(lang, &p),
                        (_, true) => messages::tip_thanks(lang, &p),
                        (_, false) => messages::receipt(lang, &p),
                    };
                    out.extend(mail.to(&to, lang, None));
                }
            }
            Event::PackagingFailed {
                film,
                job,
                code,
                message,
            } => {
                let title = self.film_title(store, film)?;
                let mail = messages::admin_alert(
                    format!("Packaging failed: {title}"),
                    "A packaging job failed; the film cannot be watched until it is packaged."
                        .into(),
                    vec![
                        ("Film", title.clone()),
                        ("Job", job.to_string()),
                        ("Code", code.clone()),
                        ("Message", message.clone()),
                    ],
                    self.url(&format!("/admin/films/{film}")),
                );
                out.extend(self.to_admins(store, &mail)?);
            }
            Event::OrderNeedsAttention { order, reason } => {
                let mail = messages::admin_alert(
                    "An order needs a person".into(),
                    "Reconciliation could not settle this order by itself (money was taken, but not as expected).".into(),
                    vec![("Order", order.to_string()), ("Reason", reason.clone())],
                    self.url("/admin/orders"),
                );
                out.extend(self.to_admins(store, &mail)?);
            }
            Event::CommentReported {
                user,
                film,
                comment,
            } => {
                let title = self.film_title(store, film)?;
                let mail = messages::admin_alert(
                    format!("Comment reported on {title}"),
                    "A viewer reported a comment; it waits in the moderation queue.".into(),
                    vec![
                        ("Film", title.clone()),
                        ("Comment", comment.to_string()),
                        ("Reported by", user.to_string()),
                    ],
                    self.url("/admin/comments"),
                );
                out.extend(self.to_admins(store, &mail)?);
            }
            Event::FilmPublished { film } => {
                // Once per film: publishing again after an unpublish is no news.
                let key = announced_key(film);
                if store.has_marker(&key)? {
                    return Ok((out, None));
                }
                let Some(f) = store.film(film)?.filter(|f| f.published) else {
                    return Ok((out, None));
                };
                let film_url = self.url(&format!("/films/{film}"));
                for (user, _) in store.new_film_subscribers()? {
                    if let Some((to, lang)) = self.recipient(store, &user)? {
                        let unsub =
                            unsubscribe::url(&self.config.public_url, &self.unsubscribe_key, &user);
                        let mail = messages::new_film(lang, &f.title, &film_url, &unsub);
                        out.extend(mail.to(&to, lang, Some(unsub)));
                    }
                }
                return Ok((out, Some(key)));
            }
            _ => {}
        }
        Ok((out, None))
    }
}

/// Every admin's address.
pub fn admin_addresses(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(store
        .users()?
        .into_iter()
        .filter(|u| u.is_admin() && !u.disabled)
        .filter_map(|u| u.email)
        .collect())
}

impl Consumer for Router {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, store: &Store, record: &EventRecord) -> Result<(), StoreError> {
        let (deliveries, marker) = self.deliveries(store, record)?;
        let now = now_ms();
        let entries: Vec<OutboxEntry> = deliveries
            .into_iter()
            .map(|d| OutboxEntry::new(d, record.at, now))
            .collect();
        store.enqueue_routed(&entries, NAME, record.id, marker.as_deref())?;
        if !entries.is_empty() {
            // On disk now rather than within sled's 500 ms: a receipt queued is a receipt
            // sent, whatever happens to the process next.
            if let Err(e) = store.flush() {
                tracing::warn!(error = %e, "flushing the outbox failed");
            }
            tracing::debug!(
                event = record.event.name(),
                queued = entries.len(),
                "notifications queued"
            );
            self.wake.notify_one();
        }
        Ok(())
    }
}
