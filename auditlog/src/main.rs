//! The `auditlog` executable: a thin shim over [`auditlog::run`].

/// mimalloc instead of glibc malloc: the profile of batched ingest spent ~46 % of the
/// gateway's CPU in glibc's allocator (see bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    auditlog::run()
}
