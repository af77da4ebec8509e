//! Zero-copy segment bodies: the file's pages go from the page cache to the socket with
//! `sendfile(2)`, as nginx sends them, instead of being copied into actix-http's write
//! buffer and then into the socket (under perf those two copies were over half of the
//! server's CPU on the segment benchmark).
//!
//! actix-http writes every body through its own buffer, so the body cannot simply write to
//! the socket itself: bytes still in that buffer (this response's headers, the tail of an
//! earlier pipelined response) must reach the socket first. [`Conn`] is the connection's
//! I/O as actix-http sees it; actix-http calls its `poll_flush` only once its buffer has been
//! written out completely, and [`Conn`] counts those moments. A [`FileBody`] notes the count
//! when it is first polled (its headers are in the buffer by then) and sends nothing until
//! the count has moved on: from then on it is the only writer, and it sends the file range
//! straight to the socket, yielding whenever the socket is full. actix-http sees a body that
//! produced no bytes; the response carries `Content-Length` itself (`no_chunking`).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// What a connection and the bodies sent on it share.
struct Shared {
    stream: TcpStream,
    /// How many times actix-http's write buffer has been fully written to the socket.
    drained: Cell<u64>,
    /// A body waiting for the next drain.
    waiting: RefCell<Option<Waker>>,
}

/// A client connection as actix-http reads and writes it.
pub struct Conn(Rc<Shared>);

/// The same connection as a handler sees it (`HttpRequest::conn_data`), to send files on.
#[derive(Clone)]
pub struct ConnHandle(Rc<Shared>);

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Self(Rc::new(Shared {
            stream,
            drained: Cell::new(0),
            waiting: RefCell::new(None),
        }))
    }

    pub fn handle(&self) -> ConnHandle {
        ConnHandle(self.0.clone())
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.stream.poll_read_ready(cx))?;
            match self.0.stream.try_read_buf(buf) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.stream.poll_write_ready(cx))?;
            match self.0.stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// actix-http calls this only after its write buffer has gone to the socket whole.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.drained.set(self.0.drained.get() + 1);
        if let Some(waker) = self.0.waiting.borrow_mut().take() {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&self.0.stream).shutdown(std::net::Shutdown::Write))
    }
}

enum State {
    /// Not polled yet.
    Start,
    /// Polled at this drain count: actix-http's buffer (holding our headers) is not yet
    /// known to be on the socket.
    AwaitingDrain(u64),
    Sending,
}

/// `len` bytes of `file` from `offset`, sent with `sendfile(2)` on the connection.
///
/// Only for a response actix-http sends as it is: a middleware that buffers or re-encodes
/// bodies (compression) would poll it before the headers are out. `/hls/` answers GET only,
/// so there is no HEAD response (which has no body) to get wrong.
pub struct FileBody {
    conn: ConnHandle,
    file: File,
    offset: u64,
    remaining: u64,
    state: State,
}

impl FileBody {
    pub fn new(conn: ConnHandle, file: File, offset: u64, len: u64) -> Self {
        // Start reading a segment that is not in the page cache now, while the headers go
        // out: sendfile reads the file on the worker thread, as nginx does without aio.
        let _ = rustix::fs::fadvise(
            &file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::WillNeed,
        );
        Self {
            conn,
            file,
            offset,
            remaining: len,
            state: State::Start,
        }
    }

    fn wait_for_drain(&self, cx: &mut Context<'_>) {
        *self.conn.0.waiting.borrow_mut() = Some(cx.waker().clone());
    }
}

/// The peer went away: not worth an error in the log (players abort segments when seeking).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::TimedOut
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

impl MessageBody for FileBody {
    type Error = io::Error;

    /// Unknown to actix-http, which then writes our own `Content-Length` (set with
    /// `no_chunking`) and no transfer coding.
    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        match this.state {
            State::Start => {
                this.state = State::AwaitingDrain(this.conn.0.drained.get());
                this.wait_for_drain(cx);
                return Poll::Pending;
            }
            State::AwaitingDrain(at) if this.conn.0.drained.get() == at => {
                this.wait_for_drain(cx);
                return Poll::Pending;
            }
            State::AwaitingDrain(_) => this.state = State::Sending,
            State::Sending => {}
        }
        let stream = &this.conn.0.stream;
        let mut chunks = 0;
        while this.remaining > 0 {
            // At most 8 MiB per turn, in 2 MiB calls (nginx's `sendfile_max_chunk`): a fast
            // client must not keep the worker from its other connections for a whole long
            // range. A segment (2–4 MB) goes out in one turn when the socket takes it.
            if chunks == 4 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            chunks += 1;
            let count = this.remaining.min(2 << 20) as usize;
            let sent = stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(stream, &this.file, Some(&mut this.offset), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "segment file shorter than its Content-Length",
                    ))))
                }
                Ok(n) => this.remaining -= n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match stream.poll_write_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) if gone(&e) => return Poll::Ready(None),
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    }
                }
                // actix-http finds the closed socket on its next read or write and drops
                // the connection quietly.
                Err(e) if gone(&e) => return Poll::Ready(None),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        Poll::Ready(None)
    }
}
