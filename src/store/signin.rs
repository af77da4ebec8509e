//! Short-lived sign-in records: provider flows in progress (by `state`), one-time app
//! exchange codes, and browser sessions. Secrets (state, codes, session ids, the pre-auth
//! cookie a flow is bound to) are stored only as SHA-256 hashes; flows and codes are taken
//! with a remove, so each works once.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tokens::hash;
use super::{decode, get, put, Result, Store};

/// How a flow finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum FlowFinish {
    /// A session cookie, then a redirect to `return_to` (a local path).
    Web { return_to: String },
    /// A redirect to the app with a one-time code.
    App {
        redirect_uri: String,
        app_state: Option<String>,
        /// The app's own PKCE challenge (S256), checked at the exchange.
        code_challenge: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub provider: String,
    pub pkce_verifier: String,
    pub nonce: Option<String>,
    pub finish: FlowFinish,
    /// Set when a signed-in user is linking this provider.
    pub link_user: Option<Uuid>,
    pub created_at: i64,
    /// SHA-256 (hex) of the pre-auth cookie of the browser that started the flow; only
    /// that browser may finish it. Empty in flows stored before it existed: they match
    /// no browser.
    #[serde(default)]
    pub browser: String,
}

/// What a callback's `state` and pre-auth cookie found.
#[derive(Debug, PartialEq)]
pub enum TakenFlow {
    /// The flow, now removed.
    Taken(Flow),
    Unknown,
    /// The flow exists but another browser started it; it is removed all the same. The
    /// code in such a callback is whoever opened it's (an admin who followed an attacker's
    /// link flow, a victim sent the attacker's sign-in), so a flow left in place would let
    /// the browser it is bound to finish it with that code should the URL leak: a leaked
    /// URL can now only cancel its flow.
    OtherBrowser,
}

/// The value a flow stores for the pre-auth cookie `secret`.
pub fn browser_binding(secret: &str) -> String {
    hex::encode(hash(secret))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeCode {
    pub user_id: Uuid,
    pub code_challenge: Option<String>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrowserSession {
    pub user_id: Uuid,
    pub epoch: u32,
    pub created_at: i64,
    pub expires_at: i64,
}

fn take<T: serde::de::DeserializeOwned>(
    tree: &super::Tree,
    name: &'static str,
    secret: &str,
) -> Result<Option<T>> {
    tree.remove(hash(secret))?
        .map(|v| decode(name, &v))
        .transpose()
}

impl Store {
    pub fn add_flow(&self, state: &str, flow: &Flow) -> Result<()> {
        put(&self.signin_flows, &hash(state), flow)
    }

    /// Removes the flow for `state` (a second callback finds nothing) and returns it when
    /// `browser` (the callback's pre-auth cookie) is the one the flow was started with.
    pub fn take_flow(&self, state: &str, browser: Option<&str>) -> Result<TakenFlow> {
        let key = hash(state);
        let binding = browser.map(browser_binding);
        loop {
            let Some(current) = self.signin_flows.get(key)? else {
                return Ok(TakenFlow::Unknown);
            };
            let flow: Flow = decode("signin_flows", &current)?;
            // Hashes of 256-bit secrets: comparing them leaks nothing useful by timing.
            let own = !flow.browser.is_empty() && binding.as_deref() == Some(flow.browser.as_str());
            let removed =
                self.signin_flows
                    .compare_and_swap(key, Some(current), None as Option<&[u8]>)?;
            if removed.is_ok() {
                return Ok(if own {
                    TakenFlow::Taken(flow)
                } else {
                    TakenFlow::OtherBrowser
                });
            }
        }
    }

    pub fn add_exchange_code(&self, code: &str, record: &ExchangeCode) -> Result<()> {
        put(&self.exchange_codes, &hash(code), record)
    }

    pub fn take_exchange_code(&self, code: &str) -> Result<Option<ExchangeCode>> {
        take(&self.exchange_codes, "exchange_codes", code)
    }

    pub fn add_session(&self, id: &str, session: &BrowserSession) -> Result<()> {
        put(&self.sessions, &hash(id), session)
    }

    pub fn session(&self, id: &str) -> Result<Option<BrowserSession>> {
        get(&self.sessions, "sessions", &hash(id))
    }

    pub fn remove_session(&self, id: &str) -> Result<()> {
        self.sessions.remove(hash(id))?;
        Ok(())
    }

    /// Deletes flows, codes and sessions past their time; returns how many went.
    pub fn sweep_signin(&self, now: i64, flow_ttl: i64) -> Result<usize> {
        let mut n = 0;
        for kv in self.signin_flows.iter() {
            let (k, v) = kv?;
            let stale =
                decode::<Flow>("signin_flows", &v).map_or(true, |f| f.created_at + flow_ttl <= now);
            if stale {
                self.signin_flows.remove(k)?;
                n += 1;
            }
        }
        for kv in self.exchange_codes.iter() {
            let (k, v) = kv?;
            let stale =
                decode::<ExchangeCode>("exchange_codes", &v).map_or(true, |c| c.expires_at <= now);
            if stale {
                self.exchange_codes.remove(k)?;
                n += 1;
            }
        }
        for kv in self.sessions.iter() {
            let (k, v) = kv?;
            let stale =
                decode::<BrowserSession>("sessions", &v).map_or(true, |s| s.expires_at <= now);
            if stale {
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(created_at: i64) -> Flow {
        Flow {
            provider: "google".into(),
            pkce_verifier: "v".into(),
            nonce: Some("n".into()),
            finish: FlowFinish::Web {
                return_to: "/".into(),
            },
            link_user: None,
            created_at,
            browser: browser_binding("cookie"),
        }
    }

    #[test]
    fn flows_and_codes_work_once_and_expire() -> Result<()> {
        let store = Store::temporary()?;
        // Another browser, or none: refused, and the flow is gone, for its own browser too.
        for other in [Some("other"), None] {
            store.add_flow("state-0", &flow(100))?;
            assert_eq!(store.take_flow("state-0", other)?, TakenFlow::OtherBrowser);
            assert_eq!(
                store.take_flow("state-0", Some("cookie"))?,
                TakenFlow::Unknown
            );
        }
        store.add_flow("state-1", &flow(100))?;
        assert_eq!(
            store.take_flow("state-1", Some("cookie"))?,
            TakenFlow::Taken(flow(100))
        );
        assert_eq!(
            store.take_flow("state-1", Some("cookie"))?,
            TakenFlow::Unknown,
            "a state works once"
        );

        // With a 600 s lifetime, at 700 s the flow made at 100 is swept, the one at 1000 kept.
        store.add_flow("old", &flow(100))?;
        store.add_flow("new", &flow(1000))?;
        assert_eq!(store.sweep_signin(700, 600)?, 1);
        assert_eq!(store.take_flow("old", Some("cookie"))?, TakenFlow::Unknown);
        assert!(matches!(
            store.take_flow("new", Some("cookie"))?,
            TakenFlow::Taken(_)
        ));

        let code = ExchangeCode {
            user_id: crate::store::new_id(),
            code_challenge: None,
            expires_at: 50,
        };
        store.add_exchange_code("c", &code)?;
        assert_eq!(store.take_exchange_code("c")?, Some(code));
        assert_eq!(store.take_exchange_code("c")?, None);
        Ok(())
    }
}
