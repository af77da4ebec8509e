//! `package`: one source file in, one encrypted HLS package directory out.
//!
//! The whole film is decoded once. Video frames go through one filter graph (rotate, then
//! scalers — the smaller rungs from a larger rung's picture) into one libx264 encoder per
//! rung, each on its own thread; audio is encoded once and muxed into every rendition. Segment boundaries are decided on the decoded frames
//! (see `timeline`), so segment *i* spans the same time in every rendition.
//!
//! Everything is written into a hidden sibling directory that is renamed into place only
//! when complete; on any error or cancellation it is removed, so a package directory that
//! exists is a finished one.

mod audio;
mod poster;
mod rung;
mod segments;
mod timeline;
mod tune;
mod video;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ffmpeg_next::{codec, media, Packet, Rescale};

use crate::error::{Context, TranscodeError};
use crate::ladder::{self, CrfTargets, RateControl, Rung};
use crate::manifest::{Manifest, Rendition, MANIFEST_FILE, MANIFEST_VERSION};
use crate::probe::{self, MediaInfo};
use crate::secret::FilmSecret;
use segments::{Kind, MuxContext, SegmentWriter, StreamSpec};
use timeline::Timeline;

pub const POSTER_FILE: &str = "poster.jpg";

#[derive(Debug, Clone, PartialEq)]
pub struct PackageOptions {
    pub ladder: Vec<Rung>,
    /// Target segment length in seconds (DESIGN.md: 6).
    pub segment_seconds: f64,
    /// libx264 preset (`ultrafast` … `veryslow`).
    pub x264_preset: String,
    /// AAC bitrate in bits/s.
    pub audio_bitrate: u32,
    /// `Abr` (each rung at its ladder bitrate) or `Crf` (each rung at its quality target,
    /// capped by its ladder bitrate).
    pub rate_control: RateControl,
    /// The rungs' quality targets under `Crf` (ignored under `Abr`).
    pub crf: CrfTargets,
}

impl Default for PackageOptions {
    fn default() -> Self {
        Self {
            ladder: Rung::default_ladder(),
            segment_seconds: 6.0,
            x264_preset: "veryfast".into(),
            audio_bitrate: 128_000,
            rate_control: RateControl::default(),
            crf: CrfTargets::default(),
        }
    }
}

pub const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

impl PackageOptions {
    pub fn validate(&self) -> Result<(), TranscodeError> {
        let bad = TranscodeError::InvalidOptions;
        ladder::validate(&self.ladder).map_err(bad)?;
        if !(1.0..=30.0).contains(&self.segment_seconds) {
            return Err(bad("segment length must be 1–30 seconds".into()));
        }
        if !X264_PRESETS.contains(&self.x264_preset.as_str()) {
            return Err(bad(format!("unknown x264 preset {:?}", self.x264_preset)));
        }
        if !(32_000..=512_000).contains(&self.audio_bitrate) {
            return Err(bad("audio bitrate must be 32k–512k".into()));
        }
        self.crf.validate().map_err(|e| bad(format!("crf: {e}")))?;
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageStats {
    pub wall_seconds: f64,
    /// Time spent in AES encryption, to show it is noise next to encoding.
    pub encrypt_seconds: f64,
    pub frames: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Packaged {
    pub manifest: Manifest,
    pub stats: PackageStats,
}

pub fn package(
    source: &Path,
    out_dir: &Path,
    opts: &PackageOptions,
    secret: &FilmSecret,
    progress: &mut dyn FnMut(f64),
    cancel: &AtomicBool,
) -> Result<Packaged, TranscodeError> {
    crate::init();
    opts.validate()?;
    if out_dir.exists() {
        return Err(TranscodeError::OutputExists(out_dir.to_path_buf()));
    }
    let started = Instant::now();
    let info = probe::probe(source)?;
    let staging = Staging::create(out_dir)?;
    let (manifest, mut stats) = run(
        source,
        &info,
        staging.path(),
        opts,
        secret,
        progress,
        cancel,
    )?;
    segments::write_synced(&staging.path().join(MANIFEST_FILE), &manifest.to_json())?;
    staging.commit()?;
    stats.wall_seconds = started.elapsed().as_secs_f64();
    progress(1.0);
    Ok(Packaged { manifest, stats })
}

fn run(
    source: &Path,
    info: &MediaInfo,
    dir: &Path,
    opts: &PackageOptions,
    secret: &FilmSecret,
    progress: &mut dyn FnMut(f64),
    cancel: &AtomicBool,
) -> Result<(Manifest, PackageStats), TranscodeError> {
    let mut input = probe::open(source)?;
    let video_info = info.video().ok_or(TranscodeError::NoVideo)?;
    let (dw, dh) = (
        video_info.display_width.unwrap_or(2),
        video_info.display_height.unwrap_or(2),
    );
    let targets = ladder::plan(dw, dh, &opts.ladder);
    let vstream = input
        .stream(video_info.index)
        .ok_or(TranscodeError::NoVideo)?;
    let table: Vec<Option<f32>> = targets
        .iter()
        .map(|t| video::table_crf(t, opts.rate_control, &opts.crf))
        .collect();
    // Per-title tuning takes the first part of the progress bar, by its share of the work
    // (four encodes of the sample against one of the film).
    let (crf, quality) = match opts.rate_control {
        ladder::RateControl::PerTitle => {
            let setup = video::X264Setup::of(&vstream, &opts.x264_preset, opts.segment_seconds);
            let share = tune::share(info.duration);
            let tuned = tune::tune(
                source,
                info,
                &targets,
                &setup,
                &table.iter().map(|c| c.unwrap_or(0.0)).collect::<Vec<_>>(),
                &mut |f| progress(f * share),
                cancel,
            )?;
            (tuned.crf, tuned.quality.into_iter().map(Some).collect())
        }
        _ => (table, vec![None; targets.len()]),
    };
    let progress_from = match opts.rate_control {
        ladder::RateControl::PerTitle => tune::share(info.duration),
        _ => 0.0,
    };
    let mut progress = |f: f64| progress(progress_from + f * (1.0 - progress_from));
    let settings = video::EncoderSettings {
        preset: &opts.x264_preset,
        segment_seconds: opts.segment_seconds,
        crf: crf.clone(),
    };
    let mut video = video::VideoPath::new(
        &vstream,
        video_info.rotation.unwrap_or(0),
        &targets,
        &settings,
    )?;
    let video_start = match vstream.start_time() {
        ffmpeg_next::ffi::AV_NOPTS_VALUE => 0,
        s => s,
    };
    let mut audio = match info.audio().and_then(|a| input.stream(a.index)) {
        Some(astream) if astream.parameters().medium() == media::Type::Audio => Some(
            audio::AudioPath::new(&astream, video_start, video.time_base, opts.audio_bitrate)?,
        ),
        _ => None,
    };

    let vtb = video.time_base;
    let segment_ticks = (opts.segment_seconds / f64::from(vtb)).round() as i64;
    let mut timeline = Timeline::new(segment_ticks);
    let mut writers = targets
        .iter()
        .map(|t| SegmentWriter::new(dir, &t.name))
        .collect::<Result<Vec<_>, _>>()?;
    let audio_spec = audio.as_ref().map(|a| StreamSpec {
        params: audio::parameters(&a.encoder),
        time_base: a.time_base(),
        codec_id: codec::Id::AAC,
    });
    // Parameters differ per rung only in size, which the muxer reads from the bitstream;
    // keep one spec per rung anyway so the PMT describes each rendition truthfully.
    let video_specs: Vec<StreamSpec> = video
        .rungs
        .iter()
        .map(|r| StreamSpec {
            params: r.params.clone(),
            time_base: vtb,
            codec_id: codec::Id::H264,
        })
        .collect();

    let duration = info.duration.max(0.001);
    let poster_at = ((duration * 0.10) / f64::from(vtb)) as i64;
    let mut poster: Option<Vec<u8>> = None;
    let mut first_frame: Option<ffmpeg_next::frame::Video> = None;
    let mut encrypt_seconds = 0.0;
    let mut frames = 0u64;
    let mut encoded: Vec<rung::Encoded> = Vec::new();
    let mut audio_packets: Vec<Packet> = Vec::new();
    let mut audio_queue: std::collections::VecDeque<Packet> = Default::default();
    let mut audio_bound = if audio.is_some() { 0 } else { usize::MAX };
    let mut last_progress = -1.0;
    let mut read_error: Option<ffmpeg_next::Error> = None;

    let mut input_done = false;
    while !input_done {
        if cancel.load(Ordering::Relaxed) {
            return Err(TranscodeError::Cancelled);
        }
        // A fresh packet each time: av_read_frame overwrites a packet without releasing
        // what it held, so reusing one leaked every input packet (RSS grew by the source
        // bitrate until the end of the film).
        let mut packet = Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {
                let index = packet.stream();
                if index == video.stream_index {
                    video.send_packet(&packet)?;
                } else if let Some(a) = audio.as_mut().filter(|a| a.stream_index == index) {
                    a.send_packet(&packet)?;
                }
            }
            Err(ffmpeg_next::Error::Eof) => input_done = true,
            Err(ffmpeg_next::Error::InvalidData) => continue,
            Err(e) => {
                read_error = Some(e);
                input_done = true;
            }
        }
        if input_done {
            video.send_eof()?;
            if let Some(a) = audio.as_mut() {
                a.send_eof()?;
            }
        }
        frames += video.receive_frames(|pts| {
            timeline.on_frame(pts);
        })? as u64;
        if input_done {
            video.flush_graph()?;
        }
        let mut take_poster = |frame: &ffmpeg_next::frame::Video| -> Result<(), TranscodeError> {
            if first_frame.is_none() {
                first_frame = Some(frame.clone());
            }
            if poster.is_none() && frame.pts().unwrap_or(0) >= poster_at {
                poster = Some(poster::encode_jpeg(frame)?);
            }
            Ok(())
        };
        video.encode_filtered(timeline.boundaries(), &mut take_poster, &mut encoded)?;
        if input_done {
            video.flush_encoders(&mut encoded)?;
            timeline.finish();
        }
        if let Some(a) = audio.as_mut() {
            a.process(&mut audio_packets)?;
            if input_done {
                a.flush(&mut audio_packets)?;
            }
        }

        // Route what the encoders produced.
        for e in encoded.drain(..) {
            let pts = e.packet.pts().unwrap_or(0);
            let segment = timeline.segment_of(pts).unwrap_or(0);
            writers[e.rung].push(Kind::Video, segment, e.packet)?;
        }
        audio_queue.extend(audio_packets.drain(..));
        if let Some(a) = audio.as_ref() {
            while let Some(p) = audio_queue.front() {
                let t = p.pts().unwrap_or(0).rescale(a.time_base(), vtb);
                let Some(segment) = timeline.segment_of(t) else {
                    break;
                };
                let p = audio_queue.pop_front().unwrap_or_else(Packet::empty);
                for w in writers.iter_mut() {
                    w.push(Kind::Audio, segment, p.clone())?;
                }
                audio_bound = segment;
            }
        }
        if input_done {
            audio_bound = usize::MAX;
        }
        for (w, spec) in writers.iter_mut().zip(&video_specs) {
            let mut mux = MuxContext {
                video: spec,
                audio: audio_spec.as_ref(),
                secret,
                encrypt_seconds: &mut encrypt_seconds,
            };
            if input_done {
                w.finish(&mut mux)?;
            } else {
                w.write_complete(audio_bound, &mut mux)?;
            }
        }

        if let Some(pts) = video.last_pts() {
            let fraction = (pts as f64 * f64::from(vtb) / duration).clamp(0.0, 0.999);
            if fraction - last_progress >= 0.005 {
                last_progress = fraction;
                progress(fraction);
            }
        }
    }

    let last_pts = video.last_pts().ok_or(TranscodeError::ZeroDuration)?;
    let end = last_pts + video.frame_interval;
    let found = end as f64 * f64::from(vtb);
    let tolerance = (duration * 0.05).max(2.0);
    if found + tolerance < duration {
        if let Some(e) = read_error {
            tracing::warn!(error = %e, "reading the source stopped early");
        }
        return Err(TranscodeError::Truncated {
            declared: duration,
            found,
        });
    }

    let poster = match (poster, first_frame) {
        (Some(p), _) => p,
        (None, Some(f)) => poster::encode_jpeg(&f)?,
        (None, None) => return Err(TranscodeError::ZeroDuration),
    };
    segments::write_synced(&dir.join(POSTER_FILE), &poster)?;

    // Segment durations from the shared boundaries.
    let bounds = timeline.boundaries();
    let segment_count = writers.first().map_or(0, |w| w.sizes.len());
    if bounds.len() != segment_count || writers.iter().any(|w| w.sizes.len() != segment_count) {
        return Err(TranscodeError::Internal(format!(
            "{} boundaries but segment counts {:?}",
            bounds.len(),
            writers.iter().map(|w| w.sizes.len()).collect::<Vec<_>>()
        )));
    }
    let seconds = |ticks: i64| ticks as f64 * f64::from(vtb);
    let segments: Vec<f64> = (0..segment_count)
        .map(|i| {
            let next = bounds.get(i + 1).copied().unwrap_or(end);
            (seconds(next - bounds[i]) * 1000.0).round() / 1000.0
        })
        .collect();
    let total: f64 = segments.iter().sum();

    let mut bytes = 0;
    let renditions = targets
        .iter()
        .zip(&writers)
        .zip(crf.iter().zip(quality))
        .map(|((t, w), (&crf, quality))| {
            bytes += w.sizes.iter().sum::<u64>();
            let peak = w
                .sizes
                .iter()
                .zip(&segments)
                // A very short last segment would overstate the peak; count it as ≥ 1 s.
                .map(|(size, d)| (*size as f64 * 8.0 / d.max(1.0)) as u64)
                .max()
                .unwrap_or(0);
            let average = (w.sizes.iter().sum::<u64>() as f64 * 8.0 / total.max(0.001)) as u64;
            let video_codec = w.avc_profile.map_or_else(
                || "avc1.640028".to_string(),
                |p| format!("avc1.{:02x}{:02x}{:02x}", p[0], p[1], p[2]),
            );
            let codecs = if audio.is_some() {
                format!("{video_codec},mp4a.40.2")
            } else {
                video_codec
            };
            Rendition {
                name: t.name.clone(),
                width: t.width,
                height: t.height,
                video_bitrate: t.bitrate,
                bandwidth: peak.max(average),
                average_bandwidth: average,
                codecs,
                frame_rate: video_info.frame_rate,
                crf,
                quality,
            }
        })
        .collect();

    let manifest = Manifest {
        version: MANIFEST_VERSION,
        duration: (total * 1000.0).round() / 1000.0,
        segment_target: opts.segment_seconds,
        rate_control: opts.rate_control,
        segments,
        has_audio: audio.is_some(),
        poster: POSTER_FILE.into(),
        renditions,
        source: info.clone(),
    };
    Ok((
        manifest,
        PackageStats {
            wall_seconds: 0.0,
            encrypt_seconds,
            frames,
            bytes,
        },
    ))
}

/// A hidden sibling of the output directory that disappears unless committed.
struct Staging {
    path: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    fn create(target: &Path) -> Result<Self, TranscodeError> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).context(|| format!("creating {}", parent.display()))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                TranscodeError::InvalidOptions(format!(
                    "{} is not a directory name",
                    target.display()
                ))
            })?;
        let path = parent.join(format!(".{name}.partial-{:08x}", rand::random::<u32>()));
        std::fs::create_dir(&path).context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            path,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn commit(mut self) -> Result<(), TranscodeError> {
        if self.target.exists() {
            return Err(TranscodeError::OutputExists(self.target.clone()));
        }
        std::fs::rename(&self.path, &self.target)
            .context(|| format!("moving the package into {}", self.target.display()))?;
        self.committed = true;
        // Make the rename itself durable.
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
