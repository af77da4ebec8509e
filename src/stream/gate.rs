//! The preview gate: who may open which segment of which film. Pure functions; the
//! handlers call them on every playlist, segment and key request.

use uuid::Uuid;

use crate::store::users::User;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entitlement {
    Preview,
    Full,
}

/// `P = ceil(fraction × N)`, at least one segment, at most all.
pub fn preview_segments(total: usize, fraction: f64) -> usize {
    if total == 0 {
        return 0;
    }
    ((fraction * total as f64 - 1e-9).ceil() as usize).clamp(1, total)
}

/// Deny by default: full access only with a recorded entitlement (an admin's grant or a
/// captured purchase).
pub fn entitlement(store: &Store, user: &Uuid, film: &Uuid) -> Result<Entitlement, StoreError> {
    if store.has_grant(film, user)? || store.purchase(film, user)?.is_some() {
        return Ok(Entitlement::Full);
    }
    Ok(Entitlement::Preview)
}

/// `entitlement` for a viewer's playback: administrators are entitled to every film (the
/// console previews what it sells); everyone else as `entitlement` decides.
pub fn playback_entitlement(
    store: &Store,
    user: &User,
    film: &Uuid,
) -> Result<Entitlement, StoreError> {
    if user.is_admin() {
        return Ok(Entitlement::Full);
    }
    entitlement(store, &user.id, film)
}

/// How many segments this viewer may receive.
pub fn allowed_segments(entitlement: Entitlement, total: usize, fraction: f64) -> usize {
    match entitlement {
        Entitlement::Full => total,
        Entitlement::Preview => preview_segments(total, fraction),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_is_the_ceiling_of_ten_percent() {
        assert_eq!(preview_segments(10, 0.10), 1);
        assert_eq!(preview_segments(11, 0.10), 2);
        assert_eq!(preview_segments(100, 0.10), 10);
        assert_eq!(preview_segments(1, 0.10), 1);
        assert_eq!(preview_segments(0, 0.10), 0);
        assert_eq!(preview_segments(3, 0.10), 1);
    }

    #[test]
    fn buyers_get_everything() {
        assert_eq!(allowed_segments(Entitlement::Full, 37, 0.1), 37);
        assert_eq!(allowed_segments(Entitlement::Preview, 37, 0.1), 4);
    }
}
