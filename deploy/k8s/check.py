#!/usr/bin/env python3
"""Offline checks of deploy/k8s: renders each overlay with kustomize, validates every object
strictly against the Kubernetes 1.34 OpenAPI schemas (kubernetes-validate; the Prometheus
Operator's ServiceMonitor and PrometheusRule structurally, their CRDs are not in those
schemas), and asserts the deployment rules of deploy/k8s/README.md:

  - every workload (Deployment, StatefulSet, Job) runs as uid/gid 10001, non-root, with a
    read-only root filesystem, no privilege escalation, all capabilities dropped and the
    RuntimeDefault seccomp profile, on the pod and on every container; no service-account
    token; an emptyDir at /tmp; requests and limits for cpu and memory on every container;
  - every long-running container has /readyz readiness and /healthz liveness probes on a
    port it declares;
  - each processor's Kafka instance id is its pod name (fieldRef metadata.name), one
    StatefulSet per sink, each with a headless governing Service;
  - the gateway's terminationGracePeriodSeconds exceeds its 30 s drain budget;
  - each Deployment has an autoscaling/v2 CPU HPA (and no fixed replica count), a PDB that
    lets at least one pod go, and topology spread constraints over its own pods;
  - a role-specific NetworkPolicy selects each workload (ingress only on declared ports,
    egress with DNS), behind a namespace-wide default deny;
  - no ConfigMap key looks like a secret (SECRET, KEY, TOKEN, PASSWORD); no overlay renders a
    Secret (every secret is created by the operator, in dev too: the services refuse the
    example values a committed Secret would carry);
  - Services select workloads and name ports they declare; ServiceMonitors cover every
    long-running role under the job names the alerting rules use; the gateway and the query
    API serve /metrics on their port `metrics` (AUDITLOG_*_METRICS_LISTEN), not the API port;
  - the prod overlay's PrometheusRule groups equal deploy/observability/prometheus/alerts.yml;
  - per overlay: dev runs one replica of everything; prod at least 3 gateway and query API
    pods, 3 processors per sink, a hard zone spread, replication factor 3 and
    min.insync.replicas 2 for init.

Usage:
  check.py                          render and check every overlay
  check.py --overlay prod           one overlay
  check.py --rendered FILE --profile dev
                                    check an already rendered stream (the tests mutate one)
  check.py --sync-rules             rewrite components/monitoring/prometheusrule.yaml from
                                    deploy/observability/prometheus/alerts.yml

Exits 1 and prints one FAIL line per violation; 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import yaml
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError
except ImportError as err:  # pragma: no cover - environment problem, said plainly
    sys.exit(f"error: {err}: run with the deploy tools' venv (scripts/install-deploy-tools.sh), "
             "e.g. ~/.cache/auditlog/tools/venv/bin/python deploy/k8s/check.py")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ALERTS = REPO / "deploy/observability/prometheus/alerts.yml"
RULE_FILE = HERE / "components/monitoring/prometheusrule.yaml"
KUBE_VERSION = "1.34"

UID = 10001
WORKLOADS = ("Deployment", "StatefulSet", "Job")
LONG_RUNNING = ("Deployment", "StatefulSet")
SINKS = {"scylla", "opensearch", "ledger"}
SECRET_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD")
IMAGE = "ghcr.io/auditlog/auditlog"
# The gateway drains requests (10 s) and flushes the producer (10 s) inside Kubernetes'
# default 30 s; its own grace period must exceed that.
GATEWAY_DRAIN_SECS = 30


# ---- helpers -----------------------------------------------------------------------------

def kn(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against labels; an empty one matches all."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def is_empty_selector(selector: dict | None) -> bool:
    return not (selector or {}).get("matchLabels") and not (selector or {}).get("matchExpressions")


def quantity(value) -> float:
    """A Kubernetes quantity as a number (cores, bytes)."""
    text = str(value)
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", text)
    if not match or (match.group(2) and match.group(2) not in suffixes):
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)) * suffixes.get(match.group(2), 1)


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def pod_labels(obj: dict) -> dict:
    return obj["spec"]["template"].get("metadata", {}).get("labels") or {}


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def role(obj: dict) -> str:
    """The auditlog role a workload runs: the first argument of its main container."""
    args = (pod_spec(obj).get("containers") or [{}])[0].get("args") or []
    return args[0] if args else ""


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checked: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.failures.append(f"{where}: {message}")

    def ok(self, what: str) -> None:
        self.checked.append(what)


# ---- schema validation -------------------------------------------------------------------

def check_schemas(objs: list[dict], rep: Report, label: str) -> None:
    crds = 0
    for obj in objs:
        if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            check_prometheus_operator(obj, rep, label)
            crds += 1
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except ValidationError as err:
            path = ".".join(str(p) for p in err.path) or "(root)"
            rep.fail(f"{label}: {kn(obj)}", f"schema (Kubernetes {KUBE_VERSION}, strict): {path}: {err.message}")
        except SchemaNotFoundError as err:
            rep.fail(f"{label}: {kn(obj)}", f"no Kubernetes {KUBE_VERSION} schema: {err.message}")
    rep.ok(f"{len(objs) - crds} objects valid against the Kubernetes {KUBE_VERSION} schemas (strict), "
           f"{crds} Prometheus Operator objects structurally")


DURATION = re.compile(r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$")
RELABEL_ACTIONS = {"replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap",
                   "labeldrop", "labelkeep", "lowercase", "uppercase"}


def check_prometheus_operator(obj: dict, rep: Report, label: str) -> None:
    where = f"{label}: {kn(obj)}"
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        rep.fail(where, f"apiVersion {obj.get('apiVersion')!r}, expected monitoring.coreos.com/v1")
    meta = obj.get("metadata") or {}
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        rep.fail(where, "metadata.name is required")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        rep.fail(where, "spec is required")
        return
    kind = obj.get("kind")
    if kind == "ServiceMonitor":
        unknown = set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
                               "podTargetLabels", "sampleLimit", "attachMetadata"}
        if unknown:
            rep.fail(where, f"unknown spec fields {sorted(unknown)}")
        if not isinstance(spec.get("selector"), dict):
            rep.fail(where, "spec.selector is required")
        endpoints = spec.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            rep.fail(where, "spec.endpoints must be a non-empty list")
            return
        for i, ep in enumerate(endpoints):
            if not ep.get("port") and not ep.get("targetPort"):
                rep.fail(where, f"spec.endpoints[{i}] names no port")
            if not str(ep.get("path", "/metrics")).startswith("/"):
                rep.fail(where, f"spec.endpoints[{i}].path must start with /")
            for field in ("interval", "scrapeTimeout"):
                if field in ep and not DURATION.match(str(ep[field])):
                    rep.fail(where, f"spec.endpoints[{i}].{field} {ep[field]!r} is not a duration")
            for j, rl in enumerate(ep.get("relabelings") or []):
                action = str(rl.get("action", "replace")).lower()
                if action not in RELABEL_ACTIONS:
                    rep.fail(where, f"spec.endpoints[{i}].relabelings[{j}].action {action!r} is unknown")
                if action == "replace" and not rl.get("targetLabel"):
                    rep.fail(where, f"spec.endpoints[{i}].relabelings[{j}] replaces without targetLabel")
    elif kind == "PrometheusRule":
        if set(spec) - {"groups"}:
            rep.fail(where, f"unknown spec fields {sorted(set(spec) - {'groups'})}")
        problems = rule_group_problems(spec.get("groups"))
        for problem in problems:
            rep.fail(where, problem)
    else:
        rep.fail(where, "no structural check for this Prometheus Operator kind")


def rule_group_problems(groups) -> list[str]:
    problems = []
    if not isinstance(groups, list) or not groups:
        return ["spec.groups must be a non-empty list"]
    names = [g.get("name") for g in groups if isinstance(g, dict)]
    if len(names) != len(set(names)):
        problems.append("spec.groups names are not unique")
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or not group.get("name"):
            problems.append(f"spec.groups[{i}] needs a name")
            continue
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problems.append(f"group {group['name']}: rules must be a non-empty list")
            continue
        for j, rule in enumerate(rules):
            where = f"group {group['name']} rule {j}"
            if ("alert" in rule) == ("record" in rule):
                problems.append(f"{where}: exactly one of alert and record")
            if not isinstance(rule.get("expr"), (str, int)) or rule.get("expr") == "":
                problems.append(f"{where}: expr is required")
            if "for" in rule and not DURATION.match(str(rule["for"])):
                problems.append(f"{where}: for {rule['for']!r} is not a duration")
            for field in ("labels", "annotations"):
                if field in rule and not all(isinstance(v, str) for v in (rule[field] or {}).values()):
                    problems.append(f"{where}: {field} values must be strings")
    return problems


# ---- workloads ---------------------------------------------------------------------------

POD_SECURITY = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID}
CONTAINER_SECURITY = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                      "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}


def check_workload(obj: dict, objs: list[dict], rep: Report, label: str) -> None:
    where = f"{label}: {kn(obj)}"
    spec = pod_spec(obj)
    if spec.get("automountServiceAccountToken") is not False:
        rep.fail(where, "automountServiceAccountToken must be false on the pod")
    account = spec.get("serviceAccountName")
    accounts = [o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == account]
    if not account or not accounts:
        rep.fail(where, f"serviceAccountName {account!r} is not a ServiceAccount of the render")
    elif accounts[0].get("automountServiceAccountToken") is not False:
        rep.fail(where, f"ServiceAccount {account} must set automountServiceAccountToken: false")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        rep.fail(where, "host namespaces are not allowed")

    pod_sc = spec.get("securityContext") or {}
    for key, want in POD_SECURITY.items():
        if pod_sc.get(key) != want:
            rep.fail(where, f"pod securityContext.{key} must be {want!r}, is {pod_sc.get(key)!r}")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        rep.fail(where, "pod securityContext.seccompProfile.type must be RuntimeDefault")

    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for c in containers(spec):
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext") or {}
        for key, want in CONTAINER_SECURITY.items():
            if sc.get(key) != want:
                rep.fail(cw, f"securityContext.{key} must be {want!r}, is {sc.get(key)!r}")
        if sc.get("privileged"):
            rep.fail(cw, "securityContext.privileged must not be true")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            rep.fail(cw, "securityContext.capabilities.drop must contain ALL")
        if caps.get("add"):
            rep.fail(cw, f"securityContext.capabilities.add must be empty, is {caps['add']}")
        if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            rep.fail(cw, "securityContext.seccompProfile.type must be RuntimeDefault")
        tmp = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            rep.fail(cw, "needs an emptyDir volume mounted at /tmp (the root filesystem is read-only)")
        check_resources(c, cw, rep)
        image = str(c.get("image", ""))
        if not image.startswith(IMAGE + ":") and not image.startswith(IMAGE + "@"):
            rep.fail(cw, f"image {image!r} is not {IMAGE} pinned to a tag or digest")
        elif image.endswith(":latest"):
            rep.fail(cw, "image tag latest is not a release")
        if obj["kind"] in LONG_RUNNING:
            check_probes(c, cw, rep)


def check_resources(c: dict, where: str, rep: Report) -> None:
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for name in ("cpu", "memory"):
            if name not in (res.get(kind) or {}):
                rep.fail(where, f"resources.{kind}.{name} is missing")
    for name in ("cpu", "memory"):
        try:
            req, lim = res.get("requests", {}).get(name), res.get("limits", {}).get(name)
            if req is not None and lim is not None and quantity(req) > quantity(lim):
                rep.fail(where, f"resources.requests.{name} {req} exceeds limits.{name} {lim}")
        except ValueError as err:
            rep.fail(where, str(err))


def check_probes(c: dict, where: str, rep: Report) -> None:
    ports = {p.get("name") for p in c.get("ports") or []} | {p["containerPort"] for p in c.get("ports") or []}
    ports.discard(None)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", None)):
        spec = c.get(probe)
        if spec is None:
            if path:
                rep.fail(where, f"{probe} is missing (expected httpGet {path})")
            continue
        http = spec.get("httpGet")
        if not http:
            rep.fail(where, f"{probe} must be an httpGet probe")
            continue
        if path and http.get("path") != path:
            rep.fail(where, f"{probe} path is {http.get('path')!r}, expected {path}")
        if http.get("port") not in ports:
            rep.fail(where, f"{probe} port {http.get('port')!r} is not a declared containerPort ({sorted(map(str, ports))})")


def env_of(c: dict) -> dict:
    return {e["name"]: e for e in c.get("env") or []}


def check_processors(objs: list[dict], rep: Report, label: str) -> None:
    sets = [o for o in objs if o["kind"] == "StatefulSet" and role(o) == "processor"]
    seen = set()
    for obj in sets:
        where = f"{label}: {kn(obj)}"
        c = pod_spec(obj)["containers"][0]
        args = c.get("args") or []
        sink = args[args.index("--sink") + 1] if "--sink" in args and args.index("--sink") + 1 < len(args) else None
        if sink not in SINKS:
            rep.fail(where, f"processor --sink {sink!r} is not one of {sorted(SINKS)}")
        seen.add(sink)
        ref = (((env_of(c).get("AUDITLOG_PROCESSOR_INSTANCE_ID") or {}).get("valueFrom") or {}).get("fieldRef") or {})
        if ref.get("fieldPath") != "metadata.name":
            rep.fail(where, "AUDITLOG_PROCESSOR_INSTANCE_ID must come from fieldRef metadata.name (static membership)")
        svc = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == obj["spec"].get("serviceName")]
        if not svc:
            rep.fail(where, f"serviceName {obj['spec'].get('serviceName')!r} is not a Service of the render")
        elif svc[0]["spec"].get("clusterIP") != "None" or not selector_matches({"matchLabels": svc[0]["spec"].get("selector")}, pod_labels(obj)):
            rep.fail(where, f"Service {svc[0]['metadata']['name']} must be headless (clusterIP: None) and select the pods")
    for deployment in [o for o in objs if o["kind"] == "Deployment" and role(o) == "processor"]:
        rep.fail(f"{label}: {kn(deployment)}", "processors run as StatefulSets (stable pod names are their instance ids)")
    if seen != SINKS:
        rep.fail(label, f"expected one processor StatefulSet per sink {sorted(SINKS)}, found {sorted(s for s in seen if s)}")
    rep.ok("processors: one StatefulSet per sink, instance id = pod name, headless Service")


def check_gateway(objs: list[dict], rep: Report, label: str) -> None:
    gateways = [o for o in objs if o["kind"] == "Deployment" and role(o) == "gateway"]
    if not gateways:
        rep.fail(label, "no gateway Deployment")
    for obj in gateways:
        grace = pod_spec(obj).get("terminationGracePeriodSeconds", 30)
        if not grace > GATEWAY_DRAIN_SECS:
            rep.fail(f"{label}: {kn(obj)}", f"terminationGracePeriodSeconds {grace} must exceed the {GATEWAY_DRAIN_SECS} s drain")
    rep.ok(f"gateway terminationGracePeriodSeconds > {GATEWAY_DRAIN_SECS}")


def disruptions_allowed(pdb: dict, replicas: int) -> int:
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        value = spec["maxUnavailable"]
        return int(replicas * int(value[:-1]) / 100) if isinstance(value, str) else value
    value = spec.get("minAvailable", 0)
    needed = -(-replicas * int(value[:-1]) // 100) if isinstance(value, str) else value
    return replicas - needed


def check_scaling(objs: list[dict], rep: Report, label: str) -> None:
    for obj in [o for o in objs if o["kind"] in LONG_RUNNING]:
        where = f"{label}: {kn(obj)}"
        labels = pod_labels(obj)
        replicas = obj["spec"].get("replicas")
        if obj["kind"] == "Deployment":
            hpas = [h for h in objs if h["kind"] == "HorizontalPodAutoscaler"
                    and h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
                    and h["spec"]["scaleTargetRef"].get("name") == obj["metadata"]["name"]]
            if not hpas:
                rep.fail(where, "no HorizontalPodAutoscaler targets it")
                continue
            hpa = hpas[0]
            if hpa["apiVersion"] != "autoscaling/v2":
                rep.fail(where, f"HPA apiVersion {hpa['apiVersion']}, expected autoscaling/v2")
            metrics = hpa["spec"].get("metrics") or []
            if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in metrics):
                rep.fail(where, "HPA has no CPU resource metric")
            if replicas is not None:
                rep.fail(where, "spec.replicas is set while an HPA owns the count (every apply would reset it)")
            replicas = hpa["spec"].get("minReplicas", 1)
            if replicas > hpa["spec"]["maxReplicas"]:
                rep.fail(where, "HPA minReplicas exceeds maxReplicas")
        replicas = 1 if replicas is None else replicas
        pdbs = [p for p in objs if p["kind"] == "PodDisruptionBudget" and selector_matches(p["spec"].get("selector"), labels)]
        if not pdbs:
            rep.fail(where, "no PodDisruptionBudget selects its pods")
        for pdb in pdbs:
            if disruptions_allowed(pdb, max(replicas, 1)) < 1:
                rep.fail(where, f"PodDisruptionBudget {pdb['metadata']['name']} allows no disruption at {replicas} replica(s): node drains would block")
        spread = pod_spec(obj).get("topologySpreadConstraints") or []
        if not spread:
            rep.fail(where, "no topologySpreadConstraints")
        for tsc in spread:
            if not selector_matches(tsc.get("labelSelector"), labels):
                rep.fail(where, f"topology spread over {tsc['topologyKey']} does not select its own pods")
        keys = [(t["topologyKey"], t.get("whenUnsatisfiable")) for t in spread]
        if len({k for k, _ in keys}) != len(keys):
            rep.fail(where, f"topologySpreadConstraints repeat a topologyKey: {keys}")
    rep.ok("Deployments: autoscaling/v2 CPU HPA, PDB, topology spread; StatefulSets: PDB, topology spread")


def check_network_policies(objs: list[dict], rep: Report, label: str) -> None:
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    if not any(is_empty_selector(p["spec"].get("podSelector")) and {"Ingress", "Egress"} <= set(p["spec"].get("policyTypes") or [])
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        rep.fail(label, "no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    for obj in [o for o in objs if o["kind"] in WORKLOADS]:
        where = f"{label}: {kn(obj)}"
        labels = pod_labels(obj)
        own = [p for p in policies if not is_empty_selector(p["spec"].get("podSelector"))
               and selector_matches(p["spec"]["podSelector"], labels)]
        if not own:
            rep.fail(where, "no role-specific NetworkPolicy selects its pods")
            continue
        ports = set()
        for c in pod_spec(obj).get("containers") or []:
            for p in c.get("ports") or []:
                ports |= {p["containerPort"], p.get("name")}
        for policy in own:
            pw = f"{where} NetworkPolicy {policy['metadata']['name']}"
            if not {"Ingress", "Egress"} <= set(policy["spec"].get("policyTypes") or []):
                rep.fail(pw, "policyTypes must include Ingress and Egress")
            for rule in policy["spec"].get("ingress") or []:
                if not rule.get("ports"):
                    rep.fail(pw, "an ingress rule allows every port")
                for port in rule.get("ports") or []:
                    if port.get("port") not in ports:
                        rep.fail(pw, f"ingress port {port.get('port')} is not a port the pod declares")
                if not rule.get("from"):
                    rep.fail(pw, "an ingress rule allows every source")
            egress = policy["spec"].get("egress") or []
            if not any(any(p.get("port") == 53 for p in r.get("ports") or []) for r in egress):
                rep.fail(pw, "egress does not allow DNS (port 53)")
            for rule in egress:
                if not rule.get("to") or not rule.get("ports"):
                    rep.fail(pw, "an egress rule allows every destination or every port")
    rep.ok("NetworkPolicies: default deny, one selecting each role, ingress only on declared ports, DNS egress")


def check_config_and_secrets(objs: list[dict], rep: Report, label: str, profile: str) -> None:
    for cm in [o for o in objs if o["kind"] == "ConfigMap"]:
        for key in list((cm.get("data") or {})) + list((cm.get("binaryData") or {})):
            if any(word in key.upper() for word in SECRET_WORDS):
                rep.fail(f"{label}: {kn(cm)}", f"key {key!r} looks like a secret ({'/'.join(SECRET_WORDS)}): it belongs in a Secret")
    secrets = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Secret"}
    if secrets:
        rep.fail(label, f"renders Secrets {sorted(secrets)}: secrets are created by the operator, never committed "
                 "(a committed value is an example the services refuse)")
    # Every Secret a workload reads is the operator's; the keys it must hold are listed.
    wanted: dict[str, set] = {}
    for obj in [o for o in objs if o["kind"] in WORKLOADS]:
        spec = pod_spec(obj)
        for c in containers(spec):
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    wanted.setdefault(ref["name"], set()).add(ref["key"])
            for src in c.get("envFrom") or []:
                if "secretRef" in src:
                    wanted.setdefault(src["secretRef"]["name"], set())
        for vol in spec.get("volumes") or []:
            if "secret" in vol and not vol["secret"].get("optional"):
                wanted.setdefault(vol["secret"]["secretName"], set()).update(i["key"] for i in vol["secret"].get("items") or [])
    for name, keys in sorted(wanted.items()):
        if name not in secrets:
            rep.ok(f"operator-created Secret {name} with keys {sorted(keys)}")
    rep.ok("no secret-looking ConfigMap keys; no rendered Secret; the operator's Secrets and their keys listed")


def check_services(objs: list[dict], rep: Report, label: str) -> None:
    workloads = [o for o in objs if o["kind"] in LONG_RUNNING]
    for svc in [o for o in objs if o["kind"] == "Service"]:
        where = f"{label}: {kn(svc)}"
        targets = [w for w in workloads if selector_matches({"matchLabels": svc["spec"].get("selector") or {}}, pod_labels(w))]
        if not svc["spec"].get("selector") or not targets:
            rep.fail(where, "selects no workload")
            continue
        ports = set()
        for w in targets:
            for c in pod_spec(w)["containers"]:
                for p in c.get("ports") or []:
                    ports |= {p["containerPort"], p.get("name")}
        for p in svc["spec"].get("ports") or []:
            if p.get("targetPort", p["port"]) not in ports:
                rep.fail(where, f"targetPort {p.get('targetPort')} is not declared by {[kn(w) for w in targets]}")
    for w in workloads:
        if not any(o["kind"] == "Service" and selector_matches({"matchLabels": o["spec"].get("selector") or {}}, pod_labels(w)) for o in objs):
            rep.fail(f"{label}: {kn(w)}", "no Service selects its pods")
    rep.ok("Services select workloads and their declared ports")


def alert_jobs(groups: list) -> set:
    jobs = set()
    for group in groups or []:
        for rule in group.get("rules") or []:
            for match in re.finditer(r'job\s*(=~|=)\s*"([^"]*)"', str(rule.get("expr", ""))):
                jobs |= set(match.group(2).split("|")) if match.group(1) == "=~" else {match.group(2)}
    return jobs


def check_monitoring(objs: list[dict], rep: Report, label: str, profile: str, alerts: Path) -> None:
    monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
    rules = [o for o in objs if o["kind"] == "PrometheusRule"]
    if not monitors and not rules:
        if profile == "prod":
            rep.fail(label, "prod must include components/monitoring (ServiceMonitors and the PrometheusRule)")
        else:
            rep.ok("monitoring component not included (allowed outside prod)")
        return
    services = [o for o in objs if o["kind"] == "Service"]
    jobs = set()
    for mon in monitors:
        for ep in mon["spec"].get("endpoints") or []:
            for rl in ep.get("relabelings") or []:
                if rl.get("targetLabel") == "job" and rl.get("replacement"):
                    jobs.add(rl["replacement"])
    for w in [o for o in objs if o["kind"] in LONG_RUNNING]:
        covered = False
        for svc in services:
            if not selector_matches({"matchLabels": svc["spec"].get("selector") or {}}, pod_labels(w)):
                continue
            names = {p.get("name") for p in svc["spec"].get("ports") or []}
            for mon in monitors:
                if selector_matches(mon["spec"].get("selector"), svc["metadata"].get("labels") or {}) and \
                        any(ep.get("port") in names for ep in mon["spec"].get("endpoints") or []):
                    covered = True
        if not covered:
            rep.fail(f"{label}: {kn(w)}", "no ServiceMonitor scrapes it (through a Service port)")
    if len(rules) != 1:
        rep.fail(label, f"expected one PrometheusRule, found {len(rules)}")
        return
    if not alerts.is_file():
        rep.fail(label, f"{alerts} does not exist yet: the PrometheusRule cannot be compared with it")
        return
    expected = (yaml.safe_load(alerts.read_text()) or {}).get("groups")
    if rules[0]["spec"].get("groups") != expected:
        rep.fail(f"{label}: {kn(rules[0])}", f"spec.groups differ from the groups of {alerts.relative_to(REPO) if alerts.is_relative_to(REPO) else alerts} "
                 f"(re-copy with: deploy/k8s/check.py --sync-rules)")
    missing = alert_jobs(expected) - jobs
    if missing:
        rep.fail(label, f"the alerting rules use jobs {sorted(missing)} that no ServiceMonitor sets")
    rep.ok(f"ServiceMonitors scrape every role as jobs {sorted(jobs)}; PrometheusRule groups == {alerts.name} groups")


# The roles whose API port faces clients: /metrics must be on a port of its own.
METRICS_LISTEN = {"gateway": "AUDITLOG_GATEWAY_METRICS_LISTEN", "query-api": "AUDITLOG_QUERY_METRICS_LISTEN"}


def check_metrics_listeners(objs: list[dict], rep: Report, label: str) -> None:
    for w in [o for o in objs if o["kind"] == "Deployment"]:
        role = pod_labels(w).get("app.kubernetes.io/component")
        var = METRICS_LISTEN.get(role)
        if not var:
            continue
        for c in containers(pod_spec(w)):
            listen = (env_of(c).get(var) or {}).get("value")
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            if not listen:
                rep.fail(f"{label}: {kn(w)}", f"{var} is not set: /metrics would be served on the API port")
            elif str(ports.get("metrics")) != str(listen).rsplit(":", 1)[-1]:
                rep.fail(f"{label}: {kn(w)}", f"{var}={listen} is not the declared container port `metrics` ({ports.get('metrics')})")
    rep.ok("the gateway and the query API serve /metrics on their port `metrics`, not on the API port")


def check_profile(objs: list[dict], rep: Report, label: str, profile: str) -> None:
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in objs if h["kind"] == "HorizontalPodAutoscaler"}
    jobs = [o for o in objs if o["kind"] == "Job" and role(o) == "init"]
    if len(jobs) != 1:
        rep.fail(label, f"expected one init Job (auditlog init), found {len(jobs)}")
    init_env = {e["name"]: e.get("value") for e in pod_spec(jobs[0])["containers"][0].get("env") or []} if jobs else {}
    if profile == "dev":
        for name, hpa in hpas.items():
            if hpa["spec"].get("minReplicas") != 1:
                rep.fail(f"{label}: HorizontalPodAutoscaler/{name}", "dev runs one replica: minReplicas must be 1")
        for sts in [o for o in objs if o["kind"] == "StatefulSet"]:
            if sts["spec"].get("replicas") != 1:
                rep.fail(f"{label}: {kn(sts)}", "dev runs one replica: replicas must be 1")
        rep.ok("dev: one replica of every role, HPA minReplicas 1")
    elif profile == "prod":
        for obj in [o for o in objs if o["kind"] == "Deployment"]:
            minimum = (hpas.get(obj["metadata"]["name"]) or {}).get("spec", {}).get("minReplicas", 1)
            if minimum < 3:
                rep.fail(f"{label}: {kn(obj)}", f"prod needs at least 3 replicas: HPA minReplicas is {minimum}")
        for obj in [o for o in objs if o["kind"] == "StatefulSet"]:
            if obj["spec"].get("replicas", 1) < 3:
                rep.fail(f"{label}: {kn(obj)}", "prod runs at least 3 processors per sink")
        for obj in [o for o in objs if o["kind"] in LONG_RUNNING]:
            spread = pod_spec(obj).get("topologySpreadConstraints") or []
            if not any(t["topologyKey"] == "topology.kubernetes.io/zone" and t.get("whenUnsatisfiable") == "DoNotSchedule" for t in spread):
                rep.fail(f"{label}: {kn(obj)}", "prod spreads every role over zones with whenUnsatisfiable: DoNotSchedule")
            if not (pod_spec(obj).get("affinity") or {}).get("podAntiAffinity"):
                rep.fail(f"{label}: {kn(obj)}", "prod keeps pods of a role apart on nodes (podAntiAffinity)")
        for name, want in (("AUDITLOG_INIT_REPLICATION_FACTOR", "3"), ("AUDITLOG_INIT_MIN_INSYNC_REPLICAS", "2")):
            if init_env.get(name) != want:
                rep.fail(f"{label}: Job/auditlog-init", f"prod needs {name}={want}, has {init_env.get(name)!r}")
        rep.ok("prod: >= 3 gateway/query API replicas, 3 processors per sink, hard zone spread, "
               "anti-affinity, init with replication factor 3 and min.insync.replicas 2")


def check(objs: list[dict], label: str, profile: str, alerts: Path) -> Report:
    rep = Report()
    if not objs:
        rep.fail(label, "the render is empty")
        return rep
    check_schemas(objs, rep, label)
    workloads = [o for o in objs if o["kind"] in WORKLOADS]
    for obj in workloads:
        check_workload(obj, objs, rep, label)
    rep.ok(f"{len(workloads)} workloads: pod and container securityContext, no token, /tmp emptyDir, "
           "cpu/memory requests and limits, pinned image; long-running: /readyz and /healthz probes on declared ports")
    check_processors(objs, rep, label)
    check_gateway(objs, rep, label)
    check_scaling(objs, rep, label)
    check_network_policies(objs, rep, label)
    check_config_and_secrets(objs, rep, label, profile)
    check_metrics_listeners(objs, rep, label)
    check_services(objs, rep, label)
    check_monitoring(objs, rep, label, profile, alerts)
    check_profile(objs, rep, label, profile)
    return rep


# ---- entry points ------------------------------------------------------------------------

def find_kustomize(explicit: str | None) -> str:
    candidates = [explicit, os.environ.get("KUSTOMIZE"),
                  str(Path(os.environ.get("AUDITLOG_TOOLS_DIR", Path.home() / ".cache/auditlog/tools")) / "bin/kustomize"),
                  shutil.which("kustomize")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    print("error: kustomize is not installed: run scripts/install-deploy-tools.sh", file=sys.stderr)
    sys.exit(2)


def render(kustomize: str, overlay: Path) -> list[dict]:
    done = subprocess.run([kustomize, "build", str(overlay)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"kustomize build {overlay} failed:\n{done.stderr.strip()}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


FOLDED_HEADER = re.compile(r"^(?P<indent> *)(?P<lead>(?:- )?[^#\n]*?:[ ]+|- )>(?P<chomp>[-+]?)[ ]*$")


def literal_instead_of_folded(text: str) -> str:
    """kustomize (go-yaml) re-emits a folded block scalar (>-) that has more-indented lines
    with an extra blank line, which changes its value. Such a block whose value is the same
    written as a literal block (|-) is rewritten so; every other line stays as it is."""
    lines = text.splitlines(keepends=True)
    original = yaml.safe_load(text)
    for i, line in enumerate(lines):
        match = FOLDED_HEADER.match(line.rstrip("\n"))
        if not match:
            continue
        block = []
        for following in lines[i + 1:]:
            if following.strip() and len(following) - len(following.lstrip(" ")) <= len(match["indent"]):
                break
            block.append(following)
        indents = {len(b) - len(b.lstrip(" ")) for b in block if b.strip()}
        if len(indents) < 2:
            continue  # no more-indented line: kustomize keeps it intact
        candidate = lines[:i] + [line.replace(">" + match["chomp"], "|" + match["chomp"], 1)] + lines[i + 1:]
        if yaml.safe_load("".join(candidate)) == original:
            lines = candidate
        else:
            sys.exit(f"error: line {i + 1}: a folded block with more-indented lines that kustomize would "
                     "change and that has no literal equivalent: write it as a literal block (|-) in alerts.yml")
    return "".join(lines)


def sync_rules(alerts: Path) -> None:
    """Writes the PrometheusRule whose spec.groups equal alerts.yml's groups: the file's text
    from `groups:` on, indented under spec (comments kept)."""
    text = alerts.read_text()
    start = re.search(r"^groups:", text, re.M)
    if not start:
        sys.exit(f"error: {alerts} has no top-level groups:")
    body = literal_instead_of_folded(text[start.start():])
    RULE_FILE.write_text(
        "# The alerting rules of deploy/observability/prometheus/alerts.yml as a PrometheusRule:\n"
        "# spec.groups equal that file's groups. Generated: do not edit here; edit alerts.yml, then\n"
        "#   ~/.cache/auditlog/tools/venv/bin/python deploy/k8s/check.py --sync-rules\n"
        "# (check.py fails while the rendered groups differ from alerts.yml's).\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: auditlog\n"
        "  labels:\n"
        "    app.kubernetes.io/name: auditlog\n"
        "spec:\n" + "".join("  " + line if line.strip() else line for line in body.splitlines(keepends=True)))
    if yaml.safe_load(RULE_FILE.read_text())["spec"]["groups"] != yaml.safe_load(text)["groups"]:
        sys.exit("error: the copied groups do not parse back equal")
    print(f"wrote {RULE_FILE.relative_to(REPO)} from {alerts.relative_to(REPO)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overlay", action="append", help="overlay name under deploy/k8s/overlays (default: all)")
    parser.add_argument("--rendered", type=Path, help="check this rendered YAML stream instead of building")
    parser.add_argument("--profile", choices=["dev", "prod", "other"], help="rules of which overlay apply to --rendered")
    parser.add_argument("--kustomize", help="kustomize binary (default: tools dir, then PATH)")
    parser.add_argument("--alerts", type=Path, default=ALERTS, help="the Prometheus rule file the PrometheusRule copies")
    parser.add_argument("--sync-rules", action="store_true", help="rewrite the PrometheusRule from --alerts and exit")
    args = parser.parse_args()

    if args.sync_rules:
        sync_rules(args.alerts)
        return 0

    targets: list[tuple[str, str, list[dict]]] = []
    if args.rendered:
        if not args.profile:
            parser.error("--rendered needs --profile")
        try:
            objs = [d for d in yaml.safe_load_all(args.rendered.read_text()) if d]
        except (OSError, yaml.YAMLError) as err:
            print(f"FAIL {args.rendered}: cannot be read as YAML: {err}")
            return 1
        targets.append((str(args.rendered), args.profile, objs))
    else:
        kustomize = find_kustomize(args.kustomize)
        names = args.overlay or sorted(p.name for p in (HERE / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
        for name in names:
            try:
                objs = render(kustomize, HERE / "overlays" / name)
            except RuntimeError as err:
                print(f"FAIL overlays/{name}: {err}")
                return 1
            print(f"rendered overlays/{name}: {len(objs)} objects")
            targets.append((f"overlays/{name}", name if name in ("dev", "prod") else "other", objs))

    failures = 0
    for label, profile, objs in targets:
        rep = check(objs, label, profile, args.alerts)
        for line in rep.checked:
            print(f"  checked {label}: {line}")
        for line in rep.failures:
            print(f"FAIL {line}")
        failures += len(rep.failures)
    if failures:
        print(f"{failures} problem(s) found")
        return 1
    print(f"all checks passed ({', '.join(label for label, _, _ in targets)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
