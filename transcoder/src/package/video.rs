//! Video: decode once, one filter graph that (if needed) rotates, then splits to one
//! scaler per rung, and one libx264 encoder per rung, each on its own thread (`rung`).

use ffmpeg_next::{
    codec, decoder, encoder, filter, format, frame, picture, Dictionary, Packet, Rational,
};

use super::rung::{Encoded, RungEncoder};
use crate::error::{Context, TranscodeError};
use crate::ladder::{CrfTargets, RateControl, Target};

pub(crate) struct VideoPath {
    pub(crate) stream_index: usize,
    decoder: decoder::Video,
    /// Built on the first decoded frame, whose format and size are the truth.
    graph: Option<filter::Graph>,
    rotation: u32,
    pub(crate) time_base: Rational,
    start: i64,
    last_pts: Option<i64>,
    pub(crate) frame_interval: i64,
    pub(crate) rungs: Vec<RungEncoder>,
}

pub(crate) struct EncoderSettings<'a> {
    pub(crate) preset: &'a str,
    pub(crate) segment_seconds: f64,
    /// Each target's quality target (x264 CRF) in ladder order; `None` encodes that rung at
    /// its ladder bitrate (`abr`).
    pub(crate) crf: Vec<Option<f32>>,
}

/// The quality target of `target` under `rate_control` from the configured table; `None`
/// under `Abr`. A rung is found by its name (its height); the one rendition made for a
/// source smaller than every rung takes the default. Under `PerTitle` this is where the
/// tuning starts (`tune`).
pub(crate) fn table_crf(
    target: &Target,
    rate_control: RateControl,
    table: &CrfTargets,
) -> Option<f32> {
    match rate_control {
        RateControl::Abr => None,
        RateControl::Crf | RateControl::PerTitle => Some(
            target
                .name
                .parse()
                .map_or(table.default, |h| table.for_rung(h)),
        ),
    }
}

/// The most a 6 s segment of a capped-quality rung may carry, video and MPEG-TS overhead
/// together, as a multiple of the ladder bitrate (bench/quality.sh holds it to 1.5).
const CRF_PEAK: f64 = 1.40;
/// MPEG-TS/PES bytes each video frame adds: its PES header, TS headers, and on average half
/// a TS packet of padding after its last payload byte. At 144p and 128k (533-byte frames
/// at 30 fps) that is ≈23% of the ladder bitrate; at 1080p it is noise.
const TS_OVERHEAD_PER_FRAME: f64 = 125.0;

/// What `open_x264` asks of libx264's rate control for a rung with ladder bitrate
/// `bitrate`: `(average bitrate, crf, maxrate, bufsize)`.
///
/// `abr` averages the ladder bitrate with `maxrate` 1.1× and `bufsize` 2×. Under `crf` the
/// ladder bitrate is the ceiling: `maxrate` 1.05×, and `bufsize` what keeps a segment of
/// `segment_seconds` (`maxrate` × the segment + `bufsize`, plus the TS overhead of `fps`
/// frames a second) within `CRF_PEAK` × the ceiling: 2× the ladder bitrate for every rung
/// of the default ladder but the smallest (1.875× at 360p), 0.69× for a 144p rung at
/// 128k, whose overhead alone is ≈23%, and never under 0.5×. A picture hard enough to hit the cap all film
/// long then costs at most ≈1.05× (plus the initial buffer) what `abr` spends on it, and
/// `BANDWIDTH` stays bounded by the ladder.
fn rate_settings(
    bitrate: u32,
    crf: Option<f32>,
    segment_seconds: f64,
    fps: f64,
) -> (usize, Option<f32>, usize, u64) {
    let ceiling = f64::from(bitrate);
    match crf {
        None => (
            bitrate as usize,
            None,
            (ceiling * 1.1) as usize,
            u64::from(bitrate) * 2,
        ),
        Some(c) => {
            let overhead = fps * TS_OVERHEAD_PER_FRAME * 8.0;
            let room = ((CRF_PEAK - 1.05) * ceiling - overhead) * segment_seconds;
            let bufsize = room.clamp(0.5 * ceiling, 2.0 * ceiling);
            (
                0,
                Some(c),
                (ceiling * 1.05) as usize,
                bufsize.round() as u64,
            )
        }
    }
}

/// A decoder for a source's video stream, frame-threaded.
pub(crate) fn open_decoder(
    stream: &format::stream::Stream,
) -> Result<decoder::Video, TranscodeError> {
    let what = || "opening the video decoder".to_string();
    let mut context =
        codec::context::Context::from_parameters(stream.parameters()).context(what)?;
    context.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    context.decoder().video().context(what)
}

/// How every x264 encoder of one source is opened, whatever its rung and rate.
pub(crate) struct X264Setup<'a> {
    pub(crate) time_base: Rational,
    pub(crate) rate: Rational,
    pub(crate) constant_rate: bool,
    pub(crate) preset: &'a str,
    pub(crate) segment_seconds: f64,
}

impl<'a> X264Setup<'a> {
    pub(crate) fn of(
        stream: &format::stream::Stream,
        preset: &'a str,
        segment_seconds: f64,
    ) -> Self {
        let rate = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0 && f64::from(*r) < 1000.0)
            .unwrap_or(Rational(25, 1));
        Self {
            time_base: stream.time_base(),
            rate,
            constant_rate: is_constant_rate(stream.avg_frame_rate(), stream.rate()),
            preset,
            segment_seconds,
        }
    }
}

impl VideoPath {
    pub(crate) fn new(
        stream: &format::stream::Stream,
        rotation: u32,
        targets: &[Target],
        settings: &EncoderSettings<'_>,
    ) -> Result<Self, TranscodeError> {
        let decoder = open_decoder(stream)?;
        let setup = X264Setup::of(stream, settings.preset, settings.segment_seconds);
        let (time_base, rate) = (setup.time_base, setup.rate);
        // One frame in time-base units, for the last frame's duration and pts repair.
        let frame_interval =
            ((f64::from(rate.invert()) / f64::from(time_base)).round() as i64).max(1);
        let start = match stream.start_time() {
            ffmpeg_next::ffi::AV_NOPTS_VALUE => 0,
            s => s,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sizes: Vec<(u32, u32)> = targets.iter().map(|t| (t.width, t.height)).collect();
        let threads = encoder_threads(&sizes, cores);
        let mut rungs = Vec::with_capacity(targets.len());
        for (i, target) in targets.iter().enumerate() {
            rungs.push(RungEncoder::start(
                target.clone(),
                open_x264(
                    target,
                    &setup,
                    settings.crf.get(i).copied().flatten(),
                    threads[i],
                )?,
                format!("out{i}"),
            )?);
        }
        Ok(Self {
            stream_index: stream.index(),
            decoder,
            graph: None,
            rotation,
            time_base,
            start,
            last_pts: None,
            frame_interval,
            rungs,
        })
    }

    pub(crate) fn send_packet(&mut self, packet: &Packet) -> Result<(), TranscodeError> {
        match self.decoder.send_packet(packet) {
            // A damaged packet is skipped as the ffmpeg CLI would; the decoder resyncs.
            Ok(()) | Err(ffmpeg_next::Error::InvalidData) => Ok(()),
            Err(e) => Err(e).context(|| "decoding video".into()),
        }
    }

    pub(crate) fn send_eof(&mut self) -> Result<(), TranscodeError> {
        self.decoder
            .send_eof()
            .context(|| "flushing the video decoder".into())
    }

    /// Pulls decoded frames, stamps them relative to the source start with strictly
    /// increasing times, and hands each to `on_frame` before it enters the graph.
    pub(crate) fn receive_frames(
        &mut self,
        mut on_frame: impl FnMut(i64),
    ) -> Result<usize, TranscodeError> {
        let mut frame = frame::Video::empty();
        let mut n = 0;
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::Other { errno })
                    if errno == ffmpeg_next::util::error::EAGAIN =>
                {
                    break
                }
                Err(ffmpeg_next::Error::InvalidData) => continue,
                Err(e) => return Err(e).context(|| "decoding video".into()),
            }
            let pts = match (frame.timestamp(), self.last_pts) {
                (Some(t), Some(last)) if t - self.start <= last => last + 1,
                (Some(t), _) => t - self.start,
                (None, Some(last)) => last + self.frame_interval,
                (None, None) => 0,
            };
            self.last_pts = Some(pts);
            frame.set_pts(Some(pts));
            frame.set_kind(picture::Type::None);
            on_frame(pts);
            if self.graph.is_none() {
                let sizes: Vec<(u32, u32)> = self
                    .rungs
                    .iter()
                    .map(|r| (r.target.width, r.target.height))
                    .collect();
                let sinks: Vec<&str> = self.rungs.iter().map(|r| r.sink.as_str()).collect();
                self.graph = Some(build_graph(
                    &frame,
                    self.time_base,
                    self.rotation,
                    &sizes,
                    &sinks,
                )?);
            }
            if let Some(graph) = self.graph.as_mut() {
                graph
                    .get("in")
                    .ok_or_else(|| graph_error("no source"))?
                    .source()
                    .add(&frame)
                    .context(|| "filtering video".into())?;
            }
            n += 1;
        }
        Ok(n)
    }

    pub(crate) fn flush_graph(&mut self) -> Result<(), TranscodeError> {
        if let Some(graph) = self.graph.as_mut() {
            graph
                .get("in")
                .ok_or_else(|| graph_error("no source"))?
                .source()
                .flush()
                .context(|| "flushing the video filters".into())?;
        }
        Ok(())
    }

    pub(crate) fn last_pts(&self) -> Option<i64> {
        self.last_pts
    }

    /// Moves scaled frames from the graph into the encoders, forcing an IDR frame at every
    /// segment boundary; `poster` sees each top-rung frame before it is encoded.
    pub(crate) fn encode_filtered(
        &mut self,
        boundaries: &[i64],
        poster: &mut dyn FnMut(&frame::Video) -> Result<(), TranscodeError>,
        out: &mut Vec<Encoded>,
    ) -> Result<(), TranscodeError> {
        let Some(graph) = self.graph.as_mut() else {
            return Ok(());
        };
        for (i, rung) in self.rungs.iter_mut().enumerate() {
            let mut sink = graph
                .get(&rung.sink)
                .ok_or_else(|| graph_error("no sink"))?;
            loop {
                // A fresh frame each time: it moves to the encoder's thread.
                let mut frame = frame::Video::empty();
                match sink.sink().frame(&mut frame) {
                    Ok(()) => {}
                    Err(ffmpeg_next::Error::Eof) => break,
                    Err(ffmpeg_next::Error::Other { errno })
                        if errno == ffmpeg_next::util::error::EAGAIN =>
                    {
                        break
                    }
                    Err(e) => return Err(e).context(|| "filtering video".into()),
                }
                let pts = frame.pts().unwrap_or(0);
                let mut key = false;
                while rung.next_boundary < boundaries.len() && pts >= boundaries[rung.next_boundary]
                {
                    rung.next_boundary += 1;
                    key = true;
                }
                frame.set_kind(if key {
                    picture::Type::I
                } else {
                    picture::Type::None
                });
                if i == 0 {
                    poster(&frame)?;
                }
                rung.send(frame)?;
            }
            rung.collect(i, out)?;
        }
        Ok(())
    }

    pub(crate) fn flush_encoders(&mut self, out: &mut Vec<Encoded>) -> Result<(), TranscodeError> {
        // Every encoder flushes at once; then their last packets are collected.
        for rung in &mut self.rungs {
            rung.end()?;
        }
        for (i, rung) in self.rungs.iter_mut().enumerate() {
            rung.finish(i, out)?;
        }
        Ok(())
    }
}

/// The video filter graph for a source's decoded frames: source `in`, rotated by
/// `rotation`, scaled to each of `sizes`, the picture of size `i` ending in sink `sinks[i]`.
pub(crate) fn build_graph(
    frame: &frame::Video,
    time_base: Rational,
    rotation: u32,
    sizes: &[(u32, u32)],
    sinks: &[&str],
) -> Result<filter::Graph, TranscodeError> {
    let what = || "building the video filter graph".to_string();
    let mut graph = filter::Graph::new();
    let sar = frame.aspect_ratio();
    let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
        sar
    } else {
        Rational(1, 1)
    };
    let args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
        frame.width(),
        frame.height(),
        ffmpeg_next::ffi::AVPixelFormat::from(frame.format()) as i32,
        time_base.numerator(),
        time_base.denominator(),
        sar.numerator(),
        sar.denominator()
    );
    let buffer = filter::find("buffer").ok_or_else(|| graph_error("no buffer filter"))?;
    let sink = filter::find("buffersink").ok_or_else(|| graph_error("no buffersink filter"))?;
    graph.add(&buffer, "in", &args).context(what)?;
    for name in sinks {
        let mut ctx = graph.add(&sink, name, "").context(what)?;
        ctx.set_pixel_format(format::Pixel::YUV420P);
    }
    let rotate = match rotation {
        90 => "transpose=clock,",
        180 => "hflip,vflip,",
        270 => "transpose=cclock,",
        _ => "",
    };
    let spec = graph_spec(rotate, sizes, sinks);
    let mut parser = graph.output("in", 0).context(what)?;
    for name in sinks {
        parser = parser.input(name, 0).context(what)?;
    }
    parser.parse(&spec).context(what)?;
    graph.validate().context(what)?;
    Ok(graph)
}

/// x264 threads per rung: the cores shared out by each rung's share of the ladder's pixels,
/// rounded up. The rungs already run in parallel (each on its own thread, see `rung`), and
/// every frame thread costs CPU (x264 re-syncs between them) and memory (each holds frames),
/// so most rungs get one; the top rung, about half the work, gets more, or it would be the
/// one thread everything waits for. 20 s 1080p source, 2 cores: one thread each 23.9 s,
/// 2/1/1/1 22.1–22.6 s, 3/1/1/1 22.3 s, 2 each 23.3 s.
const MAX_ENCODER_THREADS: usize = 8;

pub(crate) fn encoder_threads(sizes: &[(u32, u32)], cores: usize) -> Vec<usize> {
    let pixels = |&(w, h): &(u32, u32)| u64::from(w) * u64::from(h);
    let total: u64 = sizes.iter().map(pixels).sum::<u64>().max(1);
    sizes
        .iter()
        .map(|size| {
            let share = pixels(size) as f64 / total as f64;
            // Capped: an explicit thread count is not limited by x264 the way its automatic
            // one is, and each frame thread holds frames (≈11 MB at 1080p).
            ((cores as f64 * share).ceil() as usize).clamp(1, MAX_ENCODER_THREADS)
        })
        .collect()
}

/// Smallest ratio between a picture and a rung scaled from it. Below it the rung comes
/// from a larger picture (the source at the latest), so no rung is a small step down from
/// another one, where a second resampling would show.
const MIN_CASCADE_RATIO: f64 = 1.5;

/// Where each rung's picture is scaled from: `None` for the (rotated) source, `Some(j)` for
/// rung `j`'s scaled picture — the smallest one at least `MIN_CASCADE_RATIO` times as large. Scaling 480p and 360p from the 720p picture instead of the 1080p
/// source takes 60% less swscale time for those rungs (2.25× fewer input pixels and
/// shorter filters); SSIM against a Lanczos downscale of the source stays above 0.9993
/// (docs/BENCHMARKS.md).
fn scale_sources(sizes: &[(u32, u32)]) -> Vec<Option<usize>> {
    // Compared on the shorter side, as the ladder names rungs (even widths make 854×480
    // a pixel too wide for exactly 1.5× of 1280×720).
    let short = |(w, h): (u32, u32)| f64::from(w.min(h));
    let fits = |big: (u32, u32), small: (u32, u32)| short(big) >= MIN_CASCADE_RATIO * short(small);
    sizes
        .iter()
        .map(|&size| {
            (0..sizes.len())
                .filter(|&j| fits(sizes[j], size))
                .min_by_key(|&j| u64::from(sizes[j].0) * u64::from(sizes[j].1))
        })
        .collect()
}

/// The filter graph: `[in]`, rotated if needed, split to the rungs scaled from the source;
/// each rung's picture is split again when smaller rungs are scaled from it. Rung `i` ends
/// in the sink labelled `sinks[i]`.
fn graph_spec(rotate: &str, sizes: &[(u32, u32)], sinks: &[&str]) -> String {
    let sources = scale_sources(sizes);
    let fed_by = |from: Option<usize>| -> Vec<usize> {
        (0..sizes.len()).filter(|&i| sources[i] == from).collect()
    };
    let label = |from: Option<usize>, to: usize| match from {
        None => format!("[src{to}]"),
        Some(j) => format!("[r{j}to{to}]"),
    };
    let top = fed_by(None);
    let mut spec = format!("[in]{rotate}split={}", top.len());
    for &i in &top {
        spec.push_str(&label(None, i));
    }
    for (i, (&(w, h), sink)) in sizes.iter().zip(sinks).enumerate() {
        let children = fed_by(Some(i));
        spec.push_str(&format!(
            ";{}scale={w}:{h}:flags=bicubic,setsar=1,format=yuv420p,split={}[{sink}]",
            label(sources[i], i),
            1 + children.len()
        ));
        for &c in &children {
            spec.push_str(&label(Some(i), c));
        }
    }
    spec
}

/// Whether the source has one frame rate: its average rate (frames over duration) and its
/// real base rate (the smallest rate on whose grid every timestamp falls) agree within 1%.
/// A variable-frame-rate source (30 fps then 10 fps: base 30, average ≈ 15) does not.
fn is_constant_rate(average: Rational, base: Rational) -> bool {
    let valid = |r: Rational| r.numerator() > 0 && r.denominator() > 0;
    valid(average)
        && valid(base)
        && (f64::from(average) - f64::from(base)).abs() <= 0.01 * f64::from(base)
}

/// The x264 options beyond the preset. `constant_rate` adds `force-cfr`: x264 then writes
/// the VUI timing from the frame rate (`num_units_in_tick`/`time_scale` = 1/(2·fps),
/// `fixed_frame_rate_flag` = 1) instead of from the encoder time base — the source's
/// 1/12800 made players such as GStreamer read "12800 fps". Timestamps still pass through
/// unchanged (x264 copies the input pts to the output), so segment timing does not move.
/// A variable-frame-rate source keeps x264's default: the VUI then carries the time base's
/// tick with `fixed_frame_rate_flag` = 0, i.e. "no fixed rate; read the timestamps", which
/// is the truth, and rate control keeps using the real frame durations.
///
/// `crf` (capped quality) looks 5 frames ahead instead of 3. With 3, x264's macroblock tree
/// and VBV planning see too little of the future to hold a capped quality target: on a
/// picture that changes everywhere (rule-110 `cellauto` scaled to 480p, 12 s, CRF 21
/// capped at 1470k) SSIM fell to 0.759 against 0.867 for `abr` (on 8% fewer bytes); 5
/// frames gave 0.899, 10 (the preset's) 0.906. `abr` keeps 3 (docs/BENCHMARKS.md).
fn x264_params(constant_rate: bool, crf: bool) -> String {
    // Every x264 frame in flight holds the picture, its half-pel planes and its lowres copy
    // (≈11 MB at 1080p), and all rungs encode at once. The preset's 10-frame rate-control
    // lookahead and 4-frame threaded-lookahead buffer cost ≈110 MB over the ladder; 3 and
    // 2 frames keep the lookahead thread busy and the speed (a 1-frame buffer stalls the
    // feeding thread). SSIM of the 1080p rung: 0.99487 against 0.99490 (docs/BENCHMARKS.md).
    let lookahead = if crf { 5 } else { 3 };
    let mut params = format!("scenecut=0:open-gop=0:rc-lookahead={lookahead}:sync-lookahead=2");
    if constant_rate {
        params.push_str(":force-cfr=1");
    }
    params
}

pub(crate) fn open_x264(
    target: &Target,
    setup: &X264Setup<'_>,
    crf: Option<f32>,
    threads: usize,
) -> Result<encoder::Video, TranscodeError> {
    let what = || format!("opening the H.264 encoder for {}p", target.name);
    let codec = encoder::find_by_name("libx264")
        .ok_or_else(|| TranscodeError::Unsupported("no libx264 encoder".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .context(what)?;
    enc.set_width(target.width);
    enc.set_height(target.height);
    enc.set_format(format::Pixel::YUV420P);
    enc.set_time_base(setup.time_base);
    enc.set_frame_rate(Some(setup.rate));
    enc.set_aspect_ratio(Rational(1, 1));
    let (average, crf, maxrate, bufsize) = rate_settings(
        target.bitrate,
        crf,
        setup.segment_seconds,
        f64::from(setup.rate),
    );
    enc.set_bit_rate(average);
    enc.set_max_bit_rate(maxrate);
    // Keyframes come from the segment boundaries; the GOP limit only stops x264 from adding
    // its own in between.
    let gop = (f64::from(setup.rate) * setup.segment_seconds * 2.0)
        .ceil()
        .max(2.0) as u32;
    enc.set_gop(gop);
    let mut opts = Dictionary::new();
    opts.set("preset", setup.preset);
    opts.set("profile", "high");
    opts.set("bufsize", &bufsize.to_string());
    if let Some(crf) = crf {
        opts.set("crf", &crf.to_string());
    }
    opts.set("forced-idr", "1");
    opts.set(
        "x264-params",
        &x264_params(setup.constant_rate, crf.is_some()),
    );
    opts.set("threads", &threads.to_string());
    enc.open_with(opts).context(what)
}

fn graph_error(what: &str) -> TranscodeError {
    TranscodeError::Internal(format!("video filter graph: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaller_rungs_scale_from_the_smallest_picture_large_enough() {
        let ladder = [(1920, 1080), (1280, 720), (854, 480), (640, 360)];
        assert_eq!(
            scale_sources(&ladder),
            [None, Some(0), Some(1), Some(1)],
            "720 from 1080 (1.5×), 480 and 360 from 720 (480 is only 1.33× of 360)"
        );
        // A 4K top rung: 1080 from it, and the rest as above.
        assert_eq!(
            scale_sources(&[(3840, 2160), (1920, 1080), (1280, 720)]),
            [None, Some(0), Some(1)]
        );
        // Close steps go back to a larger picture, not to the one just above.
        assert_eq!(
            scale_sources(&[(1280, 720), (960, 540), (640, 360)]),
            [None, None, Some(1)]
        );
        assert_eq!(scale_sources(&[(640, 360)]), [None]);
        // Portrait: the shorter side counts.
        assert_eq!(
            scale_sources(&[(1080, 1920), (720, 1280), (360, 640)]),
            [None, Some(0), Some(1)]
        );
    }

    #[test]
    fn only_a_constant_rate_source_gets_a_fixed_rate_in_the_vui() {
        assert!(is_constant_rate(Rational(25, 1), Rational(25, 1)));
        assert!(is_constant_rate(Rational(2997, 100), Rational(30000, 1001)));
        assert!(!is_constant_rate(Rational(146, 10), Rational(30, 1)));
        assert!(!is_constant_rate(Rational(0, 0), Rational(25, 1)));
        assert!(x264_params(true, false).ends_with(":force-cfr=1"));
        assert!(!x264_params(false, false).contains("force-cfr"));
        assert!(x264_params(false, false).contains("rc-lookahead=3:"));
        assert!(x264_params(true, true).contains("rc-lookahead=5:"));
    }

    #[test]
    fn crf_keeps_the_abr_peak_and_drops_the_average() {
        assert_eq!(
            rate_settings(5_000_000, None, 6.0, 30.0),
            (5_000_000, None, 5_500_000, 10_000_000)
        );
        assert_eq!(
            rate_settings(5_000_000, Some(21.0), 6.0, 30.0),
            (0, Some(21.0), 5_250_000, 10_000_000)
        );
        // 360p at 800k: (0.35 × 800k − 30k) × 6 s = 1.5M, under 2×.
        assert_eq!(
            rate_settings(800_000, Some(18.0), 6.0, 30.0),
            (0, Some(18.0), 840_000, 1_500_000)
        );
        // 144p at 128k: the TS overhead (30k) leaves (44.8k − 30k) × 6 s, 0.69×.
        assert_eq!(
            rate_settings(128_000, Some(18.0), 6.0, 30.0),
            (0, Some(18.0), 134_400, 88_800)
        );
        // Ten-second segments at 60 fps on a 96k rung: the floor of half a second.
        assert_eq!(
            rate_settings(96_000, Some(18.0), 10.0, 60.0),
            (0, Some(18.0), 100_800, 48_000)
        );
        let table = CrfTargets {
            default: 22.0,
            per_rung: vec![(360, 20.0)],
        };
        let target = |name: &str| Target {
            name: name.into(),
            width: 2,
            height: 2,
            bitrate: 100_000,
        };
        assert_eq!(
            table_crf(&target("360"), RateControl::Crf, &table),
            Some(20.0)
        );
        assert_eq!(
            table_crf(&target("720"), RateControl::Crf, &table),
            Some(22.0)
        );
        assert_eq!(
            table_crf(&target("360"), RateControl::PerTitle, &table),
            Some(20.0)
        );
        assert_eq!(table_crf(&target("360"), RateControl::Abr, &table), None);
    }

    #[test]
    fn threads_follow_each_rungs_share_of_the_pixels() {
        let ladder = [(1920, 1080), (1280, 720), (854, 480), (640, 360)];
        assert_eq!(encoder_threads(&ladder, 2), [2, 1, 1, 1]);
        assert_eq!(encoder_threads(&ladder, 8), [5, 3, 1, 1]);
        assert_eq!(encoder_threads(&ladder, 1), [1, 1, 1, 1]);
        assert_eq!(encoder_threads(&ladder, 64), [8, 8, 8, 5]);
        assert_eq!(encoder_threads(&[(640, 360)], 2), [2]);
        assert_eq!(encoder_threads(&[(854, 480), (640, 360)], 2), [2, 1]);
    }

    #[test]
    fn the_graph_spec_wires_every_rung_to_its_sink() {
        let spec = graph_spec(
            "transpose=clock,",
            &[(1920, 1080), (1280, 720), (854, 480), (640, 360)],
            &["out0", "out1", "out2", "out3"],
        );
        assert_eq!(
            spec,
            "[in]transpose=clock,split=1[src0]\
             ;[src0]scale=1920:1080:flags=bicubic,setsar=1,format=yuv420p,split=2[out0][r0to1]\
             ;[r0to1]scale=1280:720:flags=bicubic,setsar=1,format=yuv420p,split=3[out1][r1to2][r1to3]\
             ;[r1to2]scale=854:480:flags=bicubic,setsar=1,format=yuv420p,split=1[out2]\
             ;[r1to3]scale=640:360:flags=bicubic,setsar=1,format=yuv420p,split=1[out3]"
        );
    }
}
