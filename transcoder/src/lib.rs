//! cinegate's packager. It turns a source film into an adaptive ladder of AES-128
//! encrypted HLS segments with a manifest and a poster, using FFmpeg's libraries
//! in-process. It knows nothing of HTTP, users or storage beyond the directory it writes.

mod error;
mod export;
mod ladder;
mod manifest;
mod package;
pub mod playlist;
mod probe;
mod secret;

pub use error::TranscodeError;
pub use export::export_keys;
pub use ladder::{parse_bitrate, plan, CrfTargets, RateControl, Rung, Target, DEFAULT_CRF};
pub use manifest::{Manifest, Rendition, MANIFEST_FILE};
pub use package::{package, PackageOptions, PackageStats, Packaged, POSTER_FILE, X264_PRESETS};
pub use probe::{probe, MediaInfo, StreamInfo, StreamKind};
pub use secret::{encrypt_segment, segment_iv, segment_iv_hex, segment_key, FilmSecret};

/// The encoders packaging needs (libx264 by name, AAC by id, as the packager opens them)
/// that the linked FFmpeg lacks; empty when both are there. For `cinegate doctor`: a
/// distribution's FFmpeg built without libx264 fails every job at its first frame.
pub fn missing_encoders() -> Vec<&'static str> {
    init();
    let mut missing = Vec::new();
    if ffmpeg_next::encoder::find_by_name("libx264").is_none() {
        missing.push("libx264");
    }
    if ffmpeg_next::encoder::find(ffmpeg_next::codec::Id::AAC).is_none() {
        missing.push("aac");
    }
    missing
}

/// Initialises FFmpeg once per process and silences its own stderr logging (a damaged
/// source can print thousands of lines); callers report failures through `TranscodeError`.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if ffmpeg_next::init().is_err() {
            tracing::error!("FFmpeg failed to initialise");
        }
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}
