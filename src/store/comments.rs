//! Comments on films, their reports, supports ("support the creator", one per viewer and
//! film) and the social events recorded for analytics.
//!
//! Comment ids are UUIDv7, so `film ‖ comment id` orders a film's comments by time; a page
//! newest-first is a reverse range scan that starts below the cursor (the last id seen),
//! which stays stable while new comments arrive above it.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use uuid::Uuid;

use super::{decode, encode, get, pair, put, Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommentState {
    Visible,
    /// Matched the moderation word list: only its author and admins see it until an admin
    /// restores it.
    Held,
    /// Hidden by an admin.
    Hidden,
    /// Deleted by its author or an admin: the text is gone, the place in the thread stays.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub body: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: Uuid,
    pub film_id: Uuid,
    pub user_id: Uuid,
    pub body: String,
    pub state: CommentState,
    pub created_at: i64,
    #[serde(default)]
    pub edited_at: Option<i64>,
    /// Earlier texts, oldest first (edit history).
    #[serde(default)]
    pub history: Vec<Revision>,
    #[serde(default)]
    pub reports: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Support {
    pub at: i64,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocialEvent {
    pub kind: String,
    pub user_id: Uuid,
    pub film_id: Uuid,
    #[serde(default)]
    pub comment_id: Option<Uuid>,
    pub at: i64,
}

impl Store {
    /// Stores a new comment and its index entry together.
    pub fn add_comment(&self, c: &Comment) -> Result<()> {
        (&self.comments, &self.comments_by_film).transaction(|(comments, by_film)| {
            comments.insert(c.id.as_bytes().as_slice(), encode(c))?;
            by_film.insert(pair(&c.film_id, &c.id).as_slice(), &[])?;
            Ok(())
        })?;
        Ok(())
    }

    pub fn comment(&self, id: &Uuid) -> Result<Option<Comment>> {
        get(&self.comments, "comments", id.as_bytes())
    }

    /// Applies `change` atomically; returns the stored comment.
    pub fn update_comment(
        &self,
        id: &Uuid,
        change: impl FnMut(&mut Comment) -> bool,
    ) -> Result<Option<Comment>> {
        super::update(&self.comments, "comments", id.as_bytes(), change)
    }

    /// Up to `limit` comments of `film`, newest first, strictly older than `before`, that
    /// `keep` accepts.
    pub fn comments_page(
        &self,
        film: &Uuid,
        before: Option<&Uuid>,
        limit: usize,
        keep: impl Fn(&Comment) -> bool,
    ) -> Result<Vec<Comment>> {
        let start = pair(film, &Uuid::nil());
        let end = match before {
            Some(b) => pair(film, b),
            None => pair(film, &Uuid::max()),
        };
        let mut out = Vec::new();
        for key in self.comments_by_film.range(start..end).keys().rev() {
            let key = key?;
            let id = Uuid::from_slice(&key[16..]).unwrap_or_default();
            if let Some(c) = self.comment(&id)? {
                if keep(&c) {
                    out.push(c);
                    if out.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Comments counted publicly: visible ones.
    pub fn visible_comment_count(&self, film: &Uuid) -> Result<usize> {
        let mut n = 0;
        for key in self.comments_by_film.scan_prefix(film.as_bytes()).keys() {
            let key = key?;
            let id = Uuid::from_slice(&key[16..]).unwrap_or_default();
            if self
                .comment(&id)?
                .is_some_and(|c| c.state == CommentState::Visible)
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Records `user`'s report of a comment once; `false` if they had reported it already.
    pub fn report_comment(&self, comment: &Uuid, user: &Uuid, now: i64) -> Result<bool> {
        let first = self
            .comment_reports
            .compare_and_swap(
                pair(comment, user),
                None as Option<&[u8]>,
                Some(now.to_be_bytes().as_slice()),
            )?
            .is_ok();
        if first {
            self.update_comment(comment, |c| {
                c.reports += 1;
                true
            })?;
        }
        Ok(first)
    }

    /// The moderation queue: comments with a report or held by the word list, most
    /// reported first.
    pub fn reported_comments(&self) -> Result<Vec<Comment>> {
        let mut out: Vec<Comment> = super::scan::<Comment>(&self.comments, "comments", &[])?
            .into_iter()
            .filter(|c| {
                (c.reports > 0 && c.state != CommentState::Deleted) || c.state == CommentState::Held
            })
            .collect();
        out.sort_by(|a, b| b.reports.cmp(&a.reports).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Records a support once per viewer and film; `false` if it existed (idempotent).
    pub fn add_support(&self, film: &Uuid, user: &Uuid, support: &Support) -> Result<bool> {
        Ok(self
            .supports
            .compare_and_swap(
                pair(film, user),
                None as Option<&[u8]>,
                Some(encode(support)),
            )?
            .is_ok())
    }

    pub fn support(&self, film: &Uuid, user: &Uuid) -> Result<Option<Support>> {
        get(&self.supports, "supports", &pair(film, user))
    }

    /// A film's supporters: (user, support), oldest first.
    pub fn supports_of(&self, film: &Uuid) -> Result<Vec<(Uuid, Support)>> {
        self.supports
            .scan_prefix(film.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    Uuid::from_slice(&k[16..]).unwrap_or_default(),
                    decode("supports", &v)?,
                ))
            })
            .collect()
    }

    pub fn record_event(&self, event: &SocialEvent) -> Result<()> {
        put(&self.events, super::new_id().as_bytes(), event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(film: Uuid, user: Uuid, body: &str) -> Comment {
        Comment {
            id: crate::store::new_id(),
            film_id: film,
            user_id: user,
            body: body.into(),
            state: CommentState::Visible,
            created_at: 1,
            edited_at: None,
            history: Vec::new(),
            reports: 0,
        }
    }

    #[test]
    fn pages_are_newest_first_and_stable_under_inserts() -> Result<()> {
        let store = Store::temporary()?;
        let (film, other, user) = (
            crate::store::new_id(),
            crate::store::new_id(),
            crate::store::new_id(),
        );
        let mut made = Vec::new();
        for i in 0..5 {
            let c = comment(film, user, &format!("c{i}"));
            store.add_comment(&c)?;
            made.push(c.id);
        }
        store.add_comment(&comment(other, user, "elsewhere"))?;
        let first = store.comments_page(&film, None, 2, |_| true)?;
        assert_eq!(
            first.iter().map(|c| c.body.as_str()).collect::<Vec<_>>(),
            ["c4", "c3"]
        );
        // A new comment arrives; the next page continues below the cursor regardless.
        store.add_comment(&comment(film, user, "late"))?;
        let second = store.comments_page(&film, Some(&first[1].id), 2, |_| true)?;
        assert_eq!(
            second.iter().map(|c| c.body.as_str()).collect::<Vec<_>>(),
            ["c2", "c1"]
        );
        let last = store.comments_page(&film, Some(&second[1].id), 2, |_| true)?;
        assert_eq!(
            last.iter().map(|c| c.body.as_str()).collect::<Vec<_>>(),
            ["c0"]
        );
        assert_eq!(store.visible_comment_count(&film)?, 6);
        Ok(())
    }

    #[test]
    fn reports_and_supports_count_once_per_user() -> Result<()> {
        let store = Store::temporary()?;
        let (film, a, b) = (
            crate::store::new_id(),
            crate::store::new_id(),
            crate::store::new_id(),
        );
        let c = comment(film, a, "hello");
        store.add_comment(&c)?;
        assert!(store.report_comment(&c.id, &b, 1)?);
        assert!(!store.report_comment(&c.id, &b, 2)?);
        assert_eq!(store.comment(&c.id)?.map(|c| c.reports), Some(1));
        assert_eq!(store.reported_comments()?.len(), 1);

        let s = Support {
            at: 1,
            message: None,
        };
        assert!(store.add_support(&film, &b, &s)?);
        assert!(!store.add_support(&film, &b, &s)?);
        assert_eq!(store.supports_of(&film)?.len(), 1);
        Ok(())
    }
}
