#!/usr/bin/env bash
# bench/query-bench.sh — the query API on a seeded dataset of the real local stack (ScyllaDB
# via Cassandra 5, OpenSearch): time-range, cursor, actor, full-text and filtered pages, stats,
# and whole-tenant exports (rows/s, the server's memory); appends one section to
# bench/RESULTS.md, with the seeding figures (gateway ingest, each processor's drain).
#
# Seeding (skipped when the dataset of these parameters is already there, see SEED_STATE):
# EVENTS events of TENANTS tenants (tenant 00 gets HOT_SHARE of them, the rest alike),
# occurring over the last DAYS days, go through a release gateway (batches of 500, rate
# limit raised) to a topic of their own, bench.query.<run>.v1; `auditlog replay` then drains
# that topic into a keyspace (auditlog_bench_<run>) and an index alias (bench-query-<run>) of
# their own, first ScyllaDB then OpenSearch, so each processor has the machine to itself;
# then a major compaction of that keyspace (`deploy/local/stack nodetool compact`).
# The dev keyspace, index and topics are not touched; `deploy/local/stack down --purge`
# removes what earlier seeds left.
#
# Queries: once the 1-minute load average is below 1 (compactions after seeding; at most 15
# min), a release `auditlog query-api` on those, driven by bench/query_load.py one request at
# a time (latency, not throughput), QUERIES per workload after a warm-up.
#
# Env: EVENTS (3000000), TENANTS (100), DAYS (30), HOT_SHARE (0.25), QUERIES (300),
#      RESEED (0: reuse a matching dataset), CARGO_TARGET_DIR (/root/.cache/auditlog/target),
#      AUDITLOG_STACK_DIR (deploy/local/.state)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
STACK=$REPO/deploy/local/stack
RESULTS=$BENCH_DIR/RESULTS.md
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/auditlog/target}
BIN=$CARGO_TARGET_DIR/release/auditlog
LOADGEN=$CARGO_TARGET_DIR/release/auditlog-loadgen
EVENTS=${EVENTS:-3000000} TENANTS=${TENANTS:-100} DAYS=${DAYS:-30} HOT_SHARE=${HOT_SHARE:-0.25}
QUERIES=${QUERIES:-300} RESEED=${RESEED:-0}
BATCH=500
BOOTSTRAP=127.0.0.1:${AUDITLOG_KAFKA_PORT:-9092}
SEED_STATE=${AUDITLOG_STACK_DIR:-$REPO/deploy/local/.state}/bench-query-seed.json

die() { printf '[query-bench] ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf '[query-bench] %s\n' "$*" >&2; }
cd "$REPO"
"$STACK" status >/dev/null 2>&1 || { "$STACK" status >&2 || true; die "the local stack is not up: deploy/local/stack up"; }
say "building release binaries"
cargo build --release --locked -p auditlog -p auditlog-loadgen >&2

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() { # pid url log
    for _ in $(seq 1 120); do
        kill -0 "$1" 2>/dev/null || { tail -n 30 "$3" >&2; die "$2 exited"; }
        curl -fsS "$2/readyz" >/dev/null 2>&1 && return 0
        sleep 1
    done
    tail -n 30 "$3" >&2
    die "$2 not ready within 120 s"
}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
SECRET=$(head -c 36 /dev/urandom | base64 | tr -d '/+=\n')
params="events=$EVENTS tenants=$TENANTS days=$DAYS hot_share=$HOT_SHARE"

seed() {
    local run topic keyspace alias port url gw t0 t1 records
    run=$(date +%s)
    topic=bench.query.$run.v1 keyspace=auditlog_bench_$run alias=bench-query-$run
    say "seeding $params into $topic -> $keyspace / $alias"
    "$STACK" kafka-tools org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$topic" \
        --partitions 6 --replication-factor 1 >/dev/null
    # Tenants must exist before they can ingest: register loadgen's bench-tenant-NN (idempotent).
    for n in $(seq 0 $((TENANTS - 1))); do
        id=$(printf 'bench-tenant-%02d' "$n")
        "$BIN" admin create-tenant --id "$id" --registry "kafka://$BOOTSTRAP" --event-log "kafka://$BOOTSTRAP" >/dev/null 2>"$WORK/create-tenant.log" ||
            grep -q "already exists" "$WORK/create-tenant.log" || { cat "$WORK/create-tenant.log" >&2; die "registering $id failed"; }
    done
    port=$(free_port) url=http://127.0.0.1:$port
    AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET AUDITLOG_GATEWAY_DEFAULT_RATE_LIMIT_PER_SEC=10000000 \
        AUDITLOG_GATEWAY_TOPIC_PREFIX=bench.query.$run "$BIN" gateway --listen "127.0.0.1:$port" \
        --event-log "kafka://$BOOTSTRAP" >"$WORK/gateway.log" 2>&1 &
    gw=$!
    PIDS+=("$gw")
    wait_ready "$gw" "$url" "$WORK/gateway.log"
    AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET "$LOADGEN" run --url "$url" --mode closed --batch "$BATCH" --connections 8 \
        --tenants "$TENANTS" --spread-days "$DAYS" --hot-tenant-share "$HOT_SHARE" --warmup 0 --duration 600 \
        --max-requests $(((EVENTS + BATCH - 1) / BATCH)) --label seed --json-out "$WORK/ingest.json" >&2
    kill -TERM "$gw"
    wait "$gw" 2>/dev/null || true
    records=$("$STACK" kafka-tools org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$topic" \
        | awk -F: '{ n += $3 } END { print n + 0 }')
    say "$records events in $topic; draining into ScyllaDB"
    local views=(--topic "$topic" --registry http://127.0.0.1:8081/apis/ccompat/v7 --event-log "kafka://$BOOTSTRAP")
    t0=$(date +%s.%N)
    "$BIN" replay --sink scylla --store "scylla://127.0.0.1:9042/$keyspace" "${views[@]}" >&2
    t1=$(date +%s.%N)
    say "draining into OpenSearch"
    "$BIN" replay --sink opensearch --index "opensearch://127.0.0.1:9200/$alias" "${views[@]}" >&2
    t2=$(date +%s.%N)
    # The seed wrote 30 days in random order, so every day's partition is spread over every
    # SSTable (reads merged 3-7 of them: p99 of a time-range page ~200 ms, cold). Live events
    # arrive in time order; after a bulk backfill an operator compacts, and so does this.
    say "major compaction of $keyspace"
    "$STACK" nodetool compact "$keyspace" >&2
    python3 - "$SEED_STATE" "$params" "$run" "$topic" "$keyspace" "$alias" "$records" "$t0" "$t1" "$t2" "$(date +%s.%N)" \
        "$WORK/ingest.json" <<'PY'
import json, sys
path, params, run, topic, keyspace, alias, records, t0, t1, t2, t3, ingest = sys.argv[1:]
records, t0, t1, t2, t3 = int(records), float(t0), float(t1), float(t2), float(t3)
state = {"params": params, "run": run, "topic": topic, "keyspace": keyspace, "alias": alias, "records": records,
         "ingest": json.load(open(ingest)), "scylla_s": t1 - t0, "opensearch_s": t2 - t1, "compact_s": t3 - t2}
json.dump(state, open(path, "w"))
PY
}

if [[ $RESEED != 0 || ! -f $SEED_STATE ]] || [[ $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["params"])' "$SEED_STATE") != "$params" ]]; then
    seed
else
    say "reusing the dataset of $SEED_STATE ($params)"
fi
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SEED_STATE" "$1"; }
run=$(state run)

port=$(free_port) url=http://127.0.0.1:$port
AUDITLOG_QUERY_AUTH_HS256_SECRET=$SECRET AUDITLOG_QUERY_TOPIC_PREFIX=bench.query.$run "$BIN" query-api \
    --listen "127.0.0.1:$port" --event-log "kafka://$BOOTSTRAP" --event-store "scylla://127.0.0.1:9042/$(state keyspace)" \
    --search-index "opensearch://127.0.0.1:9200/$(state alias)" >"$WORK/query.log" 2>&1 &
qpid=$!
PIDS+=("$qpid")
wait_ready "$qpid" "$url" "$WORK/query.log"
# Seeding leaves Cassandra compacting and OpenSearch merging for minutes: measure on a quiet machine.
for _ in $(seq 1 90); do
    awk '{ exit !($1 < 1.0) }' /proc/loadavg && break
    say "waiting for the machine to settle (load average $(cut -d' ' -f1 /proc/loadavg))"
    sleep 10
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "queries: $QUERIES per workload against $url (pid $qpid)"
python3 "$BENCH_DIR/query_load.py" --url "$url" --secret "$SECRET" --pid "$qpid" --tenants "$TENANTS" --days "$DAYS" \
    --queries "$QUERIES" >"$WORK/queries.json"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
    printf '\n## %s — Query API benchmark (seeded dataset, ScyllaDB + OpenSearch)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Command (from the repo root): `bench/query-bench.sh` (EVENTS=%s TENANTS=%s DAYS=%s HOT_SHARE=%s QUERIES=%s)\n' \
        "$EVENTS" "$TENANTS" "$DAYS" "$HOT_SHARE" "$QUERIES"
    printf -- '- Code: commit %s%s; release build; `auditlog query-api` with its default config on the seeded keyspace and alias; queries from `bench/query_load.py`, one at a time over one keep-alive connection\n' \
        "$(git rev-parse --short HEAD)" "$(git diff --quiet HEAD -- . ':!bench/RESULTS.md' || echo ' + uncommitted changes')"
    printf -- '- Stack: deploy/local/stack (Kafka 4.4.0, Apicurio 3.0.9, Cassandra 5.0.9 commitlog_sync batch, OpenSearch 2.19.6 0 replicas) on this machine\n'
    printf -- '- Machine: nproc %s, memory %s, %s; load average before/after the queries: %s / %s\n\n' \
        "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')" "$(uname -sr)" "$load_before" "$load_after"
    python3 - "$SEED_STATE" <<'PY'
import json, sys
seed = json.load(open(sys.argv[1]))
n, i = seed["records"], seed["ingest"]
print(f"Seeded at run {seed['run']} ({seed['params']}): {n:,} events in `{seed['topic']}`; gateway {i['events_per_s']:,.0f} events/s "
      f"(batches of 500, 8 connections); drained by `auditlog replay`, one sink at a time: ScyllaDB {seed['scylla_s']:.0f} s = "
      f"{n / seed['scylla_s']:,.0f} events/s, OpenSearch {seed['opensearch_s']:.0f} s = {n / seed['opensearch_s']:,.0f} events/s; "
      f"then a major compaction of the keyspace ({seed['compact_s']:.0f} s).\n")
PY
    python3 "$BENCH_DIR/query_load.py" --markdown "$WORK/queries.json"
} >>"$RESULTS"
say "appended to $RESULTS"
