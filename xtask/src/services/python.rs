//! Python for the tests that drive the gateway with the official `openai` SDK: `python3` with
//! `venv` and `pip` (installed with apt-get as `python3-venv` and `python3-pip` when missing).
//! The tests make their own virtual environment and `pip install openai` into it.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::step;

/// The variable that tells the tests which Python to use.
pub(crate) const PYTHON_VAR: &str = "RATELIMIT_PYTHON";

fn usable(python: &str) -> bool {
    let ok = |args: &[&str]| {
        Command::new(python)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok(&["-m", "venv", "--help"]) && ok(&["-m", "ensurepip", "--version"])
        || ok(&["-m", "venv", "--help"]) && ok(&["-m", "pip", "--version"])
}

/// A `python3` that can make virtual environments with pip, installing it if needed.
pub(crate) fn ensure_installed() -> Result<String> {
    let python = "python3".to_owned();
    if usable(&python) {
        return Ok(python);
    }
    println!("\n==> python3 with venv and pip not found: installing python3-venv python3-pip");
    let hint = "installing Python with apt-get failed (it needs root and Debian's archive)";
    step(Command::new("apt-get").arg("update")).context(hint)?;
    step(Command::new("apt-get").args([
        "install",
        "-y",
        "--no-install-recommends",
        "python3",
        "python3-venv",
        "python3-pip",
    ]))
    .context(hint)?;
    if !usable(&python) {
        bail!("apt-get installed python3-venv, but `python3 -m venv` still does not work");
    }
    Ok(python)
}
