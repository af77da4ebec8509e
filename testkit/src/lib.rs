//! Helpers shared by the integration tests of both crates: `cinegate`'s `tests/server` and
//! `tests/cli_package.rs`, and the transcoder's `transcoder/tests/package.rs`.
//!
//! A crate of its own, not a module pulled into each test binary with `#[path]`: a module
//! compiled into three binaries is dead code in whichever uses less of it (which is why the
//! old `transcoder/tests/common` needed `#![allow(dead_code)]`); a library is compiled once
//! and its `pub` items are its interface. It is a dev-dependency only and is never published.
//!
//! It depends on neither `cinegate` nor `transcoder`, so it can judge them: everything here
//! uses independent tools — the `ffmpeg`/`ffprobe`/`openssl` programs, `hmac`/`sha2` for the
//! key derivation written from docs/PACKAGE-CONTRACT.md, `m3u8-rs` for the playlists.
//!
//! - [`process`]: running a program and failing with its output.
//! - [`sources`]: media generated with the ffmpeg CLI, cached under the build's target/tmp.
//! - [`probe`]: what ffprobe says about a file or URL.
//! - [`decode`]: decoding with the ffmpeg CLI, as a player would.
//! - [`keys`], [`ts`]: segment keys and IVs from the contract; MPEG-TS section checks.
//! - [`package`]: judging a package directory (segments, manifest, exported playlists).

// A helper that cannot do its job fails the test that called it, with a message: that is
// how test code reports, so the workspace's unwrap/expect denial (for the server) is lifted
// here as it is in every test crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod decode;
pub mod dir;
pub mod keys;
pub mod package;
pub mod probe;
pub mod process;
pub mod sources;
pub mod ts;
