//! Judging a package directory: every segment of every rendition decrypted with the keys
//! of [`crate::keys`] and probed ([`judge`]), then held against what the source says the
//! package must be ([`checks`]), and the playlists `--export-keys` writes ([`exported`]).

pub mod checks;
pub mod exported;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::keys::{derive_iv, derive_key, openssl_decrypt};
use crate::probe::{ffprobe_json, num, video_packets};
use crate::process::run_ok;
use crate::ts::first_packet_psi_crc_ok;

/// The default target segment length of the contract.
pub const SEGMENT: f64 = 6.0;

#[derive(Debug, Clone)]
pub struct SegmentReport {
    pub file: PathBuf,
    pub plain: PathBuf,
    pub enc_size: u64,
    pub psi_crc_ok: Option<bool>,
    pub video_codec: String,
    pub width: u32,
    pub height: u32,
    pub sar: String,
    pub video_packets: usize,
    pub video_frames_decoded: usize,
    pub audio: Option<(String, u32, u32)>,
    pub audio_streams: usize,
    pub probe_stderr: String,
    pub first_packet_key: bool,
    pub first_packet_is_earliest: bool,
    pub first_frame_key: bool,
    /// Earliest video pts in the segment.
    pub start: f64,
    /// Latest video pts in the segment.
    pub last_pts: f64,
    /// Latest pts plus that packet's duration (or the median frame step).
    pub end: f64,
}

#[derive(Debug)]
pub struct RenditionReport {
    pub name: String,
    pub segments: Vec<SegmentReport>,
}

impl RenditionReport {
    /// Measured duration of every segment: up to the next segment's first picture (so a
    /// variable frame rate's long last frame counts), the last one up to its end.
    pub fn spans(&self) -> Vec<f64> {
        let s = &self.segments;
        (0..s.len())
            .map(|i| match s.get(i + 1) {
                Some(next) => next.start - s[i].start,
                None => s[i].end - s[i].start,
            })
            .collect()
    }
}

#[derive(Debug)]
pub struct Judged {
    pub manifest: Value,
    pub renditions: Vec<RenditionReport>,
    pub work: tempfile::TempDir,
}

impl Judged {
    pub fn manifest_segments(&self) -> Vec<f64> {
        self.manifest["segments"]
            .as_array()
            .expect("manifest.segments is an array")
            .iter()
            .map(|v| num(v).expect("segment duration is a number"))
            .collect()
    }

    pub fn rendition_names(&self) -> Vec<String> {
        self.renditions.iter().map(|r| r.name.clone()).collect()
    }

    /// Measured total video duration of the first rendition.
    pub fn measured_total(&self) -> f64 {
        self.renditions[0].spans().iter().sum()
    }
}

pub fn read_manifest(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("manifest.json")).expect("manifest.json exists");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

fn ts_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("rendition dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ts"))
        .collect();
    names.sort();
    names
}

/// Decrypts every segment of every rendition listed in `manifest.json` with the key and IV
/// derived from `secret`, and probes the plaintext. Panics if a segment does not decrypt.
pub fn judge(out: &Path, secret: &[u8]) -> Judged {
    let manifest = read_manifest(out);
    let work = tempfile::tempdir().expect("tempdir");
    let mut renditions = Vec::new();
    for r in manifest["renditions"]
        .as_array()
        .expect("manifest.renditions is an array")
    {
        let name = r["name"].as_str().expect("rendition name").to_string();
        let dir = out.join(&name);
        let files = ts_files(&dir);
        let expected: Vec<String> = (0..files.len()).map(|i| format!("{i:05}.ts")).collect();
        assert_eq!(
            files, expected,
            "segment files of rendition {name} are not 00000.ts, 00001.ts, … without gaps"
        );
        std::fs::create_dir_all(work.path().join(&name)).unwrap();
        let mut segments = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let file = dir.join(f);
            let plain = work.path().join(&name).join(f);
            let key = derive_key(secret, i as u64);
            let iv = derive_iv(i as u64);
            if let Err(e) = openssl_decrypt(&file, &key, &iv, &plain) {
                panic!(
                    "{name}/{f} does not decrypt with key_{i}={} IV_{i}={}: openssl: {e}",
                    hex::encode(key),
                    hex::encode(iv)
                );
            }
            segments.push(probe_segment(&file, &plain));
        }
        renditions.push(RenditionReport { name, segments });
    }
    Judged {
        manifest,
        renditions,
        work,
    }
}

fn probe_segment(file: &Path, plain: &Path) -> SegmentReport {
    let bytes = std::fs::read(plain).unwrap();
    let psi_crc_ok = first_packet_psi_crc_ok(&bytes);
    let enc_size = std::fs::metadata(file).unwrap().len();

    // Streams, with every packet decoded (-count_frames).
    let o = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-of", "json", "-count_frames", "-count_packets"])
            .args(["-show_entries", "stream=codec_type,codec_name,width,height,sample_aspect_ratio,sample_rate,channels,nb_read_frames,nb_read_packets"])
            .arg(plain),
    );
    let probe_stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: Value = serde_json::from_slice(&o.stdout).expect("ffprobe json");
    let ss = v["streams"].as_array().cloned().unwrap_or_default();
    let video = ss
        .iter()
        .find(|s| s["codec_type"].as_str() == Some("video"))
        .unwrap_or_else(|| panic!("{} has no video stream", file.display()))
        .clone();
    let audios: Vec<&Value> = ss
        .iter()
        .filter(|s| s["codec_type"].as_str() == Some("audio"))
        .collect();
    let audio = audios.first().map(|a| {
        (
            a["codec_name"].as_str().unwrap_or("").to_string(),
            num(&a["sample_rate"]).unwrap_or(0.0) as u32,
            num(&a["channels"]).unwrap_or(0.0) as u32,
        )
    });

    let packets = video_packets(plain);
    assert!(!packets.is_empty(), "{}: no video packets", file.display());
    let first_pts = packets[0].0;
    let min_pts = packets.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let mut sorted: Vec<f64> = packets.iter().map(|p| p.0).collect();
    sorted.sort_by(f64::total_cmp);
    let last = *sorted.last().unwrap();
    let last_dur = packets
        .iter()
        .find(|p| p.0 == last)
        .and_then(|p| p.1)
        .unwrap_or_else(|| {
            let mut d: Vec<f64> = sorted.windows(2).map(|w| w[1] - w[0]).collect();
            d.sort_by(f64::total_cmp);
            d.get(d.len() / 2).copied().unwrap_or(0.04)
        });

    let f = ffprobe_json(
        plain,
        &[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame,pict_type",
        ],
    );
    let first_frame_key = f["frames"][0]["key_frame"].as_i64() == Some(1);

    SegmentReport {
        file: file.to_path_buf(),
        plain: plain.to_path_buf(),
        enc_size,
        psi_crc_ok,
        video_codec: video["codec_name"].as_str().unwrap_or("").to_string(),
        width: num(&video["width"]).unwrap_or(0.0) as u32,
        height: num(&video["height"]).unwrap_or(0.0) as u32,
        sar: video["sample_aspect_ratio"]
            .as_str()
            .unwrap_or("N/A")
            .to_string(),
        video_packets: num(&video["nb_read_packets"]).unwrap_or(0.0) as usize,
        video_frames_decoded: num(&video["nb_read_frames"]).unwrap_or(0.0) as usize,
        audio,
        audio_streams: audios.len(),
        probe_stderr,
        first_packet_key: packets[0].2.contains('K'),
        first_packet_is_earliest: (first_pts - min_pts).abs() < 1e-6,
        first_frame_key,
        start: min_pts,
        last_pts: last,
        end: last + last_dur,
    }
}
