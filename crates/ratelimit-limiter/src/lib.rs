//! The `Limiter` trait every llm-ratelimit backend implements, and what goes with it.
//!
//! Clients and gateways hold an `Arc<dyn Limiter>`: the in-process limiter (`ratelimit-memory`)
//! and the distributed one (`ratelimit-redis`) are interchangeable. A grant is a [`Permit`]:
//! hold it while the request runs, [`adjust`](Permit::adjust) it to the actual usage, drop it to
//! release the concurrency slot.
//!
//! With the `conformance` feature, [`conformance`] holds the test suite every backend must pass.

mod error;
mod limiter;
mod permit;
mod request;
mod stats;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{AcquireError, BackendError};
pub use limiter::Limiter;
pub use permit::{Permit, PermitHandle};
pub use request::{BATCH_SHARE, Priority, Request};
pub use stats::{Stats, StatsRecorder};
