//! What may happen to a comment once posted: its author edits it (the last
//! `KEEP_REVISIONS` earlier texts are kept), its author or a moderator deletes it (a
//! tombstone: the text and its history are erased, the place in the thread stays), a
//! moderator hides or restores it — never a tombstone, whose text is gone. Each change is
//! one atomic store update together with the film's public count.

use uuid::Uuid;

use crate::store::comments::{Comment, CommentState, DeletedBy, Revision, KEEP_REVISIONS};
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, CommentError>;

/// Replaces the text of `author`'s comment with `text` (already checked), keeping the old
/// one in the history; `held` (the new text matches the hold list) holds a visible comment
/// back. The same text again changes nothing.
pub fn edit(
    store: &Store,
    id: &Uuid,
    author: &Uuid,
    text: &str,
    held: bool,
    at: i64,
) -> Result<Comment> {
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
            edit(&store, &c.id, &author, &format!("edit {i}"), false, 10 + i)?;
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
        edit(&store, &c.id, &author, "second", false, 2)?;
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
            edit(&store, &c.id, &author, "back", false, 3),
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
}
