#!/usr/bin/env bash
# Runs every test of auditlog against the real local stack (Kafka, Apicurio Registry,
# Cassandra, OpenSearch): installs missing system packages and the deploy checks' tools,
# starts the stack, builds once, lints, runs the whole test suite with the real-service and
# deploy tests on (the container image is built from this same build), and stops the stack
# again, even when something fails. A stack that was already fully up before is left running.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Outside the clone, so a fresh clone (CI) reuses the previous build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlog/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/install-deps.sh
# podman, podman-compose, kustomize, kubernetes-validate, promtool: the deploy checks' tools.
export AUDITLOG_TOOLS_DIR="${AUDITLOG_TOOLS_DIR:-$HOME/.cache/auditlog/tools}"
scripts/install-deploy-tools.sh

stack="$root/deploy/local/stack"
was_up=0
"$stack" status >/dev/null 2>&1 && was_up=1
stop_stack() {
  local code=$?
  if [ "$was_up" -eq 0 ]; then
    echo "== stopping the local stack"
    "$stack" down || true
  fi
  exit "$code"
}
trap stop_stack EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
echo "== building (target dir $CARGO_TARGET_DIR)"
cargo build --workspace --all-targets --all-features --locked
echo "== starting the local stack"
"$stack" up
echo "== clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
echo "== tests"
log="$(mktemp)"
set +e
cargo test --workspace --all-features --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary: "tests: N passed, N failed, N skipped".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "== %d s\ntests: %d passed, %d failed, %d skipped\n", systime() - '"$start"', p, f, s }' "$log"
rm -f "$log"
exit "$status"
