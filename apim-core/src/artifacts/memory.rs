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
