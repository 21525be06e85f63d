//! Where the deployment tools and the repository are, and running them with their output
//! in the failure message.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root (the workspace).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the auditlog crate sits in the workspace")
}

/// The tools dir of `scripts/install-deploy-tools.sh`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("AUDITLOG_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/auditlog/tools"),
    }
}

/// The path of tool `name`: the tools dir first, then `PATH`. Panics, naming the install
/// command, when it is nowhere.
pub fn tool(name: &str) -> PathBuf {
    let local = tools_dir().join("bin").join(name);
    if local.is_file() {
        return local;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-deploy-tools.sh"))
}

/// The Python of the tools' venv (PyYAML, jsonschema, kubernetes-validate).
pub fn python() -> PathBuf {
    let python = tools_dir().join("venv/bin/python");
    assert!(python.is_file(), "the deploy tools' Python venv is missing: run scripts/install-deploy-tools.sh");
    python
}

/// Runs `command`, panicking with its output unless it exits 0; returns its output.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} cannot start: {e}"));
    assert!(
        output.status.success(),
        "{command:?} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
