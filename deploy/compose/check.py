#!/usr/bin/env python3
"""Checks compose files against the Compose Specification's JSON schema and the project's
conventions; used by auditlog/tests/deploy/compose.rs, runnable by hand with the deploy
tools' venv (PyYAML, jsonschema):

    ~/.cache/auditlog/tools/venv/bin/python deploy/compose/check.py check docker-compose.yml

Subcommands:
  check [--only schema|rules|files ...] [--schema PATH] [--project-dir DIR] FILE...
      prints every problem and exits 1 when there is one, else prints "ok FILE".
  json FILE        any YAML file as JSON, ${VAR:-default} replaced by its default
  schema-path      where the Compose Specification schema is (downloaded once, see below)

The schema is `schema/compose-spec.json` of the Go module github.com/compose-spec/compose-go/v2
(the reference Compose parser, which Docker Compose uses; the file is synced from the
compose-spec/compose-spec repository), fetched through the Go module proxy with
`go mod download` into the Go module cache: pinned by COMPOSE_GO below, verified by Go's
checksum database, never copied into this repository.

The conventions ("rules"):
  - every service has an image pinned to an exact version (x.y.z, or a digest): no missing
    tag, no `latest`, no floating `7` or `7.9`; `${VAR:-default}` counts as its default;
  - every service has a healthcheck, or is a one-shot (some service waits for it with
    `service_completed_successfully`; it must not restart), or says why not in
    `x-healthcheck-omitted: <reason>`;
  - depends_on uses the long form with a condition: `service_healthy` on a healthchecked
    service (and only there), `service_completed_successfully` on a one-shot; it names
    existing services;
  - every published port is bound to 127.0.0.1 (or ::1), unless the service says why not in
    `x-public-ports: <reason>`;
  - named volumes are declared at the top level.
"files": every bind-mounted path, build context, Dockerfile, env_file and config/secret file
exists (relative paths against --project-dir, by default the compose file's directory), and
none is outside the project directory.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.16.2"

LOCAL_HOSTS = {"127.0.0.1", "::1", "[::1]"}
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+([.+_-][0-9A-Za-z.+_-]*)?$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value):
    """`${VAR:-default}` / `${VAR-default}` → default; `${VAR}` / `${VAR:?err}` → None
    (the value depends on the environment); `$$` → `$`. Applied to every string."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value
    unresolved = False

    def repl(m):
        nonlocal unresolved
        op, default = m.group(2), m.group(3)
        if op in (":-", "-"):
            return default
        unresolved = True
        return ""

    out = INTERPOLATION.sub(repl, value.replace("$$", "\0")).replace("\0", "$")
    return None if unresolved else out


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def schema_path():
    """The compose-spec.json of COMPOSE_GO in the Go module cache, downloading it once."""
    go = None
    for candidate in [*(os.path.join(d, "go") for d in os.environ.get("PATH", "").split(os.pathsep) if d), "/usr/local/go/bin/go"]:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            go = candidate
            break
    if go is None:
        sys.exit("go is not installed (needed to fetch the Compose schema): run scripts/install-deploy-tools.sh")
    with tempfile.TemporaryDirectory() as outside_any_module:
        done = subprocess.run([go, "mod", "download", "-json", COMPOSE_GO], cwd=outside_any_module, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"go mod download {COMPOSE_GO} failed:\n{done.stdout}{done.stderr}")
    path = os.path.join(json.loads(done.stdout)["Dir"], "schema", "compose-spec.json")
    if not os.path.isfile(path):
        sys.exit(f"{COMPOSE_GO} has no schema/compose-spec.json")
    return path


def schema_problems(doc, schema_file):
    import jsonschema

    with open(schema_file, encoding="utf-8") as f:
        schema = json.load(f)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        problems.append(f"schema: {where}: {error.message}")
    return problems


def pinned(image):
    """None when `image` is pinned to an exact version, else why not."""
    if image is None:
        return "its image depends on an environment variable without a default"
    if "@sha256:" in image:
        return None
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return f"image {image!r} has no tag"
    if tag == "latest":
        return f"image {image!r} is `latest`"
    if not EXACT_TAG.match(tag):
        return f"image {image!r} is not pinned to an exact version (x.y.z)"
    return None


def has_healthcheck(service):
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return False
    test = check.get("test")
    if isinstance(test, str):
        return bool(test.strip())
    return isinstance(test, list) and len(test) > 1 and test[0] in ("CMD", "CMD-SHELL")


def depends_on(service):
    """{target: condition or None (short form)}."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: None for name in deps}
    return {name: (spec or {}).get("condition", "service_started") if isinstance(spec, dict) else None for name, spec in deps.items()}


def ports(service):
    """(host_ip or None, published or None, spec) for every port."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append((port.get("host_ip"), port.get("published"), port))
            continue
        spec = str(port).split("/")[0]
        if spec.startswith("["):  # [::1]:8080:8080
            host, _, rest = spec[1:].partition("]")
            parts = [f"[{host}]", *rest.lstrip(":").split(":")]
        else:
            parts = spec.split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1], port))
        elif len(parts) == 2:
            out.append((None, parts[0], port))
        else:
            out.append((None, None, port))
    return out


def rule_problems(doc):
    problems = []
    services = doc.get("services") or {}
    if not services:
        return ["rules: no services"]
    oneshots = {
        target
        for service in services.values()
        for target, condition in depends_on(service).items()
        if condition == "service_completed_successfully"
    }
    declared_volumes = set((doc.get("volumes") or {}).keys())
    for name, service in services.items():
        why = pinned(service.get("image")) if "image" in service else "it has no image"
        if why:
            problems.append(f"rules: {name}: {why}")

        omitted = service.get("x-healthcheck-omitted")
        if name in oneshots:
            if service.get("restart", "no") != "no":
                problems.append(f"rules: {name}: a one-shot (others wait for it to complete) must have restart \"no\"")
        elif not has_healthcheck(service):
            if not (isinstance(omitted, str) and omitted.strip()):
                problems.append(f"rules: {name}: no healthcheck (add one, or say why in x-healthcheck-omitted)")

        for target, condition in depends_on(service).items():
            if target not in services:
                problems.append(f"rules: {name}: depends_on {target}, which is no service")
                continue
            if condition is None:
                problems.append(f"rules: {name}: depends_on {target} without a condition (use the long form)")
            elif target in oneshots:
                if condition != "service_completed_successfully":
                    problems.append(f"rules: {name}: depends_on {target} (a one-shot) must use service_completed_successfully, not {condition}")
            elif has_healthcheck(services[target]):
                if condition != "service_healthy":
                    problems.append(f"rules: {name}: depends_on {target} (healthchecked) must use service_healthy, not {condition}")
            elif condition == "service_healthy":
                problems.append(f"rules: {name}: depends_on {target} with service_healthy, but {target} has no healthcheck: it would never start")

        public = service.get("x-public-ports")
        for host_ip, published, spec in ports(service):
            if published in (None, ""):
                problems.append(f"rules: {name}: port {spec!r} publishes a random host port on every interface")
            elif host_ip not in LOCAL_HOSTS and not (isinstance(public, str) and public.strip()):
                problems.append(f"rules: {name}: host port {spec!r} is not bound to 127.0.0.1 (bind it, or say why in x-public-ports)")

        for volume in service.get("volumes") or []:
            source, kind = volume_source(volume)
            if kind == "volume" and source and source not in declared_volumes:
                problems.append(f"rules: {name}: named volume {source!r} is not declared under the top-level volumes")
    return problems


def volume_source(volume):
    """(source, "bind" | "volume" | other) of a service volume entry."""
    if isinstance(volume, dict):
        return volume.get("source"), volume.get("type")
    parts = str(volume).split(":")
    if len(parts) == 1:
        return None, "volume"  # anonymous
    source = parts[0]
    if source.startswith((".", "/", "~")):
        return source, "bind"
    return source, "volume"


def file_problems(doc, project_dir):
    problems = []
    root = os.path.realpath(project_dir)

    def check(name, what, path, want_dir=None):
        if path is None:
            problems.append(f"files: {name}: {what} depends on an environment variable without a default")
            return
        if path.startswith("~") or os.path.isabs(path):
            problems.append(f"files: {name}: {what} {path} is outside the project")
            return
        full = os.path.realpath(os.path.join(root, path))
        if full != root and not full.startswith(root + os.sep):
            problems.append(f"files: {name}: {what} {path} is outside the project")
        elif not os.path.exists(full):
            problems.append(f"files: {name}: {what} {path} does not exist")
        elif want_dir is True and not os.path.isdir(full):
            problems.append(f"files: {name}: {what} {path} is not a directory")
        elif want_dir is False and not os.path.isfile(full):
            problems.append(f"files: {name}: {what} {path} is not a file")

    for name, service in (doc.get("services") or {}).items():
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            check(name, "build context", context, want_dir=True)
            if context is not None and dockerfile is not None:
                check(name, "Dockerfile", os.path.join(context, dockerfile), want_dir=False)
        for volume in service.get("volumes") or []:
            source, kind = volume_source(volume)
            if kind == "bind":
                check(name, "bind mount", source)
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file.get("path") if isinstance(env_file, dict) else env_file
            if not (isinstance(env_file, dict) and env_file.get("required") is False):
                check(name, "env_file", path, want_dir=False)
    for section in ("configs", "secrets"):
        for name, spec in (doc.get(section) or {}).items():
            if isinstance(spec, dict) and "file" in spec:
                check(f"{section}.{name}", "file", spec["file"])
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check")
    check.add_argument("files", nargs="+")
    check.add_argument("--only", action="append", choices=["schema", "rules", "files"])
    check.add_argument("--schema", help="the Compose Specification JSON schema (default: COMPOSE_GO's)")
    check.add_argument("--project-dir", help="base of relative paths (default: each file's directory)")
    as_json = sub.add_parser("json")
    as_json.add_argument("file")
    sub.add_parser("schema-path")
    args = parser.parse_args()

    if args.command == "schema-path":
        print(schema_path())
        return 0
    if args.command == "json":
        json.dump(interpolate(load(args.file)), sys.stdout, indent=1)
        print()
        return 0

    kinds = args.only or ["schema", "rules", "files"]
    schema_file = (args.schema or schema_path()) if "schema" in kinds else None
    failed = False
    for path in args.files:
        raw = load(path)
        problems = []
        if not isinstance(raw, dict):
            problems.append("not a YAML mapping")
        else:
            if "schema" in kinds:
                problems += schema_problems(raw, schema_file)
            doc = interpolate(raw)
            if "rules" in kinds:
                problems += rule_problems(doc)
            if "files" in kinds:
                problems += file_problems(doc, args.project_dir or os.path.dirname(os.path.abspath(path)))
        for problem in problems:
            print(f"{path}: {problem}")
        if problems:
            failed = True
        else:
            print(f"ok {path} ({', '.join(kinds)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
