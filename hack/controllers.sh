#!/usr/bin/env bash
# Builds controllers the e2e cluster runs beside langmerge from the Go module proxy, at the
# versions pinned in hack/versions.env, into a cache outside the repo (once per machine), and
# makes each one's image: the static binary alone (FROM scratch), localhost/langmerge-NAME:dev.
# For each NAME with a Helm chart in its module, prints `CHART=<folder>` (one line per NAME,
# in order; `-` for none).
#
#   hack/controllers.sh kueue | jobset | kubeflow-trainer | coredns ...
#
# Needs root (container storage) and buildah (hack/images.sh installs it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/langmerge

log() { printf 'controllers: %s\n' "$*" >&2; }

# NAME -> module@version, main package, chart folder in the module, binary path in the image
spec() {
  case $1 in
    kueue) echo "sigs.k8s.io/kueue@$KUEUE_VERSION ./cmd/kueue charts/kueue /manager" ;;
    jobset) echo "sigs.k8s.io/jobset@$JOBSET_VERSION . charts/jobset /manager" ;;
    kubeflow-trainer) echo "github.com/kubeflow/trainer/v2@$KUBEFLOW_TRAINER_VERSION ./cmd/trainer-controller-manager charts/kubeflow-trainer /manager" ;;
    coredns) echo "github.com/coredns/coredns@$COREDNS_VERSION . - /coredns" ;;
    *) log "unknown controller $1 (kueue, jobset, kubeflow-trainer, coredns)"; exit 2 ;;
  esac
}

module_dir() {
  go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'
}

build() {
  local name=$1 module package chart binary
  read -r module package chart binary <<< "$(spec "$name")"
  local bin_dir=$cache_root/bin/$name-${module##*@}
  mkdir -p "$bin_dir"
  local source
  source=$(module_dir "$module")
  (
    flock 9
    if [ ! -x "$bin_dir/manager" ]; then
      log "building $module (first time on this machine: a few minutes)"
      local work
      work=$(mktemp -d)
      # The module's own go.mod and go.sum pin its dependencies; the module cache is read-only.
      cp -r "$source/." "$work" && chmod -R u+w "$work"
      (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/manager" "$package") >&2
      rm -rf "$work"
    fi
  ) 9>"$bin_dir/.build.lock"
  # The image is remade when the binary changed (a label carries its digest).
  local image=localhost/langmerge-$name:dev digest
  digest=$(sha256sum "$bin_dir/manager" | cut -c1-16)
  if [ "$(podman image inspect --format '{{index .Labels "langmerge.binary"}}' "$image" 2>/dev/null)" != "$digest" ]; then
    log "making $image"
    local container
    container=$(buildah from scratch)
    buildah copy --quiet "$container" "$bin_dir/manager" "$binary" >/dev/null
    buildah config --entrypoint "[\"$binary\"]" --user 65532:65532 \
      --label "langmerge.binary=$digest" "$container"
    buildah commit --quiet --rm "$container" "$image" >/dev/null
  fi
  if [ "$chart" = - ]; then
    echo "CHART=-"
  elif [ "$name" = kubeflow-trainer ]; then
    # Its chart names JobSet's chart as a dependency from a registry unreachable here: the
    # same chart, from the JobSet module, goes into its charts/ folder (installed or not).
    local prepared=$cache_root/charts/kubeflow-trainer-${module##*@}
    if [ ! -d "$prepared/charts/jobset" ]; then
      rm -rf "$prepared" && mkdir -p "$(dirname "$prepared")"
      cp -r "$source/$chart" "$prepared" && chmod -R u+w "$prepared"
      mkdir -p "$prepared/charts"
      cp -r "$(module_dir "sigs.k8s.io/jobset@$JOBSET_VERSION")/charts/jobset" "$prepared/charts/jobset"
      chmod -R u+w "$prepared/charts"
    fi
    echo "CHART=$prepared"
  else
    echo "CHART=$source/$chart"
  fi
}

for name in "$@"; do build "$name"; done
