//! # apim
//!
//! apim-rs is an API manager — Publisher, Developer Portal, Key Manager, Gateway and Traffic
//! Manager, after WSO2 API Manager's architecture — built as a Rust library. This facade
//! re-exports the workspace crates; the example binaries under `examples/` assemble them into the
//! five profiles and the all-in-one server.
//!
//! | crate | re-exported as | what it holds |
//! |---|---|---|
//! | `apim-core` | [`core`] | model, traits + tower layers, errors, events, config, store |
//! | `apim-keymanager` | [`keymanager`] | OAuth2 server, `KeyValidator` implementations |
//! | `apim-throttle` | [`throttle`] | throttling engine, Traffic Manager |
//! | `apim-gateway` | [`gateway`] | data plane |
//! | `apim-portal` | [`portal`] | Publisher, Developer Portal and Admin REST APIs |
//!
//! ```
//! use apim::core::lifecycle::{LifecycleAction, LifecycleState};
//! assert_eq!(LifecycleState::Created.apply(LifecycleAction::Publish).unwrap(), LifecycleState::Published);
//! ```

pub use apim_core as core;
pub use apim_gateway as gateway;
pub use apim_keymanager as keymanager;
pub use apim_portal as portal;
pub use apim_throttle as throttle;

pub mod all_in_one;
pub mod cli;
pub mod serve;
pub mod wiring;
