//! The configured sign-in providers: where to send the browser (authorization-code flow
//! with PKCE, via the `oauth2` crate), how to turn the returned code into an identity, and
//! how to check a token a mobile SDK handed to the app.

use std::path::Path;
use std::time::Duration;

use futures_util::future::BoxFuture;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, ExtraTokenFields,
    HttpClientError, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::apple::ClientSecret as AppleSecret;
use super::facebook::{self, Graph};
use super::identity::{clean_name, IdentityError, ProviderId, ProviderIdentity};
use super::oidc::{IdTokenVerifier, Nonce};
use crate::config::Config;

/// OIDC token responses carry an `id_token` next to the OAuth fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenResp = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResp,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

struct Endpoints {
    client_id: String,
    authorize_url: AuthUrl,
    token_url: TokenUrl,
}

/// One sign-in provider, as the sign-in flows see it: where to send the browser, the
/// identity behind the code its callback brings back, and the identity behind a token a
/// mobile SDK handed to the app. The configured providers are `OAuthProvider`s; tests put
/// in-process fakes in their place (`Providers::with_providers`).
pub trait IdentityProvider: Send + Sync {
    fn id(&self) -> ProviderId;
    /// The authorization URL carrying `state`, and what the callback will need.
    fn authorize(&self, state: &str) -> Result<Authorization, IdentityError>;
    /// The identity behind a callback's code, at `now`.
    fn complete<'a>(
        &'a self,
        callback: CodeCallback<'a>,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>>;
    /// The identity behind a token a mobile SDK handed to the app, at `now`.
    fn native<'a>(
        &'a self,
        body: &'a NativeToken,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>>;
}

/// What a provider's callback brought back, with what its flow remembered.
#[derive(Debug, Clone, Copy)]
pub struct CodeCallback<'a> {
    pub code: &'a str,
    pub pkce_verifier: &'a str,
    /// The nonce sent with the authorization request (OIDC).
    pub nonce: Option<&'a str>,
    /// What else the callback carried about the user (Apple's `user` form field, its only
    /// source of the name).
    pub user: Option<&'a str>,
}

/// The rules of one OAuth provider inside the shared authorization-code client
/// (`OAuthProvider`), held as a trait object so that each provider's rules live in its own
/// implementation: what the authorization request asks for, the client secret (Apple's is
/// a JWT signed now), and how tokens become an identity (an ID token for OIDC and Apple,
/// with Apple's name from the callback's `user` field; the Graph API for Facebook).
trait CodeFlow: Send + Sync {
    fn request(&self) -> RequestShape;
    fn client_secret(&self, now: i64) -> Result<String, IdentityError>;
    /// The identity behind a code exchange's tokens. `nonce`: the one sent with the
    /// authorization request; `user`: what else the callback carried about the user.
    fn identity<'a>(
        &'a self,
        tokens: &'a TokenResp,
        nonce: Option<&'a str>,
        user: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>>;
    /// The identity behind a token a mobile SDK handed to the app.
    fn native<'a>(
        &'a self,
        body: &'a NativeToken,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>>;
}

/// What an authorization request asks for.
struct RequestShape {
    scopes: &'static [&'static str],
    extra: &'static [(&'static str, &'static str)],
    /// OIDC: a nonce the ID token must carry back.
    nonce: bool,
}

/// A field a native sign-in must carry: trimmed, non-empty, at most 16 KiB.
fn native_field<'a>(
    v: &'a Option<String>,
    id: ProviderId,
    name: &str,
) -> Result<&'a str, IdentityError> {
    v.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 16 * 1024)
        .ok_or_else(|| {
            IdentityError::InvalidRequest(format!(
                "send the {} SDK's {name} (at most 16 KiB)",
                id.display_name()
            ))
        })
}

/// The ID token of a code exchange, verified against `nonce`.
async fn verified_id_token(
    id: ProviderId,
    verifier: &IdTokenVerifier,
    tokens: &TokenResp,
    nonce: Option<&str>,
    now: i64,
) -> Result<ProviderIdentity, IdentityError> {
    let id_token = tokens.extra_fields().id_token.as_deref().ok_or_else(|| {
        IdentityError::ProviderUnavailable(format!("{} returned no ID token", id.display_name()))
    })?;
    let nonce = nonce.ok_or(IdentityError::InvalidState)?;
    verifier.verify(id_token, Nonce::Exact(nonce), now).await
}

/// An app's ID token, verified; the name the app sent when the token has none.
async fn verified_native(
    id: ProviderId,
    verifier: &IdTokenVerifier,
    body: &NativeToken,
    now: i64,
) -> Result<ProviderIdentity, IdentityError> {
    let token = native_field(&body.id_token, id, "id_token")?;
    let mut identity = verifier
        .verify(token, Nonce::Native(body.nonce.as_deref()), now)
        .await?;
    if identity.name.is_none() {
        identity.name = clean_name(body.name.as_deref());
    }
    Ok(identity)
}

/// Google and other OpenID Connect providers.
struct Oidc {
    id: ProviderId,
    secret: String,
    verifier: IdTokenVerifier,
}

impl CodeFlow for Oidc {
    fn request(&self) -> RequestShape {
        RequestShape {
            scopes: &["openid", "email", "profile"],
            extra: &[],
            nonce: true,
        }
    }
    fn client_secret(&self, _now: i64) -> Result<String, IdentityError> {
        Ok(self.secret.clone())
    }
    fn identity<'a>(
        &'a self,
        tokens: &'a TokenResp,
        nonce: Option<&'a str>,
        _user: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        Box::pin(verified_id_token(
            self.id,
            &self.verifier,
            tokens,
            nonce,
            now,
        ))
    }
    fn native<'a>(
        &'a self,
        body: &'a NativeToken,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        Box::pin(verified_native(self.id, &self.verifier, body, now))
    }
}

/// Sign in with Apple: OIDC with a client secret that is a JWT signed with the team's key,
/// the name only with `form_post` and only at the first sign-in (in the `user` field).
struct Apple {
    secret: AppleSecret,
    verifier: IdTokenVerifier,
}

impl CodeFlow for Apple {
    fn request(&self) -> RequestShape {
        RequestShape {
            scopes: &["openid", "email", "name"],
            extra: &[("response_mode", "form_post")],
            nonce: true,
        }
    }
    fn client_secret(&self, now: i64) -> Result<String, IdentityError> {
        self.secret.get(now).map_err(IdentityError::Misconfigured)
    }
    fn identity<'a>(
        &'a self,
        tokens: &'a TokenResp,
        nonce: Option<&'a str>,
        user: Option<&'a str>,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        Box::pin(async move {
            let mut identity =
                verified_id_token(ProviderId::Apple, &self.verifier, tokens, nonce, now).await?;
            if identity.name.is_none() {
                identity.name = super::apple::name_from_user_field(user);
            }
            Ok(identity)
        })
    }
    fn native<'a>(
        &'a self,
        body: &'a NativeToken,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        Box::pin(verified_native(
            ProviderId::Apple,
            &self.verifier,
            body,
            now,
        ))
    }
}

/// Facebook Login: no ID token; the Graph API says who the access token belongs to.
struct Facebook {
    graph: Graph,
}

impl CodeFlow for Facebook {
    fn request(&self) -> RequestShape {
        RequestShape {
            scopes: &["email", "public_profile"],
            extra: &[],
            nonce: false,
        }
    }
    fn client_secret(&self, _now: i64) -> Result<String, IdentityError> {
        Ok(self.graph.secret().to_string())
    }
    fn identity<'a>(
        &'a self,
        tokens: &'a TokenResp,
        _nonce: Option<&'a str>,
        _user: Option<&'a str>,
        _now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        Box::pin(self.graph.me(tokens.access_token().secret()))
    }
    fn native<'a>(
        &'a self,
        body: &'a NativeToken,
        _now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        Box::pin(async move {
            let token = native_field(&body.access_token, ProviderId::Facebook, "access_token")?;
            self.graph.native(token).await
        })
    }
}

/// A configured provider: the shared authorization-code + PKCE client (`oauth2`) around
/// that provider's rules.
struct OAuthProvider {
    id: ProviderId,
    endpoints: Endpoints,
    /// `public_url` without its trailing slash; callbacks come back under it.
    redirect_base: String,
    http: reqwest::Client,
    rules: Box<dyn CodeFlow>,
}

/// What the browser is sent to, and what must be remembered for the callback.
pub struct Authorization {
    pub url: String,
    pub pkce_verifier: String,
    pub nonce: Option<String>,
}

/// What the app sends to the native endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeToken {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    /// Apple gives the name to the app only at the first sign-in.
    #[serde(default)]
    pub name: Option<String>,
}

pub struct Providers {
    list: Vec<Box<dyn IdentityProvider>>,
}

fn url_error(key: &str, e: impl std::fmt::Display) -> String {
    format!("configuration key `{key}`: {e}")
}

impl Providers {
    /// Builds the configured providers. Errors name the configuration key.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let timeout = config.auth.provider_timeout;
        // Provider endpoints are operator-configured; redirects are never followed, so a
        // provider cannot bounce a request carrying secrets somewhere else.
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cinegate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut list: Vec<Box<dyn IdentityProvider>> = Vec::new();
        let redirect_base = config.public_url.trim_end_matches('/').to_string();
        let oauth = |id: ProviderId, endpoints: Endpoints, rules: Box<dyn CodeFlow>| {
            Box::new(OAuthProvider {
                id,
                endpoints,
                redirect_base: redirect_base.clone(),
                http: http.clone(),
                rules,
            })
        };
        let auth = &config.auth;
        let endpoints = |id: &str, authorize: &str, token: &str, p: &str| {
            Ok::<_, String>(Endpoints {
                client_id: id.to_string(),
                authorize_url: AuthUrl::new(authorize.to_string())
                    .map_err(|e| url_error(&format!("auth.{p}.authorize_url"), e))?,
                token_url: TokenUrl::new(token.to_string())
                    .map_err(|e| url_error(&format!("auth.{p}.token_url"), e))?,
            })
        };
        let g = &auth.google;
        if !g.client_id.is_empty() {
            let mut audiences = vec![g.client_id.clone()];
            audiences.extend(g.native_client_ids.iter().cloned());
            list.push(oauth(
                ProviderId::Google,
                endpoints(&g.client_id, &g.authorize_url, &g.token_url, "google")?,
                Box::new(Oidc {
                    id: ProviderId::Google,
                    secret: g.client_secret.0.clone(),
                    verifier: IdTokenVerifier::new(
                        ProviderId::Google,
                        &g.issuer,
                        audiences,
                        &g.jwks_url,
                        http.clone(),
                    ),
                }),
            ));
        }
        let a = &auth.apple;
        if !a.client_id.is_empty() {
            let key_path = if a.private_key_file.is_absolute() {
                a.private_key_file.clone()
            } else {
                config.keys_dir.join(&a.private_key_file)
            };
            let secret =
                AppleSecret::load(Path::new(&key_path), &a.team_id, &a.key_id, &a.client_id)
                    .map_err(|e| url_error("auth.apple.private_key_file", e))?;
            let mut audiences = vec![a.client_id.clone()];
            audiences.extend(a.native_client_ids.iter().cloned());
            list.push(oauth(
                ProviderId::Apple,
                endpoints(&a.client_id, &a.authorize_url, &a.token_url, "apple")?,
                Box::new(Apple {
                    secret,
                    verifier: IdTokenVerifier::new(
                        ProviderId::Apple,
                        &a.issuer,
                        audiences,
                        &a.jwks_url,
                        http.clone(),
                    ),
                }),
            ));
        }
        let f = &auth.facebook;
        if !f.app_id.is_empty() {
            list.push(oauth(
                ProviderId::Facebook,
                endpoints(&f.app_id, &f.authorize_url, &f.token_url, "facebook")?,
                Box::new(Facebook {
                    graph: Graph::new(&f.app_id, &f.app_secret.0, &f.graph_url, http.clone()),
                }),
            ));
        }
        Ok(Self { list })
    }

    /// These providers instead of the configured ones: in-process fakes in tests.
    pub fn with_providers(list: Vec<Box<dyn IdentityProvider>>) -> Self {
        Self { list }
    }

    /// The configured providers, in a stable order.
    pub fn configured(&self) -> Vec<ProviderId> {
        self.list.iter().map(|p| p.id()).collect()
    }

    fn get(&self, id: ProviderId) -> Result<&dyn IdentityProvider, IdentityError> {
        self.list
            .iter()
            .find(|p| p.id() == id)
            .map(|p| &**p)
            .ok_or_else(|| IdentityError::UnknownProvider(id.as_str().into()))
    }

    /// Parses a provider name from a URL, refusing names that are not configured.
    pub fn parse(&self, name: &str) -> Result<ProviderId, IdentityError> {
        let id = ProviderId::parse(name)
            .ok_or_else(|| IdentityError::UnknownProvider(name.chars().take(32).collect()))?;
        self.get(id).map(|p| p.id())
    }

    /// The provider URL to send the browser to, with a fresh state (the caller's),
    /// PKCE challenge and, for OIDC providers, nonce.
    pub fn authorize(&self, id: ProviderId, state: &str) -> Result<Authorization, IdentityError> {
        self.get(id)?.authorize(state)
    }

    /// Exchanges the code from the callback for the identity behind it.
    pub async fn complete(
        &self,
        id: ProviderId,
        callback: CodeCallback<'_>,
        now: i64,
    ) -> Result<ProviderIdentity, IdentityError> {
        self.get(id)?.complete(callback, now).await
    }

    /// Checks a token from a mobile SDK.
    pub async fn native(
        &self,
        id: ProviderId,
        body: &NativeToken,
        now: i64,
    ) -> Result<ProviderIdentity, IdentityError> {
        self.get(id)?.native(body, now).await
    }
}

impl OAuthProvider {
    fn client(&self, secret: Option<String>) -> Result<OAuthClient, IdentityError> {
        let redirect = RedirectUrl::new(format!(
            "{}/auth/{}/callback",
            self.redirect_base,
            self.id.as_str()
        ))
        .map_err(|e| IdentityError::Misconfigured(format!("public_url: {e}")))?;
        let mut client = oauth2::Client::new(ClientId::new(self.endpoints.client_id.clone()))
            .set_auth_uri(self.endpoints.authorize_url.clone())
            .set_token_uri(self.endpoints.token_url.clone())
            .set_redirect_uri(redirect)
            // Apple takes the secret only in the body; the others accept it there too.
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = secret {
            client = client.set_client_secret(ClientSecret::new(secret));
        }
        Ok(client)
    }

    async fn exchange(
        &self,
        callback: CodeCallback<'_>,
        now: i64,
    ) -> Result<ProviderIdentity, IdentityError> {
        let secret = self.rules.client_secret(now)?;
        let client = self.client(Some(secret))?;
        let token = client
            .exchange_code(AuthorizationCode::new(callback.code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(callback.pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| token_error(self.id, e))?;
        self.rules
            .identity(&token, callback.nonce, callback.user, now)
            .await
    }
}

impl IdentityProvider for OAuthProvider {
    fn id(&self) -> ProviderId {
        self.id
    }

    fn authorize(&self, state: &str) -> Result<Authorization, IdentityError> {
        let client = self.client(None)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_string();
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .set_pkce_challenge(challenge);
        let shape = self.rules.request();
        for scope in shape.scopes {
            request = request.add_scope(Scope::new((*scope).into()));
        }
        for (name, value) in shape.extra {
            request = request.add_extra_param(*name, *value);
        }
        let nonce = shape.nonce.then(super::session::random_token);
        if let Some(nonce) = &nonce {
            request = request.add_extra_param("nonce", nonce.clone());
        }
        let (url, _) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            pkce_verifier: verifier.secret().clone(),
            nonce,
        })
    }

    fn complete<'a>(
        &'a self,
        callback: CodeCallback<'a>,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        Box::pin(self.exchange(callback, now))
    }

    fn native<'a>(
        &'a self,
        body: &'a NativeToken,
        now: i64,
    ) -> BoxFuture<'a, Result<ProviderIdentity, IdentityError>> {
        self.rules.native(body, now)
    }
}

/// A provider's `error_description`, for the operator's log only: " (…)", at most 200
/// characters, or nothing.
fn description(d: Option<&String>) -> String {
    d.map(|d| format!(" ({})", d.chars().take(200).collect::<String>()))
        .unwrap_or_default()
}

fn token_error(
    id: ProviderId,
    e: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
) -> IdentityError {
    let name = id.display_name();
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::Extension(code)
                if code == "server_error" || code == "temporarily_unavailable" =>
            {
                IdentityError::ProviderUnavailable(format!("{name}: {code}"))
            }
            // The provider does not accept cinegate itself (a wrong or revoked client id or
            // secret, or a client not allowed this grant, or a request it cannot take):
            // nothing the viewer can do, so it is the operator's, not a refused sign-in.
            code @ (BasicErrorResponseType::InvalidClient
            | BasicErrorResponseType::UnauthorizedClient
            | BasicErrorResponseType::UnsupportedGrantType
            | BasicErrorResponseType::InvalidScope) => IdentityError::Misconfigured(format!(
                "{name} answered {code}{}: check auth.{}'s client id and secret",
                description(r.error_description()),
                id.as_str()
            )),
            // invalid_grant (a used, expired or mismatched code or PKCE verifier) and the
            // rest: this sign-in's code was refused; starting again may work.
            other => IdentityError::ProviderRejected(format!(
                "{name}: {other}{}",
                description(r.error_description())
            )),
        },
        // Facebook answers the token endpoint in Graph's error shape, not OAuth's.
        RequestTokenError::Parse(_, body) if id == ProviderId::Facebook => {
            facebook::classify_error(&body)
        }
        RequestTokenError::Request(HttpClientError::Reqwest(e)) => {
            IdentityError::ProviderUnavailable(format!("{name}: {}", e.without_url()))
        }
        RequestTokenError::Request(_) => {
            IdentityError::ProviderUnavailable(format!("{name}: the request failed"))
        }
        RequestTokenError::Parse(..) => {
            IdentityError::ProviderUnavailable(format!("{name} answered something unreadable"))
        }
        RequestTokenError::Other(m) => IdentityError::ProviderUnavailable(format!("{name}: {m}")),
    }
}
