//! The accept loop, with the bounds `axum::serve` does not set: a cap on open
//! connections (one more is answered `503` and closed), a header-read timeout
//! (that also closes idle keep-alive connections), and a stall timeout on
//! writes (a client that stops reading is dropped, with what was buffered for
//! it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower_layer::Layer;

/// How the server bounds its clients.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most connections open at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// How long a connection has to send a request's headers, counted from
    /// its opening or the end of its previous response: idle keep-alive
    /// connections close after it too.
    pub header_timeout: Duration,
    /// How long a client may leave a response unread (or a request body
    /// unsent) before its connection is closed.
    pub stall_timeout: Duration,
    /// Most event streams open at once; one more is a `503` problem.
    pub max_event_streams: usize,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            max_connections: 512,
            header_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
            max_event_streams: 256,
        }
    }
}

/// Connections refused at the cap that are still being answered; beyond
/// these, a refused connection is closed without an answer.
const MAX_REFUSING: usize = 64;

/// Serves `router` on `listener` until `stop` resolves, then waits for the
/// connections to finish their requests, at most `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let open = Arc::new(Semaphore::new(bounds.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(bounds.header_timeout);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, mostly: wait for some to close
                // rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Ok(permit) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, bounds.max_connections).await;
                    drop(permit);
                });
            }
            continue;
        };
        let service = axum::Extension(ConnectInfo(remote)).layer(router.clone());
        let connection = http.serve_connection(
            TokioIo::new(Stalls::new(stream, bounds.stall_timeout)),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the grace period are dropped");
    }
}

/// Answers a connection over the cap with a `503` problem and closes it.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = format!(
        r#"{{"type":"about:blank","title":"Unavailable","status":503,"detail":"this server has {cap} connections open, its limit: try again shortly"}}"#
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so that closing does not reset the
        // connection before the client reads the answer.
        let mut sink = [0u8; 1024];
        loop {
            if tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? == 0 {
                return Ok::<(), io::Error>(());
            }
        }
    })
    .await;
}

/// A stream whose writes fail once they have made no progress for `limit`:
/// a client that stops reading cannot hold its connection, nor what the
/// server buffered for it.
struct Stalls<S> {
    inner: S,
    limit: Duration,
    /// Set while a write is pending: when it fires, the write fails.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> Stalls<S> {
    fn new(inner: S, limit: Duration) -> Stalls<S> {
        Stalls {
            inner,
            limit,
            stalled: None,
        }
    }

    /// What a write that returned `poll` amounts to.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalls<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalls<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_that_makes_no_progress_fails_after_the_limit() {
        // A pipe whose reader never reads: writes fill its buffer, then stall.
        let (client, _unread) = tokio::io::duplex(64);
        let mut stream = Stalls::new(client, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let error = stream.write_all(&[0u8; 4096]).await.expect_err("a stalled write fails");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn writes_that_progress_never_fail() {
        let (client, mut reader) = tokio::io::duplex(64);
        let mut stream = Stalls::new(client, Duration::from_millis(50));
        let reading = tokio::spawn(async move {
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut all)
                .await
                .map(|_| all.len())
        });
        // Each chunk waits for the reader, which keeps up: no stall lasts the limit.
        for _ in 0..20 {
            stream.write_all(&[1u8; 128]).await.expect("the reader keeps up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stream.shutdown().await.expect("shutdown");
        drop(stream);
        assert_eq!(reading.await.expect("join").expect("read"), 20 * 128);
    }
}
