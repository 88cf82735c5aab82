//! The domain model, serialised with WSO2 API-M 4.x JSON field names.

mod api;
mod application;
mod block;
mod environment;
mod policy;
mod subscription;
mod user;
pub(crate) mod validate;

pub use api::*;
pub use application::*;
pub use block::*;
pub use environment::*;
pub use policy::*;
pub use subscription::*;
pub use user::*;
