//! A deadline for a connection's first request head: a client that has not
//! sent its whole request line and headers within the time is disconnected,
//! so slow senders cannot hold connections open (later requests on a
//! keep-alive connection are bounded by the server's idle timeout).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps an acceptor: each connection gets the head deadline.
pub struct HeaderTimeout<A> {
    inner: A,
    timeout: Duration,
}

impl<A> HeaderTimeout<A> {
    pub fn new(inner: A, timeout: Duration) -> Self {
        HeaderTimeout { inner, timeout }
    }
}

impl<A: Acceptor> Acceptor for HeaderTimeout<A> {
    type Io = Deadlined<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let io = Deadlined {
            inner: io,
            deadline: Some(Box::pin(tokio::time::sleep(self.timeout))),
            tail: [0; 3],
        };
        Ok((io, local, remote, scheme))
    }
}

/// A connection whose first request head must arrive before a deadline.
pub struct Deadlined<T> {
    inner: T,
    /// `None` once the head (`\r\n\r\n`) has been read.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The last three bytes read, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
}

/// Whether `\r\n\r\n` ends within `tail + bytes`; updates `tail`.
fn head_ended(tail: &mut [u8; 3], bytes: &[u8]) -> bool {
    let mut window = [0, tail[0], tail[1], tail[2]];
    for &b in bytes {
        window = [window[1], window[2], window[3], b];
        if &window == b"\r\n\r\n" {
            return true;
        }
    }
    *tail = [window[1], window[2], window[3]];
    false
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlined<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() && head_ended(&mut this.tail, &buf.filled()[before..]) {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlined<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
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

#[cfg(test)]
mod tests {
    use super::head_ended;

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        let mut tail = [0; 3];
        assert!(!head_ended(&mut tail, b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(!head_ended(&mut tail, b"\n"));
        assert!(head_ended(&mut tail, b"\r\n"));
        let mut tail = [0; 3];
        assert!(head_ended(&mut tail, b"GET / HTTP/1.1\r\n\r\nbody"));
        let mut tail = [0; 3];
        assert!(!head_ended(&mut tail, b"\r\n\r"));
        assert!(head_ended(&mut tail, b"\n"));
    }
}
