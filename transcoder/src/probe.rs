//! What a source file holds, and whether it is a film we can package.
//!
//! `probe` refuses early what the packager would fail on late: not media, no video,
//! no duration, or a file cut short (an upload that did not finish). The truncation check
//! seeks near the declared end and reads: cheap for any size of file.

use std::path::Path;

use ffmpeg_next::{codec, format, media, Rational};
use serde::{Deserialize, Serialize};

use crate::error::TranscodeError;

const AV_TIME_BASE: f64 = 1_000_000.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Demuxer name(s), e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    /// Seconds.
    pub duration: f64,
    /// Overall bitrate in bits/s when the container knows it.
    pub bit_rate: Option<u64>,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Video,
    Audio,
    Subtitle,
    /// Cover art and other still images attached to a file.
    Picture,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub index: usize,
    pub kind: StreamKind,
    pub codec: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Display size after the sample aspect ratio and rotation are applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    /// Clockwise degrees the picture must be turned for display: 0, 90, 180 or 270.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl MediaInfo {
    /// The video stream the packager uses (the first real video, not cover art).
    pub fn video(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Video)
    }

    pub fn audio(&self) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.kind == StreamKind::Audio)
    }
}

pub fn probe(path: &Path) -> Result<MediaInfo, TranscodeError> {
    crate::init();
    let mut input = open(path)?;
    let info = describe(&input)?;
    let video = info.video().ok_or(TranscodeError::NoVideo)?;
    if info.duration <= 0.0 || !info.duration.is_finite() {
        return Err(TranscodeError::ZeroDuration);
    }
    check_complete(&mut input, video.index, info.duration)?;
    Ok(info)
}

pub(crate) fn open(path: &Path) -> Result<format::context::Input, TranscodeError> {
    if !path.is_file() {
        return Err(TranscodeError::NotMedia {
            reason: format!("{} is not a readable file", path.display()),
        });
    }
    format::input(&path).map_err(|e| TranscodeError::NotMedia {
        reason: e.to_string(),
    })
}

pub(crate) fn describe(input: &format::context::Input) -> Result<MediaInfo, TranscodeError> {
    let mut streams = Vec::new();
    for stream in input.streams() {
        streams.push(describe_stream(&stream));
    }
    let container = input.format().name().to_string();
    let mut duration = if input.duration() > 0 {
        input.duration() as f64 / AV_TIME_BASE
    } else {
        0.0
    };
    if duration <= 0.0 {
        // Some containers leave the total unset; take the longest stream's.
        duration = input
            .streams()
            .filter(|s| s.duration() > 0)
            .map(|s| s.duration() as f64 * f64::from(s.time_base()))
            .fold(0.0, f64::max);
    }
    let has_video = streams.iter().any(|s| s.kind == StreamKind::Video);
    let has_audio = streams.iter().any(|s| s.kind == StreamKind::Audio);
    if !has_video && !has_audio && streams.iter().all(|s| s.kind != StreamKind::Picture) {
        return Err(TranscodeError::NotMedia {
            reason: "the file has no audio or video streams".into(),
        });
    }
    Ok(MediaInfo {
        container,
        duration,
        bit_rate: u64::try_from(input.bit_rate()).ok().filter(|b| *b > 0),
        streams,
    })
}

fn describe_stream(stream: &format::stream::Stream) -> StreamInfo {
    let params = stream.parameters();
    let codec_name = codec::decoder::find(params.id())
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("{:?}", params.id()).to_lowercase());
    let language = stream.metadata().get("language").map(str::to_string);
    let mut info = StreamInfo {
        index: stream.index(),
        kind: StreamKind::Other,
        codec: codec_name,
        width: None,
        height: None,
        display_width: None,
        display_height: None,
        pixel_format: None,
        bit_depth: None,
        frame_rate: None,
        rotation: None,
        sample_rate: None,
        channels: None,
        language,
    };
    let context = codec::context::Context::from_parameters(params.clone()).ok();
    match params.medium() {
        media::Type::Video => {
            let attached = stream
                .disposition()
                .contains(format::stream::Disposition::ATTACHED_PIC);
            info.kind = if attached {
                StreamKind::Picture
            } else {
                StreamKind::Video
            };
            if let Some(video) = context.and_then(|c| c.decoder().video().ok()) {
                let (w, h) = (video.width(), video.height());
                let rotation = rotation_of(stream);
                let (dw, dh) = display_size(w, h, video.aspect_ratio(), rotation);
                info.width = Some(w);
                info.height = Some(h);
                info.display_width = Some(dw);
                info.display_height = Some(dh);
                info.rotation = Some(rotation);
                let pix = video.format();
                if pix != format::Pixel::None {
                    info.pixel_format = Some(pix.descriptor().map_or_else(
                        || format!("{pix:?}").to_lowercase(),
                        |d| d.name().to_string(),
                    ));
                    info.bit_depth = Some(bit_depth(pix));
                }
            }
            info.frame_rate = frame_rate(stream);
        }
        media::Type::Audio => {
            info.kind = StreamKind::Audio;
            if let Some(audio) = context.and_then(|c| c.decoder().audio().ok()) {
                info.sample_rate = Some(audio.rate());
                info.channels = Some(audio.channels());
            }
        }
        media::Type::Subtitle => info.kind = StreamKind::Subtitle,
        _ => {}
    }
    info
}

fn frame_rate(stream: &format::stream::Stream) -> Option<f64> {
    [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
        .map(f64::from)
}

fn bit_depth(pix: format::Pixel) -> u8 {
    // Pixel format names carry the depth ("yuv420p10le"); 8 bits otherwise.
    let name = pix.descriptor().map(|d| d.name()).unwrap_or("");
    for depth in [16u8, 14, 12, 10, 9] {
        if name.contains(&format!("p{depth}")) {
            return depth;
        }
    }
    8
}

/// Clockwise rotation (0/90/180/270) from the stream's display matrix, as the `ffmpeg`
/// CLI's autorotate computes it.
pub(crate) fn rotation_of(stream: &format::stream::Stream) -> u32 {
    use ffmpeg_next::codec::packet::side_data::Type;
    for side in stream.side_data() {
        if side.kind() != Type::DisplayMatrix {
            continue;
        }
        let data = side.data();
        if data.len() < 36 {
            continue;
        }
        let m = |i: usize| {
            let b = [
                data[i * 4],
                data[i * 4 + 1],
                data[i * 4 + 2],
                data[i * 4 + 3],
            ];
            f64::from(i32::from_ne_bytes(b))
        };
        let (sx, sy) = (m(0).hypot(m(3)), m(1).hypot(m(4)));
        if sx == 0.0 || sy == 0.0 {
            return 0;
        }
        let degrees = (m(1) / sy).atan2(m(0) / sx).to_degrees();
        let snapped = ((degrees / 90.0).round() as i64).rem_euclid(4) as u32 * 90;
        return snapped;
    }
    0
}

pub(crate) fn display_size(w: u32, h: u32, sar: Rational, rotation: u32) -> (u32, u32) {
    let mut dw = f64::from(w);
    if sar.numerator() > 0 && sar.denominator() > 0 {
        dw *= f64::from(sar);
    }
    let dw = dw.round().max(1.0) as u32;
    if rotation == 90 || rotation == 270 {
        (h, dw)
    } else {
        (dw, h)
    }
}

/// Seeks near the declared end and reads: a file whose data stops well short of what its
/// header declares is an upload cut short.
fn check_complete(
    input: &mut format::context::Input,
    video_index: usize,
    duration: f64,
) -> Result<(), TranscodeError> {
    let tolerance = (duration * 0.05).max(2.0);
    let mut found = 0.0f64;
    // Probe from near the end backwards until some data is found.
    for fraction in [1.0, 0.75, 0.5, 0.25, 0.0] {
        let target = ((duration * fraction - 4.0).max(0.0) * AV_TIME_BASE) as i64;
        if input.seek(target, ..target + 1).is_err() && fraction > 0.0 {
            continue;
        }
        let mut any = false;
        loop {
            // Fresh each time: av_read_frame does not release what a packet held.
            let mut packet = ffmpeg_next::Packet::empty();
            match packet.read(input) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::InvalidData) => continue,
                Err(_) => break,
            }
            if packet.stream() != video_index {
                continue;
            }
            let Some(stream) = input.stream(video_index) else {
                break;
            };
            let tb = f64::from(stream.time_base());
            let start = stream.start_time();
            let start = if start == ffmpeg_next::ffi::AV_NOPTS_VALUE {
                0
            } else {
                start
            };
            if let Some(ts) = packet.pts().or(packet.dts()) {
                let end = (ts - start + packet.duration().max(0)) as f64 * tb;
                found = found.max(end);
                any = true;
            }
        }
        if any {
            break;
        }
    }
    if found + tolerance < duration {
        return Err(TranscodeError::Truncated {
            declared: duration,
            found,
        });
    }
    Ok(())
}
