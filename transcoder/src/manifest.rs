//! The package manifest: everything needed to render playlists and describe the film,
//! written as `manifest.json` beside the segments.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Context, TranscodeError};
use crate::ladder::RateControl;
use crate::probe::MediaInfo;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Seconds: the sum of `segments`.
    pub duration: f64,
    /// The segment length the package was cut to (seconds).
    pub segment_target: f64,
    /// How the rungs were encoded: `"abr"` (each at its `video_bitrate`) or `"crf"` (each
    /// at its `crf`, capped by its `video_bitrate`). Packages made before the choice
    /// existed were `abr`.
    #[serde(default)]
    pub rate_control: RateControl,
    /// Duration of every segment in seconds; identical for every rendition.
    pub segments: Vec<f64>,
    pub has_audio: bool,
    pub poster: String,
    /// Highest first.
    pub renditions: Vec<Rendition>,
    pub source: MediaInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    /// The rung (`"720"`); also the directory of its segments.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The rung's ladder bitrate (bits/s): the average aimed at under `abr`, the ceiling
    /// (`maxrate` 1.1×, `bufsize` 2×) under `crf`.
    pub video_bitrate: u32,
    /// Peak segment bitrate of the encrypted files (bits/s): HLS `BANDWIDTH`.
    pub bandwidth: u64,
    /// Mean bitrate (bits/s): HLS `AVERAGE-BANDWIDTH`.
    pub average_bandwidth: u64,
    /// RFC 6381 codecs, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    pub frame_rate: Option<f64>,
    /// The x264 quality target (CRF) the rung was encoded at; absent under `abr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<f32>,
    /// Under `per-title`: what the tuning measured on the film's sampled seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<RungQuality>,
}

/// Picture quality measured by per-title tuning (`package::tune`) on a rung's sampled
/// seconds: SSIM of the decoded encode against the rung's own scaled picture (ffmpeg's
/// `ssim` filter, 1.0 = identical), and the bitrate the encode took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungQuality {
    /// Seconds of the film sampled.
    pub sample_seconds: f64,
    /// At the ladder bitrate (`abr`): the picture the tuning matched.
    pub abr: QualityPoint,
    /// At the probed quality targets the choice was interpolated from.
    pub probes: Vec<QualityPoint>,
    /// At the chosen CRF (`Rendition::crf`), measured, not predicted.
    pub chosen: QualityPoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityPoint {
    /// The CRF encoded at; absent for the `abr` point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<f32>,
    pub ssim: f64,
    /// Video bitrate of the sampled encode (kbit/s).
    pub kbps: f64,
}

impl Manifest {
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.name == name)
    }

    pub fn load(dir: &Path) -> Result<Self, TranscodeError> {
        let path = dir.join(MANIFEST_FILE);
        let text =
            std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text).map_err(|e| TranscodeError::Io {
            context: format!("parsing {}", path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// The manifest in `text` (a `manifest.json`'s contents). Public for the fuzz targets.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}
