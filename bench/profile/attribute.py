#!/usr/bin/env python3
"""bench/profile/attribute.py — attributes `perf` samples of the gateway to its components.

Usage (DWARF call graphs are needed: the release profile has line tables but no frame pointers):
    perf record -F 499 --call-graph dwarf,16384 -o gw.data -p <gateway pid> -- sleep 8
    perf script -i gw.data -F comm,tid,ip,sym > gw.txt
    bench/profile/attribute.py gw.txt

Each sample of a tokio worker goes to the innermost frame of its stack that names a known
component (so malloc/free/memcpy count for whoever called them); samples of other threads
(librdkafka's) are reported per thread name. Shares are of all the gateway's samples.
"""
import sys, re, collections
cats = [
 ("response JSON", ["BatchAnswer>::serialize", "AcceptedEvent>::serialize", "axum::json::Json<T> as axum_core::response::into_response"]),
 ("idempotency cache", ["idempotency::IdempotencyCache"]),
 ("Avro encode", ["WireCodec","schema_registry_converter","apache_avro","AuditEventRecord"]),
 ("validate_event", ["auditlog_schemas::validate::"]),
 ("request JSON parse", ["routes::parse_array","routes::parse_ndjson","serde_json::de::","ValueVisitor"]),
 ("drop Values/events", ["drop_in_place<serde_json::value::Value","drop_in_place<alloc::vec::Vec<core::result::Result<serde_json","drop_in_place<auditlog_schemas::event::AuditEvent","drop_in_place<alloc::vec::Vec<auditlog_schemas","btree::map::IntoIter"]),
 ("Kafka append (rdkafka, Rust side)", ["KafkaEventLog","rdkafka::","rd_kafka","FutureProducer"]),
 ("auth (JWT verify)", ["JwtVerifier","jsonwebtoken","aws_lc","auth::jwt","auth::api_key","auth::Writer as axum","FromRequestParts"]),
 ("metrics + tracing", ["metrics::recorder","metrics_exporter","metrics_util","tracing_subscriber","tracing_core","tracing::span","ingest_gateway::metrics::"]),
 ("request id / trace layers", ["request_id","MakeRequestUuid","uuid::"]),
 ("HTTP (hyper/axum)", ["hyper::","hyper_util","axum","http_body","tower","http::header"]),
 ("kernel (syscalls, net)", ["[k]","entry_SYSCALL","tcp_","__sys_"]),
 ("tokio runtime", ["tokio::"]),
]
def classify(frames):
    for f in frames:
        for name, pats in cats:
            if any(p in f for p in pats): return name
    return None
agg = collections.Counter(); n = 0
def flush(head, frames):
    global n
    if head is None: return
    n += 1
    if not head.startswith("tokio-rt-worker"):
        agg["other threads: " + re.sub(r"\s*\d+$","",head)] += 1; return
    agg[classify(frames) or "unattributed"] += 1
head=None; frames=[]
for line in open(sys.argv[1], errors="replace"):
    if not line.strip(): flush(head, frames); head=None; frames=[]; continue
    if line.startswith("\t") or line.startswith("        "):
        p = line.strip().split(" ",1); frames.append(p[1] if len(p)>1 else p[0])
    else: flush(head, frames); head=line.strip(); frames=[]
flush(head, frames)
for k,v in agg.most_common(25): print(f"{100*v/n:5.1f}%  {k}")
print("samples", n)
