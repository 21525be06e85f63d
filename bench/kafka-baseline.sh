#!/usr/bin/env bash
# bench/kafka-baseline.sh — raw Kafka producer throughput on this machine, the ceiling the
# ingest gateway is measured against. Runs Kafka's own ProducerPerformance
# (kafka-producer-perf-test) against the local broker of deploy/local/stack and appends the
# result to bench/RESULTS.md.
#
# Env: RECORD_SIZE (bytes, default 474: the golden AuditEvent sample, schemas/golden/v1, in the Confluent wire format), NUM_RECORDS (default 1000000),
#      COMPRESSION (default lz4), BENCH_TOPIC (default bench.producer-perf),
#      EXTRA_PRODUCER_PROPS (space-separated k=v added to the producer config),
#      AUDITLOG_KAFKA_PORT (default 9092), AUDITLOG_EVENTS_TOPIC (default audit.events.v1).
#
# The bench topic is deleted and re-created empty on every run, with the partition count
# of the events topic, so runs are comparable.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
STACK=$REPO/deploy/local/stack
RESULTS=$BENCH_DIR/RESULTS.md

RECORD_SIZE=${RECORD_SIZE:-474}
NUM_RECORDS=${NUM_RECORDS:-1000000}
COMPRESSION=${COMPRESSION:-lz4}
BENCH_TOPIC=${BENCH_TOPIC:-bench.producer-perf}
EVENTS_TOPIC=${AUDITLOG_EVENTS_TOPIC:-audit.events.v1}
KAFKA_PORT=${AUDITLOG_KAFKA_PORT:-9092}
BOOTSTRAP=127.0.0.1:$KAFKA_PORT

die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf '[bench] %s\n' "$*"; }

"$STACK" status kafka >/dev/null || die "Kafka is not running/ready: start it with deploy/local/stack up"

tool() { "$STACK" kafka-tools "$@"; }

# Same partition count as the events topic.
partitions=$(tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --describe --topic "$EVENTS_TOPIC" 2>/dev/null |
    sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -n1)
[[ -n $partitions ]] || die "cannot read the partition count of $EVENTS_TOPIC (run: deploy/local/stack topics)"

say "re-creating $BENCH_TOPIC ($partitions partitions, like $EVENTS_TOPIC)"
tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete --if-exists --topic "$BENCH_TOPIC" >/dev/null
created=0
for _ in $(seq 1 30); do
    if tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$BENCH_TOPIC" \
        --partitions "$partitions" --replication-factor 1 >/dev/null 2>&1; then
        created=1
        break
    fi
    sleep 1 # the deletion of the previous run's topic is still under way
done
((created)) || die "could not create $BENCH_TOPIC"

props=(acks=all enable.idempotence=true "compression.type=$COMPRESSION")
if [[ -n ${EXTRA_PRODUCER_PROPS:-} ]]; then
    read -r -a extra <<<"$EXTRA_PRODUCER_PROPS"
    props+=("${extra[@]}")
fi
cmd=(deploy/local/stack kafka-tools org.apache.kafka.tools.ProducerPerformance
    --bootstrap-server "$BOOTSTRAP" --topic "$BENCH_TOPIC"
    --num-records "$NUM_RECORDS" --record-size "$RECORD_SIZE" --throughput -1
    --command-property "${props[@]}")

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
say "running: ${cmd[*]}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
(cd "$REPO" && "${cmd[@]}") | tee "$out"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

final=$(grep 'ms 99.9th' "$out" | tail -n1)
[[ -n $final ]] || die "no summary line in the ProducerPerformance output"
# "<n> records sent, <r> records/sec (<mb> MB/sec), <avg> ms avg latency, <max> ms max latency,
#  <p50> ms 50th, <p95> ms 95th, <p99> ms 99th, <p999> ms 99.9th."
field() { echo "$final" | sed -n "s#.*[ ,(]\([0-9.]*\) $1.*#\1#p"; }
rps=$(field 'records/sec')
mbs=$(field 'MB/sec')
avg=$(field 'ms avg latency')
max=$(field 'ms max latency')
p50=$(field 'ms 50th')
p95=$(field 'ms 95th')
p99=$(field 'ms 99th')
p999=$(field 'ms 99.9th')
rps_int=$(printf '%.0f' "$rps")

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
kernel=$(uname -sr)
java_v=$(java -version 2>&1 | head -n1)
kafka_v=$(ls "${AUDITLOG_STACK_DIR:-$REPO/deploy/local/.state}/kafka/lib" 2>/dev/null | sed -n 's/^kafka_2\.13-\(.*\)\.jar$/\1/p' | head -n1)

if [[ ! -f $RESULTS ]]; then
    cat >"$RESULTS" <<'EOF'
# Benchmark results

Appended by the scripts in bench/ (newest last). Numbers from a shared 2-core dev machine
are noisy: compare runs on the same machine, and look at the load average noted with each.
With `--throughput -1` the producer is never throttled, so its latencies are mostly time
spent queued in its own 32 MiB buffer (buffer / throughput), not broker round trips;
records/s and MB/s are the figures to compare. Kafka prints MB as 2^20 bytes.
EOF
fi

cat >>"$RESULTS" <<EOF

## $started — Kafka producer baseline (ProducerPerformance)

- Command (from the repo root): \`${cmd[*]}\`
- Producer: acks=all, enable.idempotence=true, compression.type=$COMPRESSION, other settings at the Kafka ${kafka_v:-4.x} client defaults; $NUM_RECORDS records of $RECORD_SIZE B (random A-Z payload), no throttling; the producer runs on the same machine as the broker
- Broker: Kafka ${kafka_v:-4.x}, single node (KRaft, deploy/local/stack) on $BOOTSTRAP; topic $BENCH_TOPIC, $partitions partitions, RF 1, re-created empty
- Machine: nproc $(nproc), memory $mem, CPU $cpu, kernel $kernel, $java_v; load average before/after: $load_before / $load_after

| records/s | MB/s | avg latency | max latency | p50 | p95 | p99 | p99.9 |
|---:|---:|---:|---:|---:|---:|---:|---:|
| $rps_int | $mbs | $avg ms | $max ms | $p50 ms | $p95 ms | $p99 ms | $p999 ms |

Printed: \`$final\`
EOF
say "appended to $RESULTS: $rps_int records/s, $mbs MB/s, p99 $p99 ms"
# The broker keeps data forever by default (deploy/local): drop the bench data now.
tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete --if-exists --topic "$BENCH_TOPIC" >/dev/null ||
    say "could not delete $BENCH_TOPIC (harmless; the next run re-creates it)"
