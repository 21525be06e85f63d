//! The `auditlog` executable: a thin shim over [`auditlog::run`].

fn main() -> std::process::ExitCode {
    auditlog::run()
}
