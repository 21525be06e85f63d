#!/usr/bin/env python3
"""Query latencies against a standalone server (used by bench/standalone-bench.sh).

Args: base URL, reader token of bench-tenant-01, queries per kind, server pid.
Waits until the views hold every event the store counts for the tenant, then times
time-range pages (event store), full-text searches (search index) and stats, and streams
one whole-tenant NDJSON export. Prints one JSON object.
"""
import json
import sys
import time
import urllib.parse
import urllib.request

base, token, queries, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def get(path, params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
    return time.perf_counter() - started, body


def peak_rss_mib():
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))] * 1000


def timed(what, path, params_of):
    times = [get(path, params_of(i))[0] for i in range(queries)]
    return {"what": what, "n": len(times), "p50": pct(times, 50), "p95": pct(times, 95), "p99": pct(times, 99)}


# The views catch up: the search index's exact total stops growing.
started = time.perf_counter()
last, stable = -1, 0
while stable < 3 and time.perf_counter() - started < 600:
    total = json.loads(get("/v1/stats", {})[1])["total"]
    stable = stable + 1 if total == last else 0
    last = total
    time.sleep(1)
catch_up = time.perf_counter() - started - 3

now = time.time()
hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
words = ["console", "ran", "web", "from", "the"]
page = timed("time-range page, limit 100 (event store)", "/v1/events", lambda i: {"from": hour_ago, "limit": 100})
search = timed("full-text search `q`, limit 100 (search index)", "/v1/events", lambda i: {"q": words[i % len(words)], "limit": 100})
stats = timed("stats, group_by=action, interval=1m", "/v1/stats", lambda i: {"group_by": "action", "interval": "1m", "from": hour_ago})

rss_before = peak_rss_mib()
seconds, body = get("/v1/events/export", {"format": "ndjson"})
rows = body.count(b"\n")
print(json.dumps({
    "tenant_events": last, "catch_up_s": max(catch_up, 0.0),
    "page": page, "search": search, "stats": stats,
    "export": {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds else 0.0,
               "peak_rss_mib": rss_before, "peak_rss_after_mib": peak_rss_mib()},
}))
