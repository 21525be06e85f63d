#!/usr/bin/env bash
# bench/processor-bench.sh — processor benchmark on the local stack: each sink's sustained
# events/s (draining a pre-loaded topic into a fresh view) and freshness at RATE events/s
# (from the log's acknowledgement — when the gateway answers 202 — to readable by id in
# ScyllaDB and searchable in OpenSearch, p50/p99), measured in the same run as the Kafka
# producer baseline (bench/kafka-baseline.sh); appends one section to bench/RESULTS.md.
#
# Env: EVENTS (50000), RATE (1000), DURATION (30), CARGO_TARGET_DIR (/root/.cache/auditlog/target)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
STACK=$REPO/deploy/local/stack
RESULTS=$BENCH_DIR/RESULTS.md
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/auditlog/target}
export EVENTS=${EVENTS:-50000} RATE=${RATE:-1000} DURATION=${DURATION:-30}

say() { printf '[processor-bench] %s\n' "$*" >&2; }
cd "$REPO"
"$STACK" status >/dev/null 2>&1 || { "$STACK" status >&2 || true; say "the local stack is not up: deploy/local/stack up"; exit 1; }

say "building the benchmark (release)"
cargo build --release --locked -p auditlog-processors --example bench >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "Kafka producer baseline (appends its own section)"
NUM_RECORDS=${NUM_RECORDS:-300000} "$BENCH_DIR/kafka-baseline.sh" >&2
baseline="the Kafka producer baseline section just above (same run)"
say "processor benchmark: EVENTS=$EVENTS RATE=$RATE DURATION=$DURATION"
out=$("$CARGO_TARGET_DIR/release/examples/bench" | tee /dev/stderr)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
row() { # kind sink
    local line
    line=$(grep "RESULT $1 sink=$2 " <<<"$out")
    if [[ $1 == throughput ]]; then
        printf '| %s | %s | %s | %s |\n' "$2" "$(field events <<<"$line")" "$(field seconds <<<"$line")" "$(field events_per_sec <<<"$line")"
    else
        printf '| %s | %s | %s | %s | %s |\n' "$2" "$(field probes <<<"$line")" "$(field p50_ms <<<"$line")" "$(field p99_ms <<<"$line")" "$(field max_ms <<<"$line")"
    fi
}
{
    printf '\n## %s — Processor benchmark (sinks and freshness)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Command (from the repo root): `bench/processor-bench.sh` (EVENTS=%s RATE=%s DURATION=%s); release build of `processors/examples/bench.rs`\n' "$EVENTS" "$RATE" "$DURATION"
    printf -- '- Code: commit %s%s\n' "$(git rev-parse --short HEAD)" "$(git diff --quiet && echo '' || echo ' + uncommitted changes')"
    printf -- '- Stack: deploy/local/stack on this machine (Kafka 4.4.0, Apicurio 3.0.9, Cassandra 5.0.9 with commitlog_sync batch, OpenSearch 2.19.6, refresh_interval 1s, 0 replicas); topics of 6 partitions created per run; batch limits 1000 events / 4 MiB / 100 ms\n'
    printf -- '- Machine: nproc %s, memory %s, %s; load average before/after: %s / %s\n' "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')" "$(uname -sr)" "$load_before" "$load_after"
    printf -- '- Kafka baseline of this run: %s\n\n' "$baseline"
    printf 'Sustained sink throughput (drain %s pre-loaded events of 50 tenants into an empty view):\n\n' "$EVENTS"
    printf '| sink | events | seconds | events/s |\n|---|---:|---:|---:|\n'
    row throughput scylla
    row throughput opensearch
    printf '\nFreshness at %s events/s for %s s (every 100th event probed every 25 ms; targets p99 < 1000 ms ScyllaDB, < 2000 ms OpenSearch; %s):\n\n' "$RATE" "$DURATION" "$(grep 'RESULT unseen' <<<"$out" | sed 's/RESULT //')"
    printf '| view | probes | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n'
    row freshness scylla
    row freshness opensearch
} >>"$RESULTS"
say "appended to $RESULTS"
