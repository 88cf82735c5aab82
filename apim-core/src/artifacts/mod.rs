//! The gateway's in-memory view of what is deployed: the [`ArtifactStore`] trait, its
//! snapshot ([`ArtifactSnapshot`]), the router, and the [`RouteLayer`].
//!
//! Reads never lock: the store hands out an `Arc` of an immutable snapshot, and
//! [`ArtifactStore::apply`] builds the next snapshot and swaps it in.
//!
//! ```
//! use std::sync::Arc;
//! use apim_core::artifacts::{ArtifactStore, InMemoryArtifacts, RouteLayer};
//! use tower::ServiceBuilder;
//!
//! let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
//! let svc = ServiceBuilder::new()
//!     .layer(RouteLayer::new(artifacts.clone()))
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! # let _ = svc;
//! assert_eq!(artifacts.seq().0, 0);
//! ```

mod layer;
mod memory;
mod router;
mod snapshot;

use std::sync::Arc;

use http::Method;

use crate::event::{Event, Seq};
use crate::model::{Api, Operation};
use crate::uri_template::UriTemplate;
use crate::ApimError;

pub use layer::{request_host, route, RouteLayer, RouteService};
pub use memory::InMemoryArtifacts;
pub use router::{ApiRouter, VhostRules};
pub use snapshot::{ArtifactSnapshot, GatewayData};

/// An API deployed to this gateway, with its resources pre-parsed for matching.
#[derive(Debug)]
pub struct DeployedApi {
    /// The definition (of the deployed revision, with the current lifecycle state).
    pub api: Api,
    /// Deployed revision.
    pub revision_id: String,
    /// Vhost it is deployed to, if any.
    pub vhost: Option<String>,
    /// Environments (of this gateway's) it is deployed to.
    pub labels: Vec<String>,
    /// `(template, operation index)`, most specific first.
    templates: Vec<(UriTemplate, usize)>,
}

impl DeployedApi {
    /// Prepares a definition for routing. Operations whose template does not parse are skipped
    /// (the Publisher refuses them, so this only guards against a corrupt event).
    pub fn new(api: Api, revision_id: String, vhost: Option<String>, labels: Vec<String>) -> Self {
        let mut templates: Vec<(UriTemplate, usize)> = api
            .operations
            .iter()
            .enumerate()
            .filter_map(|(i, op)| UriTemplate::parse(&op.target).ok().map(|t| (t, i)))
            .collect();
        templates.sort_by_key(|t| std::cmp::Reverse(t.0.specificity()));
        DeployedApi {
            api,
            revision_id,
            vhost,
            labels,
            templates,
        }
    }

    /// Index of the operation matching `method` and `resource`, most specific first.
    pub fn find_operation(&self, method: &Method, resource: &str) -> Option<usize> {
        self.templates
            .iter()
            .find(|(t, i)| self.api.operations[*i].verb == method.as_str() && t.matches(resource))
            .map(|(_, i)| *i)
    }

    /// Whether any operation's template matches `resource` (for any method).
    pub fn any_operation_matches(&self, resource: &str) -> bool {
        self.templates.iter().any(|(t, _)| t.matches(resource))
    }
}

/// The result of routing a request: the API, the resource, and where the resource path starts.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// The API.
    pub api: Arc<DeployedApi>,
    /// Index into `api.api.operations`.
    pub operation: usize,
    /// Byte offset in the request path where the resource part (after context and version)
    /// begins; the proxy appends `path[resource_start..]` to the endpoint URL.
    pub resource_start: usize,
}

impl RouteMatch {
    /// The matched operation.
    pub fn operation(&self) -> &Operation {
        &self.api.api.operations[self.operation]
    }
}

/// The gateway's view of what is deployed.
pub trait ArtifactStore: Send + Sync + 'static {
    /// Routes a request. Synchronous and lock-free. Errors: 404 900906 (no API/resource),
    /// 503 700700 (API BLOCKED).
    fn resolve(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Result<RouteMatch, ApimError>;

    /// The current snapshot (cheap: an `Arc` clone).
    fn snapshot(&self) -> Arc<ArtifactSnapshot>;

    /// Where the current snapshot lives: its identity, for a cache that remembers an answer
    /// per snapshot. Compare it with `Weak::as_ptr` of a snapshot the cache keeps a `Weak` of
    /// (which keeps the address from being reused): equal means that snapshot is still the
    /// current one. Never dereference it. The default clones the snapshot; a store that can
    /// tell without touching the snapshot's reference count (one shared by every thread)
    /// should.
    fn snapshot_ptr(&self) -> *const ArtifactSnapshot {
        Arc::as_ptr(&self.snapshot_ref())
    }

    /// The current snapshot for the length of a call: like [`snapshot`](Self::snapshot), but a
    /// store that can lends it without writing to its reference count (one every thread
    /// shares: on a request path, every such write moves the count's cache line between the
    /// cores). Hold it briefly. The default wraps a clone.
    fn snapshot_ref(&self) -> arc_swap::Guard<Arc<ArtifactSnapshot>> {
        arc_swap::Guard::from_inner(self.snapshot())
    }

    /// Applies one event.
    fn apply(&self, event: &Event) {
        self.apply_batch(std::slice::from_ref(event));
    }

    /// Applies events in order and publishes the result once.
    fn apply_batch(&self, events: &[Event]);

    /// Replaces everything with a full snapshot from the control plane.
    fn load(&self, data: GatewayData);

    /// The sequence number of the last applied event.
    fn seq(&self) -> Seq {
        self.snapshot().seq()
    }
}
