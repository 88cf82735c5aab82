use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Method;

use super::{ArtifactSnapshot, ArtifactStore, GatewayData, RouteMatch};
use crate::event::Event;
use crate::ApimError;

/// The default [`ArtifactStore`]: an atomically swapped `Arc<ArtifactSnapshot>`. Readers never
/// lock; writers (the sync task) are serialised by a mutex that readers never touch.
#[derive(Debug)]
pub struct InMemoryArtifacts {
    current: ArcSwap<ArtifactSnapshot>,
    labels: Vec<String>,
    write: std::sync::Mutex<()>,
}

impl InMemoryArtifacts {
    /// An empty store for a gateway serving the given environments (gateway labels).
    pub fn new(labels: Vec<String>) -> Self {
        InMemoryArtifacts {
            current: ArcSwap::from_pointee(ArtifactSnapshot::empty(labels.clone())),
            labels,
            write: std::sync::Mutex::new(()),
        }
    }

    /// The environments this store serves.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
}

impl ArtifactStore for InMemoryArtifacts {
    fn resolve(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Result<RouteMatch, ApimError> {
        self.current.load().router().resolve(method, host, path)
    }

    fn snapshot(&self) -> Arc<ArtifactSnapshot> {
        self.current.load_full()
    }

    fn snapshot_ptr(&self) -> *const ArtifactSnapshot {
        // a guard, not a clone: no write to the snapshot's shared reference count
        Arc::as_ptr(&*self.current.load())
    }

    fn snapshot_ref(&self) -> arc_swap::Guard<Arc<ArtifactSnapshot>> {
        self.current.load()
    }

    fn apply_batch(&self, events: &[Event]) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = ArtifactSnapshot::clone(&self.current.load());
        if next.apply(events) {
            self.current.store(Arc::new(next));
        }
    }

    fn load(&self, data: GatewayData) {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.current.store(Arc::new(ArtifactSnapshot::from_data(
            self.labels.clone(),
            data,
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventPayload, Seq, TokenRevocation};

    #[test]
    fn the_borrowed_snapshot_and_its_address_follow_the_current_one() {
        let store = InMemoryArtifacts::new(vec!["Default".into()]);
        store.load(GatewayData::default());
        let first = store.snapshot();
        assert_eq!(store.snapshot_ptr(), Arc::as_ptr(&first));
        assert!(std::ptr::eq(&**store.snapshot_ref(), Arc::as_ptr(&first)));
        store.apply(&Event {
            seq: Seq(2),
            time: 0,
            payload: EventPayload::TokenRevocation(TokenRevocation {
                jti: "j1".into(),
                expiry_time: i64::MAX,
                token_type: "JWT".into(),
                consumer_key: None,
            }),
        });
        assert_ne!(store.snapshot_ptr(), Arc::as_ptr(&first), "a new snapshot");
        assert!(store.snapshot_ref().is_revoked("j1"));
        assert!(!first.is_revoked("j1"), "the old one is unchanged");
        assert_eq!(store.snapshot_ptr(), Arc::as_ptr(&store.snapshot()));
    }
}
