//! What a package made from a given source must look like (issue points 1–5), checked on a
//! [`Judged`] package.

use std::path::Path;

use super::{Judged, SEGMENT};
use crate::probe::{format_duration, num};

#[derive(Debug, Clone)]
pub struct Expect {
    /// Display size of the source (after rotation, SAR applied).
    pub display_w: u32,
    pub display_h: u32,
    /// Source duration (seconds) and how far the package may be from it.
    pub duration: f64,
    pub duration_below: f64,
    pub duration_above: f64,
    pub has_audio: bool,
    /// Expected renditions, highest first: (name, width, height).
    pub renditions: Vec<(String, u32, u32)>,
}

impl Expect {
    pub fn new(
        src: &Path,
        display_w: u32,
        display_h: u32,
        renditions: &[(&str, u32, u32)],
    ) -> Self {
        Expect {
            display_w,
            display_h,
            duration: format_duration(src),
            duration_below: 0.2,
            duration_above: 0.2,
            has_audio: true,
            renditions: renditions
                .iter()
                .map(|(n, w, h)| (n.to_string(), *w, *h))
                .collect(),
        }
    }
}

/// Every check of issue points 1–5 on a judged package; panics with a list of failures.
pub fn assert_package(j: &Judged, e: &Expect) {
    let mut fails: Vec<String> = Vec::new();
    check_package(j, e, &mut fails);
    assert!(
        fails.is_empty(),
        "{} check(s) failed:\n  - {}\n(manifest duration {}, segments {}; source {:.3} s)",
        fails.len(),
        fails.join("\n  - "),
        j.manifest["duration"],
        j.manifest["segments"],
        e.duration
    );
}

pub fn check_package(j: &Judged, e: &Expect, fails: &mut Vec<String>) {
    let m = &j.manifest;
    let mut fail = |s: String| fails.push(s);

    // Manifest basics.
    if m["version"].as_u64() != Some(1) {
        fail(format!("manifest.version = {}, want 1", m["version"]));
    }
    if num(&m["segment_target"]).map(|t| (t - SEGMENT).abs() > 1e-9) != Some(false) {
        fail(format!(
            "manifest.segment_target = {}, want 6.0",
            m["segment_target"]
        ));
    }
    if m["has_audio"].as_bool() != Some(e.has_audio) {
        fail(format!(
            "manifest.has_audio = {}, want {}",
            m["has_audio"], e.has_audio
        ));
    }

    // Renditions: names and sizes, highest first.
    let names = j.rendition_names();
    let want_names: Vec<String> = e.renditions.iter().map(|r| r.0.clone()).collect();
    if names != want_names {
        fail(format!("renditions {names:?}, want {want_names:?}"));
    }
    let src_short = e.display_w.min(e.display_h);
    let src_dar = f64::from(e.display_w) / f64::from(e.display_h);
    for (ri, r) in j.renditions.iter().enumerate() {
        let mr = &m["renditions"][ri];
        let (mw, mh) = (
            mr["width"].as_u64().unwrap_or(0) as u32,
            mr["height"].as_u64().unwrap_or(0) as u32,
        );
        if let Some((_, w, h)) = e.renditions.iter().find(|x| x.0 == r.name) {
            if (mw, mh) != (*w, *h) {
                fail(format!(
                    "manifest rendition {}: {mw}x{mh}, want {w}x{h}",
                    r.name
                ));
            }
        }
        let codecs = mr["codecs"].as_str().unwrap_or("");
        if !codecs.starts_with("avc1.") || codecs.contains("mp4a.40.2") != e.has_audio {
            fail(format!(
                "rendition {} codecs {codecs:?} (has_audio {})",
                r.name, e.has_audio
            ));
        }
        for (i, s) in r.segments.iter().enumerate() {
            let at = format!("{}/{i:05}.ts", r.name);
            if s.video_codec != "h264" {
                fail(format!("{at}: video codec {}, want h264", s.video_codec));
            }
            if (s.width, s.height) != (mw, mh) {
                fail(format!(
                    "{at}: decoded {}x{}, manifest says {mw}x{mh}",
                    s.width, s.height
                ));
            }
            if s.width % 2 != 0 || s.height % 2 != 0 {
                fail(format!("{at}: odd size {}x{}", s.width, s.height));
            }
            if s.width.min(s.height) > src_short {
                fail(format!(
                    "{at}: {}x{} is larger than the source's shorter side {src_short} (upscaled)",
                    s.width, s.height
                ));
            }
            if (e.display_w > e.display_h) != (s.width > s.height) && e.display_w != e.display_h {
                fail(format!(
                    "{at}: orientation {}x{} differs from the source's display {}x{}",
                    s.width, s.height, e.display_w, e.display_h
                ));
            }
            let sar = match s.sar.as_str() {
                "1:1" | "0:1" | "N/A" | "" => 1.0,
                other => {
                    fail(format!(
                        "{at}: sample aspect ratio {other}, want square pixels"
                    ));
                    let mut it = other.split(':').map(|x| x.parse::<f64>().unwrap_or(1.0));
                    it.next().unwrap_or(1.0) / it.next().unwrap_or(1.0)
                }
            };
            let dar = f64::from(s.width) * sar / f64::from(s.height);
            // Rounding each side to even moves the ratio by at most ~2 px of the longer side.
            let tol = 2.0 / f64::from(s.width.min(s.height)) + 1e-3;
            if (dar - src_dar).abs() / src_dar > tol {
                fail(format!(
                    "{at}: display aspect {dar:.4} differs from the source's {src_dar:.4}"
                ));
            }
            // Decodes cleanly.
            if !s.probe_stderr.trim().is_empty() {
                fail(format!(
                    "{at}: decoding reports errors: {}",
                    s.probe_stderr.trim()
                ));
            }
            if s.video_frames_decoded == 0 || s.video_frames_decoded != s.video_packets {
                fail(format!(
                    "{at}: {} video packets but {} frames decoded",
                    s.video_packets, s.video_frames_decoded
                ));
            }
            // Keyframe first.
            if !(s.first_packet_key && s.first_packet_is_earliest && s.first_frame_key) {
                fail(format!(
                    "{at}: does not start with a keyframe (first packet K flag {}, first packet earliest pts {}, first decoded frame key {})",
                    s.first_packet_key, s.first_packet_is_earliest, s.first_frame_key
                ));
            }
            // IV check through the first block.
            if s.psi_crc_ok == Some(false) {
                fail(format!(
                    "{at}: first TS packet is corrupt after decryption with IV_{i} (wrong IV?)"
                ));
            }
            // Audio.
            if e.has_audio {
                if s.audio != Some(("aac".to_string(), 48000, 2)) || s.audio_streams != 1 {
                    fail(format!(
                        "{at}: audio {:?} ({} streams), want one AAC 48000 Hz stereo",
                        s.audio, s.audio_streams
                    ));
                }
            } else if s.audio_streams != 0 {
                fail(format!(
                    "{at}: has {} audio stream(s), want none",
                    s.audio_streams
                ));
            }
        }
    }

    // Same number of segments, same time spans, in every rendition.
    let counts: Vec<usize> = j.renditions.iter().map(|r| r.segments.len()).collect();
    let seg = j.manifest_segments();
    if counts.iter().any(|c| *c != seg.len()) {
        fail(format!(
            "segment files per rendition {counts:?}, manifest lists {}",
            seg.len()
        ));
    }
    if let Some(first) = j.renditions.first() {
        for r in &j.renditions[1..] {
            for (i, (a, b)) in first.segments.iter().zip(&r.segments).enumerate() {
                if (a.start - b.start).abs() > 0.002 || (a.end - b.end).abs() > 0.002 {
                    fail(format!(
                        "segment {i}: {} covers {:.3}..{:.3} s but {} covers {:.3}..{:.3} s",
                        first.name, a.start, a.end, r.name, b.start, b.end
                    ));
                }
            }
        }
    }

    // Durations: manifest and measured, 6 ± 0.5 except the last.
    let n = seg.len();
    if n == 0 {
        fail("manifest lists no segments".into());
    }
    for (i, d) in seg.iter().enumerate() {
        if i + 1 < n && (d - SEGMENT).abs() > 0.5 {
            fail(format!("manifest segment {i} lasts {d:.3} s, want 6 ± 0.5"));
        }
        if i + 1 == n && !(*d > 0.0 && *d <= SEGMENT + 0.5) {
            fail(format!(
                "manifest last segment {i} lasts {d:.3} s, want (0, 6.5]"
            ));
        }
    }
    for r in &j.renditions {
        let spans = r.spans();
        for (i, s) in r.segments.iter().enumerate() {
            let d = spans[i];
            if i + 1 < r.segments.len() && (d - SEGMENT).abs() > 0.5 {
                fail(format!(
                    "{}/{i:05}.ts measures {d:.3} s (from {:.3} s), want 6 ± 0.5",
                    r.name, s.start
                ));
            }
            if let Some(md) = seg.get(i) {
                if (d - md).abs() > 0.1 {
                    fail(format!(
                        "{}/{i:05}.ts measures {d:.3} s but the manifest says {md:.3} s",
                        r.name
                    ));
                }
            }
            if i > 0 {
                // Timestamps continue across segments: no reset, no overlap, no hole.
                let prev = &r.segments[i - 1];
                let gap = s.start - prev.last_pts;
                if !(gap > 0.0 && gap <= 0.2) {
                    fail(format!(
                        "{}: segment {i} starts at {:.3} s but segment {}'s last picture is at {:.3} s",
                        r.name,
                        s.start,
                        i - 1,
                        prev.last_pts
                    ));
                }
            }
        }
    }

    // Total duration.
    let total: f64 = seg.iter().sum();
    let mdur = num(&m["duration"]).unwrap_or(f64::NAN);
    if (total - mdur).abs() > 0.05 {
        fail(format!(
            "manifest segments sum to {total:.3} s but duration is {mdur:.3} s"
        ));
    }
    let lo = e.duration - e.duration_below;
    let hi = e.duration + e.duration_above;
    if !(mdur >= lo && mdur <= hi) {
        fail(format!(
            "manifest duration {mdur:.3} s, source {:.3} s (allowed {lo:.3}..{hi:.3})",
            e.duration
        ));
    }
    if !j.renditions.is_empty() {
        let measured = j.measured_total();
        if !(measured >= lo && measured <= hi) {
            fail(format!(
                "measured video duration {measured:.3} s, source {:.3} s (allowed {lo:.3}..{hi:.3})",
                e.duration
            ));
        }
    }
}

/// Checks `bandwidth`/`average_bandwidth` of the manifest against the encrypted files.
pub fn check_bandwidth(out: &Path, j: &Judged, fails: &mut Vec<String>) {
    let seg = j.manifest_segments();
    for (ri, r) in j.renditions.iter().enumerate() {
        let mr = &j.manifest["renditions"][ri];
        let bw = num(&mr["bandwidth"]).unwrap_or(0.0);
        let avg = num(&mr["average_bandwidth"]).unwrap_or(0.0);
        let rates: Vec<f64> = r
            .segments
            .iter()
            .zip(&seg)
            .map(|(s, d)| s.enc_size as f64 * 8.0 / d)
            .collect();
        let peak = rates.iter().copied().fold(0.0, f64::max);
        let bytes: u64 = r.segments.iter().map(|s| s.enc_size).sum();
        let mean_total = bytes as f64 * 8.0 / seg.iter().sum::<f64>();
        let mean_of_rates = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        if bw < avg {
            fail_push(
                fails,
                format!("{}: bandwidth {bw} < average_bandwidth {avg}", r.name),
            );
        }
        if (bw - peak).abs() / peak > 0.1 {
            fail_push(
                fails,
                format!(
                    "{}: bandwidth {bw}, peak segment bitrate of the encrypted files {peak:.0} (out {})",
                    r.name,
                    out.display()
                ),
            );
        }
        let near = |x: f64| (avg - x).abs() / x <= 0.1;
        if !(near(mean_total) || near(mean_of_rates)) {
            fail_push(
                fails,
                format!(
                    "{}: average_bandwidth {avg}, measured mean {mean_total:.0} (bytes/duration) or {mean_of_rates:.0} (mean of segments)",
                    r.name
                ),
            );
        }
    }
}

fn fail_push(fails: &mut Vec<String>, s: String) {
    fails.push(s);
}
