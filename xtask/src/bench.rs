//! `cargo xtask bench`: runs the criterion benchmarks and writes `docs/benchmarks.md`.
//!
//! Convention (also written into the generated file): each criterion *group*
//! compares implementations of one task. The function id `ours` is this
//! project's implementation; every other function id in the group is a peer
//! (e.g. `governor`, `leaky-bucket`). For each peer the report gives the ratio
//! `ours / peer` of mean times: below `1.00x` means ours is faster.
//!
//! Results are read from `target/criterion/<group>/<function>/new/estimates.json`
//! (criterion's own output; see [`report`]).

mod report;

use std::{
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

use crate::{
    flags::BenchArgs,
    util::{capture, cargo, display, project_root, step},
};

/// Package name of the criterion bench crate in `benches/`.
const BENCH_PACKAGE: &str = "ratelimit-benches";
/// The generated report, relative to the workspace root.
const REPORT_PATH: &str = "docs/benchmarks.md";
/// Where `cargo xtask bench` records when and how the results were produced
/// (inside criterion's output directory), so `--report-only` can cite them.
/// Two lines: `date: <date>` and `command: <command>`.
const RUN_RECORD: &str = "xtask-bench-run.txt";

/// Runs the benchmarks (unless `--report-only`) and regenerates the report.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let root = project_root();
    let criterion_dir = target_dir(&root).join("criterion");
    let record_file = criterion_dir.join(RUN_RECORD);

    let (date, command) = if args.report_only {
        match fs::read_to_string(&record_file) {
            Ok(record) => {
                let field = |key: &str| {
                    record
                        .lines()
                        .find_map(|l| l.strip_prefix(key))
                        .map(|v| v.trim().to_owned())
                };
                (
                    field("date:").unwrap_or_else(|| "unknown".to_owned()),
                    field("command:"),
                )
            }
            Err(_) => (format!("unknown (report generated {})", utc_now()), None),
        }
    } else {
        // The Redis benchmarks run against the same servers the tests use; stopped on drop.
        let services = crate::services::Services::start()?;
        let mut bench = cargo(&root);
        bench
            .args(["bench", "-p", BENCH_PACKAGE])
            .args(&args.cargo_bench_args)
            .envs(services.env());
        let shown = display(&bench);
        let date = utc_now();
        step(&mut bench)?;
        drop(services);
        fs::create_dir_all(&criterion_dir)?;
        fs::write(&record_file, format!("date: {date}\ncommand: {shown}\n"))
            .with_context(|| format!("writing {}", record_file.display()))?;
        (date, Some(shown))
    };

    let groups = report::read_results(&criterion_dir)?;
    if groups.is_empty() {
        bail!(
            "no criterion results under {} (run `cargo xtask bench` without --report-only first)",
            criterion_dir.display()
        );
    }
    let machine = report::Machine {
        date,
        rustc: capture(std::process::Command::new("rustc").arg("-V"))
            .unwrap_or_else(|| "unknown".to_owned()),
        cpu: fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| report::cpu_model(&info))
            .unwrap_or_else(|| "unknown".to_owned()),
        nproc: capture(&mut std::process::Command::new("nproc")).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or_else(|_| "unknown".into(), |n| n.to_string())
        }),
        command,
    };
    let metrics = report::read_metrics(&criterion_dir)?;
    let generated = report::render(&groups, &machine) + &report::render_metrics(&metrics);

    let path = root.join(REPORT_PATH);
    let existing = match fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let text = report::splice(existing.as_deref(), &generated)
        .with_context(|| format!("updating {}", path.display()))?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nxtask bench: wrote {} ({} group(s))",
        path.display(),
        groups.len()
    );
    Ok(())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace
/// root if relative) or `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_767_225_599), "2025-12-31 23:59 UTC");
        assert_eq!(format_utc(1_709_210_096), "2024-02-29 12:34 UTC");
    }
}
