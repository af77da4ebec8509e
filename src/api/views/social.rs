//! Comments, support and their moderation.

use serde::Serialize;
use uuid::Uuid;

use super::enums::CommentStateView;
use super::orders::CheckoutView;
use crate::store::comments::{Comment, CommentState, DeletedBy, Revision, SocialCounts, Support};
use crate::store::orders::{Order, OrderState};

/// A comment in a thread, as viewers see it: a deleted one keeps its place with no text,
/// and earlier texts are for moderators only.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "5c7e9a1b-3d2f-4e6a-8b0c-d1e2f3a4b5c6",
    "film_id": "7b0e4c1a-5d2f-4f7e-9a61-3c8d2e9b4f10",
    "user_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    "author": "Min-jun",
    "body": "The last shot stayed with me all day.",
    "state": "visible",
    "created_at": 1796599000,
    "edited_at": null,
    "mine": true
}))]
pub struct CommentView<'a> {
    #[schema(value_type = String)]
    pub id: Uuid,
    #[schema(value_type = String)]
    pub film_id: Uuid,
    #[schema(value_type = String)]
    pub user_id: Uuid,
    /// `null` when the author's account was deleted.
    pub author: Option<String>,
    pub body: &'a str,
    pub state: CommentStateView,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    /// Whether the reader wrote it.
    pub mine: bool,
}

impl<'a> CommentView<'a> {
    /// `author` is the author's display name; `reader` who asks.
    pub fn new(c: &'a Comment, author: Option<String>, reader: &Uuid) -> Self {
        Self {
            id: c.id,
            film_id: c.film_id,
            user_id: c.user_id,
            author,
            body: if c.state == CommentState::Deleted {
                ""
            } else {
                &c.body
            },
            state: c.state.into(),
            created_at: c.created_at,
            edited_at: c.edited_at,
            mine: &c.user_id == reader,
        }
    }
}

/// `GET /films/{id}/comments`: a page, newest first, and the cursor of the next.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CommentPage<'a> {
    pub comments: Vec<CommentView<'a>>,
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<Uuid>,
}

/// `POST /comments/{id}/report`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Reported {
    pub reported: bool,
}

/// `GET /films/{id}/social`: public counts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SocialCountsView {
    /// Visible comments (not held, hidden or deleted).
    pub comments: u64,
    pub supporters: u64,
}

impl From<SocialCounts> for SocialCountsView {
    fn from(c: SocialCounts) -> Self {
        Self {
            comments: c.comments,
            supporters: c.supporters,
        }
    }
}

/// A viewer's support of a film.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SupportView {
    pub at: i64,
    pub message: Option<String>,
}

impl From<Support> for SupportView {
    fn from(s: Support) -> Self {
        Self {
            at: s.at,
            message: s.message,
        }
    }
}

/// `POST /films/{id}/support`: the support recorded (the first one, on a repeat) and,
/// with a tip, where to send the payer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SupportAnswer<'a> {
    pub supported: bool,
    pub support: Option<SupportView>,
    pub tip: Option<CheckoutView<'a>>,
}

/// A comment as moderators see it: with its reports and its last earlier texts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminCommentView {
    #[schema(value_type = String)]
    pub id: Uuid,
    #[schema(value_type = String)]
    pub film_id: Uuid,
    #[schema(value_type = String)]
    pub user_id: Uuid,
    pub body: String,
    #[schema(value_type = super::enums::CommentStateView)]
    pub state: CommentState,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    /// The last 10 earlier texts, oldest first (erased with a delete).
    pub history: Vec<RevisionView>,
    pub reports: u32,
    /// Who deleted it, on a deleted comment only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::enums::DeletedByView>)]
    pub deleted_by: Option<DeletedBy>,
}

impl From<Comment> for AdminCommentView {
    fn from(c: Comment) -> Self {
        Self {
            id: c.id,
            film_id: c.film_id,
            user_id: c.user_id,
            body: c.body,
            state: c.state,
            created_at: c.created_at,
            edited_at: c.edited_at,
            history: c.history.iter().map(RevisionView::from).collect(),
            reports: c.reports,
            deleted_by: c.deleted_by,
        }
    }
}

/// An earlier text of a comment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevisionView {
    pub body: String,
    pub at: i64,
}

impl From<&Revision> for RevisionView {
    fn from(r: &Revision) -> Self {
        Self {
            body: r.body.clone(),
            at: r.at,
        }
    }
}

/// `GET /admin/comments/queue`: reported comments (most reported first) and held ones.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ModerationQueue {
    pub queue: Vec<AdminCommentView>,
}

/// One supporter of a film.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SupporterView {
    #[schema(value_type = String)]
    pub user_id: Uuid,
    pub at: i64,
    pub message: Option<String>,
}

impl SupporterView {
    pub fn new(user_id: Uuid, s: Support) -> Self {
        Self {
            user_id,
            at: s.at,
            message: s.message,
        }
    }
}

/// One tip to a film, in whatever state its order is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TipView {
    #[schema(value_type = String)]
    pub order_id: Uuid,
    #[schema(value_type = String)]
    pub user_id: Uuid,
    pub provider: String,
    pub amount: u64,
    pub currency: String,
    #[schema(value_type = super::enums::OrderStateView)]
    pub state: OrderState,
    pub at: i64,
}

impl From<Order> for TipView {
    fn from(o: Order) -> Self {
        Self {
            order_id: o.id,
            user_id: o.user_id,
            provider: o.provider,
            amount: o.amount,
            currency: o.currency,
            state: o.state,
            at: o.created_at,
        }
    }
}

/// `GET /admin/films/{id}/supporters`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Supporters {
    pub supporters: Vec<SupporterView>,
    pub tips: Vec<TipView>,
}
