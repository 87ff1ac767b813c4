//! `cargo xtask`: the project's automation entry point (tests, CI, benchmarks).
//!
//! Run `cargo xtask help` for the list of commands. The style follows
//! rust-analyzer's xtask: plain `std::process::Command`, hand-parsed flags and
//! as few dependencies as possible.

// This is a command-line tool: printing to stdout is its job.
#![allow(clippy::print_stdout)]

mod bench;
mod flags;
mod services;
mod test;
mod util;

use std::process::ExitCode;

use flags::Command;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nxtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match flags::parse(args)? {
        Command::Help => {
            println!("{}", flags::HELP);
            Ok(())
        }
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
