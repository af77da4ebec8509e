//! Supporting a film: the support itself (once per viewer and film) and an optional tip
//! through a payment provider. The tip is checked whole — its currency's bounds, the
//! provider, the amount, the open-order cap — before anything is recorded, so a refused
//! tip leaves no support behind. The JSON API and the viewer app both come here.

use uuid::Uuid;

use super::comments::{self, CommentError};
use crate::config::TipBounds;
use crate::payments::orders::{OrderError, OrderService, Started};
use crate::store::comments::Support;
use crate::store::films::Film;
use crate::store::Store;

/// A tip as asked for.
pub struct TipAsk {
    pub provider: String,
    pub currency: String,
    /// Minor units; `None` when what was typed is not an amount of `currency` (refused as
    /// outside its bounds, at the point an amount is checked).
    pub amount: Option<u64>,
}

/// What a support call did.
pub struct Supported {
    /// This was the viewer's first support of the film.
    pub first: bool,
    /// The viewer's support as recorded (the first one, on a repeat).
    pub support: Option<Support>,
    /// The tip's checkout, when one was asked for.
    pub tip: Option<Started>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error(transparent)]
    Comment(#[from] CommentError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// `user` supports `film` with an optional message (raw, checked here) and tip.
#[allow(clippy::too_many_arguments)]
pub async fn support(
    store: &Store,
    orders: &OrderService<'_>,
    tips: &[TipBounds],
    film: &Film,
    user: &Uuid,
    message: Option<&str>,
    tip: Option<TipAsk>,
    now: i64,
) -> Result<Supported, SupportError> {
    let message = match message {
        Some(m) if !m.trim().is_empty() => Some(comments::checked_text(m, "message: ")?),
        _ => None,
    };
    let tip = match tip {
        Some(t) => {
            let bounds = comments::tip_bounds(tips, &t.currency)?;
            orders.tip_gateway(&t.provider, &t.currency)?;
            let amount = t
                .amount
                .ok_or_else(|| CommentError::TipAmount(bounds.clone()))?;
            comments::check_tip_amount(bounds, amount)?;
            orders.tip_room(user, film, &t.provider, amount, &t.currency)?;
            Some((t.provider, amount, t.currency))
        }
        None => None,
    };
    let support = Support { at: now, message };
    let first = comments::support(store, &film.id, user, &support)?;
    let support = if first {
        Some(support)
    } else {
        store.support(&film.id, user)?
    };
    let tip = match tip {
        Some((provider, amount, currency)) => {
            Some(orders.tip(user, film, &provider, amount, &currency).await?)
        }
        None => None,
    };
    Ok(Supported {
        first,
        support,
        tip,
    })
}
