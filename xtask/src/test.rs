//! `cargo xtask test` (alias `cargo xtask ci`): the project's single test command.
//!
//! Steps, in order, stopping at the first failure:
//! 1. `cargo fmt --all -- --check`
//! 2. `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! 3. `cargo test --workspace --all-features` with `RUSTDOCFLAGS=-D warnings`
//!    (unit, integration and doc tests), with the [`Services`] running: Redis,
//!    standalone and cluster, described to the tests by `RATELIMIT_REDIS_*`
//!    variables (see [`crate::services`])
//! 4. `cargo doc --workspace --no-deps --all-features` with `RUSTDOCFLAGS=-D warnings`
//!
//! `--no-lint` keeps only step 3; `--no-services` runs it without Redis.

use std::{process::Command, time::Duration};

use anyhow::Result;

use crate::{
    flags::TestArgs,
    services::Services,
    util::{self, cargo, format_duration, project_root, step},
};

/// Runs every step of `cargo xtask test`.
pub(crate) fn run(args: &TestArgs) -> Result<()> {
    let root = project_root();
    let rustdocflags = rustdocflags();
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let mut run_step = |cmd: &mut Command| -> Result<()> {
        let elapsed = step(cmd)?;
        timings.push((util::display(cmd), elapsed));
        Ok(())
    };

    if args.lint {
        ensure_components()?;
        run_step(cargo(&root).args(["fmt", "--all", "--", "--check"]))?;
        run_step(cargo(&root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))?;
    }

    {
        // Dropped at the end of this block, or on early return, which stops
        // every service whether the tests passed or not.
        let services = if args.services {
            Services::start()?
        } else {
            Services::none()
        };
        let mut test = cargo(&root);
        test.arg("test");
        if !selects_packages(&args.cargo_test_args) {
            test.arg("--workspace");
        }
        test.arg("--all-features")
            .args(&args.cargo_test_args)
            .env("RUSTDOCFLAGS", &rustdocflags)
            .envs(services.env());
        run_step(&mut test)?;
    }

    if args.lint {
        run_step(
            cargo(&root)
                .args(["doc", "--workspace", "--no-deps", "--all-features"])
                .env("RUSTDOCFLAGS", &rustdocflags),
        )?;
    }

    println!("\nxtask test: all steps passed");
    let total: Duration = timings.iter().map(|(_, d)| *d).sum();
    for (name, elapsed) in &timings {
        println!("  {:>7}  {name}", format_duration(*elapsed));
    }
    println!("  {:>7}  total", format_duration(total));
    Ok(())
}

/// `-D warnings`, added to any `RUSTDOCFLAGS` already set by the user.
fn rustdocflags() -> String {
    match std::env::var("RUSTDOCFLAGS") {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing} -D warnings"),
        _ => "-D warnings".to_owned(),
    }
}

/// Whether the pass-through `cargo test` arguments pick packages themselves
/// (`-p`, `--package`, `--manifest-path`), in which case `--workspace` must not
/// be added: cargo would otherwise ignore `-p` and test everything.
fn selects_packages(cargo_test_args: &[String]) -> bool {
    cargo_test_args
        .iter()
        // Arguments after a second `--` belong to the test binaries.
        .take_while(|a| *a != "--")
        .any(|a| {
            a == "-p"
                || a.starts_with("-p")
                || a == "--package"
                || a.starts_with("--package=")
                || a == "--manifest-path"
                || a.starts_with("--manifest-path=")
        })
}

/// Installs rustfmt and clippy with rustup if `cargo fmt`/`cargo clippy` are missing.
fn ensure_components() -> Result<()> {
    let works = |subcommand: &str| {
        util::capture(Command::new("cargo").args([subcommand, "--version"])).is_some()
    };
    if works("fmt") && works("clippy") {
        return Ok(());
    }
    println!("\nxtask: rustfmt or clippy is missing, installing them with rustup");
    step(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn package_selection_drops_workspace_flag() {
        assert!(!selects_packages(&[]));
        assert!(!selects_packages(&strings(&["--lib"])));
        assert!(selects_packages(&strings(&["-p", "ratelimit-core"])));
        assert!(selects_packages(&strings(&["-pratelimit-core"])));
        assert!(selects_packages(&strings(&["--package=ratelimit-core"])));
        assert!(!selects_packages(&strings(&["--", "-p"])));
    }
}
