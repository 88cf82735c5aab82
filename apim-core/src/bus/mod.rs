//! The event hub contract: [`EventBus`] (publish, subscribe after a sequence number), the
//! in-process implementation [`InProcessBus`], and [`EventLayer`], which emits one
//! [`RequestRecord`] per request to a non-blocking sink (analytics).
//!
//! ```
//! # tokio_test_block(async {
//! use apim_core::bus::{EventBus, InProcessBus};
//! use apim_core::event::{EventPayload, EntityRef, Seq};
//! use futures_util::StreamExt;
//!
//! let bus = InProcessBus::new(1024);
//! bus.publish(EventPayload::ApplicationDelete(EntityRef { id: "a1".into() })).await.unwrap();
//! let seq = bus.publish(EventPayload::ApplicationDelete(EntityRef { id: "a2".into() })).await.unwrap();
//! // a subscriber that saw event 1 resumes after it and gets exactly event 2
//! let mut events = bus.subscribe(Seq(1));
//! let e = events.next().await.unwrap().unwrap();
//! assert_eq!(e.seq, seq);
//! # });
//! # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod layer;
mod memory;

use std::pin::Pin;

use futures_core::Stream;

use crate::event::{Event, EventPayload, Seq};
use crate::ApimError;

pub use layer::{ChannelSink, EventLayer, EventService, RequestRecord, RequestSink};
pub use memory::InProcessBus;

/// A stream of events in sequence order. It ends with an error if the subscriber fell too far
/// behind (resume with [`EventBus::subscribe`] after the last event seen, or resync from a
/// snapshot when the error is [`ApimError::Conflict`]: the requested position is gone).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, ApimError>> + Send>>;

/// Publishes events and lets subscribers follow them, resumable by sequence number.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Appends an event; returns its sequence number.
    async fn publish(&self, payload: EventPayload) -> Result<Seq, ApimError>;

    /// Events with a sequence number greater than `after`, in order, then new ones as they come.
    fn subscribe(&self, after: Seq) -> EventStream;

    /// The last sequence number published.
    async fn last_seq(&self) -> Result<Seq, ApimError>;
}
