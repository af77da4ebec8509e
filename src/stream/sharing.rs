//! How many places one playback token plays from: at most `playback.max_addresses_per_token`
//! distinct client addresses within `playback.address_window`. A bought stream's link
//! passed around shows as more addresses than one household uses; the address past the
//! bound is refused (`api::hls` answers 403 `token_shared`) while the ones already counted
//! keep playing, and the first refusal of a window is recorded as the domain event
//! `playback.token_shared`.
//!
//! In memory, like the rate limits: a restart forgets it, which only gives each token a
//! fresh count. Bounded: at most `limits.tracked_keys` tokens (the longest idle forgotten
//! first), each with at most `max_addresses_per_token` addresses, so the work per request
//! is one shard lock and a scan of that many entries.

use std::net::IpAddr;

use uuid::Uuid;

use crate::config::PlaybackConfig;
use crate::ratelimit::BoundedMap;
use crate::store::Store;

/// A request from one address too many for its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this playback link is already playing in too many places; start playback again on this device"
)]
pub struct TokenShared;

struct Seen {
    /// Client keys (`server::client::key`) and the second of their last request.
    addresses: Vec<(IpAddr, i64)>,
    /// When the token's sharing was last recorded as an event.
    reported_at: Option<i64>,
}

/// The addresses each playback token was used from, by token id.
pub struct TokenAddresses {
    seen: BoundedMap<[u8; 8], Seen>,
    max: usize,
    window: i64,
}

enum Decision {
    Admitted,
    /// `report`: the distinct addresses seen, the refused one included, when this is the
    /// window's first refusal (to be recorded).
    Refused {
        report: Option<usize>,
    },
}

/// One request on a token: the token and its viewer and film (for the event), and who
/// asks.
pub struct Use<'a> {
    pub store: &'a Store,
    pub token: [u8; 8],
    pub user: Uuid,
    pub film: Uuid,
    pub client: IpAddr,
    pub now: i64,
}

impl TokenAddresses {
    pub fn new(cfg: &PlaybackConfig, capacity: usize) -> Self {
        Self {
            seen: BoundedMap::new(capacity),
            max: cfg.max_addresses_per_token.max(1) as usize,
            window: cfg.address_window.as_secs().max(1) as i64,
        }
    }

    /// Counts a request of `token` from `client` at `now`; refuses a new address past the
    /// bound, and records `playback.token_shared` for the first refusal in a window.
    pub fn admit(&self, u: Use<'_>) -> Result<(), TokenShared> {
        let Decision::Refused { report } = self.decide(u.token, u.client, u.now) else {
            return Ok(());
        };
        if let Some(addresses) = report {
            tracing::warn!(
                token = %hex::encode(u.token),
                user = %u.user,
                film = %u.film,
                addresses,
                "a playback token is used from more addresses than playback.max_addresses_per_token"
            );
            crate::events::record(
                u.store,
                u.now,
                crate::events::Event::PlaybackTokenShared {
                    user: u.user,
                    film: u.film,
                    token: hex::encode(u.token),
                    addresses: u32::try_from(addresses).unwrap_or(u32::MAX),
                },
            );
        }
        Err(TokenShared)
    }

    fn decide(&self, token: [u8; 8], client: IpAddr, now: i64) -> Decision {
        let since = now - self.window;
        self.seen.with(token, |slot| {
            let seen = slot.get_or_insert_with(|| Seen {
                addresses: Vec::with_capacity(1),
                reported_at: None,
            });
            if let Some(entry) = seen.addresses.iter_mut().find(|(ip, _)| *ip == client) {
                entry.1 = entry.1.max(now);
                return Decision::Admitted;
            }
            seen.addresses.retain(|(_, at)| *at > since);
            if seen.addresses.len() < self.max {
                seen.addresses.push((client, now));
                return Decision::Admitted;
            }
            let first = seen.reported_at.is_none_or(|at| at <= since);
            if first {
                seen.reported_at = Some(now);
            }
            Decision::Refused {
                report: first.then_some(seen.addresses.len() + 1),
            }
        })
    }

    /// Forgets tokens with no address left in the window and no report in it (run every
    /// minute by `startup`).
    pub fn prune(&self, now: i64) {
        let since = now - self.window;
        self.seen.retain(|seen| {
            seen.addresses.iter().any(|(_, at)| *at > since)
                || seen.reported_at.is_some_and(|at| at > since)
        });
    }

    /// Tokens tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    type R = Result<(), Box<dyn std::error::Error>>;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    #[test]
    fn a_fourth_address_is_refused_and_recorded_once_per_window() -> R {
        let store = Store::temporary()?;
        let cfg = PlaybackConfig::default();
        let addresses = TokenAddresses::new(&cfg, 1_000);
        let (user, film) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let token = [7u8; 8];
        let at = |client, now| Use {
            store: &store,
            token,
            user,
            film,
            client,
            now,
        };
        let t0 = 1_800_000_000;
        for i in 1..=3 {
            addresses.admit(at(ip(i), t0))?;
        }
        assert_eq!(addresses.admit(at(ip(4), t0 + 1)), Err(TokenShared));
        assert_eq!(addresses.admit(at(ip(5), t0 + 2)), Err(TokenShared));
        for i in 1..=3 {
            addresses.admit(at(ip(i), t0 + 3))?;
        }
        // Another token of the same viewer has its own count.
        addresses.admit(Use {
            token: [8; 8],
            ..at(ip(4), t0 + 3)
        })?;
        let shared: Vec<_> = store
            .events_after(None, 100)?
            .into_iter()
            .filter(|e| matches!(e.event, Event::PlaybackTokenShared { .. }))
            .collect();
        assert_eq!(shared.len(), 1, "once per window");
        assert_eq!(
            shared[0].event,
            Event::PlaybackTokenShared {
                user,
                film,
                token: hex::encode(token),
                addresses: 4,
            }
        );
        // An hour after the last three were seen, a new address is counted in their place.
        let later = t0 + 3 + 3_600;
        addresses.admit(at(ip(4), later))?;
        addresses.prune(later + 4_000);
        assert!(addresses.is_empty());
        Ok(())
    }
}
