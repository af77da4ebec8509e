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
        if let Event::FilmPublished { film } = &record.event {
            // Announced once per film, on every channel: publishing again after an
            // unpublish is no news.
            let key = announced_key(film);
            if store.has_marker(&key)? {
                return Ok((out, None));
            }
            marker = Some(key);
        }
        if self.senders.mail.is_some() {
            out.extend(self.mail(store, &record.event)?);
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

    fn mail(&self, store: &Store, event: &Event) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::new();
        match event {
            Event::OrderCaptured(o) | Event::OrderRefunded(o) => {
                if let Some((to, lang)) = self.recipient(store, &o.user)? {
                    let title = self.film_title(store, &o.film)?;
                    let p = Payment {
                        film_title: &title,
                        amount: o.amount,
                        currency: &o.currency,
                        provider: &o.provider,
                        order: o.order,
                        film_url: self.url(&format!("/films/{}", o.film)),
                    };
                    let mail = match (event, o.tip) {
                        (Event::OrderRefunded(_), _) => messages::refund(lang, &p),
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
                let Some(f) = store.film(film)?.filter(|f| f.published) else {
                    return Ok(out);
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
            }
            _ => {}
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrderFacts;
    use crate::store::films::Film;
    use crate::store::users::Role;

    struct Nothing;
    impl super::super::Sender for Nothing {
        fn send<'a>(
            &'a self,
            _: &'a Delivery,
        ) -> futures_util::future::BoxFuture<'a, super::super::Outcome> {
            Box::pin(async { super::super::Outcome::Delivered })
        }
    }

    fn router(mail: bool) -> Router {
        let senders = Senders {
            mail: mail.then(|| Arc::new(Nothing) as Arc<dyn super::super::Sender>),
            ..Senders::default()
        };
        Router::new(
            Arc::new(Config::default()),
            senders,
            [7; 32],
            Arc::default(),
        )
    }

    /// (to, subject) of every queued mail, in queue order.
    fn queued(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
        Ok(store
            .outbox_entries()?
            .into_iter()
            .filter_map(|e| match e.delivery {
                Delivery::Email { to, subject, .. } => Some((to, subject)),
                _ => None,
            })
            .collect())
    }

    #[test]
    fn each_event_queues_the_mail_it_calls_for_once() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let admin = store.create_user("admin@example.com", Role::Admin, 1)?;
        let viewer = store.create_user("viewer@example.com", Role::Viewer, 1)?;
        let fan = store.create_user("fan@example.com", Role::Viewer, 1)?;
        store.update_notification_prefs(&fan.id, |p| {
            p.new_films_email = true;
            p.language = Language::Ko;
        })?;
        let film = Film {
            id: crate::store::new_id(),
            title: "Dawn".into(),
            description: String::new(),
            prices: Vec::new(),
            published: true,
            publish_when_ready: false,
            source: None,
            package: None,
            created_at: 1,
            updated_at: 1,
        };
        store.save_film(&film)?;
        let order = crate::store::new_id();
        let paid = |tip: bool| {
            Event::OrderCaptured(OrderFacts {
                user: viewer.id,
                film: film.id,
                order,
                provider: "dev".into(),
                amount: 500,
                currency: "EUR".into(),
                tip,
            })
        };
        for e in [
            paid(false),
            paid(true),
            Event::OrderRefunded(OrderFacts {
                user: viewer.id,
                film: film.id,
                order,
                provider: "dev".into(),
                amount: 500,
                currency: "EUR".into(),
                tip: false,
            }),
            Event::PackagingFailed {
                film: film.id,
                job: crate::store::new_id(),
                code: "no_video".into(),
                message: "no video stream".into(),
            },
            Event::OrderNeedsAttention {
                order,
                reason: "amount differs".into(),
            },
            Event::CommentReported {
                user: viewer.id,
                film: film.id,
                comment: crate::store::new_id(),
            },
            Event::FilmPublished { film: film.id },
            Event::FilmUnpublished { film: film.id },
            Event::FilmPublished { film: film.id },
            Event::PlaybackStarted {
                user: viewer.id,
                film: film.id,
                entitled: true,
            },
        ] {
            crate::events::record(&store, 2, e);
        }
        let mut r = router(true);
        crate::events::catch_up(&store, &mut r)?;
        let v = "viewer@example.com".to_string();
        let a = "admin@example.com".to_string();
        // Entries queued in the same millisecond sort by id: compare as sets.
        let mut got = queued(&store)?;
        got.sort();
        let mut want: Vec<(String, String)> = vec![
            (v.clone(), "Your receipt: Dawn".into()),
            (v.clone(), "Thank you for supporting Dawn".into()),
            (v, "Refund: Dawn".into()),
            (a.clone(), "[cinegate] Packaging failed: Dawn".into()),
            (a.clone(), "[cinegate] An order needs a person".into()),
            (a, "[cinegate] Comment reported on Dawn".into()),
            ("fan@example.com".into(), "새 영화: Dawn".into()),
        ];
        want.sort();
        assert_eq!(got, want);
        let announced = store
            .outbox_entries()?
            .into_iter()
            .find_map(|e| match e.delivery {
                Delivery::Email {
                    list_unsubscribe: Some(u),
                    ..
                } => Some(u),
                _ => None,
            });
        let token = announced
            .as_deref()
            .and_then(|u| u.split_once("token="))
            .map(|(_, t)| t.to_string())
            .unwrap_or_default();
        assert_eq!(unsubscribe::verify(&[7; 32], &token), Some(fan.id));
        assert!(store.event_cursor(NAME)?.is_some());
        let _ = admin;
        Ok(())
    }

    #[test]
    fn without_a_mail_channel_nothing_is_queued_and_the_cursor_moves() -> Result<(), StoreError> {
        let store = Store::temporary()?;
        let viewer = store.create_user("viewer@example.com", Role::Viewer, 1)?;
        let id = store.append_event(
            1,
            Event::OrderCaptured(OrderFacts {
                user: viewer.id,
                film: crate::store::new_id(),
                order: crate::store::new_id(),
                provider: "dev".into(),
                amount: 1,
                currency: "USD".into(),
                tip: false,
            }),
        )?;
        crate::events::catch_up(&store, &mut router(false))?;
        assert!(store.outbox_entries()?.is_empty());
        assert_eq!(store.event_cursor(NAME)?, Some(id));
        Ok(())
    }
}
