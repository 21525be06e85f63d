#!/usr/bin/env bash
# bench/standalone-bench.sh — standalone mode on this machine: durable batched ingest through
# the one-process server (embedded log fsynced before every 202), then, once both views hold
# every event, the query workloads of bench/query_load.py on what was ingested: time-range
# and cursor pages and reads by actor (embedded store), full-text and filtered search and
# stats (embedded index), whole-tenant exports (rows/s, the server's memory). Appends one
# section to bench/RESULTS.md. Needs no local stack.
#
# Env: DURATION (30), WARMUP (5), BATCH_SIZE (500), CONNECTIONS (8), TENANTS (20),
#      HOT_SHARE (0.25: tenant 00's share of the events), QUERIES (300), BODY_POOL (64:
#      request bodies made up front and sent again, so the load generator, on the same 2
#      cores, spends next to no CPU; 0 makes every body anew),
#      CARGO_TARGET_DIR (/root/.cache/auditlog/target)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
RESULTS=$BENCH_DIR/RESULTS.md
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/auditlog/target}
BIN=$CARGO_TARGET_DIR/release/auditlog
LOADGEN=$CARGO_TARGET_DIR/release/auditlog-loadgen
DURATION=${DURATION:-30} WARMUP=${WARMUP:-5} BATCH_SIZE=${BATCH_SIZE:-500} CONNECTIONS=${CONNECTIONS:-8}
TENANTS=${TENANTS:-20} HOT_SHARE=${HOT_SHARE:-0.25} QUERIES=${QUERIES:-300} BODY_POOL=${BODY_POOL:-64}

say() { printf '[standalone-bench] %s\n' "$*" >&2; }
cd "$REPO"
say "building release binaries"
cargo build --release --locked -p auditlog -p auditlog-loadgen >&2

DATA=$(mktemp -d /tmp/auditlog-standalone-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
AUDITLOG_GATEWAY_DEFAULT_RATE_LIMIT_PER_SEC=10000000 "$BIN" standalone --data-dir "$DATA" --listen "127.0.0.1:$PORT" 2>"$DATA.log" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA" "$DATA.log" "$DATA.ingest.json" "$DATA.queries.json"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/readyz" >/dev/null || { cat "$DATA.log" >&2; say "standalone did not become ready"; exit 1; }
SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jwt_hs256_secret"])' "$DATA/secrets.json")
# Tenants must exist before they can ingest: register loadgen's bench-tenant-NN through the
# admin API with the platform admin token of the first start.
ADMIN_TOKEN=$(sed -n 's/^AUDITLOG_ADMIN_TOKEN=//p' "$DATA/credentials.env" | tr -d "'\"")
for n in $(seq 0 $((TENANTS - 1))); do
    id=$(printf 'bench-tenant-%02d' "$n")
    curl -sf -X POST "$URL/v1/tenants" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"id\":\"$id\"}" >/dev/null || { say "registering $id failed"; exit 1; }
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "ingest: batches of $BATCH_SIZE over $CONNECTIONS connections, $TENANTS tenants, ${DURATION}s"
AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET "$LOADGEN" run --url "$URL" --mode closed --batch "$BATCH_SIZE" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup "$WARMUP" --tenants "$TENANTS" --hot-tenant-share "$HOT_SHARE" --body-pool "$BODY_POOL" --label standalone-batched \
    --json-out "$DATA.ingest.json" >&2
load_ingest=$(cut -d' ' -f1-3 /proc/loadavg)

# The views catch up from the log: tenant 00's count in the index, then the store's export of
# it (query_load.py checks the two agree), stops growing.
say "waiting for the views to catch up"
READER=$(AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET "$BIN" admin token --tenant bench-tenant-00 --roles reader --ttl-secs 3600)
catch_up=$(python3 - "$URL" "$READER" <<'PY'
import json, sys, time, urllib.request
url, token = sys.argv[1], sys.argv[2]
started, last, stable = time.perf_counter(), -1, 0
while stable < 3 and time.perf_counter() - started < 1800:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    req = urllib.request.Request(f"{url}/v1/stats?from={since}", headers={"Authorization": f"Bearer {token}"})
    total = json.load(urllib.request.urlopen(req, timeout=60))["total"]
    stable, last = (stable + 1, last) if total == last else (0, total)
    time.sleep(1)
print(f"{max(time.perf_counter() - started - 3, 0):.1f}")
PY
)
for _ in $(seq 1 60); do # background merges and compactions after the catch-up
    awk '{ exit !($1 < 1.0) }' /proc/loadavg && break
    sleep 10
done
load_queries=$(cut -d' ' -f1-3 /proc/loadavg)
say "queries: $QUERIES per workload (views caught up ${catch_up}s after the load)"
python3 "$BENCH_DIR/query_load.py" --url "$URL" --secret "$SECRET" --pid "$PID" --tenants "$TENANTS" --days 1 \
    --queries "$QUERIES" >"$DATA.queries.json"
disk=$(du -sm "$DATA" | cut -f1)

{
    printf '\n## %s — Standalone benchmark (durable ingest and queries)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Command (from the repo root): `bench/standalone-bench.sh` (DURATION=%s WARMUP=%s BATCH_SIZE=%s CONNECTIONS=%s TENANTS=%s HOT_SHARE=%s QUERIES=%s BODY_POOL=%s)\n' \
        "$DURATION" "$WARMUP" "$BATCH_SIZE" "$CONNECTIONS" "$TENANTS" "$HOT_SHARE" "$QUERIES" "$BODY_POOL"
    printf -- '- Code: commit %s%s; release build; `auditlog standalone` on a fresh data dir in /tmp, per-tenant rate limit raised for the run; load from `bench/loadgen` (2 threads) on the same machine; queries from `bench/query_load.py`, one at a time over one keep-alive connection\n' \
        "$(git rev-parse --short HEAD)" "$(git diff --quiet HEAD -- . ':!bench/RESULTS.md' || echo ' + uncommitted changes')"
    printf -- '- Machine: nproc %s, memory %s, %s; load average before ingest / after ingest / before queries: %s / %s / %s\n\n' \
        "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')" "$(uname -sr)" "$load_before" "$load_ingest" "$load_queries"
    python3 - "$DATA.ingest.json" "$catch_up" "$disk" <<'PY'
import json, sys
ingest, catch_up, disk = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
lat = ingest["latency_ms"]
print("Ingest (202 only once the embedded log fsynced the request's events; target ≥ 100,000 events/s):\n")
print("| events/s | requests/s | p50 ms | p99 ms | statuses | failures | loadgen CPU s |\n|---:|---:|---:|---:|---|---:|---:|")
print(f"| {ingest['events_per_s']:,.0f} | {ingest['requests_per_s']:,.0f} | {lat['p50']:.1f} | {lat['p99']:.1f} | {ingest['statuses']} "
      f"| {ingest['failures']} | {ingest['loadgen_cpu_s']:.1f} |")
verdict = "**met**" if ingest["events_per_s"] >= 100_000 else "**missed**"
print(f"\nTarget ≥ 100,000 events/s durable: {verdict}. Both views held every event {catch_up} s after the load ended; data dir {disk} MiB.\n")
PY
    python3 "$BENCH_DIR/query_load.py" --markdown "$DATA.queries.json"
} >>"$RESULTS"
say "appended to $RESULTS"
