#!/usr/bin/env python3
"""Query latencies and export throughput of a query API on a seeded dataset.

Used by bench/query-bench.sh (distributed: ScyllaDB + OpenSearch). Mints its own HS256
reader tokens with the server's secret, sends queries one at a time over one keep-alive
connection (latency, not throughput), checks every answer, and prints one JSON object.

  query_load.py --url URL --secret S --pid PID --tenants N --days D --queries Q > results.json
  query_load.py --markdown results.json     # the tables and targets for bench/RESULTS.md

Workloads, each Q requests of a random tenant (tenant 00 is the large one):
  page       GET /v1/events?from&to (1-7 random days)&limit=100   time range (event store)
  next_page  the same query's second page through its cursor     (event store)
  actor      GET /v1/events?actor_id=user-N&limit=100             by actor (event store)
  search     GET /v1/events?q=<word>&limit=100                    full text (search index)
  filtered   GET /v1/events?q=<word>&outcome=failure&limit=100    full text + filter (index)
  stats      GET /v1/stats?group_by=<g>&interval=1d over the dataset's whole range (index)
Each workload starts with a tenth of Q unmeasured requests (warm-up). Then whole-range
exports of tenant 00 (CSV, then NDJSON) and of a small tenant (CSV): rows/s as received (the
body goes to a file untouched), the server's resident memory sampled every 20 ms meanwhile,
and then a check that each parses back (csv module, json) into as many rows as /v1/stats
counts for the tenant.
"""
import argparse
import base64
import csv
import hashlib
import hmac
import http.client
import io
import json
import random
import sys
import tempfile
import threading
import time
import urllib.parse

WORDS = ["ada", "lovelace", "grace", "hopper", "turing", "console", "knuth", "liskov", "document.share", "billing"]
GROUPS = ["action", "actor_id", "outcome", "severity"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(secret: str, tenant: str) -> str:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": f"bench-{tenant}", "tenant_id": tenant, "roles": ["reader"], "iss": "auditlog", "aud": "auditlog",
              "exp": int(time.time()) + 7200}
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def pct(values, p):
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1] * 1000


class Client:
    def __init__(self, url: str, secret: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.secret = secret
        self.tokens = {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def auth(self, tenant):
        if tenant not in self.tokens:
            self.tokens[tenant] = token(self.secret, tenant)
        return {"Authorization": f"Bearer {self.tokens[tenant]}"}

    def get(self, tenant, path, params):
        """(seconds, parsed JSON) of one GET; any status but 200 stops the benchmark."""
        url = f"{path}?{urllib.parse.urlencode(params)}"
        started = time.perf_counter()
        self.conn.request("GET", url, headers=self.auth(tenant))
        response = self.conn.getresponse()
        body = response.read()
        seconds = time.perf_counter() - started
        if response.status != 200:
            sys.exit(f"GET {url} as {tenant}: {response.status} {body[:500]!r}")
        return seconds, json.loads(body)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def export(client, pid, tenant, fmt, params):
    """Streams one export on its own connection into a temporary file, sampling the server's
    RSS meanwhile (the rate is the server's: nothing is parsed while timing), then parses the
    file back: CSV with the csv module (every row as wide as the header), NDJSON line by line."""
    samples, done = [rss_mib(pid)], threading.Event()

    def sample():
        while not done.wait(0.02):
            samples.append(rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    conn = http.client.HTTPConnection(client.host, client.port, timeout=600)
    url = f"/v1/events/export?{urllib.parse.urlencode({**params, 'format': fmt})}"
    sampler.start()
    started = time.perf_counter()
    conn.request("GET", url, headers=client.auth(tenant))
    response = conn.getresponse()
    if response.status != 200:
        sys.exit(f"export {url}: {response.status} {response.read()[:500]!r}")
    disposition = response.getheader("Content-Disposition")
    size = 0
    with tempfile.TemporaryFile() as body:
        while chunk := response.read(1 << 20):
            body.write(chunk)
            size += len(chunk)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        conn.close()
        body.seek(0)
        text = io.TextIOWrapper(body, encoding="utf-8", newline="")
        rows = 0
        if fmt == "csv":
            reader = csv.reader(text)
            header = next(reader)
            for row in reader:
                if len(row) != len(header):
                    sys.exit(f"CSV row of {len(row)} cells under a header of {len(header)}: {row}")
                rows += 1
        else:
            for line in text:
                if line.strip():
                    json.loads(line)
                    rows += 1
    return {"tenant": tenant, "format": fmt, "rows": rows, "bytes": size, "seconds": seconds, "rows_per_s": rows / seconds,
            "rss_before_mib": samples[0], "rss_peak_mib": max(samples), "content_disposition": disposition}


def markdown(q):
    """The workload and export tables of one run, and the targets, as Markdown."""
    print(f"Dataset as the query API counts it (/v1/stats over every tenant): {q['totals']['events']:,} events; "
          f"largest tenant {q['totals']['largest']:,}, smallest {q['totals']['smallest']:,}.\n")
    print("| workload | n | p50 ms | p95 ms | p99 ms | max ms | events/answer |\n|---|---:|---:|---:|---:|---:|---:|")
    for key in ("page", "next_page", "actor", "search", "filtered", "stats"):
        w = q[key]
        print(f"| {w['what']} | {w['n']} | {w['p50']:.1f} | {w['p95']:.1f} | {w['p99']:.1f} | {w['max']:.1f} | {w['avg_events']:.0f} |")
    print("\n| export | rows | MB | seconds | rows/s | server RSS before → peak |\n|---|---:|---:|---:|---:|---|")
    for e in q["exports"]:
        print(f"| {e['tenant']} {e['format']} | {e['rows']:,} | {e['bytes'] / 1e6:,.0f} | {e['seconds']:.1f} | {e['rows_per_s']:,.0f} "
              f"| {e['rss_before_mib']:.0f} → {e['rss_peak_mib']:.0f} MiB |")
    page_p99, search_p95, rows_s = q["page"]["p99"], q["search"]["p95"], q["exports"][0]["rows_per_s"]
    verdict = lambda ok: "**met**" if ok else "**missed**"
    print(f"\nTargets: time-range page p99 {page_p99:.1f} ms (< 50 ms): {verdict(page_p99 < 50)}; "
          f"search p95 {search_p95:.1f} ms (< 200 ms): {verdict(search_p95 < 200)}; "
          f"export {rows_s:,.0f} rows/s (≥ 50,000): {verdict(rows_s >= 50000)}. "
          "Every export parsed back (csv module, json) to exactly the count /v1/stats gives for its tenant.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--markdown", metavar="RESULTS_JSON")
    ap.add_argument("--url")
    ap.add_argument("--secret")
    ap.add_argument("--pid")
    ap.add_argument("--tenants", type=int)
    ap.add_argument("--days", type=int)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if args.markdown:
        with open(args.markdown) as results:
            markdown(json.load(results))
        return
    if not all((args.url, args.secret, args.pid, args.tenants, args.days)):
        ap.error("--url, --secret, --pid, --tenants and --days are required")
    rnd = random.Random(args.seed)
    client = Client(args.url, args.secret)
    tenants = [f"bench-tenant-{n:02}" for n in range(args.tenants)]
    now = time.time()
    whole = {"from": rfc3339(now - (args.days + 1) * 86400), "to": rfc3339(now + 60)}

    def timed(name, what, make):
        for _ in range(max(5, args.queries // 10)):  # warm-up, not measured
            tenant, path, params = make()
            client.get(tenant, path, params)
        times, rows = [], 0
        for _ in range(args.queries):
            tenant, path, params = make()
            seconds, answer = client.get(tenant, path, params)
            times.append(seconds)
            rows += len(answer.get("events", [])) if isinstance(answer, dict) else 0
        return name, {"what": what, "n": len(times), "p50": pct(times, 50), "p95": pct(times, 95), "p99": pct(times, 99),
                      "max": max(times) * 1000, "avg_events": rows / len(times)}

    def range_params():
        start = now - rnd.uniform(1, args.days) * 86400
        return {"from": rfc3339(start), "to": rfc3339(start + rnd.randint(1, 7) * 86400), "limit": 100}

    cursors = []

    def page():
        tenant, params = rnd.choice(tenants), range_params()
        cursors.append((tenant, params))
        return tenant, "/v1/events", params

    def next_page():
        tenant, params = cursors.pop()
        _, first = client.get(tenant, "/v1/events", params)
        if not first.get("next_cursor"):
            return tenant, "/v1/events", params
        return tenant, "/v1/events", {"limit": 100, "cursor": first["next_cursor"], "from": params["from"], "to": params["to"]}

    results = dict([
        timed("page", "time range of 1-7 days, limit 100 (event store)", page),
        timed("next_page", "second page of such a range, by cursor (event store)", next_page),
        timed("actor", "by actor, limit 100 (event store)",
              lambda: (rnd.choice(tenants), "/v1/events", {"actor_id": f"user-{rnd.randint(1, 4999)}", "limit": 100})),
        timed("search", "full text `q`, limit 100 (search index)",
              lambda: (rnd.choice(tenants), "/v1/events", {"q": rnd.choice(WORDS), "limit": 100})),
        timed("filtered", "full text `q` + outcome=failure, limit 100 (search index)",
              lambda: (rnd.choice(tenants), "/v1/events", {"q": rnd.choice(WORDS), "outcome": "failure", "limit": 100})),
        timed("stats", f"stats over {args.days + 1} days, group_by, interval=1d (search index)",
              lambda: (rnd.choice(tenants), "/v1/stats", {**whole, "group_by": rnd.choice(GROUPS), "interval": "1d"})),
    ])

    totals = {t: client.get(t, "/v1/stats", whole)[1]["total"] for t in tenants}
    small = min(tenants[1:] or tenants, key=lambda t: totals[t])
    exports = [export(client, args.pid, tenants[0], "csv", whole), export(client, args.pid, tenants[0], "ndjson", whole),
               export(client, args.pid, small, "csv", whole)]
    for e in exports:
        if e["rows"] != totals[e["tenant"]] or e["rows"] == 0:
            sys.exit(f"export of {e['tenant']} ({e['format']}) gave {e['rows']} rows, /v1/stats counts {totals[e['tenant']]}")
    results["exports"] = exports
    results["totals"] = {"events": sum(totals.values()), "largest": totals[tenants[0]], "smallest": totals[small]}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
