//! # apim-throttle
//!
//! Throttling for apim-rs (DESIGN §5): the policy engine, two
//! [`ThrottleDecider`](apim_core::throttle::ThrottleDecider) implementations and the Traffic
//! Manager service.
//!
//! - [`LocalThrottle`]: decisions in one process — block conditions, API / resource advanced
//!   policies with condition groups, subscription tiers (GCRA burst control + quota,
//!   `stopOnQuotaReach`), application tiers and custom key-template policies. Quotas are
//!   epoch-aligned fixed windows on one atomic per key; burst control is GCRA; time comes from
//!   an injected [`Clock`].
//! - [`GlobalThrottle`]: the gateway side of the shared-quota protocol: admit against the last
//!   global count known plus this gateway's unreported hits, report batches to a Traffic Manager
//!   by time and by share of quota, fail open or closed while it is unreachable, and catch up.
//! - [`TrafficManager`]: an axum router with the count endpoint (in-memory counters, or Redis
//!   shared by several Traffic Managers through an atomic Lua script) and the event hub stream.
//!
//! ```
//! use std::sync::Arc;
//! use apim_core::artifacts::InMemoryArtifacts;
//! use apim_core::bus::InProcessBus;
//! use apim_throttle::{LocalThrottle, TrafficManager};
//!
//! let artifacts = Arc::new(InMemoryArtifacts::new(vec!["Default".into()]));
//! let decider = LocalThrottle::new(artifacts);
//! let tm = TrafficManager::new("internal-token-of-16+", Arc::new(InProcessBus::new(1024)));
//! let router: axum::Router = tm.router();
//! # let _ = (decider, router);
//! ```

mod chain;
mod clock;
mod conditions;
mod gcra;
mod global;
mod keyed;
pub mod keys;
mod limiter;
mod local;
pub mod traffic_manager;
mod window;

pub use clock::{Clock, ManualClock, Nanos, SystemClock};
pub use conditions::{CompiledAdvanced, Condition, RequestFacts};
pub use gcra::{Gcra, GcraParams};
pub use global::{GlobalConfig, GlobalThrottle};
pub use keyed::{KeyedStates, SWEEP_EVERY};
pub use limiter::{BurstLimiter, QuotaLimiter};
pub use local::LocalThrottle;
pub use traffic_manager::TrafficManager;
pub use window::{Quota, QuotaKind, WindowCounter};

/// The axum version the [`TrafficManager`] router is built with (serve it with `axum::serve`).
pub use axum;
