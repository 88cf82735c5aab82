//! The event hub stream: `GET /internal/events/v1/stream?after=<seq>` answers NDJSON, one
//! [`Event`](apim_core::event::Event) per line in sequence order, plus
//! `{"type":"HEARTBEAT","seq":<last seq sent>}` every few seconds when idle. A subscriber that
//! reads too slowly is cut off once its bounded buffer is full (the hub's memory does not
//! grow); it reconnects with `after` = the last sequence it saw and misses nothing. If the
//! position is no longer held, the stream ends with `{"type":"ERROR","code":409,...}`: resync
//! from a snapshot.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use apim_core::bus::EventBus;
use apim_core::event::Seq;
use apim_core::ApimError;
use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Hub tuning.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// Idle time between heartbeats.
    pub heartbeat: Duration,
    /// Lines buffered per subscriber before it is cut off.
    pub buffer: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            heartbeat: Duration::from_secs(5),
            buffer: 1024,
        }
    }
}

/// Parses `after` from a query string (absent: 0).
pub(crate) fn after_param(query: Option<&str>) -> Result<Seq, ApimError> {
    let Some(q) = query else { return Ok(Seq(0)) };
    for kv in q.split('&') {
        if let Some(v) = kv.strip_prefix("after=") {
            return v
                .parse()
                .map(Seq)
                .map_err(|_| ApimError::validation("after", "must be a sequence number"));
        }
    }
    Ok(Seq(0))
}

fn line(v: &impl serde::Serialize) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// The streaming body for one subscriber.
pub(crate) fn stream(bus: Arc<dyn EventBus>, after: Seq, settings: HubSettings) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(settings.buffer.max(1));
    tokio::spawn(pump(bus, after, settings.heartbeat, tx));
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }))
}

async fn pump(bus: Arc<dyn EventBus>, after: Seq, heartbeat: Duration, tx: mpsc::Sender<Bytes>) {
    let mut events = bus.subscribe(after);
    let mut last = after;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let out = tokio::select! {
            item = events.next() => match item {
                Some(Ok(e)) => {
                    last = e.seq;
                    tick.reset();
                    line(&e)
                }
                Some(Err(e)) => {
                    let _ = tx.try_send(line(&serde_json::json!({
                        "type": "ERROR", "code": e.status().as_u16(), "seq": last, "message": e.to_string()
                    })));
                    return;
                }
                None => return,
            },
            _ = tick.tick() => line(&serde_json::json!({"type": "HEARTBEAT", "seq": last})),
            _ = tx.closed() => return,
        };
        match tx.try_send(out) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::info!(after = %last, "event subscriber too slow; cut off (it resumes after its last sequence)");
                return;
            }
            Err(TrySendError::Closed(_)) => return,
        }
    }
}
