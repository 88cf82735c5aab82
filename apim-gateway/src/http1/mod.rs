//! The gateway's own HTTP/1.1 server for the common request (`gateway.http1_server =
//! "native"`, the default; decision 26 in docs/architecture.md).
//!
//! A connection starts here. While its requests are ones the native server serves (see
//! [`request_head`]: HTTP/1.1, no body, no upgrade, a well-formed head within the limit), it
//! reads each head into the request the flow sees (the fields share the bytes read, as with
//! hyper), runs the flow, and writes the response head in one pass with the body behind it
//! (see [`response_writer`]: the framing hyper would choose). The first request it does not
//! serve hands the connection — with every byte read so far put back in front ([`Rewind`]) —
//! to hyper for the rest of the connection's life, so hyper answers it and everything after
//! it exactly as it does without the native server.
//!
//! Pipelined requests are answered in order. `Connection: close` from either side, a
//! response that ends early, and graceful shutdown close the connection after the response
//! in progress; an idle connection closes at once on shutdown. Idle and slow-head timeouts
//! are the listener's watchdog's, as for hyper connections.

pub mod request_head;
pub(crate) mod response_writer;
mod rewind;

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use http::header;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

pub(crate) use rewind::Rewind;

use crate::flow::{Conn, Flow};
use crate::listener::{Activity, InFlight};
use request_head::Parsed;

/// Read buffer reserved at a time.
const READ_CHUNK: usize = 8 << 10;

/// What the native server of one connection needs from its listener.
#[derive(Debug, Clone)]
pub(crate) struct Native {
    /// Largest request head it serves (longer ones go to hyper, which answers 431).
    pub(crate) max_head: usize,
    /// Becomes `true` when the listener shuts down (a closed channel counts as `true`).
    pub(crate) stop: watch::Receiver<bool>,
}

/// Serves `io` until it closes, shutdown, or a request that is hyper's: then `hyper` gets the
/// connection with the bytes read so far in front.
pub(crate) async fn serve<I, H, F>(
    mut io: I,
    flow: &Arc<Flow>,
    conn: &Conn,
    activity: &Arc<Activity>,
    native: Native,
    hyper: H,
) where
    I: AsyncRead + AsyncWrite + Unpin,
    H: FnOnce(Rewind<I>) -> F,
    F: Future<Output = ()>,
{
    let Native { max_head, stop } = native;
    // wakes the task on shutdown; polled until registered, after that `stopping` tells
    let mut watch = stop.clone();
    let wake_on_stop = tokio::task::coop::unconstrained(async move {
        let _ = watch.changed().await;
    });
    tokio::pin!(wake_on_stop);
    let mut registered = false;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(1024);
    let mut spans = [[0; 4]; request_head::MAX_FIELDS];
    // the request timeout's timer, one per connection: reset for each request
    let timer = tokio::time::sleep(flow.timeout);
    tokio::pin!(timer);
    loop {
        let head = loop {
            if !buf.is_empty() {
                match request_head::parse(&buf, max_head, &mut spans) {
                    Parsed::Partial => {}
                    Parsed::Native(head) => break head,
                    Parsed::Other => {
                        flow.metrics.handover();
                        return hyper(Rewind::new(buf.freeze(), io)).await;
                    }
                }
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                // reclaims the buffer's space when the previous request's head is gone
                buf.reserve(READ_CHUNK);
            }
            let read = {
                let read = io.read_buf(&mut buf);
                tokio::pin!(read);
                poll_fn(|cx| {
                    if let Poll::Ready(r) = read.as_mut().poll(cx) {
                        return Poll::Ready(Some(r));
                    }
                    if !registered {
                        if wake_on_stop.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(None);
                        }
                        registered = true;
                    }
                    if stopping(&stop) {
                        return Poll::Ready(None);
                    }
                    Poll::Pending
                })
                .await
            };
            match read {
                Some(Ok(0) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        };
        let head_request = head.is_head();
        let client_close = head.close;
        let req = match head.into_request(&mut buf, &spans) {
            Some(req) => req,
            None => {
                flow.metrics.handover();
                return hyper(Rewind::new(buf.freeze(), io)).await;
            }
        };
        let in_flight = InFlight::start(activity);
        let (res, id) = flow
            .clone()
            .handle_within(req, conn.clone(), timer.as_mut(), true)
            .await;
        let close = client_close
            || res
                .headers()
                .get_all(header::CONNECTION)
                .iter()
                .any(response_writer::names_close)
            || stopping(&stop);
        let written =
            response_writer::write(&mut io, res, Some(&id), head_request, close, &mut out).await;
        drop(in_flight);
        match written {
            Ok(true) if !close => {}
            Ok(_) => {
                let _ = io.shutdown().await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "writing a response failed");
                return;
            }
        }
    }
}

/// Whether the listener is shutting down: a value was sent (only `true` is), or the sender is
/// gone. One atomic load.
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    !matches!(stop.has_changed(), Ok(false))
}
