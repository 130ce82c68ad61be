#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the tests need (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, kwok) from source at pinned
# versions, because their release archives cannot be downloaded in CI.
#
# Output: $OUT_DIR (default bin/k8s/<k8s version>/), one binary per name.
# Binaries that already exist are skipped, so re-running is cheap.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"   # matches the k8s.io/* libraries controller-runtime uses
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT_DIR:-$ROOT/bin/k8s/$K8S_VERSION}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod" GOWORK=off
# The staging modules are published as v0.<minor>.<patch> for k8s v1.<minor>.<patch>.
STAGING_VERSION="v0.${K8S_VERSION#1.}"

log() { printf '[build-k8s] %s\n' "$*" >&2; }
timed() { local start=$SECONDS; "$@"; log "$1 ${*:2}: $((SECONDS - start))s"; }

need() { # need NAME...: true when any of the binaries is missing
  local n; for n in "$@"; do [ -x "$OUT_DIR/$n" ] || return 0; done; return 1
}

build_kubernetes() {
  need kube-apiserver kube-controller-manager kube-scheduler || { log "kubernetes binaries present"; return; }
  local work; work="$(mktemp -d)"; trap 'rm -rf "$work"' RETURN
  cd "$work"
  go mod init xtrace.dev/k8s-build >/dev/null 2>&1
  # k8s.io/kubernetes replaces every staging module with a local path; as a
  # dependency those replaces are ignored, so pin each one to its release.
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
      awk -v v="$STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
  } >>go.mod
  local pkg ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
  for pkg in kube-apiserver kube-controller-manager kube-scheduler; do
    if [ ! -x "$OUT_DIR/$pkg" ]; then
      timed go get "k8s.io/kubernetes/cmd/$pkg@v$K8S_VERSION"
      timed go build -trimpath -ldflags "$ldflags" -o "$OUT_DIR/$pkg" "k8s.io/kubernetes/cmd/$pkg"
    fi
  done
}

build_module_binary() { # build_module_binary NAME MODULE VERSION PACKAGE
  local name="$1" module="$2" version="$3" pkg="$4"
  need "$name" || { log "$name present"; return; }
  local work; work="$(mktemp -d)"; trap 'rm -rf "$work"' RETURN
  cd "$work"
  go mod init "xtrace.dev/$name-build" >/dev/null 2>&1
  timed go get "$module@v$version"
  timed go build -trimpath -ldflags "-s -w" -o "$OUT_DIR/$name" "$pkg"
}

# kwok needs its lifecycle "stages" as configuration; take the upstream "fast"
# node and pod stages from the same kwok release.
write_kwok_stages() {
  [ -s "$OUT_DIR/kwok-stages.yaml" ] && return
  local dir
  dir="$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  local f first=1
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ $first -eq 1 ] || echo "---"
    first=0
    cat "$dir/kustomize/stage/$f"
  done >"$OUT_DIR/kwok-stages.yaml.tmp"
  mv "$OUT_DIR/kwok-stages.yaml.tmp" "$OUT_DIR/kwok-stages.yaml"
}

build_kubernetes
build_module_binary etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
build_module_binary kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
kwok_work="$(mktemp -d)"
(cd "$kwok_work" && write_kwok_stages)
rm -rf "$kwok_work"
log "binaries in $OUT_DIR: $(ls "$OUT_DIR" | tr '\n' ' ')"
