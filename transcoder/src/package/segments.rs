//! Per-rendition segment assembly: encoded packets are held per segment until the segment
//! is complete, then muxed into one MPEG-TS, encrypted with the segment's own key, and
//! written as `{name}/{index:05}.ts`.
//!
//! A segment is complete once the video encoder has emitted a packet of a later segment
//! (each segment opens with an IDR frame and x264 GOPs are closed, so nothing of an earlier
//! segment follows in decode order) and the audio has been routed past it.
//!
//! Each segment is muxed by a fresh `mpegts` muxer, so each starts with PAT/PMT and stands
//! alone, but a fresh muxer also restarts every PID's continuity counter at 0. A player's
//! demuxer reads a rendition as one stream across segments (ffmpeg's HLS demuxer, hls.js,
//! GStreamer), so the restart looked like packet loss at every boundary: ffmpeg flagged
//! the packet corrupt and, with `+discardcorrupt`, dropped a frame per segment. The
//! counters are therefore carried on per rendition and PID (`Continuity`) and rewritten in
//! the plain TS before encryption. That was chosen over one long-lived muxer writing through
//! a custom AVIO that cuts at boundaries: it needs no unsafe I/O callbacks, and PAT/PMT at
//! each segment start and the per-segment muxing stay exactly as they were.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ffmpeg_next::{codec, encoder, format, Packet, Rational};

use crate::error::{Context, TranscodeError};
use crate::secret::{encrypt_segment, FilmSecret};

/// Added to every output timestamp so that B-frame decode times before the first
/// presentation time stay positive; the same in every segment and rendition.
const TS_OFFSET_SECONDS: i64 = 10;

/// Stream layout shared by every segment of every rendition.
pub(crate) struct StreamSpec {
    pub(crate) params: codec::Parameters,
    pub(crate) time_base: Rational,
    pub(crate) codec_id: codec::Id,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Video,
    Audio,
}

pub(crate) struct SegmentWriter {
    dir: PathBuf,
    scratch: PathBuf,
    pending: BTreeMap<usize, Vec<(Kind, Packet)>>,
    /// Highest segment index a video packet has been routed to.
    video_segment: Option<usize>,
    next_to_write: usize,
    /// Encrypted size of each written segment, in order.
    pub(crate) sizes: Vec<u64>,
    /// The SPS bytes seen in the first keyframe, for the codecs string.
    pub(crate) avc_profile: Option<[u8; 3]>,
    /// Continuity counters carried from one segment of this rendition to the next.
    continuity: Continuity,
}

pub(crate) struct MuxContext<'a> {
    pub(crate) video: &'a StreamSpec,
    pub(crate) audio: Option<&'a StreamSpec>,
    pub(crate) secret: &'a FilmSecret,
    pub(crate) encrypt_seconds: &'a mut f64,
}

impl SegmentWriter {
    pub(crate) fn new(package_dir: &Path, name: &str) -> Result<Self, TranscodeError> {
        let dir = package_dir.join(name);
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            scratch: package_dir.join(format!(".{name}.plain.ts")),
            dir,
            pending: BTreeMap::new(),
            video_segment: None,
            next_to_write: 0,
            sizes: Vec::new(),
            avc_profile: None,
            continuity: Continuity::default(),
        })
    }

    pub(crate) fn push(
        &mut self,
        kind: Kind,
        segment: usize,
        packet: Packet,
    ) -> Result<(), TranscodeError> {
        if segment < self.next_to_write {
            // Would mean the encoder emitted a frame of a segment already closed: a broken
            // invariant, not bad input. Refuse rather than write a misaligned package.
            return Err(TranscodeError::Internal(format!(
                "a packet for segment {segment} arrived after it was written"
            )));
        }
        if kind == Kind::Video {
            if self.avc_profile.is_none() && packet.is_key() {
                self.avc_profile = packet.data().and_then(find_sps_profile);
            }
            self.video_segment = Some(self.video_segment.map_or(segment, |s| s.max(segment)));
        }
        self.pending
            .entry(segment)
            .or_default()
            .push((kind, packet));
        Ok(())
    }

    /// Writes every segment before `audio_bound` (exclusive) that video has moved past.
    pub(crate) fn write_complete(
        &mut self,
        audio_bound: usize,
        mux: &mut MuxContext<'_>,
    ) -> Result<(), TranscodeError> {
        let video_bound = self.video_segment.unwrap_or(0);
        let bound = video_bound.min(audio_bound);
        while self.next_to_write < bound {
            self.write_next(mux)?;
        }
        Ok(())
    }

    /// Writes everything left; called once every encoder is drained.
    pub(crate) fn finish(&mut self, mux: &mut MuxContext<'_>) -> Result<usize, TranscodeError> {
        let last = self.video_segment.map_or(0, |s| s + 1);
        // Audio that ran past the last video frame joins the last segment.
        if let Some(stray) = self
            .pending
            .split_off(&last)
            .into_values()
            .reduce(|mut a, b| {
                a.extend(b);
                a
            })
        {
            if last > 0 {
                self.pending.entry(last - 1).or_default().extend(stray);
            }
        }
        while self.next_to_write < last {
            self.write_next(mux)?;
        }
        let _ = std::fs::remove_file(&self.scratch);
        Ok(last)
    }

    fn write_next(&mut self, mux: &mut MuxContext<'_>) -> Result<(), TranscodeError> {
        let index = self.next_to_write;
        let packets = self.pending.remove(&index).unwrap_or_default();
        if !packets.iter().any(|(k, _)| *k == Kind::Video) {
            return Err(TranscodeError::Internal(format!(
                "segment {index} has no video"
            )));
        }
        mux_plain(&self.scratch, packets, mux)?;
        let mut plain = std::fs::read(&self.scratch)
            .context(|| format!("reading {}", self.scratch.display()))?;
        self.continuity
            .carry_on(&mut plain)
            .map_err(|e| TranscodeError::Internal(format!("segment {index}: {e}")))?;
        let started = Instant::now();
        let sealed = encrypt_segment(mux.secret, index as u64, &plain);
        *mux.encrypt_seconds += started.elapsed().as_secs_f64();
        let path = self.dir.join(format!("{index:05}.ts"));
        write_synced(&path, &sealed)?;
        self.sizes.push(sealed.len() as u64);
        self.next_to_write += 1;
        Ok(())
    }
}

fn mux_plain(
    path: &Path,
    mut packets: Vec<(Kind, Packet)>,
    mux: &MuxContext<'_>,
) -> Result<(), TranscodeError> {
    let what = || format!("writing MPEG-TS segment {}", path.display());
    let mut out = format::output_as(&path, "mpegts").context(what)?;
    let mut add = |spec: &StreamSpec| -> Result<(), TranscodeError> {
        let codec = encoder::find(spec.codec_id);
        let mut stream = out.add_stream(codec).context(what)?;
        stream.set_parameters(spec.params.clone());
        stream.set_time_base(spec.time_base);
        Ok(())
    };
    add(mux.video)?;
    if let Some(audio) = mux.audio {
        add(audio)?;
    }
    out.write_header().context(what)?;
    let out_tb: Vec<Rational> = out.streams().map(|s| s.time_base()).collect();

    // Interleave by decode time so the muxer never has to buffer much.
    let secs = |kind: Kind, p: &Packet| {
        let tb = if kind == Kind::Video {
            mux.video.time_base
        } else {
            mux.audio.map_or(mux.video.time_base, |a| a.time_base)
        };
        p.dts().or(p.pts()).unwrap_or(0) as f64 * f64::from(tb)
    };
    packets.sort_by(|(ka, a), (kb, b)| secs(*ka, a).total_cmp(&secs(*kb, b)));

    for (kind, mut packet) in packets {
        let (index, in_tb) = match (kind, mux.audio) {
            (Kind::Video, _) => (0, mux.video.time_base),
            (Kind::Audio, Some(a)) => (1, a.time_base),
            (Kind::Audio, None) => continue,
        };
        let offset = TS_OFFSET_SECONDS * i64::from(in_tb.denominator())
            / i64::from(in_tb.numerator().max(1));
        packet.set_pts(packet.pts().map(|t| t + offset));
        packet.set_dts(packet.dts().map(|t| t + offset));
        packet.rescale_ts(in_tb, out_tb[index]);
        packet.set_stream(index);
        packet.set_position(-1);
        packet.write_interleaved(&mut out).context(what)?;
    }
    out.write_trailer().context(what)?;
    Ok(())
}

const TS_PACKET: usize = 188;
const TS_SYNC: u8 = 0x47;
const NULL_PID: u16 = 0x1fff;

/// The last continuity counter written on each PID of one rendition.
#[derive(Debug, Default)]
struct Continuity {
    last: HashMap<u16, u8>,
}

impl Continuity {
    /// Rewrites the 4-bit continuity_counter of every packet of `ts` (a whole segment, as
    /// the muxer wrote it) so that each PID's counter continues from the previous segment.
    /// Per ISO 13818-1 §2.4.3.3 it increments only on packets carrying payload; a packet
    /// with only an adaptation field (a PCR-only packet) repeats the last value. Null
    /// packets are left alone. Nothing else in the packet changes, so PAT/PMT CRCs, PES
    /// data and the segment's length are untouched.
    fn carry_on(&mut self, ts: &mut [u8]) -> Result<(), String> {
        if !ts.len().is_multiple_of(TS_PACKET) {
            return Err(format!("{} bytes is not whole TS packets", ts.len()));
        }
        for packet in ts.chunks_exact_mut(TS_PACKET) {
            if packet[0] != TS_SYNC {
                return Err("a TS packet without its sync byte".into());
            }
            let pid = (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2]);
            if pid == NULL_PID {
                continue;
            }
            let own = packet[3] & 0x0f;
            let has_payload = packet[3] & 0x10 != 0;
            let cc = match self.last.get(&pid) {
                // The first packet of the rendition on this PID keeps the muxer's value.
                None => own,
                Some(&prev) if has_payload => (prev + 1) & 0x0f,
                Some(&prev) => prev,
            };
            packet[3] = (packet[3] & 0xf0) | cc;
            self.last.insert(pid, cc);
        }
        Ok(())
    }
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TranscodeError> {
    let mut file =
        std::fs::File::create(path).context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .context(|| format!("writing {}", path.display()))
}

/// Finds an H.264 SPS in Annex B data and returns profile_idc, constraint flags, level_idc.
fn find_sps_profile(data: &[u8]) -> Option<[u8; 3]> {
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let nal = i + 3;
            if data.get(nal).map(|b| b & 0x1f) == Some(7) && nal + 3 < data.len() {
                return Some([data[nal + 1], data[nal + 2], data[nal + 3]]);
            }
            i = nal;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{find_sps_profile, Continuity, TS_PACKET};

    /// A TS packet on `pid` with counter `cc`, with payload or adaptation field only.
    fn packet(pid: u16, cc: u8, payload: bool) -> Vec<u8> {
        let mut p = vec![0xff; TS_PACKET];
        p[0] = 0x47;
        p[1] = (pid >> 8) as u8 & 0x1f;
        p[2] = pid as u8;
        p[3] = if payload { 0x10 } else { 0x20 } | cc;
        p
    }

    fn counters(ts: &[u8]) -> Vec<u8> {
        ts.chunks(TS_PACKET).map(|p| p[3] & 0x0f).collect()
    }

    #[test]
    fn counters_continue_per_pid_from_one_segment_to_the_next() {
        let mut c = Continuity::default();
        // Every segment comes from a fresh muxer: counters start at 0 on every PID.
        let segment = || {
            [
                packet(0, 0, true),
                packet(0x100, 0, true),
                packet(0x100, 1, true),
                packet(0x100, 1, false),
                packet(0x101, 0, true),
            ]
            .concat()
        };
        let mut first = segment();
        assert_eq!(c.carry_on(&mut first), Ok(()));
        assert_eq!(counters(&first), [0, 0, 1, 1, 0]);
        let mut second = segment();
        assert_eq!(c.carry_on(&mut second), Ok(()));
        // PAT 0→1, video 1→2, 3 (then the adaptation-only packet repeats 3), audio 0→1.
        assert_eq!(counters(&second), [1, 2, 3, 3, 1]);
        // Wraps at 16; the rest of the header is kept.
        for _ in 0..14 {
            let mut more = segment();
            assert_eq!(c.carry_on(&mut more), Ok(()));
        }
        let mut wrapped = segment();
        assert_eq!(c.carry_on(&mut wrapped), Ok(()));
        assert_eq!(counters(&wrapped)[0], 0);
        assert_eq!(&wrapped[..4], &[0x47, 0x00, 0x00, 0x10]);
    }

    #[test]
    fn refuses_what_is_not_ts() {
        let mut c = Continuity::default();
        assert!(c.carry_on(&mut [0x47; 100]).is_err());
        assert!(c.carry_on(&mut [0; TS_PACKET]).is_err());
    }

    #[test]
    fn finds_the_sps_after_an_aud() {
        let data = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac,
        ];
        assert_eq!(find_sps_profile(&data), Some([0x64, 0x00, 0x1f]));
        assert_eq!(find_sps_profile(&[0, 0, 1, 0x65, 1, 2, 3]), None);
    }
}
