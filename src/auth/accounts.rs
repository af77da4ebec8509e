//! From a provider identity to a cinegate account: sign in (creating the account the first
//! time), link to the signed-in account, unlink, promote configured admins.

use crate::config::AuthConfig;
use crate::store::identities::{Identity, LinkRefusal};
use crate::store::users::{normalize_email, Role, User};
use crate::store::Store;

use super::identity::{IdentityError, ProviderIdentity};

fn listed_admin(cfg: &AuthConfig, email: Option<&str>) -> bool {
    let Some(email) = email.and_then(normalize_email) else {
        return false;
    };
    cfg.admins
        .iter()
        .filter_map(|a| normalize_email(a))
        .any(|a| a == email)
}

/// A new account is made admin when the identity creating it has a verified e-mail on
/// `auth.admins` (that e-mail becomes the account's own).
fn is_admin_email(cfg: &AuthConfig, identity: &ProviderIdentity) -> bool {
    identity.email_verified && listed_admin(cfg, identity.email.as_deref())
}

/// An existing account is promoted only for its own verified e-mail, never for the e-mail
/// of a linked identity: a link made through a forged or tricked flow must not make
/// whoever owns the account admin.
fn is_listed_account(cfg: &AuthConfig, user: &User) -> bool {
    user.email_verified && listed_admin(cfg, user.email.as_deref())
}

fn record(identity: &ProviderIdentity, user: &User, now: i64) -> Identity {
    Identity {
        provider: identity.provider.as_str().into(),
        subject: identity.subject.clone(),
        user_id: user.id,
        email: identity.email.as_deref().and_then(normalize_email),
        linked_at: now,
    }
}

/// The account behind `identity`, created on first sign-in.
pub fn sign_in(
    store: &Store,
    cfg: &AuthConfig,
    identity: &ProviderIdentity,
    now: i64,
) -> Result<User, IdentityError> {
    let provider = identity.provider.as_str();
    // Two tries: a concurrent first sign-in with the same identity may win the creation.
    for _ in 0..2 {
        if let Some(linked) = store.identity(provider, &identity.subject)? {
            if let Some(mut user) = store.user(&linked.user_id)? {
                if user.role == Role::Viewer && is_listed_account(cfg, &user) {
                    // An update, not a save of this copy: a concurrent sign-out everywhere
                    // must not be undone. Gone meanwhile: look the identity up again.
                    match store.update_user(&user.id, |u| u.role = Role::Admin)? {
                        Some(promoted) => user = promoted,
                        None => continue,
                    }
                    tracing::info!(user = %user.id, "promoted to admin (auth.admins)");
                }
                if user.disabled {
                    return Err(IdentityError::Disabled);
                }
                return Ok(user);
            }
            // An identity whose account is gone (deleted between the two reads): drop it.
            store.unlink_identity(&linked.user_id, provider)?;
        }
        let email = identity.email.as_deref().and_then(normalize_email);
        let user = User {
            id: crate::store::new_id(),
            email_verified: identity.email_verified && email.is_some(),
            email,
            name: identity.name.clone(),
            role: if is_admin_email(cfg, identity) {
                Role::Admin
            } else {
                Role::Viewer
            },
            created_at: now,
            disabled: false,
            session_epoch: 0,
        };
        match store.create_user_with_identity(&user, &record(identity, &user, now))? {
            Ok(user) => {
                tracing::info!(user = %user.id, provider, "account created");
                crate::events::record(
                    store,
                    now,
                    crate::events::Event::UserSignedUp {
                        user: user.id,
                        provider: provider.to_string(),
                    },
                );
                return Ok(user);
            }
            Err(LinkRefusal::EmailTaken) => {
                return Err(IdentityError::AccountExists(
                    identity.provider.display_name(),
                ))
            }
            Err(LinkRefusal::InUse) => continue,
        }
    }
    Err(IdentityError::IdentityInUse(
        identity.provider.display_name(),
    ))
}

/// Links `identity` to `user` (who is signed in).
pub fn link(
    store: &Store,
    user: &User,
    identity: &ProviderIdentity,
    now: i64,
) -> Result<(), IdentityError> {
    match store.link_identity(&record(identity, user, now))? {
        Ok(()) => {
            tracing::info!(user = %user.id, provider = identity.provider.as_str(), "identity linked");
            Ok(())
        }
        Err(_) => Err(IdentityError::IdentityInUse(
            identity.provider.display_name(),
        )),
    }
}

/// Unlinks `provider` from `user`, unless it is the only way in.
pub fn unlink(store: &Store, user: &User, provider: &str) -> Result<bool, IdentityError> {
    let identities = store.identities_of(&user.id)?;
    if !identities.iter().any(|i| i.provider == provider) {
        return Ok(false);
    }
    if identities.len() <= 1 {
        return Err(IdentityError::LastIdentity);
    }
    Ok(store.unlink_identity(&user.id, provider)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::identity::ProviderId;

    fn google(sub: &str, email: &str, verified: bool) -> ProviderIdentity {
        ProviderIdentity {
            provider: ProviderId::Google,
            subject: sub.into(),
            email: Some(email.into()),
            email_verified: verified,
            name: Some("Ada".into()),
        }
    }

    #[test]
    fn first_sign_in_creates_then_finds_and_admins_come_from_config() -> Result<(), IdentityError> {
        let store = Store::temporary()?;
        let cfg = AuthConfig {
            admins: vec!["Boss@Example.com".into()],
            ..AuthConfig::default()
        };
        let a = sign_in(&store, &cfg, &google("1", "ada@example.com", true), 5)?;
        assert_eq!(a.role, Role::Viewer);
        assert_eq!(
            sign_in(&store, &cfg, &google("1", "ada@example.com", true), 6)?.id,
            a.id
        );

        let boss = sign_in(&store, &cfg, &google("2", "boss@example.com", true), 7)?;
        assert_eq!(boss.role, Role::Admin);
        // An unverified copy of the admin address makes nobody admin.
        let fake = sign_in(&store, &cfg, &google("3", "boss@example.com", false), 8)?;
        assert_eq!(fake.role, Role::Viewer);

        // A linked identity's e-mail promotes nobody; the account's own verified one does.
        link(&store, &a, &google("5", "boss@example.com", true), 9)?;
        assert_eq!(
            sign_in(&store, &cfg, &google("5", "boss@example.com", true), 10)?.role,
            Role::Viewer
        );
        let listed = store.create_user("Boss2@Example.com", Role::Viewer, 1)?;
        link(
            &store,
            &listed,
            &google("6", "other@example.com", false),
            11,
        )?;
        let cfg2 = AuthConfig {
            admins: vec!["boss2@example.com".into()],
            ..AuthConfig::default()
        };
        assert_eq!(
            sign_in(&store, &cfg2, &google("6", "other@example.com", false), 12)?.role,
            Role::Admin
        );

        // A verified e-mail of an existing account does not open or merge it.
        store.create_user("cli@example.com", Role::Admin, 1)?;
        assert!(matches!(
            sign_in(&store, &cfg, &google("4", "cli@example.com", true), 9),
            Err(IdentityError::AccountExists(_))
        ));
        Ok(())
    }

    #[test]
    fn link_and_unlink() -> Result<(), IdentityError> {
        let store = Store::temporary()?;
        let cfg = AuthConfig::default();
        let a = sign_in(&store, &cfg, &google("1", "a@example.com", true), 1)?;
        let b = sign_in(&store, &cfg, &google("2", "b@example.com", true), 1)?;
        assert!(matches!(
            link(&store, &b, &google("1", "a@example.com", true), 2),
            Err(IdentityError::IdentityInUse(_))
        ));
        let apple = ProviderIdentity {
            provider: ProviderId::Apple,
            ..google("x", "a@example.com", true)
        };
        link(&store, &a, &apple, 2)?;
        assert_eq!(sign_in(&store, &cfg, &apple, 3)?.id, a.id);
        assert!(unlink(&store, &a, "google")?);
        assert!(matches!(
            unlink(&store, &a, "apple"),
            Err(IdentityError::LastIdentity)
        ));
        Ok(())
    }
}
