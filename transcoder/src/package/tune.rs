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
//!    has an IDR frame every window (a quarter second), the film one every segment (6 s), and
//!    an IDR frame costs several times a predicted one: at the ladder bitrate the sample is
//!    starved, and its `abr` picture was 0.01–0.02 SSIM worse than the film's (bbb, carphone,
//!    cellauto in docs/BENCHMARKS.md), so the chosen CRF came out too high. The `abr` sample
//!    is therefore encoded at the ladder bitrate × what the table-CRF probe's own IDR and
//!    other frames say the sample costs over the same pictures with one IDR a segment;
//! 3. at the CRF interpolated from (1) to give (2)'s SSIM less `MATCH_MARGIN` — measured
//!    again, so the manifest records what the chosen target really gave.
//!
//! A rung keeps the chosen CRF only where the sample shows it pays: at least `MIN_SAVING`
//! fewer bytes than `abr` (both counted with one IDR a segment, as the film pays) for an
//! SSIM no more than `KEEP_MARGIN` below it. Elsewhere the rung is encoded at `abr`, as
//! under `rate_control = "abr"`: where the ceiling binds (noise, fast motion) a capped CRF
//! spends the same bits worse than ABR does (cellauto 720p lost 0.022 SSIM under `crf`),
//! and a film the sample finds no cheaper gains nothing from a CRF but the risk of a
//! misjudged sample. So per-title is never meant to cost bytes or picture against `abr`.
//!
//! SSIM is ffmpeg's `ssim` filter between the decoded encode and the rung's own scaled
//! picture, the judge `bench/quality.sh` uses. Interpolation is on −10·log10(1 − SSIM),
//! which is close to linear in the CRF over a few steps. Where the probes hardly differ
//! (the ceiling binds: the picture is hard at this bitrate) the table's CRF stays.
//!
//! Each window is the pictures from its place on, not from the keyframe before it, so each
//! walk of the sample decodes up to a GOP of pictures it does not use. Walks are therefore
//! shared: walk 1 encodes both probes of every rung (two encoders per rung, fed copies of
//! the same picture), walk 2 `abr` (it needs the first probe's IDR cost), walk 3 judges
//! all three; only rungs whose choice is not a probe are encoded (walk 4) and judged (walk
//! 5) again. Three to five walks, where one per encode and one per judge made eight. Two
//! encoders per rung in walk 1 cost memory: tuning's peak went from ≈450 to ≈570 MB (20 s
//! 1080p source, default ladder, veryfast). Walks of at most one encoder per rung would
//! keep the old peak in four to six walks (lo; abr and judge lo; hi and judge abr; judge hi).
//!
//! Cost: three or four encodes of the sample and three to five decodes of it from each
//! window's keyframe; the sample is 2% of the film, at least `MIN_SAMPLE` and at most
//! `MAX_SAMPLE` seconds (docs/BENCHMARKS.md, "Rate control").

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use ffmpeg_next::{
    codec, decoder, filter, format, frame, picture, Discard, Packet, Rational, Rescale,
};

use super::rung::{Encoded, RungEncoder};
use super::video::{self, X264Setup};
use crate::error::{Context, TranscodeError};
use crate::ladder::Target;
use crate::manifest::{QualityPoint, RungQuality};
use crate::probe::{self, MediaInfo};

/// The sample: 2% of the film, 2–10 s, in windows of a quarter second spread evenly over it.
/// One window (1–2 s in the middle of the film) misjudged whole films: its difficulty is
/// not the film's, and SSIM fell up to 0.03 below `abr` (docs/BENCHMARKS.md). When tuning
/// encoded the sample four times in eight walks, each window from its keyframe, it took
/// about 1.1× the sample's length in packaging time a pass (20 s 1080p source, default
/// ladder) and added ≈9% to a film of 8 min or more, ≈20% to a 1 min clip. The walks now
/// also decode each window's pre-roll, up to a GOP, but are three to five: on a 20 s 1080p
/// source with 10 s GOPs (the pre-roll ≈10× the sample) tuning took 12–13 s where it took
/// 8–9.5 s (debug build, veryfast, five walks), 17–18.5 s against 11.5–13 s on a busy
/// machine.
const SAMPLE_SHARE: f64 = 0.02;
const MIN_SAMPLE: f64 = 2.0;
const MAX_SAMPLE: f64 = 10.0;
/// Longest sampled window: many short windows see more of the film than a few long ones.
/// With half-second windows (four in a 60 s film) the sample missed the seconds where a
/// ceiling binds, and the films kept at a CRF lost up to 0.013 SSIM against the 0.002 the
/// sample allowed (carphone, bikes); with quarter-second windows every rung stayed within
/// 0.002 (docs/BENCHMARKS.md, per-title runs 4 and 5).
const MAX_WINDOW: f64 = 0.25;
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
/// The least share of `abr`'s bytes a chosen CRF must save on the sample to be kept.
const MIN_SAVING: f64 = 0.03;
/// How far below `abr`'s SSIM a chosen CRF's sample may be and still be kept: the picture
/// loss issue 13 accepts on easy films.
const KEEP_MARGIN: f64 = 0.002;

/// What tuning chose: each target's CRF and what was measured for it.
pub(crate) struct Tuned {
    /// `None`: the rung is encoded at `abr`.
    pub(crate) crf: Vec<Option<f32>>,
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

/// Whether the `chosen` CRF's sample beats `abr`'s: `MIN_SAVING` fewer bytes, each counted
/// with one IDR frame a segment as in the film, for at most `KEEP_MARGIN` less SSIM.
fn pays(abr: &Measured, chosen: &Measured, frames_per_segment: f64) -> bool {
    let film_bytes = |m: &Measured| m.bytes as f64 / m.idr_overhead(frames_per_segment);
    film_bytes(chosen) <= film_bytes(abr) * (1.0 - MIN_SAVING)
        && chosen.ssim() >= abr.ssim() - KEEP_MARGIN
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
    let n = targets.len();
    let hi_crf: Vec<f32> = table.iter().map(|c| (c + PROBE_STEP).min(51.0)).collect();
    // Walk 1: both probes of every rung. Rung i's probes are encodes 2i and 2i + 1.
    let probes: Vec<Variant> = (0..n)
        .flat_map(|i| [Variant::crf(i, table[i]), Variant::crf(i, hi_crf[i])])
        .collect();
    let mut encodes = sampler.encode(&probes)?;
    progress(0.3);
    // Walk 2: `abr`, paid for as the film pays for it, by the table probe's IDR frames.
    let frames_per_segment = f64::from(setup.rate) * setup.segment_seconds;
    let abr: Vec<Variant> = (0..n)
        .map(|i| Variant {
            rung: i,
            crf: None,
            abr_scale: encodes[2 * i].measured.idr_overhead(frames_per_segment),
        })
        .collect();
    encodes.extend(sampler.encode(&abr)?);
    progress(0.5);
    // Walk 3: all three judged at once. Rung i's `abr` is encode 2n + i.
    let measured = sampler.judge(encodes)?;
    progress(0.75);
    let (lo, hi, abr) = (
        |i: usize| &measured[2 * i],
        |i: usize| &measured[2 * i + 1],
        |i: usize| &measured[2 * n + i],
    );
    let crf: Vec<f32> = (0..n)
        .map(|i| {
            // A sample that gave no pictures (a source that will not seek and is shorter
            // than it claims) tells nothing: the table stands.
            if [abr(i), lo(i), hi(i)].iter().any(|m| m.frames == 0) {
                return table[i];
            }
            choose(
                abr(i).ssim(),
                (table[i], lo(i).ssim()),
                (hi_crf[i], hi(i).ssim()),
            )
        })
        .collect();
    // A choice that is one of the probes (the table where the ceiling binds, the upper
    // probe at the limit) was measured already; walks 4 and 5 encode and judge the others.
    let probed = |i: usize| {
        if crf[i] == table[i] {
            Some(lo(i).clone())
        } else if crf[i] == hi_crf[i] {
            Some(hi(i).clone())
        } else {
            None
        }
    };
    let rest: Vec<Variant> = (0..n)
        .filter(|&i| probed(i).is_none())
        .map(|i| Variant::crf(i, crf[i]))
        .collect();
    let mut remeasured = if rest.is_empty() {
        Vec::new()
    } else {
        sampler.judge(sampler.encode(&rest)?)?
    }
    .into_iter();
    progress(1.0);
    let mut quality = Vec::with_capacity(n);
    let mut kept = Vec::with_capacity(n);
    for i in 0..n {
        let chosen = match probed(i) {
            Some(m) => m,
            None => remeasured
                .next()
                .ok_or_else(|| sample_error("a chosen encode is missing"))?,
        };
        // A sample that gave no pictures tells nothing either way: the table stands.
        let keep = [abr(i), &chosen].iter().any(|m| m.frames == 0)
            || pays(abr(i), &chosen, frames_per_segment);
        let (crf, chosen) = if keep {
            (Some(crf[i]), chosen.point(Some(crf[i])))
        } else {
            (None, abr(i).point(None))
        };
        tracing::debug!(rung = %targets[i].name, ?crf, "per-title tuning");
        kept.push(crf);
        quality.push(RungQuality {
            sample_seconds: (sample_seconds * 1000.0).round() / 1000.0,
            abr: abr(i).point(None),
            probes: vec![lo(i).point(Some(table[i])), hi(i).point(Some(hi_crf[i]))],
            chosen,
        });
    }
    Ok(Tuned { crf: kept, quality })
}

/// One sampled encode: rung `rung` at `crf`, or (`None`) at the ladder bitrate × `abr_scale`.
#[derive(Clone, Copy)]
struct Variant {
    rung: usize,
    crf: Option<f32>,
    abr_scale: f64,
}

impl Variant {
    fn crf(rung: usize, crf: f32) -> Self {
        Self {
            rung,
            crf: Some(crf),
            abr_scale: 1.0,
        }
    }
}

/// A variant's packets, with their sizes already counted.
struct Sampled {
    rung: usize,
    packets: Vec<Packet>,
    measured: Measured,
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
    /// The bytes of an encode, keyframes and the rest apart; SSIM is for the judge.
    fn of_packets(packets: &[Packet]) -> Self {
        let mut m = Self::default();
        for p in packets {
            let size = p.size() as u64;
            m.bytes += size;
            let count = if p.is_key() {
                &mut m.keys
            } else {
                &mut m.others
            };
            count.0 += 1;
            count.1 += size;
        }
        m
    }

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
    /// Encodes the windows one after another as one short film per variant (an IDR frame at
    /// each window, as at a segment), so `abr` shares its bitrate out over the windows as it
    /// would over the film. All variants are encoded in one walk, each rung's picture
    /// copied to each of its variants: a walk decodes every window from its keyframe.
    fn encode(&self, variants: &[Variant]) -> Result<Vec<Sampled>, TranscodeError> {
        let sizes: Vec<(u32, u32)> = variants
            .iter()
            .map(|v| (self.targets[v.rung].width, self.targets[v.rung].height))
            .collect();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = video::encoder_threads(&sizes, cores);
        let mut encoders = Vec::with_capacity(variants.len());
        for (k, v) in variants.iter().enumerate() {
            let mut target = self.targets[v.rung].clone();
            if v.crf.is_none() {
                target.bitrate = (f64::from(target.bitrate) * v.abr_scale).round() as u32;
            }
            let encoder = video::open_x264(&target, self.setup, v.crf, threads[k])?;
            encoders.push(RungEncoder::start(target, encoder, format!("out{k}"))?);
        }
        let fed = by_rung(variants.iter().map(|v| v.rung), self.targets.len());
        let mut encoded: Vec<Encoded> = Vec::new();
        self.walk_all(&mut |i, frame| {
            share_out(&fed[i], frame, &mut |k, frame| {
                encoders[k].send(frame)?;
                encoders[k].collect(k, &mut encoded)
            })
        })?;
        for (k, encoder) in encoders.iter_mut().enumerate() {
            encoder.finish(k, &mut encoded)?;
        }
        // Each encoder was started with its variant's index as its `rung`.
        let mut packets: Vec<Vec<Packet>> = variants.iter().map(|_| Vec::new()).collect();
        for e in encoded {
            packets[e.rung].push(e.packet);
        }
        Ok(variants
            .iter()
            .zip(packets)
            .map(|(v, packets)| Sampled {
                rung: v.rung,
                measured: Measured::of_packets(&packets),
                packets,
            })
            .collect())
    }

    /// Walks the windows again and compares each decoded encode with the picture its
    /// encoder was given; every encode in one walk. A walk of its own costs a decode of the
    /// sample; holding every picture until the encoder (≈16 frames behind at 1080p) gave it
    /// back cost ≈130 MB.
    fn judge(&self, encodes: Vec<Sampled>) -> Result<Vec<Measured>, TranscodeError> {
        let fed = by_rung(encodes.iter().map(|e| e.rung), self.targets.len());
        let mut out = Vec::with_capacity(encodes.len());
        let mut judges = Vec::with_capacity(encodes.len());
        for e in encodes {
            judges.push(Judge::new(&self.targets[e.rung], self.setup, e.packets)?);
            out.push(e.measured);
        }
        self.walk_all(&mut |i, frame| {
            share_out(&fed[i], frame, &mut |k, frame| {
                judges[k].reference(frame, &mut out[k])
            })
        })?;
        for (judge, out) in judges.iter_mut().zip(out.iter_mut()) {
            judge.finish(out)?;
        }
        Ok(out)
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

    /// Decodes `length` seconds of the source from `start` (from the keyframe at or before it,
    /// the pictures before `start` unused), scales them as the package does, and hands rung
    /// `i`'s pictures to `on_frame(i, picture)` in order.
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
        // Decoding starts at the keyframe at or before `start` (a source that cannot seek is
        // read on from where the last window ended); the window, at the first picture at or
        // after `start`. Starting the window at the keyframe made every window of a looped
        // clip (a keyframe at each loop) its easy opening (docs/BENCHMARKS.md).
        let start_pts = origin + (start / f64::from(tb)) as i64;
        let seek_to = start_pts.rescale(tb, Rational(1, 1_000_000));
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
                    // Before the window, a picture no other picture refers to is not even
                    // decoded (each window's pre-roll is decoded in every walk).
                    decoder.skip_frame(match packet.pts() {
                        Some(pts) if pts < start_pts => Discard::NonReference,
                        _ => Discard::Default,
                    });
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
                // Decoded only for the pictures after it that refer to it.
                if pts < start_pts {
                    continue;
                }
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

/// For each of `rungs` rungs, the indices of the encodes (each of rung `of[k]`) made of
/// its pictures.
fn by_rung(of: impl Iterator<Item = usize>, rungs: usize) -> Vec<Vec<usize>> {
    let mut fed = vec![Vec::new(); rungs];
    for (k, rung) in of.enumerate() {
        if let Some(f) = fed.get_mut(rung) {
            f.push(k);
        }
    }
    fed
}

/// Hands a picture to each of `to`: a copy to all but the last, which takes it.
fn share_out(
    to: &[usize],
    frame: frame::Video,
    give: &mut dyn FnMut(usize, frame::Video) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    let Some((&last, rest)) = to.split_last() else {
        return Ok(());
    };
    for &k in rest {
        give(k, frame.clone())?;
    }
    give(last, frame)
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
        Ok(Self {
            decoder,
            packets: packets.into_iter(),
            references: VecDeque::new(),
            ssim: None,
            size: (target.width, target.height),
            frame_seconds,
            next_pts: 0,
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
        assert_eq!(windows(60.0).len(), 8);
        assert_eq!(windows(60.0)[0], (3.625, 0.25));
        assert!((total(60.0) - 2.0).abs() < 1e-9);
        assert!((total(300.0) - 6.0).abs() < 1e-9);
        assert_eq!(windows(300.0).len(), 24);
        assert!((total(7200.0) - 10.0).abs() < 1e-9);
        assert_eq!(windows(7200.0).len(), 40);
        assert_eq!(windows(0.5), vec![(0.0, 0.25), (0.25, 0.25)]);
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

    #[test]
    fn a_crf_is_kept_only_where_it_saves_bytes_without_losing_the_picture() {
        // No IDR overhead to correct for: one keyframe, segments of one window.
        let m = |bytes: u64, ssim: f64| Measured {
            ssim_sum: ssim * 100.0,
            frames: 100,
            bytes,
            keys: (1, 0),
            others: (99, bytes),
            ..Measured::default()
        };
        let abr = m(100_000, 0.980);
        // 10% fewer bytes within the margin: kept.
        assert!(pays(&abr, &m(90_000, 0.979), 15.0));
        // Fewer bytes, but the picture falls more than KEEP_MARGIN: abr.
        assert!(!pays(&abr, &m(60_000, 0.977), 15.0));
        // The same picture for about the same bytes (the ceiling binds): abr.
        assert!(!pays(&abr, &m(99_000, 0.980), 15.0));
        assert!(!pays(&abr, &m(105_000, 0.985), 15.0));
        // Both are counted with one IDR a segment: the abr sample's 440 kB (4 keyframes of
        // 40 kB in 60 pictures) weigh ≈312 kB, the CRF sample's 330 kB (one keyframe)
        // ≈307 kB: under 3% saved, so abr, though the raw bytes say 25%.
        let starved = Measured {
            ssim_sum: 60.0 * 0.98,
            frames: 60,
            bytes: 440_000,
            keys: (4, 160_000),
            others: (56, 280_000),
            ..Measured::default()
        };
        let crf = Measured {
            ssim_sum: 60.0 * 0.98,
            frames: 60,
            bytes: 330_000,
            keys: (1, 40_000),
            others: (59, 290_000),
            ..Measured::default()
        };
        assert!(!pays(&starved, &crf, 180.0));
    }

    #[test]
    fn each_rungs_pictures_go_to_each_of_its_encodes() -> Result<(), TranscodeError> {
        // Probes of rungs 0 and 1 (encodes 0–3), then their abr (4, 5); rung 2 has none.
        let fed = by_rung([0, 0, 1, 1, 0, 1].into_iter(), 3);
        assert_eq!(fed, vec![vec![0, 1, 4], vec![2, 3, 5], vec![]]);
        let mut picture = frame::Video::new(format::Pixel::YUV420P, 4, 4);
        picture.set_pts(Some(7));
        picture.set_kind(picture::Type::I);
        let mut given = Vec::new();
        share_out(&fed[0], picture, &mut |k, f| {
            given.push((k, f.pts(), f.kind()));
            Ok(())
        })?;
        // Each copy keeps the timestamp and the forced IDR of the window's first picture.
        let i = picture::Type::I;
        assert_eq!(
            given,
            vec![(0, Some(7), i), (1, Some(7), i), (4, Some(7), i)]
        );
        share_out(&fed[2], frame::Video::empty(), &mut |_, _| {
            Err(sample_error("a rung without encodes was given a picture"))
        })
    }
}
