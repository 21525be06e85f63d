#!/usr/bin/env python3
"""Checks the observability pack of deploy/observability/.

1. `promtool check rules` on the alerting rules, and `promtool test rules` on their unit
   tests (prometheus/alerts.test.yml).
2. The rules' shape: every alert has a `severity` label and the annotations `summary`,
   `description` and `runbook`, and a runbook link to RUNBOOK.md names a heading that exists.
3. The dashboards' and provisioning files' shape: JSON that Grafana loads, the datasource
   referenced by uid `prometheus`, unique panel ids, every `$variable` defined.
4. Every metric name that a dashboard query, a template variable or a rule expression
   names is exported by a role, judged on real scrapes of `/metrics` (one or more files per
   role, `--scrape ROLE=FILE`). A histogram is exported as `<name>_bucket`, `_sum` and
   `_count` and a summary as `<name>{quantile=...}`, `_sum` and `_count`, so a name must be
   one of the scraped sample names, not a family's bare name. When a selector pins
   `job="X"` and X is one of the roles, the metric must be in X's scrapes. `up` and the other
   series Prometheus makes itself are not looked up.

Needs PyYAML and jsonschema (the venv of scripts/install-deploy-tools.sh):

    ~/.cache/auditlog/tools/venv/bin/python deploy/observability/check.py \\
        --scrape auditlog-gateway=gateway.prom \\
        --scrape auditlog-processor=processor-scylla.prom \\
        --scrape auditlog-processor=processor-opensearch.prom \\
        --scrape auditlog-query-api=query-api.prom

`--list-metrics` prints the metric names the dashboards and rules use, one a line, and
checks nothing else. Exits 0 when every check passes, 1 with one line per problem
otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DASHBOARDS = os.path.join(HERE, "grafana", "dashboards")
DEFAULT_PROVISIONING = os.path.join(HERE, "grafana", "provisioning")
DEFAULT_RULES = os.path.join(HERE, "prometheus", "alerts.yml")
DEFAULT_RULES_TEST = os.path.join(HERE, "prometheus", "alerts.test.yml")
DEFAULT_RUNBOOK = os.path.join(HERE, "RUNBOOK.md")

DATASOURCE_UID = "prometheus"
SEVERITIES = ("critical", "warning", "info")
# Series Prometheus makes itself: never in a target's scrape.
SYNTHETIC = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
}
# Grafana's built-in variables.
GRAFANA_BUILTINS = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__from",
    "__to",
    "__name",
    "__dashboard",
    "__org",
    "__user",
    "__all",
    "timeFilter",
}

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "bool", "inf", "nan", "start", "end",
}
# Aggregation operators: `sum by (x) (...)` puts a keyword between the name and its `(`.
AGGREGATIONS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values", "group", "limitk", "limit_ratio",
}
# Keywords followed by a parenthesised list of label names.
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(
    r"""
      (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<var>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
    | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*|0x[0-9a-fA-F]+)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[{}\[\](),=<>+\-*/%^@])
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.VERBOSE,
)


@dataclass
class Use:
    """One metric name used in a query, with where and the `job` it is pinned to."""

    name: str
    where: str
    job: str | None = None


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.problems.append(message)


def rel(path: str) -> str:
    """`path` relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def metric_uses(expr: str, where: str) -> list[Use]:
    """Metric names a PromQL expression selects (not functions, keywords, label names)."""
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr) if m.lastgroup != "space"]
    uses: list[Use] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if kind == "op" and text == "[":
            i = skip_to(tokens, i, "[", "]")
            continue
        if kind == "op" and text == "{":
            # A selector without a name: {__name__="x", ...}.
            end = skip_to(tokens, i, "{", "}")
            matchers = label_matchers(tokens[i + 1 : end - 1])
            if "__name__" in matchers:
                uses.append(Use(matchers["__name__"], where, matchers.get("job")))
            i = end
            continue
        if kind != "ident":
            i += 1
            continue
        if text in LABEL_LIST_KEYWORDS and nxt == "(":
            i = skip_to(tokens, i + 1, "(", ")")
            continue
        if text in PROMQL_KEYWORDS or text in AGGREGATIONS or nxt == "(":
            i += 1
            continue
        job = None
        if nxt == "{":
            end = skip_to(tokens, i + 1, "{", "}")
            job = label_matchers(tokens[i + 2 : end - 1]).get("job")
            i = end
        else:
            i += 1
        uses.append(Use(text, where, job))
    return uses


def skip_to(tokens: list[tuple[str, str]], start: int, opening: str, closing: str) -> int:
    """Index after the token closing the bracket opened at `start`."""
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i][0] == "op" and tokens[i][1] == opening:
            depth += 1
        elif tokens[i][0] == "op" and tokens[i][1] == closing:
            depth -= 1
            if depth == 0:
                return i + 1
    return len(tokens)


def label_matchers(tokens: list[tuple[str, str]]) -> dict[str, str]:
    """Equality matchers (`label="value"`) of a selector's tokens."""
    found = {}
    for i in range(len(tokens) - 2):
        (k1, label), (k2, op), (k3, value) = tokens[i], tokens[i + 1], tokens[i + 2]
        if k1 == "ident" and k2 == "op" and op == "=" and k3 == "string":
            found[label] = value[1:-1]
    return found


def variable_query_expr(query: str) -> str:
    """The PromQL inside a Grafana variable query (`label_values(expr, label)` etc.)."""
    query = query.strip()
    m = re.fullmatch(r"label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", query, re.S)
    if m:
        return m.group(1)
    if re.fullmatch(r"label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)|label_names\(.*\)|metrics\(.*\)", query, re.S):
        return ""
    m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if m:
        return m.group(1)
    return query


# --------------------------------------------------------------------------- scrapes


@dataclass
class Scrapes:
    samples: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # role -> sample names
    types: dict[str, str] = field(default_factory=dict)  # family -> type

    def all_samples(self) -> set[str]:
        return set().union(*self.samples.values()) if self.samples else set()


def read_scrapes(specs: list[str], report: Report) -> Scrapes:
    scrapes = Scrapes()
    for spec in specs:
        role, sep, path = spec.partition("=")
        if not sep or not role or not path:
            report.fail(f"--scrape {spec!r}: expected ROLE=FILE")
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            report.fail(f"scrape of {role}: cannot read {path}: {err}")
            continue
        names = scrapes.samples[role]
        samples = 0
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split()
                if len(parts) >= 4 and parts[1] == "TYPE":
                    scrapes.types[parts[2]] = parts[3]
                continue
            m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
            if m:
                names.add(m.group())
                samples += 1
        if not samples:
            report.fail(f"scrape of {role} ({path}) holds no sample: not a Prometheus text exposition?")
    return scrapes


def family_of(name: str, scrapes: Scrapes) -> tuple[str, str | None]:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in scrapes.types:
            base = name[: -len(suffix)]
            return base, scrapes.types[base]
    return name, scrapes.types.get(name)


def check_metric_uses(uses: list[Use], scrapes: Scrapes, report: Report) -> None:
    exported = scrapes.all_samples()
    roles = sorted(scrapes.samples)
    for use in uses:
        if use.name in SYNTHETIC:
            continue
        if use.name not in exported:
            base, kind = family_of(use.name, scrapes)
            if kind == "histogram" and base == use.name:
                hint = f"{use.name} is a histogram: query {use.name}_bucket, _sum or _count"
            elif kind == "summary" and use.name.endswith("_bucket"):
                hint = f"{base} is exported as a summary (quantile label), it has no _bucket series"
            else:
                close = difflib.get_close_matches(use.name, sorted(exported), n=2, cutoff=0.8)
                hint = "exported by no role" + (f" (did you mean {' or '.join(close)}?)" if close else "")
            report.fail(f"{use.where}: metric {use.name}: {hint}; roles scraped: {', '.join(roles)}")
            continue
        if use.job and use.job in scrapes.samples and use.name not in scrapes.samples[use.job]:
            owners = [r for r in roles if use.name in scrapes.samples[r]]
            report.fail(f"{use.where}: metric {use.name} is selected with job=\"{use.job}\" but that role does not export it (exported by: {', '.join(owners)})")
    used = {u.name for u in uses}
    for family, kind in sorted(scrapes.types.items()):
        if not family.startswith("auditlog_"):
            continue
        names = {family} if kind in ("counter", "gauge", "untyped") else {family, f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        if not names & used:
            report.notes.append(f"note: {family} ({kind}) is exported but used by no dashboard or rule")


# --------------------------------------------------------------------------- rules

RULES_SCHEMA = {
    "type": "object",
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["alert", "expr", "labels", "annotations"],
                            "properties": {
                                "alert": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]*$"},
                                "expr": {"type": "string", "minLength": 1},
                                "for": {"type": "string"},
                                "labels": {
                                    "type": "object",
                                    "required": ["severity"],
                                    "properties": {"severity": {"enum": list(SEVERITIES)}},
                                },
                                "annotations": {
                                    "type": "object",
                                    "required": ["summary", "description", "runbook"],
                                    "properties": {
                                        "summary": {"type": "string", "minLength": 1},
                                        "description": {"type": "string", "minLength": 1},
                                        "runbook": {"type": "string", "minLength": 1},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def markdown_anchors(path: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
                anchors.add(slug)
    return anchors


def check_rules(path: str, runbook: str, report: Report) -> list[Use]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        report.fail(f"{rel(path)}: cannot load: {err}")
        return []
    for error in jsonschema.Draft202012Validator(RULES_SCHEMA).iter_errors(doc):
        where = "/".join(str(p) for p in error.absolute_path)
        report.fail(f"{rel(path)}: {where or '(top)'}: {error.message}")
    anchors = markdown_anchors(runbook) if os.path.isfile(runbook) else None
    uses: list[Use] = []
    seen = set()
    for group in (doc or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            if not isinstance(rule, dict):
                continue
            name = rule.get("alert") or rule.get("record") or "?"
            if name in seen:
                report.fail(f"{rel(path)}: alert {name} is defined twice")
            seen.add(name)
            uses += metric_uses(str(rule.get("expr", "")), f"{rel(path)}: alert {name}")
            link = str((rule.get("annotations") or {}).get("runbook", ""))
            target, _, anchor = link.partition("#")
            if target.endswith("RUNBOOK.md"):
                if anchors is None:
                    report.fail(f"{rel(path)}: alert {name}: runbook {link} but {rel(runbook)} does not exist")
                elif not anchor or anchor not in anchors:
                    report.fail(f"{rel(path)}: alert {name}: runbook {link} names no heading of {rel(runbook)}")
    return uses


def promtool(tool: str | None, args: list[str], report: Report) -> None:
    if tool is None:
        report.fail("promtool is not installed: run scripts/install-deploy-tools.sh (or pass --promtool)")
        return
    result = subprocess.run([tool, *args], capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        report.fail(f"promtool {' '.join(args)} exited {result.returncode}:\n{output}")
    else:
        print(f"ok: promtool {' '.join(rel(a) if os.path.exists(a) else a for a in args)}")


# --------------------------------------------------------------------------- dashboards

DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "gridPos"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"type": "string"},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {k: {"type": "integer", "minimum": 0} for k in ("h", "w", "x", "y")},
                    },
                },
            },
        },
        "templating": {
            "type": "object",
            "properties": {"list": {"type": "array", "items": {"type": "object", "required": ["name", "type"]}}},
        },
    },
}


def datasource_uid(ds) -> str | None:
    if isinstance(ds, dict):
        return ds.get("uid")
    return ds


def all_panels(panels: list) -> list[dict]:
    found = []
    for panel in panels or []:
        if isinstance(panel, dict):
            found.append(panel)
            found += all_panels(panel.get("panels") or [])
    return found


def check_dashboard(path: str, uids: dict[str, str], report: Report) -> list[Use]:
    name = rel(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        report.fail(f"{name}: cannot load: {err}")
        return []
    errors = list(jsonschema.Draft202012Validator(DASHBOARD_SCHEMA).iter_errors(doc))
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path)
        report.fail(f"{name}: {where or '(top)'}: {error.message}")
    if errors:
        return []
    if doc["uid"] in uids:
        report.fail(f"{name}: uid {doc['uid']} is also the uid of {uids[doc['uid']]}")
    uids[doc["uid"]] = name
    variables = {v["name"] for v in doc.get("templating", {}).get("list", [])}
    allowed_ds = {DATASOURCE_UID} | {f"${v}" for v in variables} | {f"${{{v}}}" for v in variables}

    uses: list[Use] = []

    def check_expr(expr: str, where: str) -> None:
        for var in re.findall(r"\$\{(\w+)[^}]*\}|\$(\w+)|\[\[(\w+)\]\]", expr):
            var = next(v for v in var if v)
            if var not in variables and var not in GRAFANA_BUILTINS:
                report.fail(f"{where}: ${var} is not a variable of the dashboard")
        uses.extend(metric_uses(expr, where))

    for variable in doc.get("templating", {}).get("list", []):
        where = f"{name}: variable {variable['name']}"
        if variable["type"] != "query":
            continue
        if datasource_uid(variable.get("datasource")) not in allowed_ds:
            report.fail(f"{where}: datasource {variable.get('datasource')!r} is not uid {DATASOURCE_UID}")
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        if not query:
            report.fail(f"{where}: has no query")
            continue
        check_expr(variable_query_expr(str(query)), where)

    ids = set()
    for panel in all_panels(doc["panels"]):
        where = f"{name}: panel {panel.get('title', '?')!r} (id {panel.get('id')})"
        if panel.get("id") in ids:
            report.fail(f"{where}: id is used twice")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        if datasource_uid(panel.get("datasource")) not in allowed_ds:
            report.fail(f"{where}: datasource {panel.get('datasource')!r} is not uid {DATASOURCE_UID}")
        targets = panel.get("targets") or []
        if not targets:
            report.fail(f"{where}: has no query")
        refs = set()
        for target in targets:
            if target.get("refId") in refs:
                report.fail(f"{where}: refId {target.get('refId')} is used twice")
            refs.add(target.get("refId"))
            if "datasource" in target and datasource_uid(target["datasource"]) not in allowed_ds:
                report.fail(f"{where}: target {target.get('refId')}: datasource is not uid {DATASOURCE_UID}")
            expr = target.get("expr", "")
            if not expr.strip():
                report.fail(f"{where}: target {target.get('refId')} has no expr")
                continue
            check_expr(expr, f"{where} target {target.get('refId')}")
    return uses


def check_provisioning(root: str, report: Report) -> None:
    ds_file = os.path.join(root, "datasources", "prometheus.yml")
    db_file = os.path.join(root, "dashboards", "auditlog.yml")
    try:
        with open(ds_file, encoding="utf-8") as f:
            ds = yaml.safe_load(f)
        sources = {d.get("uid"): d for d in ds.get("datasources", [])}
        prom = sources.get(DATASOURCE_UID)
        if not prom or prom.get("type") != "prometheus" or not str(prom.get("url", "")).startswith("http"):
            report.fail(f"{rel(ds_file)}: needs a datasource of type prometheus with uid {DATASOURCE_UID} and a url")
    except (OSError, yaml.YAMLError, AttributeError) as err:
        report.fail(f"{rel(ds_file)}: {err}")
    try:
        with open(db_file, encoding="utf-8") as f:
            db = yaml.safe_load(f)
        providers = [p for p in db.get("providers", []) if p.get("type") == "file"]
        if not any((p.get("options") or {}).get("path") == "/var/lib/grafana/dashboards" for p in providers):
            report.fail(f"{rel(db_file)}: needs a file provider reading /var/lib/grafana/dashboards")
    except (OSError, yaml.YAMLError, AttributeError) as err:
        report.fail(f"{rel(db_file)}: {err}")


# --------------------------------------------------------------------------- main


def find_promtool(given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("PROMTOOL"):
        return os.environ["PROMTOOL"]
    tools = os.environ.get("AUDITLOG_TOOLS_DIR") or os.path.expanduser("~/.cache/auditlog/tools")
    local = os.path.join(tools, "bin", "promtool")
    return local if os.path.isfile(local) else shutil.which("promtool")


def dashboard_files(paths: list[str]) -> list[str]:
    files = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, "*.json"))) if os.path.isdir(path) else [path]
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrape", action="append", default=[], metavar="ROLE=FILE", help="a /metrics scrape of ROLE (the Prometheus job name); repeatable, also per role")
    parser.add_argument("--dashboards", action="append", metavar="PATH", help=f"dashboard file or directory (default {rel(DEFAULT_DASHBOARDS)})")
    parser.add_argument("--rules", default=DEFAULT_RULES, help="alerting rules file")
    parser.add_argument("--rules-test", default=DEFAULT_RULES_TEST, help="promtool unit tests of the rules (skipped when the file does not exist)")
    parser.add_argument("--runbook", default=DEFAULT_RUNBOOK, help="the runbook the rules link to")
    parser.add_argument("--provisioning", default=DEFAULT_PROVISIONING, help="Grafana provisioning directory")
    parser.add_argument("--promtool", help="promtool binary (default: the tools dir, then PATH)")
    parser.add_argument("--list-metrics", action="store_true", help="print the metric names used, one a line, and stop")
    args = parser.parse_args()

    report = Report()
    dashboards = dashboard_files(args.dashboards or [DEFAULT_DASHBOARDS])
    if not dashboards:
        report.fail(f"no dashboard found in {', '.join(args.dashboards or [DEFAULT_DASHBOARDS])}")

    uids: dict[str, str] = {}
    uses: list[Use] = []
    for path in dashboards:
        uses += check_dashboard(path, uids, report)
    uses += check_rules(args.rules, args.runbook, report)

    if args.list_metrics:
        for problem in report.problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        for name in sorted({u.name for u in uses} - SYNTHETIC):
            print(name)
        return 1 if report.problems else 0

    check_provisioning(args.provisioning, report)
    tool = find_promtool(args.promtool)
    promtool(tool, ["check", "rules", args.rules], report)
    if os.path.isfile(args.rules_test):
        promtool(tool, ["test", "rules", args.rules_test], report)

    if not args.scrape:
        report.fail("no scrape given (--scrape ROLE=FILE): metric names cannot be checked")
    else:
        scrapes = read_scrapes(args.scrape, report)
        check_metric_uses(uses, scrapes, report)
        names = sorted({u.name for u in uses} - SYNTHETIC)
        if not report.problems:
            print(f"ok: {len(names)} metric names used by {len(dashboards)} dashboards and {rel(args.rules)} are exported ({', '.join(sorted(scrapes.samples))})")

    for note in report.notes:
        print(note)
    if report.problems:
        for problem in report.problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        print(f"{len(report.problems)} problem(s) in the observability pack", file=sys.stderr)
        return 1
    print("observability pack: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
