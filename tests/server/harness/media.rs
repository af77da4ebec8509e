//! The server tests' own sources, generated with the ffmpeg CLI and cached through
//! `testkit` (in the same cache as the transcoder's tests' sources, which the server tests
//! use too: `sources().audio_only()`, `.zero_duration()`, `.truncated_mp4()`).

use std::path::PathBuf;

use testkit::sources::{lavfi_av, with, Sources, X264};

/// The generated sources, cached under this build's target/tmp.
pub fn sources() -> Sources {
    Sources::new(env!("CARGO_TARGET_TMPDIR"))
}

/// PATTERN at SIZE, 25 fps, with a FREQ Hz tone, SECS long: H.264 with a keyframe every
/// 2 s and AAC, mp4.
fn av_mp4(name: &str, pattern: &str, size: &str, secs: u32, freq: u32) -> PathBuf {
    let inputs = lavfi_av(pattern, size, 25, secs, freq, 48000);
    let args = with(
        with(inputs, X264),
        &["-g", "50", "-c:a", "aac", "-b:a", "64k"],
    );
    sources().gen(name, "mp4", args)
}

/// The main film: 66 s, 640x360, 25 fps, 440 Hz tone. 6 s segments → N = 11, P = 2.
pub const MAIN_SECONDS: f64 = 66.0;
pub const FPS: f64 = 25.0;

pub fn src_main() -> PathBuf {
    av_mp4("main-66s-640x360", "testsrc2", "640x360", 66, 440)
}

/// A second, different film: 12 s, 640x360, another pattern and tone. N = 2, P = 1.
pub fn src_other() -> PathBuf {
    av_mp4("other-12s-640x360", "testsrc", "640x360", 12, 880)
}
