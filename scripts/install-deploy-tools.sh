#!/usr/bin/env bash
# Installs what the deployment checks need, and nothing that is already there:
#   podman + runc + debootstrap   build and run the image (no Docker engine needed)
#   podman-compose, kubernetes-validate, jsonschema, PyYAML   (a venv, not the system Python)
#   kustomize, promtool           (Go modules, built once into the tools dir)
# Everything lands in ${AUDITLOG_TOOLS_DIR:-~/.cache/auditlog/tools}; the tests find it there
# (or on PATH). Prints the tools dir on its last line.
set -euo pipefail

tools="${AUDITLOG_TOOLS_DIR:-$HOME/.cache/auditlog/tools}"
mkdir -p "$tools/bin"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# Pinned versions: bump them here (and nowhere else).
KUSTOMIZE_VERSION=v5.7.1
PROMETHEUS_VERSION=v0.305.0   # the Go module version of Prometheus 3.5 (LTS)
PY_PACKAGES=(podman-compose==1.5.0 kubernetes-validate==1.34.1 jsonschema==4.25.1 PyYAML==6.0.2)

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
dpkg -s uidmap >/dev/null 2>&1 || need+=(uidmap)
dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

venv="$tools/venv"
stamp="$venv/.packages"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${PY_PACKAGES[*]}" ]; then
  echo "installing into $venv: ${PY_PACKAGES[*]}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" >"$stamp"
fi
ln -sf "$venv/bin/podman-compose" "$tools/bin/podman-compose"
ln -sf "$venv/bin/kubernetes-validate" "$tools/bin/kubernetes-validate"

export PATH="${PATH}:/usr/local/go/bin"
go_tool() { # go_tool <binary> <module/path@version>
  local bin=$1 module=$2 version=${2##*@}
  if [ "$(cat "$tools/bin/.$bin.version" 2>/dev/null)" != "$version" ]; then
    command -v go >/dev/null || { echo "error: go is not installed (needed for $bin)" >&2; exit 1; }
    echo "building $bin $version (once)"
    GOBIN="$tools/bin" GOFLAGS=-mod=mod go install "$module"
    echo "$version" >"$tools/bin/.$bin.version"
  fi
}
go_tool kustomize "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
# Prometheus' go.mod has a replace directive, which `go install module@version` refuses:
# build promtool inside the downloaded module instead, where go.mod is the main module's.
if [ "$(cat "$tools/bin/.promtool.version" 2>/dev/null)" != "$PROMETHEUS_VERSION" ]; then
  echo "building promtool $PROMETHEUS_VERSION (once)"
  src=$(go mod download -json "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" |
    "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  (cd "$src" && go build -o "$tools/bin/promtool" ./cmd/promtool)
  echo "$PROMETHEUS_VERSION" >"$tools/bin/.promtool.version"
fi

# The Compose Specification's JSON schema, as the Go module of Compose's own parser ships it
# (deploy/compose/check.py pins the version): fetched into the Go module cache once.
compose_go=$(sed -n 's/^COMPOSE_GO = "\(.*\)"$/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../deploy/compose/check.py")
(cd / && go mod download "$compose_go")

echo "$tools"
