//! The poster: one JPEG from a representative frame (the first frame at 10% of the film,
//! past the opening titles and fades), at the top rendition's size.

use ffmpeg_next::{codec, encoder, format, frame, software::scaling, Dictionary, Packet, Rational};

use crate::error::{Context, TranscodeError};

pub(crate) fn encode_jpeg(frame: &frame::Video) -> Result<Vec<u8>, TranscodeError> {
    let what = || "making the poster".to_string();
    let (w, h) = (frame.width(), frame.height());
    let mut scaler = scaling::Context::get(
        frame.format(),
        w,
        h,
        format::Pixel::YUVJ420P,
        w,
        h,
        scaling::Flags::BICUBIC,
    )
    .context(what)?;
    let mut full_range = frame::Video::empty();
    scaler.run(frame, &mut full_range).context(what)?;
    full_range.set_pts(Some(0));

    let codec = encoder::find(codec::Id::MJPEG)
        .ok_or_else(|| TranscodeError::Unsupported("no JPEG encoder".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .context(what)?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(format::Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    let mut opts = Dictionary::new();
    // A fixed low quantiser: a poster is one frame, so quality matters more than size.
    opts.set("qmin", "2");
    opts.set("qmax", "4");
    let mut enc = enc.open_with(opts).context(what)?;
    enc.send_frame(&full_range).context(what)?;
    enc.send_eof().context(what)?;
    let mut packet = Packet::empty();
    enc.receive_packet(&mut packet).context(what)?;
    Ok(packet.data().map(<[u8]>::to_vec).unwrap_or_default())
}
