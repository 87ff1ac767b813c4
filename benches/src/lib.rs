//! Shared helpers for the criterion benchmarks in this folder (the benches themselves are in `benches/`).

use std::path::PathBuf;

/// Criterion's output folder, where custom measurements are written beside its results (as
/// `<name>.json`, a flat object of numbers, which `cargo xtask bench` turns into tables).
#[must_use]
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is inside the workspace")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir).join("criterion"),
        _ => root.join("target").join("criterion"),
    }
}
