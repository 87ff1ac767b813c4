//! Tidy checks over the whole workspace, run by plain `cargo test`.
//!
//! Rules:
//! 1. Every `.rs` file under `crates/`, `benches/` and `xtask/` starts (first
//!    non-empty line) with a `//!` doc comment saying what the file is for.
//! 2. `ratelimit-core` stays pure: its `src/` never mentions clocks, async
//!    runtimes, threads or I/O (see [`FORBIDDEN_IN_CORE`]), and its
//!    `[dependencies]` hold no runtime, networking or I/O crate.
//! 3. Every folder under `crates/` has a `Cargo.toml` whose package name is
//!    the folder name and which inherits the workspace lints
//!    (`[lints]` followed by `workspace = true`).
//!
//! Each rule is a pure function over file contents, unit-tested below on
//! in-memory strings; the `tidy_*` tests apply them to the real files.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Text that must not appear anywhere in `crates/ratelimit-core/src/**/*.rs`,
/// comments included: the core is a pure, deterministic state machine that
/// takes time as input and never touches the OS.
const FORBIDDEN_IN_CORE: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "tokio",
    "std::net",
    "std::fs",
    "std::thread",
    "std::io",
];

/// Crates that `ratelimit-core` must not depend on (also matched against each
/// `-`/`_`-separated part of a name, so `tokio-util` is caught too).
const FORBIDDEN_CORE_DEPENDENCIES: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "reqwest",
    "hyper",
    "axum",
    "redis",
    "fred",
];

// ---------------------------------------------------------------------------
// The tidy tests over the real workspace.
// ---------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is one level below the workspace root")
        .to_path_buf()
}

/// Panics with every problem, one per line, if there are any.
fn report(rule: &str, problems: &[String]) {
    if !problems.is_empty() {
        panic!(
            "\ntidy: {rule}\n{} problem(s):\n  {}\n",
            problems.len(),
            problems.join("\n  ")
        );
    }
}

#[test]
fn tidy_every_rust_file_starts_with_a_module_doc() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for top in ["crates", "benches", "xtask"] {
        for file in rust_files(&root.join(top)) {
            let text = read(&file);
            if let Some(problem) = check_module_doc(&text) {
                problems.push(format!("{}: {problem}", relative(&root, &file)));
            }
        }
    }
    report(
        "every .rs file under crates/, benches/ and xtask/ must start with a `//!` doc \
         comment saying what the file is for",
        &problems,
    );
}

/// `LINE: ...` for every `unsafe` in a library crate's source.
fn check_no_unsafe(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains("unsafe_code") || line.contains("unsafe "))
        .map(|(i, line)| {
            format!(
                "{}: unsafe code in a library crate: `{}`",
                i + 1,
                line.trim()
            )
        })
        .collect()
}

#[test]
fn tidy_library_crates_have_no_unsafe_code() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for file in rust_files(&root.join("crates")) {
        for problem in check_no_unsafe(&read(&file)) {
            problems.push(format!("{}:{problem}", relative(&root, &file)));
        }
    }
    report(
        "no crate under crates/ may contain or allow unsafe code (the workspace denies it; only \
         the benches' counting allocator is allowed an exception)",
        &problems,
    );
}

#[test]
fn check_no_unsafe_catches_blocks_and_allows() {
    assert!(check_no_unsafe("fn f() {}\n// safe\n").is_empty());
    assert_eq!(check_no_unsafe("let x = unsafe { y };").len(), 1);
    assert_eq!(check_no_unsafe("#[allow(unsafe_code)]").len(), 1);
}

#[test]
fn tidy_core_is_pure() {
    let root = workspace_root();
    let core = root.join("crates/ratelimit-core");
    let mut problems = Vec::new();

    let src = core.join("src");
    if src.is_dir() {
        for file in rust_files(&src) {
            for problem in check_core_source(&read(&file)) {
                problems.push(format!("{}:{problem}", relative(&root, &file)));
            }
        }
    } else {
        problems.push(format!("{} is missing", relative(&root, &src)));
    }

    let manifest = core.join("Cargo.toml");
    if manifest.is_file() {
        for problem in check_core_dependencies(&read(&manifest)) {
            problems.push(format!("{}: {problem}", relative(&root, &manifest)));
        }
    } else {
        problems.push(format!("{} is missing", relative(&root, &manifest)));
    }

    report(
        "ratelimit-core must stay free of clocks, threads, async runtimes, networking \
         and I/O (time is passed in; the OS is reached only by other crates)",
        &problems,
    );
}

#[test]
fn tidy_crate_manifests() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("reading crates/")
        .map(|entry| entry.expect("reading crates/").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let folder = dir
            .file_name()
            .expect("directory name")
            .to_string_lossy()
            .into_owned();
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            problems.push(format!("{}: missing", relative(&root, &manifest)));
            continue;
        }
        for problem in check_crate_manifest(&folder, &read(&manifest)) {
            problems.push(format!("{}: {problem}", relative(&root, &manifest)));
        }
    }
    report(
        "every crate under crates/ needs a Cargo.toml named after its folder that \
         inherits the workspace lints",
        &problems,
    );
}

// ---------------------------------------------------------------------------
// File system helpers.
// ---------------------------------------------------------------------------

/// All `.rs` files below `dir` (skipping `target/` and hidden folders), sorted.
/// A missing `dir` has none.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect_rust_files(dir, &mut out);
    out.sort();
    out
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("reading directory entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------
// Rule 1: module docs.
// ---------------------------------------------------------------------------

/// `None` if the first non-empty line of `text` starts with `//!`, else why not.
fn check_module_doc(text: &str) -> Option<String> {
    match text.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) if line.starts_with("//!") => None,
        Some(line) => Some(format!(
            "first non-empty line must start with `//!`, found `{}`",
            shorten(line)
        )),
        None => Some("file is empty; it needs at least a `//!` line".to_owned()),
    }
}

fn shorten(line: &str) -> String {
    const MAX: usize = 60;
    match line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Rule 2: a pure core.
// ---------------------------------------------------------------------------

/// `LINE: ...` for every forbidden text in a core source file.
fn check_core_source(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for pattern in FORBIDDEN_IN_CORE {
            if line.contains(pattern) {
                problems.push(format!(
                    "{}: forbidden `{pattern}` in ratelimit-core: `{}`",
                    index + 1,
                    shorten(line.trim())
                ));
            }
        }
    }
    problems
}

/// Why `name` may not be a dependency of the core, if it may not.
fn forbidden_dependency(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase().replace('_', "-");
    if FORBIDDEN_CORE_DEPENDENCIES.contains(&name.as_str()) {
        return Some(format!("`{name}` is a runtime, networking or I/O crate"));
    }
    for part in name.split('-') {
        if FORBIDDEN_CORE_DEPENDENCIES.contains(&part) {
            return Some(format!("`{name}` belongs to the `{part}` family"));
        }
        if part == "io" || part.contains("net") {
            return Some(format!("`{name}` has `io`/`net` in its name"));
        }
    }
    None
}

/// Problems with the `[dependencies]` of the core's `Cargo.toml`: every
/// dependency name (including `[dependencies.NAME]` tables, target-specific
/// dependencies and `package = "..."` renames) is checked.
fn check_core_dependencies(manifest: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |name: &str, line: usize| {
        if let Some(reason) = forbidden_dependency(name) {
            problems.push(format!("line {line}: dependency {reason}"));
        }
    };
    // Whether the current section is a list of dependencies, or one dependency's table.
    let mut in_list = false;
    let mut in_table = false;
    for (index, raw) in manifest.lines().enumerate() {
        let line_no = index + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = section_header(line) {
            in_list = false;
            in_table = false;
            let header: String = header.chars().filter(|c| !c.is_whitespace()).collect();
            let is_deps = header == "dependencies"
                || (header.starts_with("target.") && header.ends_with(".dependencies"));
            if is_deps {
                in_list = true;
            } else if let Some(pos) = header.rfind("dependencies.") {
                let before = &header[..pos];
                if before.is_empty() || (header.starts_with("target.") && before.ends_with('.')) {
                    in_table = true;
                    check(unquote(&header[pos + "dependencies.".len()..]), line_no);
                }
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = unquote(key.trim());
        if in_list {
            // `tokio = ...`, `tokio.workspace = true`, `"tokio" = ...`
            check(unquote(key.split('.').next().unwrap_or(key)), line_no);
            if let Some(package) = inline_package(value) {
                check(package, line_no);
            }
        } else if in_table && key == "package" {
            check(unquote(value.trim()), line_no);
        }
    }
    problems
}

/// The `package = "..."` of an inline dependency table, if any.
fn inline_package(value: &str) -> Option<&str> {
    let rest = &value[value.find("package")? + "package".len()..];
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

// ---------------------------------------------------------------------------
// Rule 3: crate manifests.
// ---------------------------------------------------------------------------

/// Problems with the `Cargo.toml` of the crate in folder `crates/<folder>`.
fn check_crate_manifest(folder: &str, manifest: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut section = String::new();
    let mut package_name = None;
    // `Some(line)` right after `[lints]`, until the next meaningful line is seen.
    let mut after_lints: Option<usize> = None;
    let mut saw_lints = false;

    for (index, raw) in manifest.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(lints_line) = after_lints.take() {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if compact != "workspace=true" {
                problems.push(format!(
                    "line {lints_line}: `[lints]` must be followed by `workspace = true`, \
                     found `{}`",
                    shorten(line)
                ));
            }
        }
        if let Some(header) = section_header(line) {
            section = header.trim().to_owned();
            if section == "lints" {
                saw_lints = true;
                after_lints = Some(index + 1);
            }
            continue;
        }
        if section == "package" {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    package_name = Some(unquote(value.trim()).to_owned());
                }
            }
        }
    }

    match package_name {
        Some(name) if name == folder => {}
        Some(name) => problems.push(format!(
            "package name `{name}` must equal its folder name `{folder}`"
        )),
        None => problems.push("no `name` in a `[package]` section".to_owned()),
    }
    if !saw_lints {
        problems.push("missing `[lints]` followed by `workspace = true`".to_owned());
    } else if after_lints.is_some() {
        problems.push(
            "`[lints]` at the end of the file must be followed by `workspace = true`".to_owned(),
        );
    }
    problems
}

// ---------------------------------------------------------------------------
// Minimal TOML line helpers (enough for Cargo manifests).
// ---------------------------------------------------------------------------

/// The text of a `[section]` or `[[array]]` header line, without brackets.
fn section_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(inner);
    Some(inner.trim())
}

/// `line` without a trailing `# comment` (a `#` inside a string is kept).
fn strip_comment(line: &str) -> &str {
    let mut in_string = None;
    for (i, c) in line.char_indices() {
        match (in_string, c) {
            (None, '"' | '\'') => in_string = Some(c),
            (Some(q), c) if c == q => in_string = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// `s` without one pair of surrounding quotes.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Unit tests: each rule catches violations in in-memory text.
// ---------------------------------------------------------------------------

#[test]
fn module_doc_rule() {
    assert_eq!(
        check_module_doc("//! What this file is for.\nfn f() {}\n"),
        None
    );
    assert_eq!(
        check_module_doc("\n\n   //! Indented and after blanks.\n"),
        None
    );

    let problem = check_module_doc("use std::fmt;\n//! Too late.\n").expect("must fail");
    assert!(problem.contains("`use std::fmt;`"), "{problem}");
    assert!(check_module_doc("/// Item doc, not a module doc.\nfn f() {}\n").is_some());
    assert!(check_module_doc("// plain comment\n//! doc\n").is_some());
    assert!(check_module_doc("#![allow(clippy::print_stdout)]\n//! doc\n").is_some());
    assert!(check_module_doc("").is_some());
    assert!(check_module_doc("\n  \n").is_some());
}

#[test]
fn core_source_rule() {
    let clean = "//! Pure core.\npub fn allow(now: u64) -> bool { now > 0 }\n";
    assert!(check_core_source(clean).is_empty());

    for bad in [
        "let t = std::time::Instant::now();",
        "let t = SystemTime::now();",
        "use tokio::sync::Mutex;",
        "// even in a comment: tokio",
        "use std::net::TcpStream;",
        "use std::fs::File;",
        "std::thread::sleep(d);",
        "use std::io::Write;",
    ] {
        let text = format!("//! Core.\n\n{bad}\n");
        let problems = check_core_source(&text);
        assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
        assert!(problems[0].starts_with("3: forbidden `"), "{}", problems[0]);
    }
}

#[test]
fn core_dependency_rule() {
    let clean = r#"
[package]
name = "ratelimit-core"

[dependencies]
thiserror.workspace = true
serde = { workspace = true, optional = true }
priority-queue = "2" # "io" inside a word is fine: only whole name parts count

[dev-dependencies]
tokio = { workspace = true }
proptest.workspace = true

[lints]
workspace = true
"#;
    assert_eq!(check_core_dependencies(clean), Vec::<String>::new());

    for (deps, culprit) in [
        ("[dependencies]\ntokio = \"1\"\n", "tokio"),
        ("[dependencies]\ntokio.workspace = true\n", "tokio"),
        ("[dependencies]\n\"async-std\" = \"1\"\n", "async-std"),
        ("[dependencies]\nsmol = \"2\"\n", "smol"),
        ("[dependencies]\nmio = \"1\"\n", "mio"),
        ("[dependencies]\nreqwest = \"0.12\"\n", "reqwest"),
        ("[dependencies]\nhyper = \"1\"\n", "hyper"),
        ("[dependencies]\naxum = \"0.8\"\n", "axum"),
        ("[dependencies]\nredis = \"0.27\"\n", "redis"),
        ("[dependencies]\nfred = \"10\"\n", "fred"),
        ("[dependencies]\ntokio-util = \"0.7\"\n", "tokio-util"),
        ("[dependencies]\nfutures-io = \"0.3\"\n", "futures-io"),
        ("[dependencies]\nasync_net = \"2\"\n", "async-net"),
        ("[dependencies]\nnetlink = \"1\"\n", "netlink"),
        (
            "[dependencies]\nrt = { package = \"tokio\", version = \"1\" }\n",
            "tokio",
        ),
        ("[dependencies.hyper]\nversion = \"1\"\n", "hyper"),
        ("[dependencies.rt]\npackage = \"tokio\"\n", "tokio"),
        ("[target.'cfg(unix)'.dependencies]\nmio = \"1\"\n", "mio"),
        (
            "[target.\"cfg(unix)\".dependencies.redis]\nversion = \"1\"\n",
            "redis",
        ),
    ] {
        let problems = check_core_dependencies(deps);
        assert_eq!(problems.len(), 1, "{deps}: {problems:?}");
        assert!(
            problems[0].contains(&format!("`{culprit}`")),
            "{}",
            problems[0]
        );
    }
}

#[test]
fn crate_manifest_rule() {
    let good = "[package]\nname = \"ratelimit-core\"\nversion.workspace = true\n\n[dependencies]\n\n[lints]\nworkspace = true\n";
    assert!(check_crate_manifest("ratelimit-core", good).is_empty());
    let good_spacing = "[package]\nname=\"x\"\n[lints]\n# inherit\nworkspace=true # yes\n";
    assert!(check_crate_manifest("x", good_spacing).is_empty());

    let wrong_name = check_crate_manifest(
        "ratelimit-core",
        &good.replace("\"ratelimit-core\"", "\"core\""),
    );
    assert_eq!(wrong_name.len(), 1, "{wrong_name:?}");
    assert!(wrong_name[0].contains("`core` must equal its folder name `ratelimit-core`"));

    let no_name = check_crate_manifest("x", "[lib]\nname = \"x\"\n[lints]\nworkspace = true\n");
    assert_eq!(no_name, ["no `name` in a `[package]` section"]);

    let no_lints = check_crate_manifest("x", "[package]\nname = \"x\"\n");
    assert_eq!(no_lints.len(), 1, "{no_lints:?}");
    assert!(no_lints[0].contains("missing `[lints]`"));

    let local_lints = check_crate_manifest(
        "x",
        "[package]\nname = \"x\"\n[lints]\n[lints.rust]\nmissing_docs = \"allow\"\n",
    );
    assert_eq!(local_lints.len(), 1, "{local_lints:?}");
    assert!(local_lints[0].contains("must be followed by `workspace = true`"));

    let not_first = check_crate_manifest(
        "x",
        "[package]\nname = \"x\"\n[lints]\nrust.missing_docs = \"allow\"\nworkspace = true\n",
    );
    assert_eq!(not_first.len(), 1, "{not_first:?}");

    let dangling = check_crate_manifest("x", "[package]\nname = \"x\"\n[lints]\n");
    assert_eq!(dangling.len(), 1, "{dangling:?}");

    let false_workspace =
        check_crate_manifest("x", "[package]\nname = \"x\"\n[lints]\nworkspace = false\n");
    assert_eq!(false_workspace.len(), 1, "{false_workspace:?}");
}

#[test]
fn toml_helpers() {
    assert_eq!(strip_comment("a = \"#x\" # c"), "a = \"#x\" ");
    assert_eq!(section_header("[[bin]]"), Some("bin"));
    assert_eq!(section_header("[ lints ]"), Some("lints"));
    assert_eq!(section_header("name = 1"), None);
    assert_eq!(unquote("'a'"), "a");
    assert_eq!(
        inline_package("{ package = \"tokio\", version = \"1\" }"),
        Some("tokio")
    );
    assert_eq!(inline_package("{ version = \"1\" }"), None);
}

#[test]
fn rust_files_skip_target_and_find_nested() {
    let dir = std::env::temp_dir().join(format!("xtask-tidy-walk-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("src/nested")).unwrap();
    fs::create_dir_all(dir.join("target/debug")).unwrap();
    fs::write(dir.join("src/lib.rs"), "//! x\n").unwrap();
    fs::write(dir.join("src/nested/mod.rs"), "fn x() {}\n").unwrap();
    fs::write(dir.join("src/notes.md"), "").unwrap();
    fs::write(dir.join("target/debug/build.rs"), "").unwrap();
    let found: Vec<String> = rust_files(&dir).iter().map(|p| relative(&dir, p)).collect();
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(found, ["src/lib.rs", "src/nested/mod.rs"]);
    assert!(rust_files(&dir.join("does-not-exist")).is_empty());
}
