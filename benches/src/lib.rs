//! Shared helpers for the criterion benchmarks in this folder (the benches themselves are in `benches/`).
