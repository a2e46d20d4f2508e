//! The HTTP accept loop: connection limit, timeouts and graceful drain.
//!
//! `axum::serve` holds every connection for as long as the client wants, so
//! this module runs hyper itself and watches each connection:
//!
//! * **Header timeout** (`header_read_timeout_seconds`): from accept, or from
//!   the first byte of the next request on a kept-alive connection, until the
//!   whole request head has arrived. Slow-header clients are disconnected.
//! * **Keep-alive idle timeout** (`keep_alive_timeout_seconds`): an
//!   idle connection (no request in flight, no byte of a new one) is closed.
//! * **Body timeout** (`body_read_timeout_seconds`) is enforced where bodies
//!   are read (`extract::read_body`), because only the handler knows whether
//!   a body is buffered (a deadline for the whole body) or streamed (a limit
//!   on the pause between chunks).
//! * **Connection limit** (`max_connections`): beyond it, new connections
//!   wait in the kernel's accept queue until one closes.
//!
//! A connection is "busy" from the moment hyper hands a request to the
//! router until the response body has been sent or dropped; only idle and
//! head phases can time out, so no request in flight is ever cut off by
//! these timers.
//!
//! **Drain.** On shutdown the listener closes (connections the kernel had
//! already completed are taken first and served: closing would reset them),
//! so new connections are refused and clients go elsewhere. Every response
//! from then on carries `Connection: close`, so a request in flight finishes
//! and its connection closes after the response. A kept-alive connection
//! that is idle when the drain starts stays open for [`DRAIN_IDLE_CLOSE`]:
//! a client still using it gets its next request answered (with `Connection:
//! close`) instead of racing a close it cannot see coming (a request written
//! into a connection the server is closing is lost without an answer, and a
//! POST is not retried); one that sends nothing is closed after it. The
//! caller bounds the whole drain (`shutdown_grace_seconds`).

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long a connection idle at the start of the drain stays open for its
/// client's next request (see the module docs).
pub const DRAIN_IDLE_CLOSE: Duration = Duration::from_secs(1);

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to receive a complete request head.
    pub header_timeout: Duration,
    /// Time an idle kept-alive connection stays open.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head since this instant.
    Head(Instant),
    /// At least one request is being handled.
    Busy,
    /// Nothing in flight and no byte of a new request since this instant.
    Idle(Instant),
}

/// Shared between a connection's IO, its service and its watchdog.
#[derive(Debug)]
struct Watch {
    phase: Mutex<Phase>,
    in_flight: AtomicUsize,
}

impl Watch {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut p = match self.phase.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        *p = f(*p);
    }

    fn get(&self) -> Phase {
        match self.phase.lock() {
            Ok(p) => *p,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Bytes arrived: an idle connection starts receiving a request head.
    fn bytes_read(&self) {
        self.set(|p| match p {
            Phase::Idle(_) => Phase::Head(Instant::now()),
            other => other,
        });
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set(|_| Phase::Busy);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.set(|_| Phase::Idle(Instant::now()));
        }
    }

    /// When the current phase expires, and why.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        match self.get() {
            Phase::Head(since) => Some((since + limits.header_timeout, "header_timeout")),
            Phase::Idle(since) => Some((since + limits.idle_timeout, "idle_timeout")),
            Phase::Busy => None,
        }
    }
}

/// The TCP stream, reporting reads to the connection's [`Watch`].
struct WatchedStream {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.bytes_read();
        }
        res
    }
}

impl AsyncWrite for WatchedStream {
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

/// Marks a request finished when dropped (with its response body).
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its connection busy until it is sent or dropped.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see
/// the module docs). Resolves when every connection is closed; the caller
/// bounds that wait (the drain grace period).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    let spawn = |stream: TcpStream, peer, permit: Option<tokio::sync::OwnedSemaphorePermit>| {
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, limits, stop).await;
            tracing::trace!(%peer, "connection closed");
            drop(permit);
            drop(open);
        });
    };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        spawn(stream, peer, Some(permit));
    }
    let _ = stop_tx.send(true);
    // Connections already completed by the kernel would be reset when the
    // listener closes: serve them (draining from their start).
    while let Some(Ok((stream, peer))) = futures::FutureExt::now_or_never(listener.accept()) {
        spawn(stream, peer, permits.clone().try_acquire_owned().ok());
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let watch = Arc::new(Watch::new());
    metrics::gauge!("slipway_http_connections_open").increment(1.0);
    let io = TokioIo::new(WatchedStream {
        inner: stream,
        watch: watch.clone(),
    });
    let service_watch = watch.clone();
    let service_stop = stop.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        service_watch.request_started();
        let in_flight = InFlight(service_watch.clone());
        let call = app.clone().oneshot(Request::from(req.map(Body::new)));
        let stop = service_stop.clone();
        async move {
            let mut resp = match call.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if *stop.borrow() {
                // Draining: this is the connection's last response (HTTP/2
                // drops the header; its GOAWAY does the same).
                resp.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(resp.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut draining = *stop.borrow();
    // When a draining connection is told to close once idle.
    let mut close_at = draining.then(|| Instant::now() + DRAIN_IDLE_CLOSE);
    loop {
        // While busy, look again after the shorter timeout: the phase may
        // have changed without waking this task.
        let (deadline, reason) = watch.deadline(&limits).unwrap_or((
            Instant::now() + limits.header_timeout.min(limits.idle_timeout),
            "",
        ));
        let (deadline, reason) = match close_at {
            Some(at) if at <= deadline => (at, "drain"),
            _ => (deadline, reason),
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = tokio::time::sleep_until(deadline), if reason == "drain" => {
                // Closes it now if idle, else after the request in flight.
                close_at = None;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(deadline), if reason != "drain" => {
                let expired = watch
                    .deadline(&limits)
                    .is_some_and(|(d, _)| d <= Instant::now());
                if expired && !reason.is_empty() {
                    tracing::debug!(reason, "closing connection");
                    metrics::counter!("slipway_http_connections_closed_total", "reason" => reason)
                        .increment(1);
                    break;
                }
            }
            changed = stop.changed(), if !draining => {
                if changed.is_err() || *stop.borrow() {
                    draining = true;
                    close_at = Some(Instant::now() + DRAIN_IDLE_CLOSE);
                }
            }
        }
    }
    metrics::gauge!("slipway_http_connections_open").decrement(1.0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one response of `body` (Content-Length framed) off `c`.
    async fn read_response(c: &mut TcpStream, body: &str) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&buf).ends_with(body) {
            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut chunk))
                .await
                .expect("a response within 5 s")
                .expect("the connection stays readable");
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).to_lowercase()
    }

    /// At shutdown new connections are refused, but a kept-alive connection
    /// idle at that moment still gets its next request answered, with
    /// `Connection: close`, instead of a close racing the request.
    #[tokio::test]
    async fn the_drain_answers_the_next_request_of_an_idle_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "drained" }));
        let limits = ConnectionLimits {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        let request = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(request).await.unwrap();
        let first = read_response(&mut c, "drained").await;
        assert!(
            first.starts_with("http/1.1 200") && !first.contains("connection: close"),
            "{first}"
        );

        stop.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "new connections still accepted after shutdown"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.write_all(request).await.unwrap();
        let second = read_response(&mut c, "drained").await;
        assert!(
            second.starts_with("http/1.1 200") && second.contains("connection: close"),
            "{second}"
        );
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
            .await
            .expect("closed after its last response")
            .unwrap();
        assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the drain ends once every connection is closed")
            .unwrap();
    }

    #[test]
    fn phases_and_deadlines() {
        let limits = ConnectionLimits {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        };
        let w = Watch::new();
        assert_eq!(w.deadline(&limits).map(|d| d.1), Some("header_timeout"));
        w.request_started();
        w.request_started();
        assert!(w.deadline(&limits).is_none());
        w.request_finished();
        assert!(w.deadline(&limits).is_none(), "one request still in flight");
        w.request_finished();
        assert_eq!(w.deadline(&limits).map(|d| d.1), Some("idle_timeout"));
        w.bytes_read();
        assert_eq!(w.deadline(&limits).map(|d| d.1), Some("header_timeout"));
    }
}
