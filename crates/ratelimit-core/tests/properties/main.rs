//! Property tests: every algorithm and the policy against brute-force reference models.
//!
//! Each model keeps the whole history of grants and answers from first principles (sums over
//! windows, pair constraints), never from the algorithm's own shortcuts. Run with more cases by
//! setting `PROPTEST_CASES`.

mod buckets;
mod gcra_policies;
mod model;
mod policy;
mod windows;

/// Cases per property: several thousand by default, as CI requires.
pub(crate) fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}
