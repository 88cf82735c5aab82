use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::{EventBus, EventStream};
use crate::event::{Event, EventPayload, Seq};
use crate::ApimError;

/// An in-process [`EventBus`] keeping the last `capacity` events for resumption.
///
/// Used by all-in-one (fed by the store after each commit through [`InProcessBus::relay`], so
/// sequence numbers are the outbox's) and by embedders that need no persistence.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: RwLock<Log>,
    last: watch::Sender<Seq>,
    capacity: usize,
}

#[derive(Debug)]
struct Log {
    events: VecDeque<Event>,
    /// Every event after `base` is in `events` (older ones were evicted).
    base: Seq,
}

impl InProcessBus {
    /// A bus holding at most `capacity` events for late subscribers.
    pub fn new(capacity: usize) -> Self {
        Self::starting_after(Seq(0), capacity)
    }

    /// A bus whose first event will follow `seq` (e.g. the outbox's last sequence at start).
    pub fn starting_after(seq: Seq, capacity: usize) -> Self {
        let (last, _) = watch::channel(seq);
        InProcessBus {
            inner: Arc::new(Inner {
                log: RwLock::new(Log {
                    events: VecDeque::new(),
                    base: seq,
                }),
                last,
                capacity: capacity.max(1),
            }),
        }
    }

    /// Appends an event that already has its sequence number (committed elsewhere, e.g. in the
    /// store's outbox). Events at or below the last sequence are ignored.
    pub fn relay(&self, event: Event) {
        let mut log = self.inner.log.write().unwrap_or_else(|p| p.into_inner());
        let last = *self.inner.last.borrow();
        if event.seq <= last {
            return;
        }
        let seq = event.seq;
        log.events.push_back(event);
        while log.events.len() > self.inner.capacity {
            if let Some(e) = log.events.pop_front() {
                log.base = e.seq;
            }
        }
        drop(log);
        self.inner.last.send_replace(seq);
    }

    fn read_after(&self, after: Seq, max: usize) -> Result<Vec<Event>, ApimError> {
        let log = self.inner.log.read().unwrap_or_else(|p| p.into_inner());
        if after < log.base {
            return Err(ApimError::Conflict(format!(
                "events after {after} are no longer held (oldest kept follows {}); resync from a snapshot",
                log.base
            )));
        }
        let start = log.events.partition_point(|e| e.seq <= after);
        Ok(log.events.iter().skip(start).take(max).cloned().collect())
    }
}

#[async_trait::async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, payload: EventPayload) -> Result<Seq, ApimError> {
        let mut event = Event::new(payload);
        // assign under the write lock so sequence order equals log order
        let mut log = self.inner.log.write().unwrap_or_else(|p| p.into_inner());
        let seq = Seq(self.inner.last.borrow().0 + 1);
        event.seq = seq;
        log.events.push_back(event);
        while log.events.len() > self.inner.capacity {
            if let Some(e) = log.events.pop_front() {
                log.base = e.seq;
            }
        }
        drop(log);
        self.inner.last.send_replace(seq);
        Ok(seq)
    }

    fn subscribe(&self, after: Seq) -> EventStream {
        let bus = self.clone();
        let rx = self.inner.last.subscribe();
        let state = (
            bus,
            rx,
            after,
            std::collections::VecDeque::<Event>::new(),
            false,
        );
        Box::pin(futures_util::stream::unfold(
            state,
            |(bus, mut rx, mut cursor, mut buf, done)| async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(e) = buf.pop_front() {
                        cursor = e.seq;
                        return Some((Ok(e), (bus, rx, cursor, buf, false)));
                    }
                    match bus.read_after(cursor, 256) {
                        Err(e) => return Some((Err(e), (bus, rx, cursor, buf, true))),
                        Ok(events) if !events.is_empty() => buf.extend(events),
                        Ok(_) => {
                            rx.borrow_and_update();
                            // re-check after marking seen, then wait for the next publish
                            if let Ok(ev) = bus.read_after(cursor, 256) {
                                if !ev.is_empty() {
                                    buf.extend(ev);
                                    continue;
                                }
                            }
                            if rx.changed().await.is_err() {
                                return None;
                            }
                        }
                    }
                }
            },
        ))
    }

    async fn last_seq(&self) -> Result<Seq, ApimError> {
        Ok(*self.inner.last.borrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EntityRef;
    use futures_util::StreamExt;

    fn payload(i: u64) -> EventPayload {
        EventPayload::ApplicationDelete(EntityRef {
            id: format!("app{i}"),
        })
    }

    #[tokio::test]
    async fn resume_gets_exactly_the_rest_in_order() {
        let bus = InProcessBus::new(100);
        for i in 1..=10 {
            assert_eq!(bus.publish(payload(i)).await.unwrap(), Seq(i));
        }
        let mut s = bus.subscribe(Seq(0));
        let mut seen = vec![];
        for _ in 0..4 {
            seen.push(s.next().await.unwrap().unwrap().seq.0);
        }
        drop(s); // disconnect after 4
        let mut s = bus.subscribe(Seq(*seen.last().unwrap()));
        let publisher = bus.clone();
        let live = tokio::spawn(async move {
            for i in 11..=15 {
                publisher.publish(payload(i)).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        for _ in 0..11 {
            let e = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.push(e.seq.0);
        }
        live.await.unwrap();
        assert_eq!(seen, (1..=15).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn evicted_position_is_an_error_not_a_gap() {
        let bus = InProcessBus::new(3);
        for i in 1..=10 {
            bus.publish(payload(i)).await.unwrap();
        }
        let mut s = bus.subscribe(Seq(2));
        assert!(matches!(s.next().await, Some(Err(ApimError::Conflict(_)))));
        assert!(s.next().await.is_none());
        let mut s = bus.subscribe(Seq(7));
        assert_eq!(s.next().await.unwrap().unwrap().seq, Seq(8));
    }

    #[tokio::test]
    async fn relay_keeps_foreign_sequence_numbers() {
        let bus = InProcessBus::starting_after(Seq(41), 10);
        let mut s = bus.subscribe(Seq(41));
        bus.relay(Event {
            seq: Seq(42),
            time: 0,
            payload: payload(1),
        });
        bus.relay(Event {
            seq: Seq(42),
            time: 0,
            payload: payload(1),
        }); // duplicate ignored
        bus.relay(Event {
            seq: Seq(43),
            time: 0,
            payload: payload(2),
        });
        assert_eq!(s.next().await.unwrap().unwrap().seq, Seq(42));
        assert_eq!(s.next().await.unwrap().unwrap().seq, Seq(43));
        assert_eq!(bus.last_seq().await.unwrap(), Seq(43));
    }
}
