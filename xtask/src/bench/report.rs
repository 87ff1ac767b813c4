//! Reads criterion's JSON results and renders the markdown of `docs/benchmarks.md`.
//!
//! Layout read: `<criterion dir>/<group>/<function>[/<parameter>]/new/estimates.json`.
//! When criterion's `new/benchmark.json` sits next to it, its `group_id`,
//! `function_id` and `value_str` are used (criterion sanitises directory
//! names, the JSON keeps the real ids); otherwise the ids come from the path.
//!
//! Convention: a group compares implementations of one task; the function id
//! [`OURS`] is this project's implementation and every other function id in
//! the group is a peer. Ratios are `ours mean / peer mean`: lower is better.

use std::{
    cmp::Ordering,
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The function id of this project's implementation within a group.
pub(crate) const OURS: &str = "ours";
/// Line that opens the generated part of the report.
pub(crate) const START_MARKER: &str = "<!-- generated:start -->";
/// Line that closes the generated part of the report.
pub(crate) const END_MARKER: &str = "<!-- generated:end -->";

/// Criterion's estimates of one benchmark, in nanoseconds per iteration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Estimates {
    /// Point estimate of the mean.
    pub(crate) mean: f64,
    /// Lower bound of the mean's confidence interval.
    pub(crate) mean_lower: f64,
    /// Upper bound of the mean's confidence interval.
    pub(crate) mean_upper: f64,
    /// Confidence level of that interval (criterion's default is 0.95).
    pub(crate) confidence_level: f64,
    /// Point estimate of the median.
    pub(crate) median: f64,
}

/// One implementation measured in a group, possibly for one input parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bench {
    /// The criterion function id: [`OURS`] or a peer's name.
    pub(crate) function: String,
    /// The parameter of a `BenchmarkId::new(function, parameter)`, if any.
    pub(crate) parameter: Option<String>,
    /// The measured times.
    pub(crate) estimates: Estimates,
}

/// A criterion group: one task, several implementations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    /// The criterion group id.
    pub(crate) name: String,
    /// Its benchmarks, sorted by parameter, then `ours` first, then peers by name.
    pub(crate) benches: Vec<Bench>,
}

/// Where and how the benchmarks ran, printed at the top of the report.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// When the benchmarks ran.
    pub(crate) date: String,
    /// Output of `rustc -V`.
    pub(crate) rustc: String,
    /// CPU model from `/proc/cpuinfo`.
    pub(crate) cpu: String,
    /// Output of `nproc`.
    pub(crate) nproc: String,
    /// The exact command that produced the results, if known.
    pub(crate) command: Option<String>,
}

/// Reads every benchmark result under `criterion_dir`, grouped and sorted.
/// A missing directory yields no groups.
pub(crate) fn read_results(criterion_dir: &Path) -> Result<Vec<Group>> {
    let mut estimate_files = Vec::new();
    if criterion_dir.is_dir() {
        find_estimates(criterion_dir, &mut estimate_files)?;
    }
    let mut groups: BTreeMap<String, Vec<Bench>> = BTreeMap::new();
    for file in estimate_files {
        let new_dir = file.parent().expect("estimates.json has a parent");
        let (group, function, parameter) = ids(criterion_dir, new_dir)?;
        let estimates = read_estimates(&file)?;
        groups.entry(group).or_default().push(Bench {
            function,
            parameter,
            estimates,
        });
    }
    Ok(groups
        .into_iter()
        .map(|(name, mut benches)| {
            benches.sort_by(|a, b| {
                compare_parameters(a.parameter.as_deref(), b.parameter.as_deref())
                    .then_with(|| (a.function != OURS).cmp(&(b.function != OURS)))
                    .then_with(|| a.function.cmp(&b.function))
            });
            Group { name, benches }
        })
        .collect())
}

/// Collects `**/new/estimates.json` below `dir`, in a stable order.
fn find_estimates(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        if !path.is_dir() {
            continue;
        }
        let estimates = path.join("estimates.json");
        if path.file_name().is_some_and(|n| n == "new") && estimates.is_file() {
            out.push(estimates);
        } else {
            find_estimates(&path, out)?;
        }
    }
    Ok(())
}

/// The (group, function, parameter) ids of the benchmark whose results are in `new_dir`.
fn ids(criterion_dir: &Path, new_dir: &Path) -> Result<(String, String, Option<String>)> {
    let benchmark_json = new_dir.join("benchmark.json");
    if benchmark_json.is_file() {
        let json = read_json(&benchmark_json)?;
        let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(group) = text("group_id") {
            let function = text("function_id").unwrap_or_else(|| group.clone());
            return Ok((group, function, text("value_str")));
        }
    }
    let bench_dir = new_dir.parent().expect("`new` has a parent");
    let rel = bench_dir.strip_prefix(criterion_dir)?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [group] => Ok((group.clone(), group.clone(), None)),
        [group, function] => Ok((group.clone(), function.clone(), None)),
        [group, function, rest @ ..] => Ok((group.clone(), function.clone(), Some(rest.join("/")))),
        [] => bail!("estimates.json directly in {}", criterion_dir.display()),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads criterion's `estimates.json`.
fn read_estimates(path: &Path) -> Result<Estimates> {
    let json = read_json(path)?;
    let number = |pointer: &str| {
        json.pointer(pointer)
            .and_then(Value::as_f64)
            .with_context(|| format!("{}: missing number at `{pointer}`", path.display()))
    };
    Ok(Estimates {
        mean: number("/mean/point_estimate")?,
        mean_lower: number("/mean/confidence_interval/lower_bound")?,
        mean_upper: number("/mean/confidence_interval/upper_bound")?,
        confidence_level: number("/mean/confidence_interval/confidence_level")?,
        median: number("/median/point_estimate")?,
    })
}

/// Orders parameters numerically when both are numbers, else as text; no parameter first.
fn compare_parameters(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        },
    }
}

/// The CPU model (first `model name` line) from the text of `/proc/cpuinfo`.
pub(crate) fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// Renders the generated part of the report (what goes between the markers).
pub(crate) fn render(groups: &[Group], machine: &Machine) -> String {
    let mut out = String::new();
    let w = &mut out;
    // Writing to a String cannot fail.
    let _ = writeln!(
        w,
        "_This section is generated by `cargo xtask bench`; edits between the \
         `generated` markers are overwritten. Run `cargo xtask bench --report-only` \
         to regenerate it from existing results._\n"
    );
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| Date | {} |", cell(&machine.date));
    let _ = writeln!(w, "| Compiler | `{}` |", cell(&machine.rustc));
    let _ = writeln!(w, "| CPU | {} |", cell(&machine.cpu));
    let _ = writeln!(w, "| `nproc` | {} |", cell(&machine.nproc));
    match &machine.command {
        Some(command) => {
            let _ = writeln!(w, "| Command | `{}` |", cell(command));
        }
        None => {
            let _ = writeln!(
                w,
                "| Command | unknown (results not produced by `cargo xtask bench`) |"
            );
        }
    }
    let _ = writeln!(
        w,
        "\nHow to read: each criterion group compares implementations of one task. \
         `{OURS}` is this project's implementation; every other row is a peer crate \
         doing the same task. Times are criterion's estimates in nanoseconds per \
         iteration; the interval is criterion's confidence interval of the mean. \
         `{OURS} / peer` is our mean divided by the peer's mean: below `1.00x` \
         means ours is faster (lower is better)."
    );
    for group in groups {
        let _ = writeln!(w);
        render_group(w, group);
    }
    out
}

fn render_group(w: &mut String, group: &Group) {
    let _ = writeln!(w, "### `{}`\n", cell(&group.name));
    let has_ours = group.benches.iter().any(|b| b.function == OURS);
    let has_peers = group.benches.iter().any(|b| b.function != OURS);
    let with_ratio = has_ours && has_peers;
    let with_parameter = group.benches.iter().any(|b| b.parameter.is_some());
    if has_peers && !has_ours {
        let _ = writeln!(w, "_No `{OURS}` benchmark in this group, so no ratios._\n");
    }

    let level = group
        .benches
        .first()
        .map_or(95.0, |b| b.estimates.confidence_level * 100.0);
    let mut header = vec!["Implementation".to_owned()];
    let mut align = vec!["---"];
    if with_parameter {
        header.push("Input".to_owned());
        align.push("---");
    }
    header.push("Mean (ns/iter)".to_owned());
    header.push(format!("Mean {level:.0}% CI (ns)"));
    header.push("Median (ns/iter)".to_owned());
    align.extend(["---:", "---:", "---:"]);
    if with_ratio {
        header.push(format!("{OURS} / peer"));
        align.push("---:");
    }
    let _ = writeln!(w, "| {} |", header.join(" | "));
    let _ = writeln!(w, "|{}|", align.join("|"));

    for bench in &group.benches {
        let e = &bench.estimates;
        let mut row = vec![if bench.function == OURS {
            format!("**{OURS}**")
        } else {
            cell(&bench.function)
        }];
        if with_parameter {
            row.push(bench.parameter.as_deref().map_or_else(String::new, cell));
        }
        row.push(format_ns(e.mean));
        row.push(format!(
            "{} – {}",
            format_ns(e.mean_lower),
            format_ns(e.mean_upper)
        ));
        row.push(format_ns(e.median));
        if with_ratio {
            row.push(ratio_cell(group, bench));
        }
        let _ = writeln!(w, "| {} |", row.join(" | "));
    }
}

/// The `ours / peer` cell of a row: `baseline` for ours, `n/a` when ours has
/// no result for the same input.
fn ratio_cell(group: &Group, bench: &Bench) -> String {
    if bench.function == OURS {
        return "baseline".to_owned();
    }
    let ours = group
        .benches
        .iter()
        .find(|b| b.function == OURS && b.parameter == bench.parameter);
    match ours {
        Some(ours) if bench.estimates.mean > 0.0 => {
            format_ratio(ours.estimates.mean / bench.estimates.mean)
        }
        _ => "n/a".to_owned(),
    }
}

/// Formats a ratio as e.g. `0.82x`, keeping two significant digits below `0.1x`.
fn format_ratio(ratio: f64) -> String {
    let decimals = if ratio > 0.0 && ratio < 0.1 {
        // floor(log10) is in -7..=-2 here, so this is 3..=8 decimals.
        (1.0 - ratio.log10().floor()).clamp(2.0, 8.0) as usize
    } else {
        2
    };
    format!("{ratio:.decimals$}x")
}

/// Formats nanoseconds with precision that suits the magnitude.
fn format_ns(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2}")
    } else if ns < 1000.0 {
        format!("{ns:.1}")
    } else {
        // Thousands separators for large values, e.g. `1,234,567`.
        let digits = format!("{ns:.0}");
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}

/// Escapes text for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Puts `generated` between the markers of `existing` and returns the new file.
///
/// Everything outside the markers is kept byte for byte. With no existing
/// file, a short header and the markers are created; an existing file without
/// markers gets them appended at its end.
pub(crate) fn splice(existing: Option<&str>, generated: &str) -> Result<String> {
    let block = format!(
        "{START_MARKER}\n\n{}\n\n{END_MARKER}\n",
        generated.trim_end()
    );
    let Some(existing) = existing else {
        return Ok(format!(
            "# Benchmarks\n\n\
             Criterion benchmarks of this project (`{OURS}`) against peer crates, \
             produced by `cargo xtask bench` (the `benches/` crate). Text outside \
             the generated markers is hand-written and kept when the file is \
             regenerated.\n\n{block}"
        ));
    };
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let start = lines.iter().position(|l| l.trim() == START_MARKER);
    let end = lines.iter().position(|l| l.trim() == END_MARKER);
    match (start, end) {
        (Some(start), Some(end)) if start < end => {
            let mut out: String = lines[..start].concat();
            out.push_str(&block);
            out.push_str(&lines[end + 1..].concat());
            Ok(out)
        }
        (None, None) => {
            let mut out = existing.to_owned();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&block);
            Ok(out)
        }
        _ => bail!(
            "the file must contain a `{START_MARKER}` line followed by a `{END_MARKER}` \
             line (or neither)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    use super::*;

    /// A unique empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("xtask-report-{name}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Writes a criterion-shaped `estimates.json` (and optionally `benchmark.json`).
    fn write_bench(root: &Path, dir: &str, mean: f64, median: f64, benchmark_json: Option<&str>) {
        let new = root.join(dir).join("new");
        fs::create_dir_all(&new).unwrap();
        let estimates = format!(
            r#"{{"mean":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},"point_estimate":{mean},"standard_error":0.1}},"median":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{median},"upper_bound":{median}}},"point_estimate":{median},"standard_error":0.1}},"median_abs_dev":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":0.1,"upper_bound":0.2}},"point_estimate":0.15,"standard_error":0.01}},"slope":null,"std_dev":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":0.1,"upper_bound":0.2}},"point_estimate":0.15,"standard_error":0.01}}}}"#,
            mean - 1.0,
            mean + 1.0
        );
        fs::write(new.join("estimates.json"), estimates).unwrap();
        if let Some(json) = benchmark_json {
            fs::write(new.join("benchmark.json"), json).unwrap();
        }
        // Criterion also keeps older results next to `new`; they must be ignored.
        let base = root.join(dir).join("base");
        fs::create_dir_all(&base).unwrap();
        fs::write(base.join("estimates.json"), "not json").unwrap();
    }

    fn fixture() -> TempDir {
        let dir = TempDir::new("fixture");
        let root = &dir.0;
        write_bench(root, "acquire/ours", 82.0, 80.0, None);
        write_bench(root, "acquire/governor", 100.0, 99.0, None);
        write_bench(root, "acquire/leaky-bucket", 41.0, 40.0, None);
        write_bench(root, "solo/ours", 5.0, 4.5, None);
        write_bench(
            root,
            "by_keys/ours/1000",
            2000.0,
            1900.0,
            Some(
                r#"{"group_id":"by keys","function_id":"ours","value_str":"1000","throughput":null,"full_id":"by keys/ours/1000","directory_name":"by_keys/ours/1000","title":"by keys/ours/1000"}"#,
            ),
        );
        write_bench(
            root,
            "by_keys/ours/10",
            20.0,
            19.0,
            Some(r#"{"group_id":"by keys","function_id":"ours","value_str":"10"}"#),
        );
        write_bench(
            root,
            "by_keys/governor/10",
            40.0,
            39.0,
            Some(r#"{"group_id":"by keys","function_id":"governor","value_str":"10"}"#),
        );
        // Criterion's HTML report directory holds no results.
        fs::create_dir_all(root.join("report")).unwrap();
        fs::write(root.join("report/index.html"), "<html></html>").unwrap();
        dir
    }

    fn machine() -> Machine {
        Machine {
            date: "2025-01-02 03:04 UTC".into(),
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            cpu: "Test CPU @ 3.00GHz".into(),
            nproc: "2".into(),
            command: Some("cargo bench -p ratelimit-benches".into()),
        }
    }

    #[test]
    fn reads_groups_from_criterion_layout() {
        let dir = fixture();
        let groups = read_results(&dir.0).unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["acquire", "by keys", "solo"]);

        let acquire = &groups[0];
        let functions: Vec<&str> = acquire
            .benches
            .iter()
            .map(|b| b.function.as_str())
            .collect();
        assert_eq!(functions, ["ours", "governor", "leaky-bucket"]);
        assert_eq!(acquire.benches[0].estimates.mean, 82.0);
        assert_eq!(acquire.benches[0].estimates.mean_lower, 81.0);
        assert_eq!(acquire.benches[0].estimates.mean_upper, 83.0);
        assert_eq!(acquire.benches[0].estimates.median, 80.0);
        assert_eq!(acquire.benches[0].estimates.confidence_level, 0.95);

        let by_keys = &groups[1];
        let rows: Vec<(&str, Option<&str>)> = by_keys
            .benches
            .iter()
            .map(|b| (b.function.as_str(), b.parameter.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                ("ours", Some("10")),
                ("governor", Some("10")),
                ("ours", Some("1000"))
            ]
        );
    }

    #[test]
    fn missing_directory_has_no_results() {
        let dir = TempDir::new("missing");
        assert!(read_results(&dir.0.join("nope")).unwrap().is_empty());
    }

    #[test]
    fn renders_tables_with_ratios() {
        let dir = fixture();
        let groups = read_results(&dir.0).unwrap();
        let md = render(&groups, &machine());

        assert!(md.contains("| Date | 2025-01-02 03:04 UTC |"), "{md}");
        assert!(md.contains("| Compiler | `rustc 1.95.0 (59807616e 2026-04-14)` |"));
        assert!(md.contains("| CPU | Test CPU @ 3.00GHz |"));
        assert!(md.contains("| `nproc` | 2 |"));
        assert!(md.contains("| Command | `cargo bench -p ratelimit-benches` |"));
        assert!(md.contains("lower is better"));

        assert!(md.contains(
            "| Implementation | Mean (ns/iter) | Mean 95% CI (ns) | Median (ns/iter) | ours / peer |"
        ));
        assert!(
            md.contains("| **ours** | 82.0 | 81.0 – 83.0 | 80.0 | baseline |"),
            "{md}"
        );
        assert!(
            md.contains("| governor | 100.0 | 99.0 – 101.0 | 99.0 | 0.82x |"),
            "{md}"
        );
        assert!(
            md.contains("| leaky-bucket | 41.0 | 40.0 – 42.0 | 40.0 | 2.00x |"),
            "{md}"
        );

        // Parameterised group: ratios compare the same input only.
        assert!(md.contains("### `by keys`"));
        assert!(
            md.contains("| governor | 10 | 40.0 | 39.0 – 41.0 | 39.0 | 0.50x |"),
            "{md}"
        );
        assert!(
            md.contains("| **ours** | 1000 | 2,000 | 1,999 – 2,001 | 1,900 | baseline |"),
            "{md}"
        );

        // A group with only `ours` has no ratio column.
        let solo = md.split("### `solo`").nth(1).unwrap();
        assert!(solo.contains(
            "| Implementation | Mean (ns/iter) | Mean 95% CI (ns) | Median (ns/iter) |\n"
        ));
        assert!(
            solo.contains("| **ours** | 5.00 | 4.00 – 6.00 | 4.50 |\n"),
            "{solo}"
        );
        assert!(!solo.contains("ours / peer"));
    }

    #[test]
    fn group_without_ours_says_so() {
        let dir = TempDir::new("no-ours");
        write_bench(&dir.0, "peers/governor", 10.0, 10.0, None);
        write_bench(&dir.0, "peers/leaky-bucket", 20.0, 20.0, None);
        let md = render(&read_results(&dir.0).unwrap(), &machine());
        assert!(md.contains("No `ours` benchmark in this group"));
        assert!(!md.contains("ours / peer |"));
    }

    #[test]
    fn cpu_model_from_cpuinfo() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn ratio_formatting() {
        assert_eq!(format_ratio(0.8234), "0.82x");
        assert_eq!(format_ratio(12.0), "12.00x");
        assert_eq!(format_ratio(0.095), "0.095x");
        assert_eq!(format_ratio(0.00671), "0.0067x");
    }

    #[test]
    fn number_formatting() {
        assert_eq!(format_ns(1.234), "1.23");
        assert_eq!(format_ns(12.34), "12.3");
        assert_eq!(format_ns(999.94), "999.9");
        assert_eq!(format_ns(1234.4), "1,234");
        assert_eq!(format_ns(1_234_567.0), "1,234,567");
        assert_eq!(format_ns(123_456.0), "123,456");
    }

    #[test]
    fn splice_creates_new_file() {
        let out = splice(None, "TABLE\n").unwrap();
        assert!(out.starts_with("# Benchmarks\n"));
        assert!(out.ends_with("<!-- generated:start -->\n\nTABLE\n\n<!-- generated:end -->\n"));
    }

    #[test]
    fn splice_keeps_hand_written_text() {
        let existing = "# Benchmarks\n\nHand-written intro.\n\n<!-- generated:start -->\nold table\n<!-- generated:end -->\n\n## Notes\n\nKeep me.\n";
        let out = splice(Some(existing), "new table\n").unwrap();
        assert_eq!(
            out,
            "# Benchmarks\n\nHand-written intro.\n\n<!-- generated:start -->\n\nnew table\n\n<!-- generated:end -->\n\n## Notes\n\nKeep me.\n"
        );
        // Regenerating is idempotent.
        assert_eq!(splice(Some(&out), "new table\n").unwrap(), out);
    }

    #[test]
    fn splice_appends_markers_when_missing() {
        let out = splice(Some("# Mine\n\nText."), "T\n").unwrap();
        assert_eq!(
            out,
            "# Mine\n\nText.\n\n<!-- generated:start -->\n\nT\n\n<!-- generated:end -->\n"
        );
    }

    #[test]
    fn splice_rejects_broken_markers() {
        assert!(splice(Some("<!-- generated:start -->\nno end\n"), "T").is_err());
        assert!(
            splice(
                Some("<!-- generated:end -->\n<!-- generated:start -->\n"),
                "T"
            )
            .is_err()
        );
    }
}

/// One custom measurement file: its name and its `(metric, value)` pairs.
pub(crate) type Metrics = (String, Vec<(String, f64)>);

/// Measurements that are not criterion timings (throughput, bytes per key): each flat JSON object
/// of numbers written by a bench as `<criterion dir>/<name>.json`, as `(name, [(key, value)])`.
pub(crate) fn read_metrics(criterion_dir: &Path) -> Result<Vec<Metrics>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(criterion_dir) else {
        return Ok(out);
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let json = read_json(&path)?;
        let Some(object) = json.as_object() else {
            continue;
        };
        let values: Vec<(String, f64)> = object
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
            .collect();
        if !values.is_empty() {
            let name = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            out.push((name, values));
        }
    }
    Ok(out)
}

/// A table per metrics file (nothing when there are none).
pub(crate) fn render_metrics(metrics: &[Metrics]) -> String {
    let mut out = String::new();
    let w = &mut out;
    for (name, values) in metrics {
        let _ = writeln!(w, "\n### `{}` (custom measurement)\n", cell(name));
        let _ = writeln!(w, "| Metric | Value |\n|---|---:|");
        for (k, v) in values {
            let shown = if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            };
            let _ = writeln!(w, "| `{}` | {} |", cell(k), shown);
        }
    }
    out
}

#[cfg(test)]
mod metrics_tests {
    use super::*;

    #[test]
    fn flat_json_objects_become_tables() {
        let dir = std::env::temp_dir().join(format!("xtask-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("bytes.json"),
            r#"{"governor": 80.2, "ours": 431.4, "note": "x"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("list.json"), "[1, 2]").unwrap();
        let metrics = read_metrics(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].0, "bytes");
        let table = render_metrics(&metrics);
        assert!(table.contains("| `governor` | 80.200 |"), "{table}");
        assert!(table.contains("| `ours` | 431.400 |"), "{table}");
        assert!(!table.contains("note"));
    }
}
