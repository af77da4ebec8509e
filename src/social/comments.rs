//! What may happen to a comment once posted: its author edits it (the last
//! `KEEP_REVISIONS` earlier texts are kept), its author or a moderator deletes it (a
//! tombstone: the text and its history are erased, the place in the thread stays), a
//! moderator hides or restores it — never a tombstone, whose text is gone. Each change is
//! one atomic store update together with the film's public count.

use crate::events::Event;
use uuid::Uuid;

use super::text::{comment_body, matches_word_list, TextError};
use crate::config::TipBounds;
use crate::store::comments::{Comment, CommentState, DeletedBy, Revision, Support, KEEP_REVISIONS};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    #[error("comment not found")]
    NotFound,
    #[error("only its author can change a comment")]
    NotYours,
    /// A tombstone cannot be hidden or restored: there is nothing left to show.
    #[error("the comment was deleted; its text is gone and it cannot be restored")]
    Deleted(Option<DeletedBy>),
    /// The text is not one a comment may have (`what` names the field).
    #[error("{what}{0}", what = .1)]
    Invalid(TextError, &'static str),
    #[error("tips are not taken in {0:?}")]
    TipCurrency(String),
    #[error("a tip in {} is between {} and {} (minor units)", .0.currency, .0.min, .0.max)]
    TipAmount(TipBounds),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, CommentError>;

/// Who reads or writes: an admin is also a moderator.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub id: Uuid,
    pub admin: bool,
}

/// Whether `reader` sees comment `c` in its film's thread: a tombstone keeps its place,
/// a held comment shows to its author and moderators, a hidden one to moderators.
pub fn visible_to(c: &Comment, reader: &Actor) -> bool {
    match c.state {
        CommentState::Visible | CommentState::Deleted => true,
        CommentState::Held => reader.admin || c.user_id == reader.id,
        CommentState::Hidden => reader.admin,
    }
}

/// A comment's (or a support message's, `what` = `"message: "`) text as stored:
/// normalised and within the limits, or why not.
pub fn checked_text(raw: &str, what: &'static str) -> Result<String> {
    comment_body(raw).map_err(|e| CommentError::Invalid(e, what))
}

/// `user` supports `film` (once; a repeat changes nothing). Returns whether this was
/// the first time, when `support.given` is recorded.
pub fn support(store: &Store, film: &Uuid, user: &Uuid, support: &Support) -> Result<bool> {
    let first = store.add_support(film, user, support)?;
    if first {
        crate::events::record(
            store,
            support.at,
            Event::SupportGiven {
                user: *user,
                film: *film,
            },
        );
    }
    Ok(first)
}

/// Posts `text` (from `checked_text`) as `author`'s comment on `film`, held back for a
/// moderator when it matches `held_words`.
pub fn post(
    store: &Store,
    film: &Uuid,
    author: &Uuid,
    text: String,
    held_words: &[String],
    at: i64,
) -> Result<Comment> {
    let held = matches_word_list(&text, held_words);
    let c = Comment {
        id: crate::store::new_id(),
        film_id: *film,
        user_id: *author,
        body: text,
        state: if held {
            CommentState::Held
        } else {
            CommentState::Visible
        },
        created_at: at,
        edited_at: None,
        history: Vec::new(),
        reports: 0,
        deleted_by: None,
    };
    store.add_comment(&c)?;
    let (user, film, comment) = (*author, *film, c.id);
    crate::events::record(
        store,
        at,
        Event::CommentPosted {
            user,
            film,
            comment,
        },
    );
    if held {
        crate::events::record(
            store,
            at,
            Event::CommentHeld {
                user,
                film,
                comment,
            },
        );
    }
    Ok(c)
}

/// A comment anyone may report: a visible one (`NotFound` otherwise).
pub fn reportable(store: &Store, id: &Uuid) -> Result<Comment> {
    store
        .comment(id)?
        .filter(|c| c.state == CommentState::Visible)
        .ok_or(CommentError::NotFound)
}

/// `reporter` reports `c` (from `reportable`); a second report by the same viewer counts
/// once.
pub fn report(store: &Store, c: &Comment, reporter: &Uuid, at: i64) -> Result<()> {
    if store.report_comment(&c.id, reporter, at)? {
        crate::events::record(
            store,
            at,
            Event::CommentReported {
                user: *reporter,
                film: c.film_id,
                comment: c.id,
            },
        );
    }
    Ok(())
}

/// The configured bounds of a tip in `currency`, or `TipCurrency` when tips are not taken
/// in it.
pub fn tip_bounds<'a>(bounds: &'a [TipBounds], currency: &str) -> Result<&'a TipBounds> {
    bounds
        .iter()
        .find(|b| b.currency == currency)
        .ok_or_else(|| CommentError::TipCurrency(currency.to_string()))
}

/// Why a viewer whose coverage is below `required` (a fraction) may not comment or support
/// yet, in words (the JSON refusal and the viewer app's say the same).
pub fn watch_more_message(coverage: f64, required: f64) -> String {
    if coverage + 1e-9 >= required {
        // Enough segments, too fast: only watching longer opens it.
        format!(
            "comments and support open after watching {:.0}% of the film at a believable pace; keep watching",
            required * 100.0
        )
    } else {
        format!(
            "comments and support open after watching {:.0}% of the film; you have watched {:.0}%",
            required * 100.0,
            (coverage * 100.0).floor()
        )
    }
}

/// Whether a tip of `amount` minor units is within `bounds`.
pub fn check_tip_amount(bounds: &TipBounds, amount: u64) -> Result<()> {
    if (bounds.min..=bounds.max).contains(&amount) {
        Ok(())
    } else {
        Err(CommentError::TipAmount(bounds.clone()))
    }
}

/// Replaces the text of `author`'s comment with `text` (from `checked_text`), keeping the
/// old one in the history; a new text matching `held_words` holds a visible comment back.
/// The same text again changes nothing.
pub fn edit(
    store: &Store,
    id: &Uuid,
    author: &Uuid,
    text: &str,
    held_words: &[String],
    at: i64,
) -> Result<Comment> {
    let held = matches_word_list(text, held_words);
    let c = store
        .update_comment(id, |c| {
            if c.user_id != *author || c.state == CommentState::Deleted || c.body == text {
                return false;
            }
            let old = std::mem::replace(&mut c.body, text.to_string());
            c.history.push(Revision {
                body: old,
                at: c.edited_at.unwrap_or(c.created_at),
            });
            let excess = c.history.len().saturating_sub(KEEP_REVISIONS);
            c.history.drain(..excess);
            c.edited_at = Some(at);
            if held && c.state == CommentState::Visible {
                c.state = CommentState::Held;
            }
            true
        })?
        .ok_or(CommentError::NotFound)?;
    // The author and the tombstone state never change back, so checking after is exact.
    if c.state == CommentState::Deleted {
        return Err(CommentError::NotFound);
    }
    if c.user_id != *author {
        return Err(CommentError::NotYours);
    }
    Ok(c)
}

/// `DELETE /comments/{id}`: by its author, or by an admin (as a moderator).
pub fn delete(store: &Store, id: &Uuid, actor: &Uuid, admin: bool) -> Result<()> {
    let c = store
        .comment(id)?
        .filter(|c| c.state != CommentState::Deleted)
        .ok_or(CommentError::NotFound)?;
    let by = if c.user_id == *actor {
        DeletedBy::Author
    } else if admin {
        DeletedBy::Moderator
    } else {
        return Err(CommentError::NotYours);
    };
    store.update_comment(id, |c| tombstone(c, by))?;
    Ok(())
}

/// An admin's delete: a tombstone; deleting one again changes nothing.
pub fn remove(store: &Store, id: &Uuid) -> Result<()> {
    store
        .update_comment(id, |c| tombstone(c, DeletedBy::Moderator))?
        .ok_or(CommentError::NotFound)?;
    Ok(())
}

/// An admin's hide (`Hidden`) or restore (`Visible`, also releasing a held comment).
pub fn moderate(store: &Store, id: &Uuid, to: CommentState) -> Result<Comment> {
    let c = store
        .update_comment(id, |c| {
            if c.state == CommentState::Deleted || c.state == to {
                return false;
            }
            c.state = to;
            true
        })?
        .ok_or(CommentError::NotFound)?;
    if c.state == CommentState::Deleted && to != CommentState::Deleted {
        return Err(CommentError::Deleted(c.deleted_by));
    }
    Ok(c)
}

/// Erases the text and its history; `false` if it already was a tombstone.
fn tombstone(c: &mut Comment, by: DeletedBy) -> bool {
    if c.state == CommentState::Deleted {
        return false;
    }
    c.body.clear();
    c.history.clear();
    c.state = CommentState::Deleted;
    c.deleted_by = Some(by);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(store: &Store, author: Uuid) -> std::result::Result<Comment, StoreError> {
        let c = Comment {
            id: crate::store::new_id(),
            film_id: crate::store::new_id(),
            user_id: author,
            body: "first".into(),
            state: CommentState::Visible,
            created_at: 1,
            edited_at: None,
            history: Vec::new(),
            reports: 0,
            deleted_by: None,
        };
        store.add_comment(&c)?;
        Ok(c)
    }

    #[test]
    fn history_keeps_the_last_revisions_only() -> Result<()> {
        let store = Store::temporary()?;
        let author = crate::store::new_id();
        let c = posted(&store, author)?;
        for i in 0..25 {
            edit(&store, &c.id, &author, &format!("edit {i}"), &[], 10 + i)?;
        }
        let stored = store.comment(&c.id)?.ok_or(CommentError::NotFound)?;
        assert_eq!(stored.body, "edit 24");
        let kept: Vec<&str> = stored.history.iter().map(|r| r.body.as_str()).collect();
        let want: Vec<String> = (14..24).map(|i| format!("edit {i}")).collect();
        assert_eq!(kept, want);
        Ok(())
    }

    #[test]
    fn a_tombstone_keeps_no_text_and_is_never_restored() -> Result<()> {
        let store = Store::temporary()?;
        let (author, other) = (crate::store::new_id(), crate::store::new_id());
        let c = posted(&store, author)?;
        edit(&store, &c.id, &author, "second", &[], 2)?;
        assert!(matches!(
            delete(&store, &c.id, &other, false),
            Err(CommentError::NotYours)
        ));
        delete(&store, &c.id, &author, false)?;
        let tomb = store.comment(&c.id)?.ok_or(CommentError::NotFound)?;
        assert_eq!(
            (tomb.body.as_str(), tomb.history.len(), tomb.state),
            ("", 0, CommentState::Deleted)
        );
        assert!(matches!(
            moderate(&store, &c.id, CommentState::Visible),
            Err(CommentError::Deleted(Some(DeletedBy::Author)))
        ));
        assert!(matches!(
            moderate(&store, &c.id, CommentState::Hidden),
            Err(CommentError::Deleted(_))
        ));
        assert!(matches!(
            edit(&store, &c.id, &author, "back", &[], 3),
            Err(CommentError::NotFound)
        ));
        remove(&store, &c.id)?;
        assert_eq!(
            store.comment(&c.id)?.and_then(|c| c.deleted_by),
            Some(DeletedBy::Author),
            "deleting a tombstone again changes nothing"
        );
        Ok(())
    }

    #[test]
    fn the_thread_shows_each_reader_what_is_theirs_to_see() {
        let author = crate::store::new_id();
        let c = |state| Comment {
            id: crate::store::new_id(),
            film_id: crate::store::new_id(),
            user_id: author,
            body: "b".into(),
            state,
            created_at: 1,
            edited_at: None,
            history: Vec::new(),
            reports: 0,
            deleted_by: None,
        };
        let viewer = Actor {
            id: crate::store::new_id(),
            admin: false,
        };
        let me = Actor {
            id: author,
            admin: false,
        };
        let moderator = Actor {
            id: crate::store::new_id(),
            admin: true,
        };
        let sees = |state, who: &Actor| visible_to(&c(state), who);
        assert!(sees(CommentState::Visible, &viewer) && sees(CommentState::Deleted, &viewer));
        assert!(!sees(CommentState::Held, &viewer) && sees(CommentState::Held, &me));
        assert!(sees(CommentState::Held, &moderator));
        assert!(!sees(CommentState::Hidden, &me) && sees(CommentState::Hidden, &moderator));
    }

    #[test]
    fn a_post_matching_the_hold_list_waits_for_a_moderator() -> Result<()> {
        let store = Store::temporary()?;
        let (film, author) = (crate::store::new_id(), crate::store::new_id());
        let words = ["spam".to_string()];
        let held = post(
            &store,
            &film,
            &author,
            checked_text("buy SPAM now", "")?,
            &words,
            5,
        )?;
        assert_eq!(held.state, CommentState::Held);
        let fine = post(
            &store,
            &film,
            &author,
            checked_text("lovely", "")?,
            &words,
            6,
        )?;
        assert_eq!(fine.state, CommentState::Visible);
        assert!(matches!(
            checked_text("   ", "message: "),
            Err(CommentError::Invalid(TextError::Empty, "message: "))
        ));
        Ok(())
    }

    #[test]
    fn tips_are_taken_within_their_currencys_bounds() {
        let bounds = [TipBounds {
            currency: "USD".into(),
            min: 100,
            max: 10_000,
        }];
        assert!(matches!(
            tip_bounds(&bounds, "EUR"),
            Err(CommentError::TipCurrency(_))
        ));
        let usd = tip_bounds(&bounds, "USD").ok();
        assert!(usd.is_some_and(|b| check_tip_amount(b, 100).is_ok()));
        assert!(usd.is_some_and(|b| check_tip_amount(b, 10_000).is_ok()));
        assert!(
            usd.is_some_and(|b| matches!(check_tip_amount(b, 99), Err(CommentError::TipAmount(_))))
        );
        assert!(usd.is_some_and(|b| check_tip_amount(b, 10_001).is_err()));
    }
}
