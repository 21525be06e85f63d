#!/usr/bin/env bash
# bench/gateway-bench.sh — end-to-end ingest benchmark: the release `auditlog gateway` on the
# local stack, driven by bench/loadgen, measured in the same session as the raw Kafka producer
# baseline (bench/kafka-baseline.sh); appends one section to bench/RESULTS.md.
#
# Steps: build release; require the stack (deploy/local/stack status); create the bench topic
# bench.gateway.v1 (partitions of audit.events.v1) so the shared events topic gets no bench
# data; start a gateway on a free 127.0.0.1 port with a benchmark config (rate limit raised,
# topic prefix bench.gateway); wait for /readyz; run the Kafka baseline with records as large
# as the generated events' average Avro size; run the scenarios; stop the gateway by its pid;
# delete the bench topic; append the results.
#
# Scenarios (each: WARMUP s unmeasured, then DURATION s measured):
#   batched  closed loop, BATCH_CONNECTIONS connections, POST /v1/events/batch of BATCH_SIZE
#   single   closed loop, SINGLE_CONNECTIONS connections, POST /v1/events
#   open     open loop at OPEN_RATE req/s of POST /v1/events, latency from scheduled start
#
# Env: DURATION (30), WARMUP (5), BATCH_SIZE (500), BATCH_CONNECTIONS (8),
#      SINGLE_CONNECTIONS (64), OPEN_RATE (1000), TENANTS (50), LOADGEN_THREADS (2),
#      NUM_RECORDS (baseline, 1000000), RATE_LIMIT (per tenant, 10000000),
#      AUDITLOG_KAFKA_PORT (9092), CARGO_TARGET_DIR (/root/.cache/auditlog/target),
#      GATEWAY_LD_PRELOAD (experiments only: a library preloaded into the gateway, e.g.
#      /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 to try another allocator without a rebuild).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
STACK=$REPO/deploy/local/stack
RESULTS=$BENCH_DIR/RESULTS.md
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/auditlog/target}
BIN=$CARGO_TARGET_DIR/release/auditlog
LOADGEN=$CARGO_TARGET_DIR/release/auditlog-loadgen

DURATION=${DURATION:-30}
WARMUP=${WARMUP:-5}
BATCH_SIZE=${BATCH_SIZE:-500}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-8}
SINGLE_CONNECTIONS=${SINGLE_CONNECTIONS:-64}
OPEN_RATE=${OPEN_RATE:-1000}
TENANTS=${TENANTS:-50}
LOADGEN_THREADS=${LOADGEN_THREADS:-2}
RATE_LIMIT=${RATE_LIMIT:-10000000}
KAFKA_PORT=${AUDITLOG_KAFKA_PORT:-9092}
BOOTSTRAP=127.0.0.1:$KAFKA_PORT
TOPIC_PREFIX=bench.gateway
BENCH_TOPIC=$TOPIC_PREFIX.v1
CLK_TCK=$(getconf CLK_TCK)

die() { printf '[gateway-bench] ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf '[gateway-bench] %s\n' "$*" >&2; }
for tool in curl jq python3 awk; do command -v "$tool" >/dev/null || die "$tool is required"; done

cd "$REPO"
"$STACK" status >/dev/null 2>&1 || {
    "$STACK" status >&2 || true
    die "the local stack is not up (deploy/local/stack status failed): start it with deploy/local/stack up"
}
stack_pid() { "$STACK" status 2>/dev/null | awk -v s="$1" '$1 == s { for (i = 1; i < NF; i++) if ($i == "pid") print $(i + 1) }'; }
KAFKA_PID=$(stack_pid kafka)
REGISTRY_PID=$(stack_pid registry)

say "building release binaries"
cargo build --release -p auditlog -p auditlog-loadgen >&2

WORK=$(mktemp -d)
GATEWAY_PID=
cleanup() {
    if [[ -n $GATEWAY_PID ]] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
        kill -TERM "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
    fi
    "$STACK" kafka-tools org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete --if-exists \
        --topic "$BENCH_TOPIC" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The gateway's topic, with the partition count of the real events topic.
partitions=$("$STACK" kafka-tools org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --describe \
    --topic audit.events.v1 2>/dev/null | sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -n1)
[[ -n $partitions ]] || die "cannot read the partition count of audit.events.v1 (run: deploy/local/stack topics)"
"$STACK" kafka-tools org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete --if-exists --topic "$BENCH_TOPIC" >/dev/null
for _ in $(seq 1 30); do
    "$STACK" kafka-tools org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$BENCH_TOPIC" \
        --partitions "$partitions" --replication-factor 1 >/dev/null 2>&1 && break
    sleep 1
done

# A free port, a throwaway secret, the benchmark config.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$(head -c 36 /dev/urandom | base64 | tr -d '/+=\n')
export AUDITLOG_GATEWAY_AUTH_HS256_SECRET
gateway_env=(AUDITLOG_GATEWAY_DEFAULT_RATE_LIMIT_PER_SEC="$RATE_LIMIT" AUDITLOG_GATEWAY_TOPIC_PREFIX="$TOPIC_PREFIX")
if [[ -n ${GATEWAY_LD_PRELOAD:-} ]]; then # experiment, e.g. another malloc: recorded in the section
    [[ -f $GATEWAY_LD_PRELOAD ]] || die "GATEWAY_LD_PRELOAD=$GATEWAY_LD_PRELOAD does not exist"
    gateway_env+=(LD_PRELOAD="$GATEWAY_LD_PRELOAD")
fi
# Tenants must exist before they can ingest: register loadgen's bench-tenant-NN (idempotent).
for n in $(seq 0 $((TENANTS - 1))); do
    id=$(printf 'bench-tenant-%02d' "$n")
    "$BIN" admin create-tenant --id "$id" --registry "kafka://$BOOTSTRAP" --event-log "kafka://$BOOTSTRAP" >/dev/null 2>"$WORK/create-tenant.log" ||
        grep -q "already exists" "$WORK/create-tenant.log" || { cat "$WORK/create-tenant.log" >&2; die "registering $id failed"; }
done
gateway_cmd=("$BIN" gateway --listen "127.0.0.1:$PORT" --event-log "kafka://$BOOTSTRAP")
say "starting: ${gateway_env[*]} AUDITLOG_GATEWAY_AUTH_HS256_SECRET=<random> ${gateway_cmd[*]}"
env "${gateway_env[@]}" "${gateway_cmd[@]}" >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
ready=0
for _ in $(seq 1 60); do
    kill -0 "$GATEWAY_PID" 2>/dev/null || { cat "$WORK/gateway.log" >&2; die "the gateway exited"; }
    if curl -fsS "$URL/readyz" >/dev/null 2>&1; then ready=1; break; fi
    sleep 1
done
((ready)) || { tail -n 20 "$WORK/gateway.log" >&2; die "the gateway was not ready within 60 s"; }
say "gateway pid $GATEWAY_PID ready on $URL"

# Raw producer baseline, records as large as the events the gateway will write.
RECORD_SIZE=$("$LOADGEN" avro-size --samples 20000)
say "average Confluent-framed Avro size of the generated events: $RECORD_SIZE B"
RECORD_SIZE=$RECORD_SIZE "$BENCH_DIR/kafka-baseline.sh" | tee "$WORK/baseline.out" >&2
BASELINE_RPS=$(sed -n 's/.*appended to .*: \([0-9]*\) records\/s.*/\1/p' "$WORK/baseline.out" | tail -n1)
[[ -n $BASELINE_RPS ]] || die "no records/s from kafka-baseline.sh"
BASELINE_HEADING=$(grep '^## .*Kafka producer baseline' "$RESULTS" | tail -n1 | sed 's/^## //')

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
COMMANDS=()
run_scenario() { # label, loadgen args...
    local label=$1
    shift
    local args=(run --url "$URL" --label "$label" --tenants "$TENANTS" --threads "$LOADGEN_THREADS"
        --duration "$DURATION" --warmup "$WARMUP" --json-out "$WORK/$label.json" "$@")
    COMMANDS+=("$label: \`auditlog-loadgen ${args[*]/#$WORK\//}\`")
    say "scenario $label: auditlog-loadgen ${args[*]}"
    local g0 k0 r0 m0 g1 k1 r1 m1 t0 t1
    g0=$(ticks "$GATEWAY_PID") k0=$(ticks "$KAFKA_PID") r0=$(ticks "$REGISTRY_PID") m0=$(machine) t0=$(date +%s.%N)
    "$LOADGEN" "${args[@]}" >/dev/null
    g1=$(ticks "$GATEWAY_PID") k1=$(ticks "$KAFKA_PID") r1=$(ticks "$REGISTRY_PID") m1=$(machine) t1=$(date +%s.%N)
    # Cores used over the run: gateway, broker, registry, whole machine (busy, all processes).
    awk -v g="$((g1 - g0))" -v k="$((k1 - k0))" -v r="$((r1 - r0))" -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        -v m0="$m0" -v m1="$m1" 'BEGIN {
            split(m0, a, " "); split(m1, b, " "); w = t1 - t0
            printf "{\"gateway\": %.2f, \"broker\": %.2f, \"registry\": %.2f, \"machine\": %.2f}\n",
                g / hz / w, k / hz / w, r / hz / w, (b[1] - a[1]) / hz / w }' >"$WORK/$label.cpu.json"
}
run_scenario batched --mode closed --batch "$BATCH_SIZE" --connections "$BATCH_CONNECTIONS"
run_scenario single --mode closed --batch 0 --connections "$SINGLE_CONNECTIONS"
run_scenario open --mode open --batch 0 --rate "$OPEN_RATE" --connections 1024

say "stopping the gateway (pid $GATEWAY_PID)"
kill -TERM "$GATEWAY_PID"
wait "$GATEWAY_PID" || say "the gateway exited with status $?"
GATEWAY_PID=

# ---- report -------------------------------------------------------------------------------
j() { jq -r "$2" "$WORK/$1.json"; }
row() {
    jq -r --slurpfile cpu "$WORK/$1.cpu.json" '
        def f: . * 100 | round / 100;
        "| \(.label) | \(.mode) | \(.batch) | \(.connections) | \(.requests) | \(.requests_per_s | round) | \(.events_per_s | round) | \(.latency_ms.p50 | f) | \(.latency_ms.p95 | f) | \(.latency_ms.p99 | f) | \(.latency_ms["p99.9"] | f) | \(.latency_ms.max | f) | \(.statuses | to_entries | map("\(.key): \(.value)") | join(", "))\(if (.errors | length) > 0 then " + errors " + (.errors | tostring) else "" end) | \(.loadavg[0]) → \(.loadavg[1]) |"' "$WORK/$1.json"
}
cpu_row() {
    jq -r --slurpfile cpu "$WORK/$1.cpu.json" '
        ($cpu[0]) as $c | (.loadgen_cpu_s / .wall_s) as $l |
        "| \(.label) | \($c.gateway) | \($c.broker) | \($c.registry) | \($l * 100 | round / 100) | \(($c.machine - $c.gateway - $c.broker - $c.registry - $l) * 100 | round / 100) | \($c.machine) |"' "$WORK/$1.json"
}
batched_eps=$(j batched '.events_per_s | round')
single_rps=$(j single '.requests_per_s | round')
open_p99=$(j open '.latency_ms.p99')
open_fail=$(j open '.failures')
ratio=$(awk -v a="$batched_eps" -v b="$BASELINE_RPS" 'BEGIN { printf "%.1f", 100 * a / b }')
verdict() { if [[ $1 == 1 ]]; then echo "**met**"; else echo "**missed**"; fi; }
ratio_ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 60) }')
single_ok=$(awk -v r="$single_rps" 'BEGIN { print (r >= 5000) }')
open_ok=$(awk -v p="$open_p99" -v f="$open_fail" 'BEGIN { print (p <= 20 && f == 0) }')

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$REPO" status --porcelain 2>/dev/null | grep -q . && echo ' + uncommitted changes' || true)
{
    printf '\n## %s — Gateway ingest benchmark (auditlog-loadgen)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Command (from the repo root): `%sbench/gateway-bench.sh` (DURATION=%s WARMUP=%s BATCH_SIZE=%s BATCH_CONNECTIONS=%s SINGLE_CONNECTIONS=%s OPEN_RATE=%s TENANTS=%s LOADGEN_THREADS=%s)\n' \
        "${GATEWAY_LD_PRELOAD:+GATEWAY_LD_PRELOAD=$GATEWAY_LD_PRELOAD }" "$DURATION" "$WARMUP" "$BATCH_SIZE" "$BATCH_CONNECTIONS" "$SINGLE_CONNECTIONS" "$OPEN_RATE" "$TENANTS" "$LOADGEN_THREADS"
    printf -- '- Code: commit %s%s; release build (`cargo build --release -p auditlog -p auditlog-loadgen`)\n' "$commit" "$dirty"
    printf -- '- Gateway: `%s AUDITLOG_GATEWAY_AUTH_HS256_SECRET=<random> auditlog gateway --listen 127.0.0.1:%s --event-log kafka://%s` (otherwise default config; the per-tenant rate limit is raised to %s events/s for the benchmark; topic %s, %s partitions, created for the run and deleted after, so audit.events.v1 gets no bench data)\n' \
        "${gateway_env[*]}" "$PORT" "$BOOTSTRAP" "$RATE_LIMIT" "$BENCH_TOPIC" "$partitions"
    printf -- '- Baseline of this session: "%s" above, %s records/s with records of %s B (the average Confluent-framed Avro size of the generated events)\n' \
        "$BASELINE_HEADING" "$BASELINE_RPS" "$RECORD_SIZE"
    printf -- '- Load: %s tenants (one HS256 JWT each), events of ~%s B JSON (actions, actors, 0-3 targets, context, metadata; half carry a producer id); loadgen on %s tokio threads, HTTP/1.1 keep-alive, every scenario %s s warm-up then %s s measured\n' \
        "$TENANTS" "$(j single '.avg_body_bytes')" "$LOADGEN_THREADS" "$WARMUP" "$DURATION"
    for c in "${COMMANDS[@]}"; do printf -- '  - %s\n' "$c"; done
    printf -- '- Machine: nproc %s, memory %s, CPU %s, kernel %s; loadgen, gateway, broker and registry share these cores with other engineers'"'"' builds (CPU table below)\n\n' \
        "$(nproc)" "$mem" "$cpu" "$(uname -sr)"
    printf '| scenario | mode | events/request | connections | requests | req/s | events/s | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | statuses | load average before → after |\n'
    printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n'
    row batched; row single; row open
    printf '\nOpen loop: target %s req/s, latency measured from each request'"'"'s scheduled start; worst dispatcher lag %s ms.\n\n' \
        "$OPEN_RATE" "$(j open '.max_dispatch_lag_ms * 100 | round / 100')"
    printf 'CPU used during each scenario, in cores (of %s), from /proc (warm-up included):\n\n' "$(nproc)"
    printf '| scenario | gateway | broker (Kafka JVM) | registry | loadgen | everything else | machine busy |\n|---|---:|---:|---:|---:|---:|---:|\n'
    cpu_row batched; cpu_row single; cpu_row open
    printf '\nTargets:\n\n'
    printf -- '- batched events/s ÷ raw producer records/s = %s ÷ %s = **%s %%** (target ≥ 60 %%): %s\n' "$batched_eps" "$BASELINE_RPS" "$ratio" "$(verdict "$ratio_ok")"
    printf -- '- single-event closed loop: **%s req/s** (target ≥ 5,000): %s\n' "$single_rps" "$(verdict "$single_ok")"
    printf -- '- open loop %s req/s: **p99 %s ms**, %s failures (target p99 ≤ 20 ms): %s\n' "$OPEN_RATE" "$(j open '.latency_ms.p99 * 100 | round / 100')" "$open_fail" "$(verdict "$open_ok")"
} >>"$RESULTS"
say "appended to $RESULTS: batched $batched_eps events/s (${ratio} % of $BASELINE_RPS), single $single_rps req/s, open p99 $open_p99 ms"
