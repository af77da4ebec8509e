//! Mobile push: which events reach whose devices (`deliveries`), and the channel that
//! sends them (`sender`): FCM HTTP v1 for Android (`fcm`), APNs over HTTP/2 for iOS
//! (`apns`). A device a provider calls gone is removed here, before the outcome goes back
//! to the worker.
//!
//! Who gets what (one delivery per device of the recipient, on the platforms configured):
//! - `order.captured` of a purchase (not a tip) → the buyer: "Film unlocked";
//! - `order.refunded` (purchase or tip) → the buyer: "Refund issued";
//! - `film.published` (its first publication only: the router asks once per film) → the
//!   viewers whose notification preferences say `new_films_push`: "New film";
//! - nothing else.
//!
//! Texts are in the device's language (`devices`, `messages`: English or Korean); `data`
//! carries the event's name and ids for the app to open the right screen.

pub mod apns;
pub mod devices;
pub mod fcm;
pub mod messages;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::{Delivery, NotifyError, Outcome, Platform, Sender};
use crate::config::Config;
use crate::events::{Event, EventRecord};
use crate::store::{Store, StoreError};
use messages::Kind;

/// The push sender, when `[push.fcm]` or `[push.apns]` is configured.
pub fn sender(config: &Config, store: &Store) -> Result<Option<Arc<dyn Sender>>, NotifyError> {
    let fcm = if config.push.fcm.project_id.is_empty() {
        None
    } else {
        Some(fcm::Fcm::from_config(config)?)
    };
    let apns = if config.push.apns.team_id.is_empty() {
        None
    } else {
        Some(apns::Apns::from_config(config)?)
    };
    if fcm.is_none() && apns.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(PushSender {
        store: store.clone(),
        fcm,
        apns,
    })))
}

/// Whether pushes to `platform` can be sent with this configuration.
fn configured(config: &Config, platform: Platform) -> bool {
    match platform {
        Platform::Ios => !config.push.apns.team_id.is_empty(),
        Platform::Android => !config.push.fcm.project_id.is_empty(),
    }
}

/// The push deliveries `event` calls for (one per device of each recipient).
pub fn deliveries(
    config: &Config,
    store: &Store,
    event: &EventRecord,
) -> Result<Vec<Delivery>, StoreError> {
    if let Event::FilmPublished { film } = &event.event {
        return new_film(config, store, event, film);
    }
    let (user, film, order, kind) = match &event.event {
        Event::OrderCaptured(o) if !o.tip => (&o.user, &o.film, &o.order, Kind::Unlocked),
        Event::OrderRefunded(o) => (&o.user, &o.film, &o.order, Kind::Refunded { tip: o.tip }),
        _ => return Ok(Vec::new()),
    };
    let devices: Vec<_> = store
        .devices_of(user)?
        .into_iter()
        .filter(|d| configured(config, d.platform))
        .collect();
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let title = store.film(film)?.map(|f| f.title);
    let data = data(event, film, order);
    Ok(devices
        .into_iter()
        .map(|d| {
            let text = messages::text(kind, &d.lang, title.as_deref());
            Delivery::Push {
                user: d.user,
                device: d.id,
                platform: d.platform,
                token: d.token,
                title: text.title,
                body: text.body,
                data: data.clone(),
            }
        })
        .collect())
}

/// What the app reads to open the right screen: the event and the ids it is about.
fn data(event: &EventRecord, film: &Uuid, order: &Uuid) -> BTreeMap<String, String> {
    let mut data = film_data(event, film);
    data.insert("order".to_string(), order.to_string());
    data
}

fn film_data(event: &EventRecord, film: &Uuid) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("event".to_string(), event.event.name().to_string()),
        ("event_id".to_string(), event.id.to_string()),
        ("film".to_string(), film.to_string()),
    ])
}

/// The users who asked for a push when a film is published (`new_films_push`).
fn new_film_subscribers(store: &Store) -> Result<Vec<Uuid>, StoreError> {
    Ok(store
        .new_film_push_subscribers()?
        .into_iter()
        .map(|(user, _)| user)
        .collect())
}

/// "New film" to every device of every subscriber, on the configured platforms.
fn new_film(
    config: &Config,
    store: &Store,
    event: &EventRecord,
    film: &Uuid,
) -> Result<Vec<Delivery>, StoreError> {
    let subscribers = new_film_subscribers(store)?;
    if subscribers.is_empty() {
        return Ok(Vec::new());
    }
    let title = store.film(film)?.map(|f| f.title);
    let data = film_data(event, film);
    let mut out = Vec::new();
    for user in subscribers {
        for d in store.devices_of(&user)? {
            if !configured(config, d.platform) {
                continue;
            }
            let text = messages::text(Kind::NewFilm, &d.lang, title.as_deref());
            out.push(Delivery::Push {
                user: d.user,
                device: d.id,
                platform: d.platform,
                token: d.token,
                title: text.title,
                body: text.body,
                data: data.clone(),
            });
        }
    }
    Ok(out)
}

/// Both providers behind one `Sender`, by the delivery's platform.
pub struct PushSender {
    store: Store,
    fcm: Option<fcm::Fcm>,
    apns: Option<apns::Apns>,
}

impl Sender for PushSender {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Delivery::Push {
                user,
                device,
                platform,
                token,
                title,
                body,
                data,
            } = delivery
            else {
                return Outcome::Failed {
                    reason: format!("a {} delivery reached the push sender", delivery.channel()),
                };
            };
            let outcome = match (platform, &self.fcm, &self.apns) {
                (Platform::Android, Some(fcm), _) => fcm.send(token, title, body, data).await,
                (Platform::Ios, _, Some(apns)) => apns.send(token, title, body, data).await,
                (Platform::Android, None, _) => Outcome::Failed {
                    reason: "push.fcm is not configured".into(),
                },
                (Platform::Ios, _, None) => Outcome::Failed {
                    reason: "push.apns is not configured".into(),
                },
            };
            if let Outcome::Gone { reason } = &outcome {
                self.forget(user, device, token, reason);
            }
            outcome
        })
    }
}

impl PushSender {
    fn forget(&self, user: &Uuid, device: &Uuid, token: &str, reason: &str) {
        match self.store.remove_gone_device(user, device, token) {
            Ok(removed) => {
                tracing::info!(%user, %device, removed, reason, "push token gone; device removed")
            }
            // The next push to it is refused the same way and tries again.
            Err(e) => tracing::warn!(%user, %device, error = %e, "removing a gone device failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrderFacts;
    use crate::store::films::Film;

    #[test]
    fn a_purchase_reaches_each_device_of_the_buyer_on_configured_platforms(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::temporary()?;
        let (buyer, other) = (crate::store::new_id(), crate::store::new_id());
        let film = crate::store::new_id();
        store.save_film(&Film {
            id: film,
            title: "Big Buck Bunny".into(),
            description: String::new(),
            prices: Vec::new(),
            published: true,
            publish_when_ready: false,
            source: None,
            package: None,
            created_at: 1,
            updated_at: 1,
        })?;
        let ios = "ab".repeat(32);
        let android = "fcm:".to_string() + &"x".repeat(60);
        devices::register(&store, &buyer, "ios", &ios, Some("ko"), 1)?;
        devices::register(&store, &buyer, "android", &android, None, 1)?;
        devices::register(&store, &other, "android", &("o".repeat(40)), None, 1)?;
        let mut config = Config::default();
        config.push.fcm.project_id = "demo".into();
        let order = crate::store::new_id();
        let captured = |tip| EventRecord {
            id: 7,
            at: 100,
            event: Event::OrderCaptured(OrderFacts {
                user: buyer,
                film,
                order,
                provider: "dev".into(),
                amount: 500,
                currency: "USD".into(),
                tip,
            }),
        };
        // Only FCM is on: the Android device alone.
        let out = deliveries(&config, &store, &captured(false))?;
        assert_eq!(out.len(), 1, "{out:?}");
        let Delivery::Push {
            token,
            title,
            body,
            data,
            ..
        } = &out[0]
        else {
            return Err("not a push".into());
        };
        assert_eq!(token, &android);
        assert_eq!(title, "Film unlocked");
        assert!(body.contains("Big Buck Bunny"));
        assert_eq!(
            data.get("event").map(String::as_str),
            Some("order.captured")
        );
        assert_eq!(data.get("order"), Some(&order.to_string()));
        assert_eq!(data.get("event_id").map(String::as_str), Some("7"));

        config.push.apns.team_id = "TEAM".into();
        let out = deliveries(&config, &store, &captured(false))?;
        assert_eq!(out.len(), 2);
        assert!(out.iter().any(|d| matches!(d, Delivery::Push { platform: Platform::Ios, title, .. } if title == "영화가 열렸어요")));
        assert!(
            deliveries(&config, &store, &captured(true))?.is_empty(),
            "a tip is no unlock"
        );
        let refunded = EventRecord {
            id: 8,
            at: 100,
            event: Event::OrderRefunded(OrderFacts {
                user: buyer,
                film,
                order,
                provider: "dev".into(),
                amount: 500,
                currency: "USD".into(),
                tip: false,
            }),
        };
        assert_eq!(deliveries(&config, &store, &refunded)?.len(), 2);
        let published = EventRecord {
            id: 9,
            at: 100,
            event: Event::FilmPublished { film },
        };
        assert!(deliveries(&config, &store, &published)?.is_empty());
        Ok(())
    }
}
