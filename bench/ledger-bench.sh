#!/usr/bin/env bash
# bench/ledger-bench.sh — the tamper-evidence ledger's benchmark (issue #14) on the local stack,
# in one run with the Kafka producer baseline (bench/kafka-baseline.sh) and the gateway's
# batched ingest; appends one section to bench/RESULTS.md.
#
# (a) keeps up: the release gateway takes DURATION s of batched ingest (auditlog-loadgen, as in
#     gateway-bench.sh) into a fresh topic; then `auditlog processor --sink ledger` (fresh
#     consumer group, keyspace and checkpoint topic) drains that whole topic from the start
#     until the tenants' saved checkpoints cover every record: events/s, and CPU-µs/event of
#     the processor and of Cassandra (from /proc).
# (c) checkpoint lag: with that processor running (caught up), LAG_RATE events/s of single
#     events for LAG_DURATION s through the gateway (open loop); for each acknowledged event,
#     the time from its 202 to the first saved checkpoint of its tenant whose size exceeds its
#     leaf index (store polled every 50 ms; leaf indexes read from the store afterwards).
# (b) inclusion proofs: a tenant of LEAVES leaves written directly through the LedgerStore seam
#     (keyspace ledger_bench_fill, reused while it holds LEAVES), then a release
#     `auditlog query-api` on it and PROOF_REQUESTS `/v1/events/{id}/proof` for random ids at
#     PROOF_CONCURRENCY, p50/p99/p99.9; plus the same proof computed in-process from the store.
#
# Env: DURATION (10), WARMUP (2), BATCH_SIZE (500), BATCH_CONNECTIONS (8), TENANTS (50),
#      PROCESSOR_BATCH_EVENTS (1000, the processor's default), LAG_RATE (1000), LAG_DURATION (60),
#      LAG_TENANTS (10), LEAVES (10000000), PROOF_REQUESTS (20000), PROOF_CONCURRENCY (8),
#      NUM_RECORDS (baseline, 300000), DRAIN_TIMEOUT (1800 s), PARTS (a,b,c: which to run),
#      AUDITLOG_BIN (another `auditlog` binary for the gateway and processor, e.g. an older
#      build to compare; default the release build of this tree),
#      CARGO_TARGET_DIR (/root/.cache/auditlog/target), AUDITLOG_KAFKA_PORT (9092).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
STACK=$REPO/deploy/local/stack
RESULTS=$BENCH_DIR/RESULTS.md
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/auditlog/target}
BIN=${AUDITLOG_BIN:-$CARGO_TARGET_DIR/release/auditlog}
LOADGEN=$CARGO_TARGET_DIR/release/auditlog-loadgen
DRIVER=$CARGO_TARGET_DIR/release/auditlog-ledger-bench

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BATCH_SIZE=${BATCH_SIZE:-500}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-8}
TENANTS=${TENANTS:-50}
PROCESSOR_BATCH_EVENTS=${PROCESSOR_BATCH_EVENTS:-1000}
LAG_RATE=${LAG_RATE:-1000}
LAG_DURATION=${LAG_DURATION:-60}
LAG_TENANTS=${LAG_TENANTS:-10}
LEAVES=${LEAVES:-10000000}
PROOF_REQUESTS=${PROOF_REQUESTS:-20000}
PROOF_CONCURRENCY=${PROOF_CONCURRENCY:-8}
NUM_RECORDS=${NUM_RECORDS:-300000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-1800}
PARTS=${PARTS:-a,b,c}
KAFKA_PORT=${AUDITLOG_KAFKA_PORT:-9092}
BOOTSTRAP=127.0.0.1:$KAFKA_PORT
CLK_TCK=$(getconf CLK_TCK)
RUN=$(date +%s)
TOPIC_PREFIX=bench.ledger.$RUN
TOPIC=$TOPIC_PREFIX.v1
CHECKPOINT_TOPIC=bench.ledger.$RUN.checkpoints
KEYSPACE=ledger_bench_$RUN
STORE=scylla://127.0.0.1:9042/$KEYSPACE
FILL_KEYSPACE=ledger_bench_fill
FILL_STORE=scylla://127.0.0.1:9042/$FILL_KEYSPACE
FILL_TENANT=bench-ledger-fill

die() { printf '[ledger-bench] ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf '[ledger-bench] %s\n' "$*" >&2; }
part() { [[ ,$PARTS, == *,$1,* ]]; }
for tool in curl jq python3 awk; do command -v "$tool" >/dev/null || die "$tool is required"; done

cd "$REPO"
"$STACK" status >/dev/null 2>&1 || { "$STACK" status >&2 || true; die "the local stack is not up: deploy/local/stack up"; }
stack_pid() { "$STACK" status 2>/dev/null | awk -v s="$1" '$1 == s { for (i = 1; i < NF; i++) if ($i == "pid") print $(i + 1) }'; }
KAFKA_PID=$(stack_pid kafka)
CASSANDRA_PID=$(stack_pid cassandra)

say "building release binaries"
cargo build --release -p auditlog -p auditlog-loadgen >&2
[[ -x $BIN ]] || die "no auditlog binary at $BIN"

WORK=$(mktemp -d)
PIDS=()
stop_pid() { # pid: SIGTERM, then wait
    if [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
kafka_topic() { "$STACK" kafka-tools org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }
cleanup() {
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    kafka_topic --delete --if-exists --topic "$TOPIC" >/dev/null 2>&1 || true
    kafka_topic --delete --if-exists --topic "$CHECKPOINT_TOPIC" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() { # pid url log
    for _ in $(seq 1 90); do
        kill -0 "$1" 2>/dev/null || { tail -n 30 "$3" >&2; die "$2 exited"; }
        curl -fsS "$2/readyz" >/dev/null 2>&1 && return 0
        sleep 1
    done
    tail -n 30 "$3" >&2
    die "$2 was not ready within 90 s"
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
result() { sed -n "s/^RESULT $1 //p" "$2" | tail -n1; }
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
quiet() { # wait (at most $1 s) for the 1-minute load average to fall below 1.5
    for _ in $(seq 1 $(($1 / 10))); do
        awk '{ exit !($1 < 1.5) }' /proc/loadavg && return 0
        say "waiting for the machine to settle (load average $(cut -d' ' -f1 /proc/loadavg))"
        sleep 10
    done
}

"$BIN" ledger-key --name auditlog --out "$WORK/ledger.key" 2>/dev/null
SECRET=$(head -c 36 /dev/urandom | base64 | tr -d '/+=\n')
QUERY_SECRET=$(head -c 36 /dev/urandom | base64 | tr -d '/+=\n')
register() { # tenant id
    "$BIN" admin create-tenant --id "$1" --registry "kafka://$BOOTSTRAP" --event-log "kafka://$BOOTSTRAP" >/dev/null 2>"$WORK/create-tenant.log" ||
        grep -q "already exists" "$WORK/create-tenant.log" || { cat "$WORK/create-tenant.log" >&2; die "registering $1 failed"; }
}
COMMANDS=()

if part a || part c; then
    partitions=$(kafka_topic --describe --topic audit.events.v1 2>/dev/null | sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -n1)
    [[ -n $partitions ]] || die "cannot read the partition count of audit.events.v1"
    kafka_topic --create --topic "$TOPIC" --partitions "$partitions" --replication-factor 1 >/dev/null
    kafka_topic --create --topic "$CHECKPOINT_TOPIC" --partitions 1 --replication-factor 1 --config cleanup.policy=compact >/dev/null
    for n in $(seq 0 $((TENANTS - 1))); do register "$(printf 'bench-tenant-%02d' "$n")"; done

    GPORT=$(free_port)
    GURL=http://127.0.0.1:$GPORT
    gateway_cmd=("$BIN" gateway --listen "127.0.0.1:$GPORT" --event-log "kafka://$BOOTSTRAP")
    COMMANDS+=("gateway: \`AUDITLOG_GATEWAY_DEFAULT_RATE_LIMIT_PER_SEC=10000000 AUDITLOG_GATEWAY_TOPIC_PREFIX=$TOPIC_PREFIX AUDITLOG_GATEWAY_AUTH_HS256_SECRET=<random> auditlog ${gateway_cmd[*]:1}\`")
    AUDITLOG_GATEWAY_DEFAULT_RATE_LIMIT_PER_SEC=10000000 AUDITLOG_GATEWAY_TOPIC_PREFIX=$TOPIC_PREFIX AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET \
        "${gateway_cmd[@]}" >"$WORK/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    PIDS+=("$GATEWAY_PID")
    wait_ready "$GATEWAY_PID" "$GURL" "$WORK/gateway.log"

    RECORD_SIZE=$("$LOADGEN" avro-size --samples 20000)
    say "Kafka producer baseline (appends its own section), records of $RECORD_SIZE B"
    RECORD_SIZE=$RECORD_SIZE NUM_RECORDS=$NUM_RECORDS "$BENCH_DIR/kafka-baseline.sh" | tee "$WORK/baseline.out" >&2
    BASELINE_RPS=$(sed -n 's/.*appended to .*: \([0-9]*\) records\/s.*/\1/p' "$WORK/baseline.out" | tail -n1)
    BASELINE_HEADING=$(grep '^## .*Kafka producer baseline' "$RESULTS" | tail -n1 | sed 's/^## //')

    # (a) the gateway's batched ingest into the fresh topic.
    args=(run --url "$GURL" --label batched --tenants "$TENANTS" --threads 2 --duration "$DURATION" --warmup "$WARMUP"
        --json-out "$WORK/batched.json" --mode closed --batch "$BATCH_SIZE" --connections "$BATCH_CONNECTIONS")
    COMMANDS+=("batched ingest: \`auditlog-loadgen ${args[*]/#$WORK\//}\`")
    say "batched ingest: auditlog-loadgen ${args[*]}"
    AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET "$LOADGEN" "${args[@]}" >/dev/null
    GATEWAY_EPS=$(jq -r '.events_per_s | round' "$WORK/batched.json")
    GATEWAY_LOAD=$(jq -r '"\(.loadavg[0]) → \(.loadavg[1])"' "$WORK/batched.json")
    RECORDS=$("$STACK" kafka-tools org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" 2>/dev/null |
        awk -F: '{ s += $3 } END { print s + 0 }')
    say "gateway: $GATEWAY_EPS events/s; the topic holds $RECORDS records"

    # The ledger processor drains the whole topic from the start.
    PPORT=$(free_port)
    processor_cmd=("$BIN" processor --sink ledger --group "bench-ledger-$RUN" --listen "127.0.0.1:$PPORT" --topic "$TOPIC"
        --event-log "kafka://$BOOTSTRAP" --ledger-store "$STORE" --ledger-key-file "$WORK/ledger.key"
        --checkpoint-topic "$CHECKPOINT_TOPIC" --batch-events "$PROCESSOR_BATCH_EVENTS")
    COMMANDS+=("ledger processor: \`auditlog ${processor_cmd[*]:1}\`" )
    COMMANDS[-1]=${COMMANDS[-1]//$WORK\//}
    quiet 120
    load_a0=$(loadavg)
    say "draining: ${processor_cmd[*]}"
    "${processor_cmd[@]}" >"$WORK/processor.log" 2>&1 &
    PROCESSOR_PID=$!
    PIDS+=("$PROCESSOR_PID")
    c0=$(ticks "$CASSANDRA_PID") k0=$(ticks "$KAFKA_PID")
    "$DRIVER" covered --store "$STORE" --tenants "$TENANTS" --expect "$RECORDS" --timeout-secs "$DRAIN_TIMEOUT" | tee "$WORK/covered.out"
    p1=$(ticks "$PROCESSOR_PID") c1=$(ticks "$CASSANDRA_PID") k1=$(ticks "$KAFKA_PID")
    load_a1=$(loadavg)
    covered=$(result covered "$WORK/covered.out")
    leaves=$(field "$covered" leaves)
    seconds=$(field "$covered" seconds)
    cpu_us() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$leaves" 'BEGIN { printf "%.0f", t / hz * 1e6 / (n > 0 ? n : 1) }'; }
    PROC_US=$(cpu_us "$p1") CASS_US=$(cpu_us "$((c1 - c0))") KAFKA_US=$(cpu_us "$((k1 - k0))")
    LEDGER_EPS=$(field "$covered" events_per_sec)
fi

if part c; then
    # (c) checkpoint lag with the gateway and the (caught-up) processor running.
    kill -0 "${PROCESSOR_PID:-0}" 2>/dev/null || die "the ledger processor is not running"
    quiet 120
    args=(lag --gateway "$GURL" --store "$STORE" --tenants "$LAG_TENANTS" --rate "$LAG_RATE" --duration-secs "$LAG_DURATION" --poll-ms 50)
    COMMANDS+=("checkpoint lag: \`auditlog-ledger-bench ${args[*]}\`")
    say "checkpoint lag: auditlog-ledger-bench ${args[*]}"
    p0=$(ticks "$PROCESSOR_PID")
    AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$SECRET "$DRIVER" "${args[@]}" | tee "$WORK/lag.out"
    p1=$(ticks "$PROCESSOR_PID")
    LAG=$(result lag "$WORK/lag.out")
    LAG_PROC_CORES=$(awk -v t="$((p1 - p0))" -v hz="$CLK_TCK" -v s="$(field "$LAG" seconds)" 'BEGIN { printf "%.2f", t / hz / s }')
fi
for pid in "${PROCESSOR_PID:-}" "${GATEWAY_PID:-}"; do stop_pid "$pid"; done

if part b; then
    register "$FILL_TENANT"
    say "filling $FILL_TENANT to $LEAVES leaves in $FILL_KEYSPACE (resumes; a no-op when full)"
    fill_args=(fill --store "$FILL_STORE" --tenant "$FILL_TENANT" --leaves "$LEAVES" --batch 65536 --key-file ledger.key)
    COMMANDS+=("fill: \`auditlog-ledger-bench ${fill_args[*]}\`")
    fill_args[-1]=$WORK/ledger.key
    [[ -f $BENCH_DIR/.ledger-fill.key ]] && fill_args[-1]=$BENCH_DIR/.ledger-fill.key # the key of an earlier fill signs its checkpoint again
    "$DRIVER" "${fill_args[@]}" | tee "$WORK/fill.out"
    [[ -f $BENCH_DIR/.ledger-fill.key ]] || cp "$WORK/ledger.key" "$BENCH_DIR/.ledger-fill.key"
    FILL=$(result fill "$WORK/fill.out")

    QPORT=$(free_port)
    QURL=http://127.0.0.1:$QPORT
    query_cmd=("$BIN" query-api --listen "127.0.0.1:$QPORT" --event-log "kafka://$BOOTSTRAP" --event-store "$FILL_STORE"
        --ledger-store "$FILL_STORE" --search-index "opensearch://127.0.0.1:9200/bench-ledger-fill")
    COMMANDS+=("query API: \`AUDITLOG_QUERY_AUTH_HS256_SECRET=<random> auditlog ${query_cmd[*]:1}\`")
    AUDITLOG_QUERY_AUTH_HS256_SECRET=$QUERY_SECRET "${query_cmd[@]}" >"$WORK/query.log" 2>&1 &
    QUERY_PID=$!
    PIDS+=("$QUERY_PID")
    wait_ready "$QUERY_PID" "$QURL" "$WORK/query.log"
    quiet 300
    args=(proofs --url "$QURL" --tenant "$FILL_TENANT" --leaves "$LEAVES" --requests "$PROOF_REQUESTS" --warmup 2000
        --concurrency "$PROOF_CONCURRENCY" --store "$FILL_STORE" --in-process 2000)
    COMMANDS+=("proofs: \`auditlog-ledger-bench ${args[*]}\`")
    say "proofs: auditlog-ledger-bench ${args[*]}"
    LEDGER_BENCH_QUERY_SECRET=$QUERY_SECRET "$DRIVER" "${args[@]}" | tee "$WORK/proofs.out"
    stop_pid "$QUERY_PID"
    PROOFS_API=$(result proofs_api "$WORK/proofs.out")
    PROOFS_LOCAL=$(result proofs_in_process "$WORK/proofs.out")
fi

# ---- report -------------------------------------------------------------------------------
verdict() { if [[ $1 == 1 ]]; then echo "**met**"; else echo "**missed**"; fi; }
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$REPO" status --porcelain 2>/dev/null | grep -q . && echo ' + uncommitted changes' || true)
{
    printf '\n## %s — Ledger benchmark (issue #14)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Command (from the repo root): `bench/ledger-bench.sh` (PARTS=%s DURATION=%s WARMUP=%s BATCH_SIZE=%s BATCH_CONNECTIONS=%s TENANTS=%s PROCESSOR_BATCH_EVENTS=%s LAG_RATE=%s LAG_DURATION=%s LAG_TENANTS=%s LEAVES=%s PROOF_REQUESTS=%s PROOF_CONCURRENCY=%s%s)\n' \
        "$PARTS" "$DURATION" "$WARMUP" "$BATCH_SIZE" "$BATCH_CONNECTIONS" "$TENANTS" "$PROCESSOR_BATCH_EVENTS" "$LAG_RATE" "$LAG_DURATION" "$LAG_TENANTS" "$LEAVES" "$PROOF_REQUESTS" "$PROOF_CONCURRENCY" \
        "${AUDITLOG_BIN:+ AUDITLOG_BIN=$AUDITLOG_BIN}"
    printf -- '- Code: commit %s%s; release build (`cargo build --release -p auditlog -p auditlog-loadgen`)%s\n' "$commit" "$dirty" \
        "${AUDITLOG_BIN:+; gateway and processor from \`$AUDITLOG_BIN\`}"
    for c in "${COMMANDS[@]}"; do printf -- '  - %s\n' "$c"; done
    printf -- '- Stack: deploy/local/stack on this machine (Kafka, Apicurio, Cassandra with commitlog_sync batch); topic %s (partitions of audit.events.v1), keyspace %s, both fresh\n' "$TOPIC" "$KEYSPACE"
    printf -- '- Machine: nproc %s, memory %s, CPU %s, kernel %s; shared with other engineers'"'"' builds (load averages below)\n' "$(nproc)" "$mem" "$cpu" "$(uname -sr)"
    if part a; then
        printf -- '- Kafka baseline of this run: "%s" above, %s records/s with records of %s B\n\n' "$BASELINE_HEADING" "$BASELINE_RPS" "$RECORD_SIZE"
        printf '(a) Keeping up with ingest (the gateway'"'"'s batched load, then the ledger processor draining the whole topic from its start):\n\n'
        printf '| stage | events | events/s | CPU µs/event | load average before → after |\n|---|---:|---:|---|---|\n'
        printf '| gateway, batched ingest (%s × %s-event batches, %s s + %s s warm-up) | %s (topic) | %s | | %s |\n' "$BATCH_CONNECTIONS" "$BATCH_SIZE" "$DURATION" "$WARMUP" "$RECORDS" "$GATEWAY_EPS" "$GATEWAY_LOAD"
        printf '| ledger processor drain (batches of %s, %s tenants), until the checkpoints cover every record | %s in %s s | %s | processor %s, Cassandra %s, Kafka %s | %s → %s |\n\n' \
            "$PROCESSOR_BATCH_EVENTS" "$TENANTS" "$leaves" "$seconds" "$LEDGER_EPS" "$PROC_US" "$CASS_US" "$KAFKA_US" "$load_a0" "$load_a1"
        ok=$(awk -v l="$LEDGER_EPS" -v g="$GATEWAY_EPS" -v c="$(field "$covered" complete)" 'BEGIN { print (c == "true" && l >= g) }')
        printf -- '- Target (a), the ledger keeps up with the gateway'"'"'s batched ingest: %s ÷ %s events/s = %s %%: %s\n' "$LEDGER_EPS" "$GATEWAY_EPS" \
            "$(awk -v l="$LEDGER_EPS" -v g="$GATEWAY_EPS" 'BEGIN { printf "%.0f", 100 * l / g }')" "$(verdict "$ok")"
    fi
    if part c; then
        ok=$(awk -v p="$(field "$LAG" p99_ms)" -v u="$(field "$LAG" uncovered)" -v f="$(field "$LAG" failed)" 'BEGIN { print (p < 2000 && u == 0 && f == 0) }')
        printf -- '- Target (c), checkpoint lag at %s events/s for %s s over %s tenants (acknowledged → a saved checkpoint covers it, polled every 50 ms): %s acknowledged, %s failed, %s never covered; p50 %s ms, **p99 %s ms**, p99.9 %s ms, max %s ms (target p99 < 2000 ms); processor %s cores; load %s: %s\n' \
            "$LAG_RATE" "$LAG_DURATION" "$LAG_TENANTS" "$(field "$LAG" acked)" "$(field "$LAG" failed)" "$(field "$LAG" uncovered)" "$(field "$LAG" p50_ms)" "$(field "$LAG" p99_ms)" \
            "$(field "$LAG" p99.9_ms)" "$(field "$LAG" max_ms)" "$LAG_PROC_CORES" "$(field "$LAG" load)" "$(verdict "$ok")"
    fi
    if part b; then
        ok=$(awk -v p="$(field "$PROOFS_API" p99_ms)" -v e="$(field "$PROOFS_API" errors)" 'BEGIN { print (p < 20 && e == 0) }')
        printf -- '- Target (b), inclusion proof on a tenant of %s leaves (%s): `/v1/events/{id}/proof` for %s random ids at concurrency %s: %s req/s, p50 %s ms, **p99 %s ms**, p99.9 %s ms, max %s ms, %s errors (target p99 < 20 ms; load %s): %s. The same proof in-process (checkpoint, leaf index, tiles from the store, proof; one at a time): p50 %s ms, p99 %s ms, p99.9 %s ms\n' \
            "$(field "$FILL" leaves)" "fill: $(field "$FILL" written) leaves written in $(field "$FILL" seconds) s this run, $(field "$FILL" leaves_per_sec) leaves/s" \
            "$(field "$PROOFS_API" n)" "$PROOF_CONCURRENCY" "$(field "$PROOFS_API" req_per_sec)" "$(field "$PROOFS_API" p50_ms)" "$(field "$PROOFS_API" p99_ms)" \
            "$(field "$PROOFS_API" p99.9_ms)" "$(field "$PROOFS_API" max_ms)" "$(field "$PROOFS_API" errors)" "$(field "$PROOFS_API" load)" "$(verdict "$ok")" \
            "$(field "$PROOFS_LOCAL" p50_ms)" "$(field "$PROOFS_LOCAL" p99_ms)" "$(field "$PROOFS_LOCAL" p99.9_ms)"
    fi
} >>"$RESULTS"
say "appended to $RESULTS"
