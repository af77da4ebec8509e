//! Audio: decode, resample to 48 kHz stereo, encode AAC-LC once. The same packets are
//! muxed into every rendition (the ladder differs only in video).

use ffmpeg_next::{
    codec, decoder, encoder, filter, format, frame, ChannelLayout, Dictionary, Packet, Rational,
    Rescale,
};

use crate::error::{Context, TranscodeError};

pub(crate) const SAMPLE_RATE: i32 = 48_000;

pub(crate) struct AudioPath {
    pub(crate) stream_index: usize,
    decoder: decoder::Audio,
    graph: Option<filter::Graph>,
    pub(crate) encoder: encoder::Audio,
    in_tb: Rational,
    /// The video's start in the audio time base: audio is stamped relative to it.
    start: i64,
    next_pts: Option<i64>,
}

impl AudioPath {
    pub(crate) fn new(
        stream: &format::stream::Stream,
        video_start: i64,
        video_tb: Rational,
        bitrate: u32,
    ) -> Result<Self, TranscodeError> {
        let what = || "opening the audio decoder".to_string();
        let context =
            codec::context::Context::from_parameters(stream.parameters()).context(what)?;
        let decoder = context.decoder().audio().context(what)?;
        let in_tb = stream.time_base();

        let what = || "opening the AAC encoder".to_string();
        let codec = encoder::find(codec::Id::AAC)
            .ok_or_else(|| TranscodeError::Unsupported("no AAC encoder".into()))?;
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .context(what)?;
        enc.set_rate(SAMPLE_RATE);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_channels(2);
        enc.set_format(format::Sample::F32(format::sample::Type::Planar));
        enc.set_bit_rate(bitrate as usize);
        enc.set_time_base(Rational(1, SAMPLE_RATE));
        let mut opts = Dictionary::new();
        opts.set("profile", "aac_low");
        let encoder = enc.open_with(opts).context(what)?;
        Ok(Self {
            stream_index: stream.index(),
            decoder,
            graph: None,
            encoder,
            in_tb,
            start: video_start.rescale(video_tb, in_tb),
            next_pts: None,
        })
    }

    /// The encoder's output time base (1/48000).
    pub(crate) fn time_base(&self) -> Rational {
        Rational(1, SAMPLE_RATE)
    }

    pub(crate) fn send_packet(&mut self, packet: &Packet) -> Result<(), TranscodeError> {
        match self.decoder.send_packet(packet) {
            Ok(()) | Err(ffmpeg_next::Error::InvalidData) => Ok(()),
            Err(e) => Err(e).context(|| "decoding audio".into()),
        }
    }

    pub(crate) fn send_eof(&mut self) -> Result<(), TranscodeError> {
        self.decoder
            .send_eof()
            .context(|| "flushing the audio decoder".into())
    }

    /// Decoded frames → resampler → encoder; encoded packets are appended to `out`.
    pub(crate) fn process(&mut self, out: &mut Vec<Packet>) -> Result<(), TranscodeError> {
        let mut decoded = frame::Audio::empty();
        loop {
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::Other { errno })
                    if errno == ffmpeg_next::util::error::EAGAIN =>
                {
                    break
                }
                Err(ffmpeg_next::Error::InvalidData) => continue,
                Err(e) => return Err(e).context(|| "decoding audio".into()),
            }
            let pts = decoded
                .timestamp()
                .map(|t| t - self.start)
                .or(self.next_pts);
            let samples = decoded.samples() as i64;
            let step = Rational(1, decoded.rate().max(1) as i32);
            self.next_pts = pts.map(|p| p + samples.rescale(step, self.in_tb));
            decoded.set_pts(pts);
            if self.graph.is_none() {
                self.graph = Some(self.build_graph(&decoded)?);
            }
            if let Some(graph) = self.graph.as_mut() {
                graph
                    .get("in")
                    .ok_or_else(|| graph_error("no source"))?
                    .source()
                    .add(&decoded)
                    .context(|| "resampling audio".into())?;
            }
        }
        self.pull(out)
    }

    pub(crate) fn flush(&mut self, out: &mut Vec<Packet>) -> Result<(), TranscodeError> {
        if let Some(graph) = self.graph.as_mut() {
            graph
                .get("in")
                .ok_or_else(|| graph_error("no source"))?
                .source()
                .flush()
                .context(|| "flushing the audio filters".into())?;
        }
        self.pull(out)?;
        self.encoder
            .send_eof()
            .context(|| "flushing the AAC encoder".into())?;
        drain(&mut self.encoder, out)
    }

    fn pull(&mut self, out: &mut Vec<Packet>) -> Result<(), TranscodeError> {
        let Some(graph) = self.graph.as_mut() else {
            return Ok(());
        };
        let mut resampled = frame::Audio::empty();
        loop {
            let mut sink = graph.get("out").ok_or_else(|| graph_error("no sink"))?;
            match sink.sink().frame(&mut resampled) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => break,
                Err(ffmpeg_next::Error::Other { errno })
                    if errno == ffmpeg_next::util::error::EAGAIN =>
                {
                    break
                }
                Err(e) => return Err(e).context(|| "resampling audio".into()),
            }
            self.encoder
                .send_frame(&resampled)
                .context(|| "encoding audio".into())?;
            drain(&mut self.encoder, out)?;
        }
        Ok(())
    }

    fn build_graph(&self, frame: &frame::Audio) -> Result<filter::Graph, TranscodeError> {
        let what = || "building the audio filter graph".to_string();
        let mut layout = frame.channel_layout();
        if layout.bits() == 0 || layout.channels() != i32::from(frame.channels()) {
            layout = ChannelLayout::default(i32::from(frame.channels()));
        }
        let args = format!(
            "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            self.in_tb.numerator(),
            self.in_tb.denominator(),
            frame.rate(),
            frame.format().name(),
            layout.bits()
        );
        let mut graph = filter::Graph::new();
        let abuffer = filter::find("abuffer").ok_or_else(|| graph_error("no abuffer filter"))?;
        let abuffersink =
            filter::find("abuffersink").ok_or_else(|| graph_error("no abuffersink filter"))?;
        graph.add(&abuffer, "in", &args).context(what)?;
        graph.add(&abuffersink, "out", "").context(what)?;
        let spec = format!(
            "aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
        );
        graph
            .output("in", 0)
            .context(what)?
            .input("out", 0)
            .context(what)?
            .parse(&spec)
            .context(what)?;
        graph.validate().context(what)?;
        if let Some(mut sink) = graph.get("out") {
            sink.sink().set_frame_size(self.encoder.frame_size());
        }
        Ok(graph)
    }
}

fn graph_error(what: &str) -> TranscodeError {
    TranscodeError::Internal(format!("audio filter graph: {what}"))
}

pub(crate) fn parameters(encoder: &encoder::Audio) -> codec::Parameters {
    codec::Parameters::from(&**encoder)
}

fn drain(encoder: &mut encoder::Audio, out: &mut Vec<Packet>) -> Result<(), TranscodeError> {
    loop {
        let mut packet = Packet::empty();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => out.push(packet),
            Err(ffmpeg_next::Error::Eof) => return Ok(()),
            Err(ffmpeg_next::Error::Other { errno })
                if errno == ffmpeg_next::util::error::EAGAIN =>
            {
                return Ok(())
            }
            Err(e) => return Err(e).context(|| "encoding audio".into()),
        }
    }
}
