//! The closed sets of values the views answer, as their own enums: each derives `ToSchema`
//! so the OpenAPI document lists its values (schemathesis then holds answers to them), and
//! each converts from its domain type with an exhaustive match, so a value added there
//! fails to compile here until the contract says it. The wire strings are the domain's
//! (`snake_case`, `lowercase` for platforms); a unit test checks the two agree.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::comments::{CommentState, DeletedBy};
use crate::store::orders::{OrderKind, OrderState};
use crate::store::outbox::Platform;
use crate::store::users::Role;
use crate::stream::gate::Entitlement;

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Role)]
pub enum RoleView {
    Viewer,
    Admin,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        match r {
            Role::Viewer => Self::Viewer,
            Role::Admin => Self::Admin,
        }
    }
}

/// What a playback may play: the preview segments, or the whole film.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Entitlement)]
pub enum EntitlementView {
    Preview,
    Full,
}

impl From<Entitlement> for EntitlementView {
    fn from(e: Entitlement) -> Self {
        match e {
            Entitlement::Preview => Self::Preview,
            Entitlement::Full => Self::Full,
        }
    }
}

/// What an order pays for: the whole film, or a tip that unlocks nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OrderKind)]
pub enum OrderKindView {
    Purchase,
    Tip,
}

impl From<OrderKind> for OrderKindView {
    fn from(k: OrderKind) -> Self {
        match k {
            OrderKind::Purchase => Self::Purchase,
            OrderKind::Tip => Self::Tip,
        }
    }
}

/// Where an order stands: `created` → `approved` → `captured` (→ `refunded`), or
/// `cancelled` / `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OrderState)]
pub enum OrderStateView {
    Created,
    Approved,
    Captured,
    Refunded,
    Cancelled,
    Failed,
}

impl From<OrderState> for OrderStateView {
    fn from(s: OrderState) -> Self {
        match s {
            OrderState::Created => Self::Created,
            OrderState::Approved => Self::Approved,
            OrderState::Captured => Self::Captured,
            OrderState::Refunded => Self::Refunded,
            OrderState::Cancelled => Self::Cancelled,
            OrderState::Failed => Self::Failed,
        }
    }
}

/// A push device's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Platform)]
pub enum PlatformView {
    Ios,
    Android,
}

impl From<Platform> for PlatformView {
    fn from(p: Platform) -> Self {
        match p {
            Platform::Ios => Self::Ios,
            Platform::Android => Self::Android,
        }
    }
}

/// A comment's state: `held` (by the word list, until an admin restores it) and `hidden`
/// are seen only by its author and admins; `deleted` keeps its place with no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = CommentState)]
pub enum CommentStateView {
    Visible,
    Held,
    Hidden,
    Deleted,
}

impl From<CommentState> for CommentStateView {
    fn from(s: CommentState) -> Self {
        match s {
            CommentState::Visible => Self::Visible,
            CommentState::Held => Self::Held,
            CommentState::Hidden => Self::Hidden,
            CommentState::Deleted => Self::Deleted,
        }
    }
}

/// Who turned a comment into a tombstone (moderators see it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DeletedBy)]
pub enum DeletedByView {
    Author,
    Moderator,
}

impl From<DeletedBy> for DeletedByView {
    fn from(d: DeletedBy) -> Self {
        match d {
            DeletedBy::Author => Self::Author,
            DeletedBy::Moderator => Self::Moderator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same<D: Serialize + Copy, V: Serialize + From<D>>(
        all: &[D],
    ) -> Result<(), serde_json::Error> {
        for d in all {
            assert_eq!(serde_json::to_value(d)?, serde_json::to_value(V::from(*d))?);
        }
        Ok(())
    }

    /// The views answer the very strings the domain's types serialize to.
    #[test]
    fn the_views_keep_the_domains_wire_strings() -> Result<(), serde_json::Error> {
        same::<_, RoleView>(&[Role::Viewer, Role::Admin])?;
        same::<_, EntitlementView>(&[Entitlement::Preview, Entitlement::Full])?;
        same::<_, OrderKindView>(&[OrderKind::Purchase, OrderKind::Tip])?;
        same::<_, OrderStateView>(&[
            OrderState::Created,
            OrderState::Approved,
            OrderState::Captured,
            OrderState::Refunded,
            OrderState::Cancelled,
            OrderState::Failed,
        ])?;
        same::<_, PlatformView>(&[Platform::Ios, Platform::Android])?;
        same::<_, DeletedByView>(&[DeletedBy::Author, DeletedBy::Moderator])?;
        same::<_, CommentStateView>(&[
            CommentState::Visible,
            CommentState::Held,
            CommentState::Hidden,
            CommentState::Deleted,
        ])
    }
}
