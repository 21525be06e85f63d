#!/usr/bin/env bash
# bench/standalone-bench.sh — standalone mode on this machine: durable batched ingest through
# the one-process server (embedded log fsynced before every 202), then query latencies on
# what was ingested: time-range pages (event store), full-text search (search index), stats,
# and a streamed export (rows/s and the server's peak memory). Appends one section to
# bench/RESULTS.md. Needs no local stack.
#
# Env: DURATION (30), WARMUP (5), BATCH_SIZE (500), CONNECTIONS (8), TENANTS (20),
#      QUERIES (200), CARGO_TARGET_DIR (/root/.cache/auditlog/target)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
RESULTS=$BENCH_DIR/RESULTS.md
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/auditlog/target}
BIN=$CARGO_TARGET_DIR/release/auditlog
LOADGEN=$CARGO_TARGET_DIR/release/auditlog-loadgen
DURATION=${DURATION:-30} WARMUP=${WARMUP:-5} BATCH_SIZE=${BATCH_SIZE:-500} CONNECTIONS=${CONNECTIONS:-8}
TENANTS=${TENANTS:-20} QUERIES=${QUERIES:-200}

say() { printf '[standalone-bench] %s\n' "$*" >&2; }
cd "$REPO"
say "building release binaries"
cargo build --release --locked -p auditlog -p auditlog-loadgen >&2

DATA=$(mktemp -d /tmp/auditlog-standalone-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
AUDITLOG_GATEWAY_DEFAULT_RATE_LIMIT_PER_SEC=10000000 "$BIN" standalone --data-dir "$DATA" --listen "127.0.0.1:$PORT" 2>"$DATA.log" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA" "$DATA.log" "$DATA.ingest.json"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/readyz" >/dev/null || { cat "$DATA.log" >&2; say "standalone did not become ready"; exit 1; }
SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jwt_hs256_secret"])' "$DATA/secrets.json")

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "ingest: batches of $BATCH_SIZE over $CONNECTIONS connections, $TENANTS tenants, ${DURATION}s"
AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET "$LOADGEN" run --url "$URL" --mode closed --batch "$BATCH_SIZE" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup "$WARMUP" --tenants "$TENANTS" --label standalone-batched --json-out "$DATA.ingest.json" >&2
say "waiting for the views to catch up"
READER=$(AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET "$BIN" admin token --tenant bench-tenant-01 --roles reader --ttl-secs 3600)
queries=$(python3 "$BENCH_DIR/standalone_queries.py" "$URL" "$READER" "$QUERIES" "$PID")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

ingest=$(cat "$DATA.ingest.json")
{
    printf '\n## %s — Standalone benchmark (durable ingest and queries)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Command (from the repo root): `bench/standalone-bench.sh` (DURATION=%s WARMUP=%s BATCH_SIZE=%s CONNECTIONS=%s TENANTS=%s QUERIES=%s)\n' "$DURATION" "$WARMUP" "$BATCH_SIZE" "$CONNECTIONS" "$TENANTS" "$QUERIES"
    printf -- '- Code: commit %s; release build; `auditlog standalone` on a fresh data dir in /tmp, per-tenant rate limit raised for the run; load from `bench/loadgen` on the same machine\n' "$(git rev-parse --short HEAD)"
    printf -- '- Machine: nproc %s, memory %s, %s; load average before/after: %s / %s\n\n' "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')" "$(uname -sr)" "$load_before" "$load_after"
    python3 - "$ingest" "$queries" <<'PY'
import json, sys
ingest, queries = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("Ingest (202 only after the embedded log fsynced the events; target ≥ 100,000 events/s):\n")
print("| events/s | requests/s | p50 ms | p99 ms | errors |\n|---:|---:|---:|---:|---:|")
lat = ingest.get("latency_ms", {})
print(f"| {ingest['events_per_s']:.0f} | {ingest['requests_per_s']:.0f} | {lat.get('p50', float('nan')):.1f} | {lat.get('p99', float('nan')):.1f} | {ingest.get('failures', 0)} |")
print(f"\nQueries as tenant bench-tenant-01 ({queries['tenant_events']} of its events; the views caught up {queries['catch_up_s']:.1f} s after the load ended):\n")
print("| query | n | p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|---:|")
for name in ("page", "search", "stats"):
    q = queries[name]
    print(f"| {q['what']} | {q['n']} | {q['p50']:.1f} | {q['p95']:.1f} | {q['p99']:.1f} |")
e = queries["export"]
print(f"\nExport (`format=ndjson`, whole tenant): {e['rows']} rows in {e['seconds']:.2f} s = {e['rows_per_s']:.0f} rows/s; server peak RSS {e['peak_rss_mib']:.0f} MiB before, {e['peak_rss_after_mib']:.0f} MiB after")
PY
} >>"$RESULTS"
say "appended to $RESULTS"
