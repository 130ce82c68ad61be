#!/usr/bin/env bash
# Builds the reference Prometheus server from source at the version of the
# github.com/prometheus/prometheus module the xtrace server evaluates PromQL
# with, so the comparison tests check xtrace against the very same engine
# (distribution packages lag behind by major versions). Its web UI is not
# embedded (no builtinassets tag): the tests only use its HTTP API.
#
# Output: $OUT_DIR (default bin/prometheus/<module version>/prometheus).
# An existing binary is kept, so re-running is cheap.
set -euo pipefail

PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}" # the version in go.mod
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT_DIR:-$ROOT/bin/prometheus/$PROMETHEUS_MODULE_VERSION}"

log() { printf '[build-prometheus] %s\n' "$*" >&2; }

if [ -x "$OUT_DIR/prometheus" ]; then
  log "prometheus present in $OUT_DIR"
  exit 0
fi
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

# Module v0.X.Y is Prometheus 3.X.Y.
minor_patch="${PROMETHEUS_MODULE_VERSION#v0.}"
minor="${minor_patch%%.*}"
release="$((10#$minor / 100)).$((10#$minor % 100)).${minor_patch#*.}"
start=$SECONDS
CGO_ENABLED=0 GOWORK=off GOBIN="$OUT_DIR" go install -trimpath \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION"
log "built $OUT_DIR/prometheus ($release) in $((SECONDS - start))s"
