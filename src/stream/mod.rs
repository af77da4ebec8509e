//! Playback: tokens in the path, the preview gate, rendered playlists, and progress
//! counted from the segment and key requests the server sees.

pub mod access;
pub mod gate;
pub mod playlists;
pub mod progress;
pub mod sharing;
pub mod token;
