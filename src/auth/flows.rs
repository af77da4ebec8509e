//! The sign-in flow's state machine, without HTTP: a flow is begun bound to the browser
//! that started it, taken back exactly once by the provider's callback (from that browser,
//! for the same provider, within `FLOW_TTL_SECS`), and an app's sign-in ends in a one-time
//! exchange code (PKCE S256 when the app sent a challenge) redeemed within
//! `EXCHANGE_CODE_TTL_SECS`. Every rule runs at the time it is given, so the tests drive
//! expiry with a clock of their own.

use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::identity::{IdentityError, ProviderId};
use super::providers::Providers;
use super::session;
use crate::store::signin::{browser_binding, ExchangeCode, Flow, FlowFinish, TakenFlow};
use crate::store::users::User;
use crate::store::Store;

/// How long a sign-in flow waits for the provider's callback.
pub const FLOW_TTL_SECS: i64 = 600;
/// How long an app has to redeem the exchange code it was sent back with.
pub const EXCHANGE_CODE_TTL_SECS: i64 = 60;

/// Stores a new flow for `provider`, bound to the browser holding `browser_secret` (its
/// pre-auth cookie); the provider URL to send that browser to.
pub fn begin(
    store: &Store,
    providers: &Providers,
    provider: ProviderId,
    finish: FlowFinish,
    link_user: Option<Uuid>,
    browser_secret: &str,
    now: i64,
) -> Result<String, IdentityError> {
    let flow_state = session::random_token();
    let auth = providers.authorize(provider, &flow_state)?;
    store.add_flow(
        &flow_state,
        &Flow {
            provider: provider.as_str().into(),
            pkce_verifier: auth.pkce_verifier,
            nonce: auth.nonce,
            finish,
            link_user,
            created_at: now,
            browser: browser_binding(browser_secret),
        },
    )?;
    Ok(auth.url)
}

/// Takes the flow a callback names by `state` — removed first, so a state works once
/// whatever happens next — if it came back from the browser that began it (`browser`: its
/// pre-auth cookie), for the same provider, in time. A callback from another browser
/// removes the flow too (login and link CSRF).
pub fn take(
    store: &Store,
    provider: ProviderId,
    state: Option<&str>,
    browser: Option<&str>,
    now: i64,
) -> Result<Flow, IdentityError> {
    let state = state
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or(IdentityError::InvalidState)?;
    let flow = match store.take_flow(state, browser)? {
        TakenFlow::Taken(flow) => flow,
        TakenFlow::Unknown => return Err(IdentityError::InvalidState),
        TakenFlow::OtherBrowser => {
            tracing::warn!(
                provider = provider.as_str(),
                "sign-in callback refused and its flow cancelled: the flow was started in another browser"
            );
            return Err(IdentityError::OtherBrowser);
        }
    };
    if flow.provider != provider.as_str() {
        return Err(IdentityError::InvalidState);
    }
    if flow.created_at + FLOW_TTL_SECS <= now {
        return Err(IdentityError::FlowExpired);
    }
    Ok(flow)
}

/// A one-time code an app redeems for `user`'s tokens (`code_challenge`: the app's PKCE
/// S256 challenge, if it sent one).
pub fn issue_exchange_code(
    store: &Store,
    user: &Uuid,
    code_challenge: Option<String>,
    now: i64,
) -> Result<String, IdentityError> {
    let code = session::random_token();
    store.add_exchange_code(
        &code,
        &ExchangeCode {
            user_id: *user,
            code_challenge,
            expires_at: now + EXCHANGE_CODE_TTL_SECS,
        },
    )?;
    Ok(code)
}

/// Redeems an exchange code once, in time, with the verifier of its challenge; the user
/// it was issued for. Every refusal is the same `InvalidCode`.
pub fn redeem_exchange_code(
    store: &Store,
    code: &str,
    code_verifier: Option<&str>,
    now: i64,
) -> Result<User, IdentityError> {
    if code.is_empty() || code.len() > 512 {
        return Err(IdentityError::InvalidCode);
    }
    let record = store
        .take_exchange_code(code)?
        .filter(|c| c.expires_at > now)
        .ok_or(IdentityError::InvalidCode)?;
    if let Some(challenge) = &record.code_challenge {
        let verifier = code_verifier.ok_or(IdentityError::InvalidCode)?;
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        if &computed != challenge {
            return Err(IdentityError::InvalidCode);
        }
    }
    store
        .user(&record.user_id)?
        .ok_or(IdentityError::InvalidCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Result<(), Box<dyn std::error::Error>>;
    const T0: i64 = 1_800_000_000;

    fn flow(provider: &str, browser: &str, at: i64) -> Flow {
        Flow {
            provider: provider.into(),
            pkce_verifier: "v".into(),
            nonce: Some("n".into()),
            finish: FlowFinish::Web {
                return_to: "/".into(),
            },
            link_user: None,
            created_at: at,
            browser: browser_binding(browser),
        }
    }

    #[test]
    fn a_flow_is_taken_once_by_its_browser_for_its_provider_in_time() -> R {
        let store = Store::temporary()?;
        store.add_flow("s1", &flow("google", "tab", T0))?;
        let taken = take(&store, ProviderId::Google, Some("s1"), Some("tab"), T0 + 5)?;
        assert_eq!(taken.pkce_verifier, "v");
        // Once only.
        assert!(matches!(
            take(&store, ProviderId::Google, Some("s1"), Some("tab"), T0 + 6),
            Err(IdentityError::InvalidState)
        ));
        // Another browser: refused, and the flow is gone for its own browser too.
        store.add_flow("s2", &flow("google", "victim", T0))?;
        assert!(matches!(
            take(
                &store,
                ProviderId::Google,
                Some("s2"),
                Some("attacker"),
                T0 + 5
            ),
            Err(IdentityError::OtherBrowser)
        ));
        assert!(take(
            &store,
            ProviderId::Google,
            Some("s2"),
            Some("victim"),
            T0 + 6
        )
        .is_err());
        // Another provider's callback.
        store.add_flow("s3", &flow("google", "tab", T0))?;
        assert!(matches!(
            take(
                &store,
                ProviderId::Facebook,
                Some("s3"),
                Some("tab"),
                T0 + 5
            ),
            Err(IdentityError::InvalidState)
        ));
        // Ten minutes less a second is in time; ten minutes is late, by the caller's clock.
        store.add_flow("s5", &flow("google", "tab", T0))?;
        assert!(take(
            &store,
            ProviderId::Google,
            Some("s5"),
            Some("tab"),
            T0 + 599
        )
        .is_ok());
        store.add_flow("s4", &flow("google", "tab", T0))?;
        assert!(matches!(
            take(
                &store,
                ProviderId::Google,
                Some("s4"),
                Some("tab"),
                T0 + FLOW_TTL_SECS
            ),
            Err(IdentityError::FlowExpired)
        ));
        assert!(matches!(
            take(&store, ProviderId::Google, None, Some("tab"), T0),
            Err(IdentityError::InvalidState)
        ));
        Ok(())
    }

    #[test]
    fn an_exchange_code_is_redeemed_once_in_time_with_its_verifier() -> R {
        let store = Store::temporary()?;
        let user = store.create_user("app@example.com", crate::store::users::Role::Viewer, T0)?;
        let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let code = issue_exchange_code(&store, &user.id, Some(challenge.clone()), T0)?;
        assert!(matches!(
            redeem_exchange_code(&store, &code, Some("wrong"), T0 + 1),
            Err(IdentityError::InvalidCode)
        ));
        // A wrong verifier spent it: codes are taken before they are checked.
        assert!(redeem_exchange_code(&store, &code, Some(verifier), T0 + 2).is_err());

        let code = issue_exchange_code(&store, &user.id, Some(challenge), T0)?;
        assert_eq!(
            redeem_exchange_code(&store, &code, Some(verifier), T0 + 2)?.id,
            user.id
        );
        assert!(redeem_exchange_code(&store, &code, Some(verifier), T0 + 3).is_err());

        let late = issue_exchange_code(&store, &user.id, None, T0)?;
        assert!(matches!(
            redeem_exchange_code(&store, &late, None, T0 + EXCHANGE_CODE_TTL_SECS),
            Err(IdentityError::InvalidCode)
        ));
        Ok(())
    }
}
