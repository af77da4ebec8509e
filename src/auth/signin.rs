//! Sign-in through a provider, decided without HTTP (docs/AUTH.md): what a start request
//! may ask for, the flow begun for a browser, the callback's outcome (sign in or link, then
//! a browser session or a redirect back to the app with a one-time code, or that app told
//! why not), the app's code exchange, the browser session's access token, and the native
//! SDK sign-in. Every rule runs at the `now` it is given.
//!
//! The surface (`api::signin`) reads the request, calls one of these and turns the answer
//! into HTTP: cookies, redirects and status codes are its own.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::identity::{IdentityError, ProviderId, ProviderIdentity};
use super::providers::{CodeCallback, NativeToken, Providers};
use super::session::{self, SessionError, TokenPair};
use super::{accounts, flows, jwt};
use crate::config::AuthConfig;
use crate::store::signin::{BrowserSession, Flow, FlowFinish};
use crate::store::users::User;
use crate::store::{Store, StoreError};

/// `GET /auth/{provider}/start`'s query: how the flow finishes (`mode=web`, back to a
/// local `return_to`; or `mode=app`, back to a registered redirect URI with the app's
/// `state` and PKCE challenge) and what it is for (`intent`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub mode: Option<String>,
    pub return_to: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub intent: Option<String>,
}

/// What a provider sent the browser back with (query or form).
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// Apple, first sign-in only: `{"name":{"firstName":…,"lastName":…},"email":…}`.
    pub user: Option<String>,
}

/// A browser session just stored: the cookie's value and how long it lives.
#[derive(Debug)]
pub struct NewSession {
    pub id: String,
    pub ttl_secs: i64,
}

/// How a callback ends for the browser.
#[derive(Debug)]
pub enum Finished {
    /// A web flow: the browser gets the session, then goes to `return_to` (a local path).
    Web {
        session: NewSession,
        return_to: String,
    },
    /// An app flow: the browser goes back to the app at `location` (its redirect URI with
    /// `code`, or `error` when the sign-in failed, and the app's `state`). `failure` is
    /// that sign-in's refusal, for the surface to log as it logs any other.
    App {
        location: String,
        failure: Option<IdentityError>,
    },
}

/// What a native sign-in did.
#[derive(Debug)]
pub enum Native {
    /// The identity was linked to the signed-in account.
    Linked(ProviderId),
    /// The identity's account was signed in: its first tokens.
    SignedIn(TokenPair),
}

/// An access token for a browser session.
#[derive(Debug, Serialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// A refusal from an identity rule, or from issuing the session's tokens.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// The sign-in rules over this server's store, auth configuration, providers and access
/// token key. Borrowed per request (`AppState::sign_in`).
pub struct SignIn<'a> {
    store: &'a Store,
    config: &'a AuthConfig,
    providers: &'a Providers,
    access_key: &'a [u8; 32],
}

impl<'a> SignIn<'a> {
    pub fn new(
        store: &'a Store,
        config: &'a AuthConfig,
        providers: &'a Providers,
        access_key: &'a [u8; 32],
    ) -> Self {
        Self {
            store,
            config,
            providers,
            access_key,
        }
    }

    /// Begins signing in with `provider` for the browser holding `browser_secret` (its
    /// pre-auth cookie); the provider URL to send it to.
    pub fn start(
        &self,
        provider: ProviderId,
        request: &StartRequest,
        browser_secret: &str,
        now: i64,
    ) -> Result<String, IdentityError> {
        let finish = self.finish_of(request)?;
        match request.intent.as_deref() {
            None | Some("sign_in") => {}
            // A GET that links is a link any page can make the browser follow (link CSRF).
            Some("link") => {
                return Err(IdentityError::InvalidRequest(format!(
                    "link a provider from a signed-in page with POST /auth/{}/link",
                    provider.as_str()
                )))
            }
            Some(_) => {
                return Err(IdentityError::InvalidRequest(
                    "intent must be sign_in or link".into(),
                ))
            }
        }
        self.begin(provider, finish, None, browser_secret, now)
    }

    /// Begins linking `provider` to the account of the browser session `session_cookie`;
    /// the provider URL to send the browser to.
    pub fn link(
        &self,
        provider: ProviderId,
        session_cookie: Option<&str>,
        return_to: Option<String>,
        browser_secret: &str,
        now: i64,
    ) -> Result<String, IdentityError> {
        let user = self.session_user(session_cookie, now)?;
        let finish = web_finish(return_to)?;
        self.begin(provider, finish, Some(user.id), browser_secret, now)
    }

    fn begin(
        &self,
        provider: ProviderId,
        finish: FlowFinish,
        link_user: Option<Uuid>,
        browser_secret: &str,
        now: i64,
    ) -> Result<String, IdentityError> {
        flows::begin(
            self.store,
            self.providers,
            provider,
            finish,
            link_user,
            browser_secret,
            now,
        )
    }

    /// How a start request's flow finishes, refusing what it may not ask for.
    fn finish_of(&self, q: &StartRequest) -> Result<FlowFinish, IdentityError> {
        let bad = |m: &str| IdentityError::InvalidRequest(m.to_string());
        match q.mode.as_deref().unwrap_or("web") {
            "web" => {
                if q.redirect_uri.is_some() || q.code_challenge.is_some() {
                    return Err(bad("redirect_uri and code_challenge belong to mode=app"));
                }
                web_finish(q.return_to.clone())
            }
            "app" => {
                let uri = q
                    .redirect_uri
                    .clone()
                    .ok_or_else(|| bad("mode=app needs redirect_uri"))?;
                if !self.config.app_redirect_uris.contains(&uri) {
                    return Err(IdentityError::InvalidRedirectUri);
                }
                if q.intent.is_some() {
                    return Err(bad("apps link a provider through the native endpoint"));
                }
                let code_challenge = match (&q.code_challenge, q.code_challenge_method.as_deref())
                {
                    (None, None) => None,
                    (Some(c), Some("S256"))
                        if c.len() == 43
                            && c.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                    {
                        Some(c.clone())
                    }
                    _ => {
                        return Err(bad(
                            "code_challenge must be a base64url SHA-256 (43 characters) with code_challenge_method=S256",
                        ))
                    }
                };
                let app_state = q.state.clone();
                if app_state.as_ref().is_some_and(|s| s.len() > 512) {
                    return Err(bad("state is longer than 512 characters"));
                }
                Ok(FlowFinish::App {
                    redirect_uri: uri,
                    app_state,
                    code_challenge,
                })
            }
            _ => Err(bad("mode must be web or app")),
        }
    }

    /// A provider's callback for the browser holding the pre-auth cookie `browser`: takes
    /// its flow (once), then signs in or links. A refusal after the flow was taken goes
    /// back to an app as a redirect (the app is waiting for one); a web flow's refusal is
    /// the error.
    pub async fn callback(
        &self,
        provider: ProviderId,
        params: CallbackParams,
        browser: Option<&str>,
        now: i64,
    ) -> Result<Finished, IdentityError> {
        let flow = flows::take(self.store, provider, params.state.as_deref(), browser, now)?;
        match self.complete(provider, &flow, params, now).await {
            Ok(finished) => Ok(finished),
            Err(e) => match &flow.finish {
                FlowFinish::App {
                    redirect_uri,
                    app_state,
                    ..
                } => Ok(Finished::App {
                    location: app_location(
                        redirect_uri,
                        &[("error", e.code().to_string())],
                        app_state.as_deref(),
                    ),
                    failure: Some(e),
                }),
                FlowFinish::Web { .. } => Err(e),
            },
        }
    }

    async fn complete(
        &self,
        provider: ProviderId,
        flow: &Flow,
        params: CallbackParams,
        now: i64,
    ) -> Result<Finished, IdentityError> {
        if let Some(error) = &params.error {
            return Err(error_return(
                provider,
                error,
                params.error_description.as_deref(),
            ));
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| IdentityError::InvalidRequest("the callback has no code".into()))?;
        let callback = CodeCallback {
            code,
            pkce_verifier: &flow.pkce_verifier,
            nonce: flow.nonce.as_deref(),
            user: params.user.as_deref(),
        };
        let identity = self.providers.complete(provider, callback, now).await?;
        let user = match flow.link_user {
            Some(id) => {
                let user = self
                    .store
                    .user(&id)?
                    .ok_or(IdentityError::Unauthenticated)?;
                accounts::link(self.store, &user, &identity, now)?;
                user
            }
            None => self.sign_in(&identity, now)?,
        };
        match &flow.finish {
            FlowFinish::Web { return_to } => Ok(Finished::Web {
                session: self.new_session(&user, now)?,
                return_to: return_to.clone(),
            }),
            FlowFinish::App {
                redirect_uri,
                app_state,
                code_challenge,
            } => {
                let code =
                    flows::issue_exchange_code(self.store, &user.id, code_challenge.clone(), now)?;
                Ok(Finished::App {
                    location: app_location(redirect_uri, &[("code", code)], app_state.as_deref()),
                    failure: None,
                })
            }
        }
    }

    fn sign_in(&self, identity: &ProviderIdentity, now: i64) -> Result<User, IdentityError> {
        accounts::sign_in(self.store, self.config, identity, now)
    }

    /// Stores a browser session for `user` (refused for a disabled account).
    fn new_session(&self, user: &User, now: i64) -> Result<NewSession, IdentityError> {
        if user.disabled {
            return Err(IdentityError::Disabled);
        }
        let id = session::random_token();
        let ttl_secs = self.config.session_ttl.as_secs() as i64;
        self.store.add_session(
            &id,
            &BrowserSession {
                user_id: user.id,
                epoch: user.session_epoch,
                created_at: now,
                expires_at: now + ttl_secs,
            },
        )?;
        Ok(NewSession { id, ttl_secs })
    }

    /// Redeems a one-time login link (`cinegate user login-link`) for a browser session:
    /// the console's sign-in. The link is spent even when the account turns out to be
    /// disabled, as it is for the JSON `auth/link`.
    pub fn login_link_session(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(NewSession, User), SignInError> {
        let link = self
            .store
            .take_login_link(token, now)
            .map_err(SessionError::from)?
            .ok_or(SessionError::Invalid)?;
        let user = self
            .store
            .user(&link.user_id)
            .map_err(SessionError::from)?
            .ok_or(SessionError::Invalid)?;
        let session = self.new_session(&user, now)?;
        Ok((session, user))
    }

    /// The user of the browser session whose cookie value is `cookie`.
    pub fn session_user(&self, cookie: Option<&str>, now: i64) -> Result<User, IdentityError> {
        let cookie = cookie.ok_or(IdentityError::Unauthenticated)?;
        session::session_user(self.store, cookie, now)
    }

    /// An access token for the browser session `cookie`.
    pub fn session_token(
        &self,
        cookie: Option<&str>,
        now: i64,
    ) -> Result<AccessToken, IdentityError> {
        let user = self.session_user(cookie, now)?;
        let ttl = self.config.access_ttl.as_secs() as i64;
        Ok(AccessToken {
            access_token: jwt::issue(self.access_key, &user, now, ttl),
            token_type: "Bearer",
            expires_in: ttl,
        })
    }

    /// Ends the browser session `cookie`, if there is one.
    pub fn end_session(&self, cookie: Option<&str>) -> Result<(), StoreError> {
        match cookie {
            Some(cookie) => self.store.remove_session(cookie),
            None => Ok(()),
        }
    }

    /// Redeems an app's exchange code (once, in time, with its PKCE verifier) for a new
    /// sign-in's tokens.
    pub fn exchange(
        &self,
        code: &str,
        code_verifier: Option<&str>,
        now: i64,
    ) -> Result<TokenPair, SignInError> {
        let user = flows::redeem_exchange_code(self.store, code, code_verifier, now)?;
        self.token_pair(&user, now)
    }

    /// A token from a provider's mobile SDK: links it to `linking` (the signed-in account,
    /// when the app sent one), or signs its account in.
    pub async fn native(
        &self,
        provider: ProviderId,
        body: &NativeToken,
        linking: Option<User>,
        now: i64,
    ) -> Result<Native, SignInError> {
        let identity = self.providers.native(provider, body, now).await?;
        match linking {
            Some(user) => {
                accounts::link(self.store, &user, &identity, now)?;
                Ok(Native::Linked(provider))
            }
            None => {
                let user = self.sign_in(&identity, now)?;
                Ok(Native::SignedIn(self.token_pair(&user, now)?))
            }
        }
    }

    /// A new sign-in for `user`: access and refresh tokens.
    fn token_pair(&self, user: &User, now: i64) -> Result<TokenPair, SignInError> {
        Ok(session::start(
            self.store,
            self.access_key,
            self.config,
            user,
            now,
        )?)
    }
}

/// A local path to return to: absolute, not scheme-relative, no backslashes (browsers
/// treat `/\evil.com` like `//evil.com`), no control characters.
pub fn local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 512
        && !path.chars().any(|c| c.is_control())
}

fn web_finish(return_to: Option<String>) -> Result<FlowFinish, IdentityError> {
    let return_to = return_to.unwrap_or_else(|| "/".into());
    if !local_path(&return_to) {
        return Err(IdentityError::InvalidRequest(
            "return_to must be a path on this server, such as /console".into(),
        ));
    }
    Ok(FlowFinish::Web { return_to })
}

/// The app's redirect URI with `query` and the app's `state`.
fn app_location(uri: &str, query: &[(&str, String)], app_state: Option<&str>) -> String {
    let mut url = oauth2::url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        url.append_pair(k, v);
    }
    if let Some(s) = app_state {
        url.append_pair("state", s);
    }
    format!("{uri}?{}", url.finish())
}

/// The provider sent the browser back with `error` (RFC 6749 §4.1.2.1). The viewer
/// declining is theirs to know; a provider that is down, or that refuses this server's
/// client or request, is the operator's (the description goes to the log only).
fn error_return(provider: ProviderId, error: &str, description: Option<&str>) -> IdentityError {
    let code: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    let detail = || {
        let d: String = description.unwrap_or("").chars().take(200).collect();
        format!("{} returned {code} ({d})", provider.display_name())
    };
    match code.as_str() {
        "server_error" | "temporarily_unavailable" => IdentityError::ProviderUnavailable(detail()),
        "invalid_request"
        | "invalid_client"
        | "unauthorized_client"
        | "unsupported_response_type"
        | "invalid_scope" => IdentityError::Misconfigured(detail()),
        _ => IdentityError::Cancelled(code),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use futures_util::future::BoxFuture;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::auth::flows::{EXCHANGE_CODE_TTL_SECS, FLOW_TTL_SECS};
    use crate::auth::providers::{Authorization, IdentityProvider};
    use crate::clock::{Clock, TestClock};

    type R = Result<(), Box<dyn std::error::Error>>;
    const T0: i64 = 1_800_000_000;
    const KEY: [u8; 32] = [3; 32];
    const APP: &str = "com.example.app:/signed-in";
    const BROWSER: &str = "the-browsers-preauth-secret";

    /// A provider in process: its authorization URL carries the flow's state, and the code
    /// `good` is the person `who`; any other code is refused as a real provider would.
    struct Fake {
        id: ProviderId,
        who: &'static str,
    }

    impl Fake {
        fn identity(&self) -> ProviderIdentity {
            ProviderIdentity {
                provider: self.id,
                subject: format!("sub-{}", self.who),
                email: Some(format!("{}@example.com", self.who)),
                email_verified: true,
                name: Some(self.who.into()),
            }
        }
    }

    impl IdentityProvider for Fake {
        fn id(&self) -> ProviderId {
            self.id
        }
        fn authorize(&self, state: &str) -> Result<Authorization, IdentityError> {
            Ok(Authorization {
                url: format!(
                    "https://{}.example/authorize?state={state}",
                    self.id.as_str()
                ),
                pkce_verifier: "pkce".into(),
                nonce: Some("nonce".into()),
            })
        }
        fn complete<'a>(
            &'a self,
            callback: CodeCallback<'a>,
            _now: i64,
        ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
            Box::pin(async move {
                // What the flow remembered comes back to the provider.
                assert_eq!(
                    (callback.pkce_verifier, callback.nonce),
                    ("pkce", Some("nonce"))
                );
                match callback.code {
                    "good" => Ok(self.identity()),
                    _ => Err(IdentityError::ProviderRejected("invalid_grant".into())),
                }
            })
        }
        fn native<'a>(
            &'a self,
            _body: &'a NativeToken,
            _now: i64,
        ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
            Box::pin(async move { Ok(self.identity()) })
        }
    }

    struct World {
        store: Store,
        config: AuthConfig,
        providers: Providers,
        clock: TestClock,
    }

    impl World {
        fn new() -> Result<Self, StoreError> {
            Ok(Self {
                store: Store::temporary()?,
                config: AuthConfig {
                    app_redirect_uris: vec![APP.into()],
                    session_ttl: Duration::from_secs(3600),
                    ..AuthConfig::default()
                },
                providers: Providers::with_providers(vec![
                    Box::new(Fake {
                        id: ProviderId::Google,
                        who: "ada",
                    }),
                    Box::new(Fake {
                        id: ProviderId::Facebook,
                        who: "ada-fb",
                    }),
                ]),
                clock: TestClock::new(T0),
            })
        }

        fn sign_in(&self) -> SignIn<'_> {
            SignIn::new(&self.store, &self.config, &self.providers, &KEY)
        }

        /// Starts a flow and returns its state, read from the provider URL.
        fn start(
            &self,
            provider: ProviderId,
            request: &StartRequest,
        ) -> Result<String, IdentityError> {
            let url = self
                .sign_in()
                .start(provider, request, BROWSER, self.clock.now())?;
            Ok(state_of(&url))
        }

        async fn callback(
            &self,
            provider: ProviderId,
            state: &str,
            code: &str,
        ) -> Result<Finished, IdentityError> {
            let params = CallbackParams {
                code: Some(code.into()),
                state: Some(state.into()),
                ..CallbackParams::default()
            };
            self.sign_in()
                .callback(provider, params, Some(BROWSER), self.clock.now())
                .await
        }
        /// Ada signed in with Google in the browser: her session and her account.
        async fn signed_in_web(
            &self,
        ) -> Result<(NewSession, crate::store::users::User), Box<dyn std::error::Error>> {
            let state = self.start(ProviderId::Google, &StartRequest::default())?;
            let Finished::Web { session, .. } =
                self.callback(ProviderId::Google, &state, "good").await?
            else {
                return Err("a web flow finished otherwise".into());
            };
            let user = self
                .sign_in()
                .session_user(Some(&session.id), self.clock.now())?;
            Ok((session, user))
        }
    }

    fn state_of(url: &str) -> String {
        url.split_once("state=")
            .map(|(_, s)| s.to_string())
            .unwrap_or_default()
    }

    fn app_request(challenge: Option<String>) -> StartRequest {
        StartRequest {
            mode: Some("app".into()),
            redirect_uri: Some(APP.into()),
            state: Some("app-state".into()),
            code_challenge_method: challenge.as_ref().map(|_| "S256".into()),
            code_challenge: challenge,
            ..StartRequest::default()
        }
    }

    /// The `code` an app flow's redirect carries.
    fn code_of(finished: &Finished) -> Option<String> {
        let Finished::App {
            location,
            failure: None,
        } = finished
        else {
            return None;
        };
        let query = location.strip_prefix(APP)?.strip_prefix('?')?;
        oauth2::url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    }

    #[tokio::test]
    async fn a_completed_flow_signs_a_new_user_in_once() -> R {
        let w = World::new()?;
        let state = w.start(ProviderId::Google, &StartRequest::default())?;
        w.clock.advance(30);
        let finished = w.callback(ProviderId::Google, &state, "good").await?;
        let Finished::Web { session, return_to } = finished else {
            return Err("a web flow finished otherwise".into());
        };
        assert_eq!(return_to, "/");
        assert_eq!(session.ttl_secs, 3600);
        let user = w.sign_in().session_user(Some(&session.id), w.clock.now())?;
        assert_eq!(user.email.as_deref(), Some("ada@example.com"));
        let token = w
            .sign_in()
            .session_token(Some(&session.id), w.clock.now())?;
        assert_eq!(token.token_type, "Bearer");

        // The same state again: the flow was taken once.
        assert!(matches!(
            w.callback(ProviderId::Google, &state, "good").await,
            Err(IdentityError::InvalidState)
        ));
        // The session ends with its time.
        w.clock.advance(3600);
        assert!(matches!(
            w.sign_in().session_user(Some(&session.id), w.clock.now()),
            Err(IdentityError::Unauthenticated)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_flow_left_past_its_time_is_refused() -> R {
        let w = World::new()?;
        let state = w.start(ProviderId::Google, &StartRequest::default())?;
        w.clock.advance(FLOW_TTL_SECS + 1);
        assert!(matches!(
            w.callback(ProviderId::Google, &state, "good").await,
            Err(IdentityError::FlowExpired)
        ));
        assert!(w.store.user_by_email("ada@example.com")?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn an_exchange_code_redeems_once_in_time_with_its_verifier() -> R {
        let w = World::new()?;
        let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let request = app_request(Some(challenge));

        let state = w.start(ProviderId::Google, &request)?;
        let finished = w.callback(ProviderId::Google, &state, "good").await?;
        let Finished::App { location, .. } = &finished else {
            return Err("an app flow finished otherwise".into());
        };
        assert!(location.ends_with("&state=app-state"), "{location}");
        let code = code_of(&finished).ok_or("no code in the app redirect")?;
        let pair = w.sign_in().exchange(&code, Some(verifier), w.clock.now())?;
        assert_eq!(pair.token_type, "Bearer");
        // Once only.
        assert!(matches!(
            w.sign_in().exchange(&code, Some(verifier), w.clock.now()),
            Err(SignInError::Identity(IdentityError::InvalidCode))
        ));

        // A wrong verifier is refused.
        let state = w.start(ProviderId::Google, &request)?;
        let code =
            code_of(&w.callback(ProviderId::Google, &state, "good").await?).ok_or("no code")?;
        assert!(matches!(
            w.sign_in()
                .exchange(&code, Some("not-the-verifier"), w.clock.now()),
            Err(SignInError::Identity(IdentityError::InvalidCode))
        ));

        // Too late.
        let state = w.start(ProviderId::Google, &request)?;
        let code =
            code_of(&w.callback(ProviderId::Google, &state, "good").await?).ok_or("no code")?;
        w.clock.advance(EXCHANGE_CODE_TTL_SECS + 1);
        assert!(matches!(
            w.sign_in().exchange(&code, Some(verifier), w.clock.now()),
            Err(SignInError::Identity(IdentityError::InvalidCode))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn an_app_is_told_why_its_sign_in_failed() -> R {
        let w = World::new()?;
        let state = w.start(ProviderId::Google, &app_request(None))?;
        let finished = w.callback(ProviderId::Google, &state, "bad").await?;
        let Finished::App { location, failure } = finished else {
            return Err("an app flow finished otherwise".into());
        };
        assert_eq!(
            location,
            format!("{APP}?error=provider_rejected&state=app-state")
        );
        assert!(matches!(failure, Some(IdentityError::ProviderRejected(_))));
        Ok(())
    }

    #[tokio::test]
    async fn linking_while_signed_in_links_to_that_user() -> R {
        let w = World::new()?;
        let (session, ada) = w.signed_in_web().await?;

        // Not signed in: nothing to link to.
        assert!(matches!(
            w.sign_in()
                .link(ProviderId::Facebook, None, None, BROWSER, w.clock.now()),
            Err(IdentityError::Unauthenticated)
        ));
        let url = w.sign_in().link(
            ProviderId::Facebook,
            Some(&session.id),
            Some("/console".into()),
            BROWSER,
            w.clock.now(),
        )?;
        let finished = w
            .callback(ProviderId::Facebook, &state_of(&url), "good")
            .await?;
        let Finished::Web { return_to, .. } = finished else {
            return Err("a web flow finished otherwise".into());
        };
        assert_eq!(return_to, "/console");
        let linked = w
            .store
            .identity("facebook", "sub-ada-fb")?
            .ok_or("not linked")?;
        assert_eq!(linked.user_id, ada.id);
        assert_eq!(w.store.identities_of(&ada.id)?.len(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_disabled_user_is_refused() -> R {
        let w = World::new()?;
        let (session, ada) = w.signed_in_web().await?;
        w.store.update_user(&ada.id, |u| u.disabled = true)?;

        let state = w.start(ProviderId::Google, &StartRequest::default())?;
        assert!(matches!(
            w.callback(ProviderId::Google, &state, "good").await,
            Err(IdentityError::Disabled)
        ));
        assert!(matches!(
            w.sign_in().session_user(Some(&session.id), w.clock.now()),
            Err(IdentityError::Disabled)
        ));
        assert!(matches!(
            w.sign_in()
                .native(ProviderId::Google, &native_body(), None, w.clock.now())
                .await,
            Err(SignInError::Identity(IdentityError::Disabled))
        ));
        Ok(())
    }

    fn native_body() -> NativeToken {
        NativeToken {
            id_token: Some("t".into()),
            access_token: None,
            nonce: None,
            name: None,
        }
    }

    #[test]
    fn start_requests_ask_only_for_what_they_may() -> R {
        let w = World::new()?;
        let refused = |request: StartRequest| {
            w.sign_in()
                .start(ProviderId::Google, &request, BROWSER, T0)
                .map_err(|e| e.code())
        };
        assert_eq!(
            refused(StartRequest {
                return_to: Some("//evil.example".into()),
                ..StartRequest::default()
            }),
            Err("invalid_request")
        );
        assert_eq!(
            refused(StartRequest {
                mode: Some("app".into()),
                redirect_uri: Some("https://evil.example/".into()),
                ..StartRequest::default()
            }),
            Err("invalid_redirect_uri")
        );
        assert_eq!(
            refused(StartRequest {
                intent: Some("link".into()),
                ..StartRequest::default()
            }),
            Err("invalid_request")
        );
        assert_eq!(
            refused(StartRequest {
                code_challenge: Some("x".repeat(43)),
                code_challenge_method: Some("plain".into()),
                ..app_request(None)
            }),
            Err("invalid_request")
        );
        Ok(())
    }

    #[test]
    fn return_to_must_stay_on_this_server() {
        assert!(local_path("/"));
        assert!(local_path("/console?tab=films"));
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "evil",
            "/a\nb",
            "",
        ] {
            assert!(!local_path(bad), "{bad:?}");
        }
    }
}
