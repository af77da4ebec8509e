//! One rung's libx264 encoder on a thread of its own.
//!
//! Parallelism comes first from the rungs, not from inside each encoder: every rung encodes
//! on its own thread, fed through a short queue, and x264's own frame threads are handed
//! out by each rung's share of the work (`video::encoder_threads`: 2/1/1/1 for the default
//! ladder on 2 cores). Before, one thread fed all encoders in lockstep, so a rung waiting in
//! `send_frame` held up the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use ffmpeg_next::{codec, encoder, frame, Packet};

use crate::error::{Context, TranscodeError};
use crate::ladder::Target;

/// Frames queued per rung. Enough to ride out a slow frame (a keyframe) without the
/// feeding thread waiting; each 1080p frame is ≈3 MB.
const QUEUE: usize = 4;

/// An encoded packet for rung `rung`.
pub(crate) struct Encoded {
    pub(crate) rung: usize,
    pub(crate) packet: Packet,
}

enum Message {
    Frame(frame::Video),
    /// End of the film: flush the encoder.
    End,
}

pub(crate) struct RungEncoder {
    pub(crate) target: Target,
    /// The encoder's parameters, as a muxer stream needs them.
    pub(crate) params: codec::Parameters,
    /// The filter graph's sink for this rung.
    pub(crate) sink: String,
    /// Index of the next segment boundary, at which a frame is forced to be an IDR frame.
    pub(crate) next_boundary: usize,
    frames: Option<SyncSender<Message>>,
    packets: Receiver<Result<Packet, TranscodeError>>,
    thread: Option<JoinHandle<()>>,
    /// Set when packaging is abandoned: the thread drops what is still queued.
    abandoned: Arc<AtomicBool>,
}

impl RungEncoder {
    pub(crate) fn start(
        target: Target,
        encoder: encoder::Video,
        sink: String,
    ) -> Result<Self, TranscodeError> {
        let params = codec::Parameters::from(&*encoder);
        let (frames, frames_rx) = sync_channel(QUEUE);
        // Unbounded, so the encoder never waits on the thread that collects its packets
        // (that thread may be waiting to queue the next frame).
        let (packets_tx, packets) = channel();
        let name = format!("x264 {}p", target.name);
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || encode(encoder, &name, &frames_rx, &packets_tx, &stop))
            .map_err(|e| TranscodeError::Io {
                context: "starting an encoder thread".into(),
                source: e,
            })?;
        Ok(Self {
            target,
            params,
            sink,
            next_boundary: 0,
            frames: Some(frames),
            packets,
            thread: Some(thread),
            abandoned,
        })
    }

    /// Queues a frame; waits while the encoder is `QUEUE` frames behind.
    pub(crate) fn send(&mut self, frame: frame::Video) -> Result<(), TranscodeError> {
        let sent = self
            .frames
            .as_ref()
            .is_some_and(|f| f.send(Message::Frame(frame)).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// The packets encoded so far.
    pub(crate) fn collect(
        &mut self,
        rung: usize,
        out: &mut Vec<Encoded>,
    ) -> Result<(), TranscodeError> {
        for packet in self.packets.try_iter() {
            out.push(Encoded {
                rung,
                packet: packet?,
            });
        }
        Ok(())
    }

    /// Ends the film: the encoder starts flushing.
    pub(crate) fn end(&mut self) -> Result<(), TranscodeError> {
        match self.frames.take() {
            Some(frames) if frames.send(Message::End).is_err() => Err(self.failure()),
            _ => Ok(()),
        }
    }

    /// Ends the film if `end` has not, and collects every packet the encoder still had.
    pub(crate) fn finish(
        &mut self,
        rung: usize,
        out: &mut Vec<Encoded>,
    ) -> Result<(), TranscodeError> {
        self.end()?;
        // Ends when the thread drops its sender, after the last packet.
        for packet in self.packets.iter() {
            out.push(Encoded {
                rung,
                packet: packet?,
            });
        }
        self.join()
    }

    /// Why the encoder thread stopped taking frames: its error, if it sent one.
    fn failure(&mut self) -> TranscodeError {
        self.frames = None;
        if let Some(Err(e)) = self.packets.iter().find(Result::is_err) {
            return e;
        }
        match self.join() {
            Err(e) => e,
            Ok(()) => {
                TranscodeError::Internal(format!("the {}p encoder stopped early", self.target.name))
            }
        }
    }

    fn join(&mut self) -> Result<(), TranscodeError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(TranscodeError::Internal(format!(
                "the {}p encoder thread panicked",
                self.target.name
            ))),
            _ => Ok(()),
        }
    }
}

impl Drop for RungEncoder {
    /// On an error or cancellation elsewhere: the thread drops what is queued, sees the
    /// queue closed without an end, and stops without flushing.
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
        self.frames = None;
        let _ = self.join();
    }
}

fn encode(
    mut encoder: encoder::Video,
    name: &str,
    frames: &Receiver<Message>,
    packets: &Sender<Result<Packet, TranscodeError>>,
    abandoned: &AtomicBool,
) {
    let result = (|| {
        while let Ok(message) = frames.recv() {
            if abandoned.load(Ordering::Relaxed) {
                break;
            }
            match message {
                Message::Frame(frame) => {
                    encoder
                        .send_frame(&frame)
                        .context(|| format!("encoding {name}"))?;
                    drain(&mut encoder, name, packets)?;
                }
                Message::End => {
                    encoder.send_eof().context(|| format!("flushing {name}"))?;
                    return drain(&mut encoder, name, packets);
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = packets.send(Err(e));
    }
}

fn drain(
    encoder: &mut encoder::Video,
    name: &str,
    packets: &Sender<Result<Packet, TranscodeError>>,
) -> Result<(), TranscodeError> {
    loop {
        let mut packet = Packet::empty();
        match encoder.receive_packet(&mut packet) {
            // The receiver outlives the thread (Drop joins first).
            Ok(()) => {
                let _ = packets.send(Ok(packet));
            }
            Err(ffmpeg_next::Error::Eof) => return Ok(()),
            Err(ffmpeg_next::Error::Other { errno })
                if errno == ffmpeg_next::util::error::EAGAIN =>
            {
                return Ok(())
            }
            Err(e) => return Err(e).context(|| format!("encoding {name}")),
        }
    }
}
