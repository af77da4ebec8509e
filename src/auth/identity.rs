//! What a sign-in provider tells cinegate about a person, the providers cinegate knows, and
//! why a provider sign-in was refused.

use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderId {
    Google,
    Apple,
    Facebook,
}

impl ProviderId {
    pub const ALL: [ProviderId; 3] = [ProviderId::Google, ProviderId::Apple, ProviderId::Facebook];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Google => "google",
            ProviderId::Apple => "apple",
            ProviderId::Facebook => "facebook",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            ProviderId::Google => "Google",
            ProviderId::Apple => "Apple",
            ProviderId::Facebook => "Facebook",
        }
    }
}

/// A person as a provider vouches for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    pub provider: ProviderId,
    pub subject: String,
    pub email: Option<String>,
    /// The provider asserts the e-mail belongs to this person (OIDC `email_verified`).
    pub email_verified: bool,
    pub name: Option<String>,
}

/// A display name from a provider or an app: trimmed, without control characters, at most
/// 200 characters; `None` when nothing is left.
pub fn clean_name(name: Option<&str>) -> Option<String> {
    let cleaned: String = name?
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("sign-in with {0} is not configured on this server")]
    UnknownProvider(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the redirect_uri is not one of this server's app redirect URIs")]
    InvalidRedirectUri,
    #[error("the sign-in state is missing, unknown, already used, or from another provider; start again")]
    InvalidState,
    #[error("this sign-in was started in another browser, or the browser did not keep its cookies; start again here")]
    OtherBrowser,
    #[error("the sign-in took longer than 10 minutes; start again")]
    FlowExpired,
    #[error("the sign-in was cancelled at the provider: {0}")]
    Cancelled(String),
    #[error("the provider refused the sign-in: {0}")]
    ProviderRejected(String),
    #[error("the provider could not be reached or answered wrongly: {0}")]
    ProviderUnavailable(String),
    /// The provider refused cinegate itself (client id or secret, Apple key, redirect URI):
    /// only the operator can fix it, so viewers see it as `provider_unavailable`.
    #[error("the sign-in provider refused this server's configuration: {0}")]
    Misconfigured(String),
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
    #[error("the provider token is not valid: {0}")]
    InvalidProviderToken(String),
    #[error("the code is unknown, already used or expired, or the code_verifier does not match")]
    InvalidCode,
    #[error("sign in first")]
    Unauthenticated,
    #[error("an account with this e-mail already exists: sign in to it, then link {0} from there")]
    AccountExists(&'static str),
    #[error("this {0} account is already linked to another cinegate account")]
    IdentityInUse(&'static str),
    #[error("this is the only way into the account; link another provider first")]
    LastIdentity,
    #[error("the account is disabled")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IdentityError {
    /// The stable code of the API error shape.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::UnknownProvider(_) => "unknown_provider",
            IdentityError::InvalidRequest(_) => "invalid_request",
            IdentityError::InvalidRedirectUri => "invalid_redirect_uri",
            IdentityError::InvalidState | IdentityError::OtherBrowser => "invalid_state",
            IdentityError::FlowExpired => "flow_expired",
            IdentityError::Cancelled(_) => "sign_in_cancelled",
            IdentityError::ProviderRejected(_) => "provider_rejected",
            IdentityError::ProviderUnavailable(_) | IdentityError::Misconfigured(_) => {
                "provider_unavailable"
            }
            IdentityError::InvalidIdToken(_) => "invalid_id_token",
            IdentityError::InvalidProviderToken(_) => "invalid_provider_token",
            IdentityError::InvalidCode => "invalid_code",
            IdentityError::Unauthenticated => "unauthenticated",
            IdentityError::AccountExists(_) => "account_exists",
            IdentityError::IdentityInUse(_) => "identity_in_use",
            IdentityError::LastIdentity => "last_identity",
            IdentityError::Disabled => "account_disabled",
            IdentityError::Store(_) => "internal",
        }
    }
}
