//! Comments and support: what a viewer may write and when (the 90% bar), moderation rules.

pub mod comments;
pub mod support;
pub mod text;
