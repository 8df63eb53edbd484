//! Byte splicing between the two halves of a connection, counting bytes
//! and watching for idleness and revocation.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// A half of a spliced connection: a workload's socket, a client's
/// upgraded CONNECT, or an HBONE stream.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    /// The HTTP/2 stream this half is, if it is one: a splice then moves
    /// its bytes in h2's own buffers (a DATA frame received is written out
    /// from where h2 decoded it, bytes read are sent as they were read)
    /// instead of copying them through the `AsyncRead`/`AsyncWrite` calls.
    fn tunnel(&mut self) -> Option<&mut Tunnel> {
        None
    }
}

impl Stream for tokio::net::TcpStream {}
impl Stream for hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {}

impl Stream for Tunnel {
    fn tunnel(&mut self) -> Option<&mut Tunnel> {
        Some(self)
    }
}

impl Stream for Box<dyn Stream> {
    fn tunnel(&mut self) -> Option<&mut Tunnel> {
        (**self).tunnel()
    }
}

pub type BoxStream = Box<dyn Stream>;

/// How a spliced connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both sides finished.
    Completed,
    /// A side failed (reset, broken pipe).
    Error,
    /// No byte either way for the idle timeout.
    Idle,
    /// Closed by the agent: revoked by a new table, or shutdown.
    Cancelled,
}

/// Bytes carried: `sent` from the source half to the destination half,
/// `received` back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Carried {
    pub sent: u64,
    pub received: u64,
}

/// The buffer of each direction starts at `BUFFER_MIN` and grows (×4)
/// each time a read fills it, up to `BUFFER_MAX`: a short connection costs
/// one small allocation, a bulk transfer moves up to 256 KiB per read.
/// Buffers are never zeroed. (tokio's `copy_bidirectional` zeroes two
/// fixed buffers per connection: with 256 KiB that was 512 KiB of memset
/// on each agent for a one-byte request.)
const BUFFER_MIN: usize = 16 * 1024;
const BUFFER_MAX: usize = 256 * 1024;

/// One direction of a splice: bytes read from one half wait here until
/// written to the other; at the reader's end the writer is shut down.
/// Counts the bytes read.
#[derive(Debug)]
struct Pipe {
    buf: BytesMut,
    /// What is left of a DATA frame taken from a tunnel, written from h2's
    /// buffer.
    frame: Bytes,
    size: usize,
    read: Arc<AtomicU64>,
    read_done: bool,
    need_flush: bool,
    done: bool,
}

impl Pipe {
    fn new(read: Arc<AtomicU64>) -> Self {
        Pipe {
            buf: BytesMut::new(),
            frame: Bytes::new(),
            size: BUFFER_MIN,
            read,
            read_done: false,
            need_flush: false,
            done: false,
        }
    }

    /// Read what comes next: a tunnel's next DATA frame as h2 holds it, or
    /// from any other half into the buffer; how much (`Ok(0)` at the end).
    fn poll_fill<R: Stream + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
    ) -> Poll<io::Result<usize>> {
        if let Some(tunnel) = reader.tunnel() {
            self.frame = ready!(tunnel.poll_frame(cx))?;
            return Poll::Ready(Ok(self.frame.len()));
        }
        // Reclaims the whole allocation when it is big enough (and no
        // longer shared with a frame h2 has yet to write).
        self.buf.reserve(self.size);
        let room = self.buf.capacity();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(reader),
            cx,
            &mut self.buf
        ))?;
        if n >= room && self.size < BUFFER_MAX {
            self.size = (self.size * 4).min(BUFFER_MAX);
        }
        Poll::Ready(Ok(n))
    }

    /// Copy until the reader ends and the writer is shut down (`Ready(Ok)`),
    /// or either fails.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<()>>
    where
        R: Stream + ?Sized,
        W: Stream + ?Sized,
    {
        loop {
            if self.buf.is_empty() && self.frame.is_empty() && !self.read_done {
                match self.poll_fill(cx, reader) {
                    Poll::Ready(Ok(0)) => self.read_done = true,
                    Poll::Ready(Ok(n)) => {
                        self.read.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        if self.need_flush {
                            ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while !self.frame.is_empty() {
                let n = ready!(Pin::new(&mut *writer).poll_write(cx, &self.frame))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.frame.advance(n);
                self.need_flush = true;
            }
            while !self.buf.is_empty() {
                let n = match writer.tunnel() {
                    Some(tunnel) => ready!(tunnel.poll_send(cx, &mut self.buf))?,
                    None => {
                        let n = ready!(Pin::new(&mut *writer).poll_write(cx, &self.buf))?;
                        self.buf.advance(n);
                        n
                    }
                };
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.need_flush = true;
            }
            if self.read_done {
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// Copy both ways until both directions end, or one fails.
async fn copy_both<A: Stream, B: Stream>(
    a: &mut A,
    b: &mut B,
    mut a_to_b: Pipe,
    mut b_to_a: Pipe,
) -> io::Result<()> {
    std::future::poll_fn(|cx| {
        if !a_to_b.done
            && let Poll::Ready(Err(e)) = a_to_b.poll_copy(cx, &mut *a, &mut *b)
        {
            return Poll::Ready(Err(e));
        }
        if !b_to_a.done
            && let Poll::Ready(Err(e)) = b_to_a.poll_copy(cx, &mut *b, &mut *a)
        {
            return Poll::Ready(Err(e));
        }
        if a_to_b.done && b_to_a.done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Copy bytes both ways between `source` and `destination` until both
/// finish, one fails, nothing moves for `idle`, or `cancel` fires.
pub async fn splice<A: Stream, B: Stream>(
    mut source: A,
    mut destination: B,
    idle: Duration,
    cancel: &CancellationToken,
) -> (Carried, Ended) {
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let carried = || Carried {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
    };
    let copy = copy_both(
        &mut source,
        &mut destination,
        Pipe::new(sent.clone()),
        Pipe::new(received.clone()),
    );
    tokio::pin!(copy);
    let check = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = 0u64;
    let mut since = Instant::now();
    let ended = loop {
        tokio::select! {
            r = &mut copy => break if r.is_ok() { Ended::Completed } else { Ended::Error },
            _ = cancel.cancelled() => break Ended::Cancelled,
            _ = tick.tick() => {
                let c = carried();
                let total = c.sent + c.received;
                if total != last {
                    last = total;
                    since = Instant::now();
                } else if since.elapsed() >= idle {
                    break Ended::Idle;
                }
            }
        }
    };
    (carried(), ended)
}

/// One HTTP/2 stream as a byte stream, as HBONE's CONNECT tunnels carry
/// bytes: what the peer sends in DATA frames is read, what is written goes
/// out in DATA frames, a shutdown is END_STREAM (a half-close), and the
/// peer's END_STREAM reads as the end. A reset by the peer, other than
/// NO_ERROR or CANCEL (which end the stream as a close does), is an error.
/// Received data is handed back to the flow-control window as soon as it is
/// taken from h2; at most one DATA frame waits here.
pub struct Tunnel {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    buf: Bytes,
    shut: bool,
}

impl Tunnel {
    pub fn new(send: h2::SendStream<Bytes>, recv: h2::RecvStream) -> Tunnel {
        Tunnel {
            send,
            recv,
            buf: Bytes::new(),
            shut: false,
        }
    }
}

fn h2_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io().expect("an I/O error")
    } else {
        io::Error::other(e)
    }
}

impl Tunnel {
    /// The bytes of the next DATA frame (what is left of it after a short
    /// `poll_read`), as h2 decoded them; empty at the end of the stream.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        while self.buf.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(Bytes::new())),
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.buf = data;
                }
                Some(Err(e)) => {
                    return Poll::Ready(match e.reason() {
                        Some(h2::Reason::NO_ERROR | h2::Reason::CANCEL) => Ok(Bytes::new()),
                        Some(h2::Reason::STREAM_CLOSED) => {
                            Err(io::Error::new(io::ErrorKind::BrokenPipe, e))
                        }
                        _ => Err(h2_io(e)),
                    });
                }
            }
        }
        Poll::Ready(Ok(std::mem::take(&mut self.buf)))
    }

    /// Room in the windows for up to `want` bytes: how many may be sent now.
    fn poll_room(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        // The total asked of the windows: what this write holds.
        self.send.reserve_capacity(want);
        loop {
            let n = self.send.capacity().min(want);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(h2_io(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    /// Send what the windows allow of `buf` in a DATA frame, taking it out
    /// of `buf` without copying it; how much was sent.
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(self.poll_room(cx, buf.len()))?;
        self.send
            .send_data(buf.split_to(n).freeze(), false)
            .map_err(h2_io)?;
        Poll::Ready(Ok(n))
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut frame = ready!(self.poll_frame(cx))?;
        let n = frame.len().min(out.remaining());
        out.put_slice(&frame[..n]);
        frame.advance(n);
        self.buf = frame;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(self.poll_room(cx, buf.len()))?;
        self.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(h2_io)?;
        Poll::Ready(Ok(n))
    }

    /// h2's connection task writes what was sent.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut {
            self.shut = true;
            self.send.reserve_capacity(0);
            self.send.send_data(Bytes::new(), true).map_err(h2_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    impl Stream for tokio::io::DuplexStream {}

    /// Copies `data` through one pipe from a duplex pair to another; returns
    /// what arrived and the pipe's buffer size at the end.
    async fn through_pipe(data: Vec<u8>) -> (Vec<u8>, usize) {
        let (mut client, mut from) = duplex(1 << 20);
        let (mut to, mut server) = duplex(1 << 20);
        let writer = tokio::spawn(async move {
            client.write_all(&data).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut pipe = Pipe::new(Arc::default());
        std::future::poll_fn(|cx| pipe.poll_copy(cx, &mut from, &mut to))
            .await
            .unwrap();
        drop(to);
        writer.await.unwrap();
        (reader.await.unwrap(), pipe.size)
    }

    /// A client that sends `request`, half-closes, and reads the answer to
    /// its end.
    fn ask(
        mut client: tokio::io::DuplexStream,
        request: Vec<u8>,
    ) -> tokio::task::JoinHandle<Vec<u8>> {
        tokio::spawn(async move {
            client.write_all(&request).await.unwrap();
            client.shutdown().await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            answer
        })
    }

    /// A CONNECT stream over an in-memory HTTP/2 connection: the client's
    /// and the server's tunnel, and the server's handle to reset it.
    async fn tunnel_pair() -> (Tunnel, Tunnel) {
        let (c, s) = duplex(1 << 16);
        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(s).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            let send = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            Tunnel::new(send, req.into_body())
        });
        let (sender, conn) = h2::client::handshake(c).await.unwrap();
        tokio::spawn(conn);
        let mut sender = sender.ready().await.unwrap();
        let req = http::Request::connect("10.0.0.1:80").body(()).unwrap();
        let (resp, send) = sender.send_request(req, false).unwrap();
        let server = server.await.unwrap();
        let resp = resp.await.unwrap();
        (Tunnel::new(send, resp.into_body()), server)
    }

    #[tokio::test]
    async fn a_tunnel_carries_bytes_both_ways_and_half_closes() {
        let (mut client, mut server) = tunnel_pair().await;
        // More than one window's worth, so that writes wait for capacity.
        let bulk: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let sent = bulk.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == bulk, "{} bytes of {}", got.len(), bulk.len());
        // Half-closed: the other way still carries.
        let mut client = writer.await.unwrap();
        server.write_all(b"answer").await.unwrap();
        server.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"answer");
    }

    #[tokio::test]
    async fn a_reset_tunnel_reads_as_an_error_and_a_cancelled_one_as_the_end() {
        let (mut client, mut server) = tunnel_pair().await;
        server.send.send_reset(h2::Reason::INTERNAL_ERROR);
        let mut b = [0u8; 8];
        assert!(client.read(&mut b).await.is_err());
        let (mut client, mut server) = tunnel_pair().await;
        server.send.send_reset(h2::Reason::CANCEL);
        assert_eq!(client.read(&mut b).await.unwrap(), 0);
    }

    /// The path through two agents: a client's socket spliced into an
    /// HBONE stream (its bytes sent as read), the stream at the other end
    /// spliced into the server's socket (DATA frames written from h2's
    /// buffers); more than the windows hold each way.
    #[tokio::test]
    async fn splices_into_and_out_of_a_tunnel_keep_every_byte_and_count_them() {
        let (near, far) = tunnel_pair().await;
        let (client, client_end) = duplex(64 * 1024);
        let (server_end, mut server) = duplex(64 * 1024);
        let cancel = CancellationToken::new();
        let (c1, c2) = (cancel.clone(), cancel.clone());
        let outbound =
            tokio::spawn(
                async move { splice(client_end, near, Duration::from_secs(60), &c1).await },
            );
        let inbound =
            tokio::spawn(
                async move { splice(far, server_end, Duration::from_secs(60), &c2).await },
            );
        let request: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
        let answer: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let client_side = ask(client, request.clone());
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == request, "{} bytes of {}", got.len(), request.len());
        server.write_all(&answer).await.unwrap();
        server.shutdown().await.unwrap();
        let got = client_side.await.unwrap();
        assert!(got == answer, "{} bytes of {}", got.len(), answer.len());
        for spliced in [outbound, inbound] {
            let (carried, ended) = spliced.await.unwrap();
            assert_eq!(ended, Ended::Completed);
            assert_eq!((carried.sent, carried.received), (1_500_000, 300_000));
        }
    }

    #[tokio::test]
    async fn a_pipe_grows_only_for_bulk_transfers_and_keeps_every_byte() {
        let small = b"hello".to_vec();
        assert_eq!(through_pipe(small.clone()).await, (small, BUFFER_MIN));
        let bulk: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        let (got, size) = through_pipe(bulk.clone()).await;
        assert!(got == bulk, "{} bytes of {}", got.len(), bulk.len());
        assert_eq!(size, BUFFER_MAX);
    }

    #[tokio::test]
    async fn splice_carries_both_ways_and_passes_half_closes_on() {
        let (client, source) = duplex(64 * 1024);
        let (destination, mut server) = duplex(64 * 1024);
        let cancel = CancellationToken::new();
        let spliced = tokio::spawn(async move {
            splice(source, destination, Duration::from_secs(60), &cancel).await
        });
        let request: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
        let client_side = ask(client, request.clone());
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got == request);
        server.write_all(b"done").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(client_side.await.unwrap(), b"done");
        let (carried, ended) = spliced.await.unwrap();
        assert_eq!(ended, Ended::Completed);
        assert_eq!((carried.sent, carried.received), (1 << 20, 4));
    }
}
