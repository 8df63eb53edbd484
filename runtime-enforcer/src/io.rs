//! Byte splicing between the two halves of a connection, counting bytes
//! and watching for idleness and revocation.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Anything a connection half can be.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// A stream that counts the bytes read from it.
struct Counted<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

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

const BUFFER: usize = 256 * 1024;

/// Copy bytes both ways between `source` and `destination` until both
/// finish, one fails, nothing moves for `idle`, or `cancel` fires.
pub async fn splice<A: Stream, B: Stream>(
    source: A,
    destination: B,
    idle: Duration,
    cancel: &CancellationToken,
) -> (Carried, Ended) {
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let mut a = Counted {
        inner: source,
        read: sent.clone(),
    };
    let mut b = Counted {
        inner: destination,
        read: received.clone(),
    };
    let carried = || Carried {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUFFER, BUFFER);
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
