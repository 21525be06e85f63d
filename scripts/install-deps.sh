#!/usr/bin/env bash
# Installs what building and testing auditlog needs on a fresh Debian/Ubuntu machine, and
# nothing when it is already there: a C toolchain and headers for librdkafka, Java 17 and
# Maven for the local stack, curl, and FUSE with Python's fusepy for the power-loss test
# (auditlog/tests/power_loss.rs), Python's cryptography for the signing example
# (examples/sign_event.py), and Go for the ledger's interoperability test (Go's own
# sumdb/note and sumdb/tlog check our checkpoints and proofs; a Go older than golang.org/x/mod
# needs fetches its toolchain through the module proxy). Rust itself comes from rustup
# (https://rustup.rs).
set -euo pipefail

need=()
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
command -v fusermount >/dev/null || need+=(fuse3)
/usr/bin/python3 -c 'import fusepy' >/dev/null 2>&1 || need+=(python3-fusepy)
/usr/bin/python3 -c 'import cryptography' >/dev/null 2>&1 || need+=(python3-cryptography)
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || need+=(golang-go)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

# examples/sign_event.py (schemas/tests/python_signer.rs) runs with the python3 on PATH,
# which may be another interpreter than Debian's.
if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
  echo "installing: cryptography (pip)"
  python3 -m pip install --quiet cryptography
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed; install Rust with rustup (https://rustup.rs) and retry" >&2
  exit 1
fi
