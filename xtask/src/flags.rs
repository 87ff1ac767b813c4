//! Hand-written command-line parsing for `cargo xtask`.

use anyhow::{Result, bail};

/// Usage text printed by `cargo xtask help`.
pub(crate) const HELP: &str = "\
cargo xtask <COMMAND> [OPTIONS] [-- ARGS...]

Commands:
  test [--no-lint] [--no-services] [-- ARGS]
                                The project's one test command: cargo fmt --check,
                                cargo clippy -D warnings, cargo test, cargo doc
                                (rustdoc -D warnings). ARGS go to `cargo test`,
                                e.g. `cargo xtask test -- -p ratelimit-core`.
                                `cargo test` runs against Redis that xtask starts
                                (apt-get installs redis-server if missing): a
                                standalone server and a 3-master cluster on free
                                127.0.0.1 ports, exported as RATELIMIT_REDIS_URL,
                                RATELIMIT_REDIS_CLUSTER_URLS (comma-separated),
                                RATELIMIT_REDIS_SERVER_BIN, RATELIMIT_REDIS_CLI_BIN;
                                stopped when the tests end.
                                --no-lint skips fmt, clippy and doc.
                                --no-services starts no Redis (quick local runs;
                                tests that need it then skip or fail).
  ci [--no-lint] [--no-services] [-- ARGS]
                                Exactly the same as `test` (for CI configs).
  bench [--report-only] [-- ARGS]
                                Runs `cargo bench -p ratelimit-benches ARGS`, then
                                regenerates docs/benchmarks.md from target/criterion.
                                --report-only skips running the benchmarks.
  help                          Prints this message.
";

/// A parsed `cargo xtask` invocation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `cargo xtask help`.
    Help,
    /// `cargo xtask test` or its alias `cargo xtask ci`.
    Test(TestArgs),
    /// `cargo xtask bench`.
    Bench(BenchArgs),
}

/// Options of `cargo xtask test`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TestArgs {
    /// Run `cargo fmt`, `cargo clippy` and `cargo doc` (off with `--no-lint`).
    pub(crate) lint: bool,
    /// Start the test services, i.e. Redis (off with `--no-services`).
    pub(crate) services: bool,
    /// Everything after `--`, passed verbatim to `cargo test`.
    pub(crate) cargo_test_args: Vec<String>,
}

/// Options of `cargo xtask bench`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BenchArgs {
    /// Only regenerate `docs/benchmarks.md` from existing criterion results.
    pub(crate) report_only: bool,
    /// Everything after `--`, passed verbatim to `cargo bench`.
    pub(crate) cargo_bench_args: Vec<String>,
}

/// Parses the arguments that follow `cargo xtask`.
pub(crate) fn parse(args: Vec<String>) -> Result<Command> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        return Ok(Command::Help);
    };
    // Split the rest into our own flags and the pass-through part after `--`.
    let mut own = Vec::new();
    let mut passthrough = Vec::new();
    let mut seen_separator = false;
    for arg in args {
        if seen_separator {
            passthrough.push(arg);
        } else if arg == "--" {
            seen_separator = true;
        } else {
            own.push(arg);
        }
    }

    match command.as_str() {
        "help" | "--help" | "-h" => {
            reject_unknown(&command, &own, &[])?;
            Ok(Command::Help)
        }
        "test" | "ci" => {
            reject_unknown(&command, &own, &["--no-lint", "--no-services"])?;
            Ok(Command::Test(TestArgs {
                lint: !own.iter().any(|a| a == "--no-lint"),
                services: !own.iter().any(|a| a == "--no-services"),
                cargo_test_args: passthrough,
            }))
        }
        "bench" => {
            reject_unknown(&command, &own, &["--report-only"])?;
            Ok(Command::Bench(BenchArgs {
                report_only: own.iter().any(|a| a == "--report-only"),
                cargo_bench_args: passthrough,
            }))
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

fn reject_unknown(command: &str, own: &[String], allowed: &[&str]) -> Result<()> {
    if let Some(bad) = own.iter().find(|a| !allowed.contains(&a.as_str())) {
        bail!(
            "unknown argument `{bad}` for `cargo xtask {command}` \
             (arguments for cargo go after `--`)\n\n{HELP}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command> {
        parse(s.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn no_arguments_prints_help() {
        assert_eq!(parse_str("").unwrap(), Command::Help);
        assert_eq!(parse_str("help").unwrap(), Command::Help);
    }

    #[test]
    fn test_and_ci_are_the_same() {
        let expected = Command::Test(TestArgs {
            lint: true,
            services: true,
            cargo_test_args: vec![],
        });
        assert_eq!(parse_str("test").unwrap(), expected);
        assert_eq!(parse_str("ci").unwrap(), expected);
    }

    #[test]
    fn test_passes_args_after_separator() {
        assert_eq!(
            parse_str("test --no-lint -- -p ratelimit-core -- --nocapture").unwrap(),
            Command::Test(TestArgs {
                lint: false,
                services: true,
                cargo_test_args: vec![
                    "-p".into(),
                    "ratelimit-core".into(),
                    "--".into(),
                    "--nocapture".into()
                ],
            })
        );
    }

    #[test]
    fn no_services_flag() {
        assert_eq!(
            parse_str("test --no-services --no-lint").unwrap(),
            Command::Test(TestArgs {
                lint: false,
                services: false,
                cargo_test_args: vec![],
            })
        );
        assert!(parse_str("bench --no-services").is_err());
    }

    #[test]
    fn bench_flags() {
        assert_eq!(
            parse_str("bench --report-only").unwrap(),
            Command::Bench(BenchArgs {
                report_only: true,
                cargo_bench_args: vec![],
            })
        );
        assert_eq!(
            parse_str("bench -- --bench limiter").unwrap(),
            Command::Bench(BenchArgs {
                report_only: false,
                cargo_bench_args: vec!["--bench".into(), "limiter".into()],
            })
        );
    }

    #[test]
    fn unknown_things_are_errors() {
        assert!(parse_str("frobnicate").is_err());
        assert!(parse_str("test -p ratelimit-core").is_err());
        assert!(parse_str("bench --no-lint").is_err());
    }
}
