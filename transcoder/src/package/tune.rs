//! Per-title tuning (`RateControl::PerTitle`): before the film is encoded, each rung's
//! quality target (x264 CRF) is chosen for this film.
//!
//! "The same picture for fewer bytes" is measured, not assumed. A few seconds sampled
//! across the film are encoded per rung four times, each exactly as the package would
//! encode them (same preset, ceiling, lookahead; each window starts with an IDR frame as a
//! segment does):
//!
//! The windows are encoded one after another as one short film, so `abr` shares its
//! bitrate out over them as it would over the whole film.
//!
//! 1. at the table's CRF and at that CRF + `PROBE_STEP`;
//! 2. at the ladder bitrate (`abr`): the picture today's ladder gives this film. The sample
//!    has an IDR frame every window (half a second), the film one every segment (6 s), and
//!    an IDR frame costs several times a predicted one: at the ladder bitrate the sample is
//!    starved, and its `abr` picture was 0.01–0.02 SSIM worse than the film's (bbb, carphone,
//!    cellauto in docs/BENCHMARKS.md), so the chosen CRF came out too high. The `abr` sample
//!    is therefore encoded at the ladder bitrate × what the table-CRF probe's own IDR and
//!    other frames say the sample costs over the same pictures with one IDR a segment;
//! 3. at the CRF interpolated from (1) to give (2)'s SSIM less `MATCH_MARGIN` — measured
//!    again, so the manifest records what the chosen target really gave.
//!
//! SSIM is ffmpeg's `ssim` filter between the decoded encode and the rung's own scaled
//! picture, the judge `bench/quality.sh` uses. Interpolation is on −10·log10(1 − SSIM),
//! which is close to linear in the CRF over a few steps. Where the probes hardly differ
//! (the ceiling binds: the picture is hard at this bitrate) the table's CRF stays.
//!
//! Cost: four encodes and eight decodes of the sample; the sample is 2% of the film, at
//! least `MIN_SAMPLE` and at most `MAX_SAMPLE` seconds (docs/BENCHMARKS.md, "Rate control").

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use ffmpeg_next::{codec, decoder, filter, format, frame, picture, Packet, Rational, Rescale};

use super::rung::{Encoded, RungEncoder};
use super::video::{self, X264Setup};
use crate::error::{Context, TranscodeError};
use crate::ladder::Target;
use crate::manifest::{QualityPoint, RungQuality};
use crate::probe::{self, MediaInfo};

/// The sample: 2% of the film, 2–10 s, in windows of half a second spread evenly over it.
/// One window (1–2 s in the middle of the film) misjudged whole films: its difficulty is
/// not the film's, and SSIM fell up to 0.03 below `abr` (docs/BENCHMARKS.md). Tuning
/// encodes the sample four times and walks it eight times, about 1.1× its length in
/// packaging time each pass (20 s 1080p source, default ladder), so it adds ≈9% to a film
/// of 8 min or more… and ≈20% to a 1 min clip.
const SAMPLE_SHARE: f64 = 0.02;
const MIN_SAMPLE: f64 = 2.0;
const MAX_SAMPLE: f64 = 10.0;
/// Longest sampled window: many short windows see more of the film than a few long ones.
const MAX_WINDOW: f64 = 0.5;
/// The second probe's CRF above the table's.
const PROBE_STEP: f32 = 6.0;
/// The chosen CRF aims this far below the `abr` SSIM; `bench/quality.sh` holds each rung to
/// within 0.002 of `abr` over the whole film, and a sample predicts the film imperfectly.
const MATCH_MARGIN: f64 = 0.001;
/// How far the chosen CRF may move from the table's, down and up.
const MAX_DOWN: f32 = 4.0;
const MAX_UP: f32 = 6.0;
/// Probes closer than this (in dB of 1 − SSIM) say the ceiling binds.
const FLAT_DB: f64 = 0.05;

/// What tuning chose: each target's CRF and what was measured for it.
pub(crate) struct Tuned {
    pub(crate) crf: Vec<f32>,
    pub(crate) quality: Vec<RungQuality>,
}

/// The share of packaging's work that tuning takes for a film of `duration` seconds: four
/// encodes of the sample against one of the film.
pub(crate) fn share(duration: f64) -> f64 {
    let sample: f64 = windows(duration).iter().map(|w| w.1).sum();
    4.0 * sample / (4.0 * sample + duration.max(0.001))
}

/// The sampled windows `(start, length)` in seconds from the film's start.
fn windows(duration: f64) -> Vec<(f64, f64)> {
    let total = (duration * SAMPLE_SHARE)
        .clamp(MIN_SAMPLE, MAX_SAMPLE)
        .min(duration);
    if total <= 0.0 {
        return Vec::new();
    }
    let n = (total / MAX_WINDOW).ceil().max(1.0) as usize;
    let length = total / n as f64;
    (0..n)
        .map(|k| {
            let centre = duration * (k as f64 + 0.5) / n as f64;
            let start = (centre - length / 2.0).clamp(0.0, (duration - length).max(0.0));
            (start, length)
        })
        .collect()
}

/// −10·log10(1 − SSIM): SSIM on a scale close to linear in the CRF.
fn ssim_db(ssim: f64) -> f64 {
    -10.0 * (1.0 - ssim).max(1e-6).log10()
}

/// The CRF whose SSIM, interpolated between the probes `lo` and `hi` (`(crf, ssim)`,
/// `lo.0 < hi.0`), is `abr` less `MATCH_MARGIN`; the table's (`lo.0`) when the probes are
/// too close to tell. Rounded to a quarter step, kept within `MAX_DOWN`/`MAX_UP` of `lo.0`.
fn choose(abr: f64, lo: (f32, f64), hi: (f32, f64)) -> f32 {
    let (y_lo, y_hi) = (ssim_db(lo.1), ssim_db(hi.1));
    if y_lo - y_hi < FLAT_DB {
        return lo.0;
    }
    let target = ssim_db(abr - MATCH_MARGIN);
    let slope = (y_lo - y_hi) / f64::from(hi.0 - lo.0);
    let crf = f64::from(lo.0) + (y_lo - target) / slope;
    let crf = crf.clamp(f64::from(lo.0 - MAX_DOWN), f64::from(lo.0 + MAX_UP));
    ((crf * 4.0).round() / 4.0).clamp(0.0, 51.0) as f32
}

pub(crate) fn tune(
    source: &Path,
    info: &MediaInfo,
    targets: &[Target],
    setup: &X264Setup<'_>,
    table: &[f32],
    progress: &mut dyn FnMut(f64),
    cancel: &AtomicBool,
) -> Result<Tuned, TranscodeError> {
    let windows = windows(info.duration);
    let sample_seconds = windows.iter().map(|w| w.1).sum::<f64>();
    let sampler = Sampler {
        source,
        info,
        targets,
        setup,
        windows: &windows,
        cancel,
    };
    let lo = sampler.measure(&table.iter().map(|&c| Some(c)).collect::<Vec<_>>(), &[])?;
    progress(0.25);
    let frames_per_segment = f64::from(setup.rate) * setup.segment_seconds;
    let idr_share: Vec<f64> = lo
        .iter()
        .map(|m| m.idr_overhead(frames_per_segment))
        .collect();
    let abr = sampler.measure(&vec![None; targets.len()], &idr_share)?;
    progress(0.5);
    let probe_lo: Vec<QualityPoint> = (0..targets.len())
        .map(|i| lo[i].point(Some(table[i])))
        .collect();
    let hi_crf: Vec<f32> = table.iter().map(|c| (c + PROBE_STEP).min(51.0)).collect();
    let hi = sampler.measure(&hi_crf.iter().map(|&c| Some(c)).collect::<Vec<_>>(), &[])?;
    progress(0.75);
    let crf: Vec<f32> = (0..targets.len())
        .map(|i| {
            // A sample that gave no pictures (a source that will not seek and is shorter
            // than it claims) tells nothing: the table stands.
            if [&abr[i], &lo[i], &hi[i]].iter().any(|m| m.frames == 0) {
                return table[i];
            }
            choose(
                abr[i].ssim(),
                (table[i], lo[i].ssim()),
                (hi_crf[i], hi[i].ssim()),
            )
        })
        .collect();
    // Where every rung's choice is one of the probes (the table where the ceiling binds,
    // the upper probe at the limit), that probe was the chosen encode already.
    let probed = |i: usize| {
        if crf[i] == table[i] {
            Some(&lo[i])
        } else if crf[i] == hi_crf[i] {
            Some(&hi[i])
        } else {
            None
        }
    };
    let chosen: Vec<Measured> = match (0..targets.len()).map(probed).collect::<Option<Vec<_>>>() {
        Some(points) => points.into_iter().cloned().collect(),
        None => sampler.measure(&crf.iter().map(|&c| Some(c)).collect::<Vec<_>>(), &[])?,
    };
    progress(1.0);
    let quality = (0..targets.len())
        .map(|i| RungQuality {
            sample_seconds: (sample_seconds * 1000.0).round() / 1000.0,
            abr: abr[i].point(None),
            probes: vec![probe_lo[i].clone(), hi[i].point(Some(hi_crf[i]))],
            chosen: chosen[i].point(Some(crf[i])),
        })
        .collect();
    for (t, c) in targets.iter().zip(&crf) {
        tracing::debug!(rung = %t.name, crf = c, "per-title tuning");
    }
    Ok(Tuned { crf, quality })
}

/// SSIM and bytes of one rung's sampled encode.
#[derive(Default, Clone)]
struct Measured {
    ssim_sum: f64,
    frames: u64,
    bytes: u64,
    seconds: f64,
    /// The encode's keyframes (one per window) and the rest: count and bytes.
    keys: (u64, u64),
    others: (u64, u64),
}

impl Measured {
    /// What this encode's pictures cost over what they would with one IDR frame every
    /// `frames_per_segment` pictures, as in the film, from its own average IDR and other
    /// frame sizes: ≥ 1, and 1 where the encode cannot tell.
    fn idr_overhead(&self, frames_per_segment: f64) -> f64 {
        let ((keys, key_bytes), (others, other_bytes)) = (self.keys, self.others);
        if keys == 0 || others == 0 || frames_per_segment < 1.0 {
            return 1.0;
        }
        let (key, other) = (
            key_bytes as f64 / keys as f64,
            other_bytes as f64 / others as f64,
        );
        let pictures = (keys + others) as f64;
        let film_keys = (pictures / frames_per_segment).min(keys as f64);
        let film = film_keys * key + (pictures - film_keys) * other;
        ((key_bytes + other_bytes) as f64 / film.max(1.0)).max(1.0)
    }

    fn ssim(&self) -> f64 {
        self.ssim_sum / self.frames.max(1) as f64
    }

    fn point(&self, crf: Option<f32>) -> QualityPoint {
        let round = |x: f64, places: i32| {
            let scale = 10f64.powi(places);
            (x * scale).round() / scale
        };
        QualityPoint {
            crf,
            ssim: round(self.ssim(), 5),
            kbps: round(
                self.bytes as f64 * 8.0 / self.seconds.max(0.001) / 1000.0,
                1,
            ),
        }
    }
}

struct Sampler<'a> {
    source: &'a Path,
    info: &'a MediaInfo,
    targets: &'a [Target],
    setup: &'a X264Setup<'a>,
    windows: &'a [(f64, f64)],
    cancel: &'a AtomicBool,
}

impl Sampler<'_> {
    /// Encodes the sampled windows with `crf[i]` for rung `i` (`None`: the ladder bitrate ×
    /// `abr_scale[i]`, 1 where not given) and measures each rung.
    fn measure(
        &self,
        crf: &[Option<f32>],
        abr_scale: &[f64],
    ) -> Result<Vec<Measured>, TranscodeError> {
        let mut out: Vec<Measured> = self.targets.iter().map(|_| Measured::default()).collect();
        let packets = self.encode(crf, abr_scale)?;
        self.judge(packets, &mut out)?;
        Ok(out)
    }

    /// Encodes the windows one after another as one short film per rung (an IDR frame at
    /// each window, as at a segment), so `abr` shares its bitrate out over the windows as it
    /// would over the film; the packets, per rung.
    fn encode(
        &self,
        crf: &[Option<f32>],
        abr_scale: &[f64],
    ) -> Result<Vec<Vec<Packet>>, TranscodeError> {
        let sizes: Vec<(u32, u32)> = self.targets.iter().map(|t| (t.width, t.height)).collect();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = video::encoder_threads(&sizes, cores);
        let mut rungs = Vec::with_capacity(self.targets.len());
        for (i, target) in self.targets.iter().enumerate() {
            let mut target = target.clone();
            if crf[i].is_none() {
                let scale = abr_scale.get(i).copied().unwrap_or(1.0);
                target.bitrate = (f64::from(target.bitrate) * scale).round() as u32;
            }
            let encoder = video::open_x264(&target, self.setup, crf[i], threads[i])?;
            rungs.push(RungEncoder::start(target, encoder, format!("out{i}"))?);
        }
        let mut encoded: Vec<Encoded> = Vec::new();
        self.walk_all(&mut |i, frame| {
            rungs[i].send(frame)?;
            rungs[i].collect(i, &mut encoded)
        })?;
        for (i, rung) in rungs.iter_mut().enumerate() {
            rung.finish(i, &mut encoded)?;
        }
        let mut packets: Vec<Vec<Packet>> = self.targets.iter().map(|_| Vec::new()).collect();
        for e in encoded {
            packets[e.rung].push(e.packet);
        }
        Ok(packets)
    }

    /// Walks the windows again and compares each rung's decoded encode with the picture the
    /// encoder was given. A second walk costs a decode of the sample; holding every picture
    /// until the encoder (≈16 frames behind at 1080p) gave it back cost ≈130 MB.
    fn judge(&self, packets: Vec<Vec<Packet>>, out: &mut [Measured]) -> Result<(), TranscodeError> {
        let mut judges = self
            .targets
            .iter()
            .zip(packets)
            .map(|(t, p)| Judge::new(t, self.setup, p))
            .collect::<Result<Vec<_>, _>>()?;
        self.walk_all(&mut |i, frame| judges[i].reference(frame, &mut out[i]))?;
        for (judge, out) in judges.iter_mut().zip(out.iter_mut()) {
            judge.finish(out)?;
        }
        Ok(())
    }

    /// Every window in turn, its pictures restamped one frame apart from the last window's
    /// and the first of each marked as a keyframe.
    fn walk_all(
        &self,
        on_frame: &mut dyn FnMut(usize, frame::Video) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let step = ((f64::from(self.setup.rate.invert()) / f64::from(self.setup.time_base)).round()
            as i64)
            .max(1);
        let mut next_pts = vec![0i64; self.targets.len()];
        // One open of the source per walk, not one per window: the windows seek in it.
        let mut input = probe::open(self.source)?;
        for &(start, length) in self.windows {
            let mut first = vec![true; self.targets.len()];
            self.walk(&mut input, start, length, &mut |i, mut frame| {
                frame.set_pts(Some(next_pts[i]));
                next_pts[i] += step;
                if std::mem::take(&mut first[i]) {
                    frame.set_kind(picture::Type::I);
                }
                on_frame(i, frame)
            })?;
        }
        Ok(())
    }

    /// Decodes `length` seconds of the source from the keyframe at or before `start`, scales
    /// them as the package does, and hands rung `i`'s pictures to `on_frame(i, picture)` in order.
    fn walk(
        &self,
        input: &mut format::context::Input,
        start: f64,
        length: f64,
        on_frame: &mut dyn FnMut(usize, frame::Video) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let video_info = self.info.video().ok_or(TranscodeError::NoVideo)?;
        let stream = input
            .stream(video_info.index)
            .ok_or(TranscodeError::NoVideo)?;
        let stream_index = stream.index();
        let mut decoder = video::open_decoder(&stream)?;
        let origin = match stream.start_time() {
            ffmpeg_next::ffi::AV_NOPTS_VALUE => 0,
            s => s,
        };
        let tb = self.setup.time_base;
        // The window starts at the keyframe at or before `start` (a source that cannot seek
        // is read on from where the last window ended): no picture before it has to be decoded, which with a
        // 10 s GOP cost more than the encodes. Every walk lands on the same keyframe.
        let seek_to = (origin + (start / f64::from(tb)) as i64).rescale(tb, Rational(1, 1_000_000));
        let _ = input.seek(seek_to, ..seek_to);
        let span = (length / f64::from(tb)) as i64;
        let mut until: Option<i64> = None;

        let sizes: Vec<(u32, u32)> = self.targets.iter().map(|t| (t.width, t.height)).collect();
        let sinks: Vec<String> = (0..self.targets.len()).map(|i| format!("out{i}")).collect();
        let sink_names: Vec<&str> = sinks.iter().map(String::as_str).collect();
        let mut graph: Option<filter::Graph> = None;
        let mut decoded = frame::Video::empty();
        let mut done = false;
        while !done {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(TranscodeError::Cancelled);
            }
            let mut packet = Packet::empty();
            let eof = match packet.read(input) {
                Ok(()) if packet.stream() == stream_index => {
                    decoder
                        .send_packet(&packet)
                        .or_else(ignore_invalid)
                        .context(|| "decoding the sample".into())?;
                    false
                }
                Ok(()) | Err(ffmpeg_next::Error::InvalidData) => continue,
                Err(_) => {
                    decoder
                        .send_eof()
                        .context(|| "decoding the sample".into())?;
                    true
                }
            };
            loop {
                match decoder.receive_frame(&mut decoded) {
                    Ok(()) => {}
                    Err(ffmpeg_next::Error::InvalidData) => continue,
                    Err(_) => break,
                }
                let Some(pts) = decoded.timestamp() else {
                    continue;
                };
                let end = *until.get_or_insert(pts + span);
                if pts >= end {
                    done = true;
                    break;
                }
                decoded.set_pts(Some(pts));
                decoded.set_kind(picture::Type::None);
                if graph.is_none() {
                    graph = Some(video::build_graph(
                        &decoded,
                        tb,
                        video_info.rotation.unwrap_or(0),
                        &sizes,
                        &sink_names,
                    )?);
                }
                if let Some(g) = graph.as_mut() {
                    g.get("in")
                        .ok_or_else(|| sample_error("no source"))?
                        .source()
                        .add(&decoded)
                        .context(|| "filtering the sample".into())?;
                    drain_sinks(g, &sink_names, on_frame)?;
                }
            }
            done |= eof;
        }
        if let Some(g) = graph.as_mut() {
            g.get("in")
                .ok_or_else(|| sample_error("no source"))?
                .source()
                .flush()
                .context(|| "filtering the sample".into())?;
            drain_sinks(g, &sink_names, on_frame)?;
        }
        Ok(())
    }
}

fn drain_sinks(
    graph: &mut filter::Graph,
    sinks: &[&str],
    on_frame: &mut dyn FnMut(usize, frame::Video) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    for (i, name) in sinks.iter().enumerate() {
        let mut sink = graph.get(name).ok_or_else(|| sample_error("no sink"))?;
        loop {
            let mut frame = frame::Video::empty();
            if sink.sink().frame(&mut frame).is_err() {
                break;
            }
            frame.set_kind(picture::Type::None);
            on_frame(i, frame)?;
        }
    }
    Ok(())
}

/// Decodes one rung's sampled encode and compares each picture with the one the encoder was
/// given, which the second walk hands over in the same order.
struct Judge {
    decoder: decoder::Video,
    packets: std::vec::IntoIter<Packet>,
    references: VecDeque<frame::Video>,
    ssim: Option<filter::Graph>,
    size: (u32, u32),
    frame_seconds: f64,
    next_pts: i64,
    bytes: u64,
    keys: (u64, u64),
    others: (u64, u64),
}

impl Judge {
    fn new(
        target: &Target,
        setup: &X264Setup<'_>,
        packets: Vec<Packet>,
    ) -> Result<Self, TranscodeError> {
        let what = || format!("opening the sample decoder for {}p", target.name);
        let codec = ffmpeg_next::decoder::find(codec::Id::H264)
            .ok_or_else(|| sample_error("no H.264 decoder"))?;
        let decoder = codec::context::Context::new_with_codec(codec)
            .decoder()
            .video()
            .context(what)?;
        let frame_seconds = if setup.rate.numerator() > 0 {
            f64::from(setup.rate.invert())
        } else {
            1.0 / 25.0
        };
        let bytes = packets.iter().map(|p| p.size() as u64).sum();
        let (mut keys, mut others) = ((0, 0), (0, 0));
        for p in &packets {
            let count = if p.is_key() { &mut keys } else { &mut others };
            count.0 += 1;
            count.1 += p.size() as u64;
        }
        Ok(Self {
            decoder,
            packets: packets.into_iter(),
            references: VecDeque::new(),
            ssim: None,
            size: (target.width, target.height),
            frame_seconds,
            next_pts: 0,
            bytes,
            keys,
            others,
        })
    }

    /// Takes the next reference picture and decodes until it is paired.
    fn reference(&mut self, frame: frame::Video, out: &mut Measured) -> Result<(), TranscodeError> {
        self.references.push_back(frame);
        while !self.references.is_empty() {
            let Some(packet) = self.packets.next() else {
                break;
            };
            self.decoder
                .send_packet(&packet)
                .or_else(ignore_invalid)
                .context(|| "decoding the sampled encode".into())?;
            self.drain(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Measured) -> Result<(), TranscodeError> {
        out.bytes += self.bytes;
        out.keys = self.keys;
        out.others = self.others;
        for packet in self.packets.by_ref() {
            self.decoder
                .send_packet(&packet)
                .or_else(ignore_invalid)
                .context(|| "decoding the sampled encode".into())?;
        }
        self.decoder
            .send_eof()
            .context(|| "decoding the sampled encode".into())?;
        self.drain(out)?;
        if let Some(g) = self.ssim.as_mut() {
            for name in ["main", "ref"] {
                g.get(name)
                    .ok_or_else(|| sample_error("no ssim source"))?
                    .source()
                    .flush()
                    .context(|| "measuring SSIM".into())?;
            }
            Self::scores(g, out)?;
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut Measured) -> Result<(), TranscodeError> {
        let mut picture = frame::Video::empty();
        while self.decoder.receive_frame(&mut picture).is_ok() {
            // x264 neither drops nor adds pictures, and the decoder returns them in the
            // order they were given, so each pairs with the oldest reference.
            let Some(mut reference) = self.references.pop_front() else {
                continue;
            };
            out.seconds += self.frame_seconds;
            let pts = self.next_pts;
            self.next_pts += 1;
            reference.set_pts(Some(pts));
            picture.set_pts(Some(pts));
            if self.ssim.is_none() {
                self.ssim = Some(ssim_graph(self.size)?);
            }
            if let Some(g) = self.ssim.as_mut() {
                for (name, f) in [("main", &picture), ("ref", &reference)] {
                    g.get(name)
                        .ok_or_else(|| sample_error("no ssim source"))?
                        .source()
                        .add(f)
                        .context(|| "measuring SSIM".into())?;
                }
                Self::scores(g, out)?;
            }
        }
        Ok(())
    }

    fn scores(graph: &mut filter::Graph, out: &mut Measured) -> Result<(), TranscodeError> {
        let mut sink = graph
            .get("scores")
            .ok_or_else(|| sample_error("no ssim sink"))?;
        let mut scored = frame::Video::empty();
        while sink.sink().frame(&mut scored).is_ok() {
            if let Some(all) = scored
                .metadata()
                .get("lavfi.ssim.All")
                .and_then(|v| v.parse::<f64>().ok())
            {
                out.ssim_sum += all;
                out.frames += 1;
            }
        }
        Ok(())
    }
}

/// `[main][ref]ssim[scores]`: both inputs 4:2:0 at the rung's size; every output picture
/// carries `lavfi.ssim.All`.
fn ssim_graph((width, height): (u32, u32)) -> Result<filter::Graph, TranscodeError> {
    let what = || "building the SSIM graph".to_string();
    let mut graph = filter::Graph::new();
    let buffer = filter::find("buffer").ok_or_else(|| sample_error("no buffer filter"))?;
    let sink = filter::find("buffersink").ok_or_else(|| sample_error("no buffersink"))?;
    let args = format!(
        "video_size={width}x{height}:pix_fmt={}:time_base=1/25:pixel_aspect=1/1",
        ffmpeg_next::ffi::AVPixelFormat::from(format::Pixel::YUV420P) as i32
    );
    graph.add(&buffer, "main", &args).context(what)?;
    graph.add(&buffer, "ref", &args).context(what)?;
    graph.add(&sink, "scores", "").context(what)?;
    graph
        .output("main", 0)
        .context(what)?
        .output("ref", 0)
        .context(what)?
        .input("scores", 0)
        .context(what)?
        .parse("[main][ref]ssim[scores]")
        .context(what)?;
    graph.validate().context(what)?;
    Ok(graph)
}

/// A damaged packet is skipped, as the packager skips it.
fn ignore_invalid(e: ffmpeg_next::Error) -> Result<(), ffmpeg_next::Error> {
    match e {
        ffmpeg_next::Error::InvalidData => Ok(()),
        e => Err(e),
    }
}

fn sample_error(what: &str) -> TranscodeError {
    TranscodeError::Internal(format!("per-title tuning: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_a_percent_of_the_film_within_bounds() {
        let total = |d: f64| windows(d).iter().map(|w| w.1).sum::<f64>();
        assert_eq!(windows(60.0).len(), 4);
        assert_eq!(windows(60.0)[0], (7.25, 0.5));
        assert!((total(60.0) - 2.0).abs() < 1e-9);
        assert!((total(300.0) - 6.0).abs() < 1e-9);
        assert_eq!(windows(300.0).len(), 12);
        assert!((total(7200.0) - 10.0).abs() < 1e-9);
        assert_eq!(windows(7200.0).len(), 20);
        assert_eq!(windows(0.5), vec![(0.0, 0.5)]);
        for (start, length) in windows(7200.0) {
            assert!(start >= 0.0 && start + length <= 7200.0);
        }
    }

    #[test]
    fn the_idr_overhead_counts_one_idr_a_segment() {
        // 4 windows of 15 pictures: 4 IDR frames of 40 kB and 56 others of 5 kB = 440 kB.
        // With one IDR a 180-picture segment the 60 pictures hold a third of one:
        // 40/3 + 59⅔ × 5 ≈ 311.7 kB, so the sample costs 1.41× the film's rate.
        let m = Measured {
            keys: (4, 160_000),
            others: (56, 280_000),
            ..Measured::default()
        };
        let r = m.idr_overhead(180.0);
        assert!(
            (r - 440.0 / (40.0 / 3.0 + (60.0 - 1.0 / 3.0) * 5.0)).abs() < 1e-9,
            "{r}"
        );
        // Segments no longer than the windows: no overhead, and never below 1.
        assert_eq!(m.idr_overhead(15.0), 1.0);
        assert_eq!(m.idr_overhead(5.0), 1.0);
        // Nothing to tell from.
        assert_eq!(Measured::default().idr_overhead(180.0), 1.0);
    }

    #[test]
    fn the_choice_matches_the_abr_picture_between_the_probes() {
        // Probes at 21 (0.99 → 20 dB) and 27 (0.96 → 13.98 dB); abr gave 0.981, so the
        // target is 0.980 → 16.99 dB, half-way: CRF 24.
        let c = choose(0.981, (21.0, 0.99), (27.0, 0.96));
        assert!((c - 24.0).abs() <= 0.25, "{c}");
        // abr better than the table's CRF: go down, but at most MAX_DOWN.
        assert_eq!(choose(0.9999, (21.0, 0.99), (27.0, 0.96)), 17.0);
        // abr far worse: go up, at most MAX_UP.
        assert_eq!(choose(0.5, (21.0, 0.99), (27.0, 0.96)), 27.0);
        // The ceiling binds (the probes look the same): the table stays.
        assert_eq!(choose(0.95, (21.0, 0.9001), (27.0, 0.9)), 21.0);
    }
}
