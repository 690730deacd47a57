#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, etcd and helm from the Go module proxy at the versions
# pinned in hack/versions.env, into a cache outside the repo, once per machine.
# Prints the folder holding the binaries on stdout (all progress goes to stderr).
#
#   hack/control-plane.sh         kube-apiserver, kubectl, etcd, helm
#   hack/control-plane.sh node    also kube-controller-manager, kube-scheduler, kubelet and
#                                 kube-proxy (the single-node cluster of tests/e2e)
#
# If KUBEBUILDER_ASSETS names a folder with kube-apiserver, etcd or kubectl (envtest's
# convention), those are used from there (tests/support/control_plane.py) and not built.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/langmerge
bin_dir=$cache_root/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION
mkdir -p "$bin_dir"

log() { printf 'control-plane: %s\n' "$*" >&2; }

have() { [ -x "$bin_dir/$1" ]; }

# A throwaway module per tool: k8s.io/kubernetes pins its staging modules as v0.0.0 and
# replaces them with local paths, so a consumer must replace each with its published v0.N.P.
# build_kubernetes CMD...: builds k8s.io/kubernetes/cmd/CMD for each CMD given.
build_kubernetes() {
  local commands=("$@")
  local work minor staging
  work=$(mktemp -d)
  minor=${KUBERNETES_VERSION#v1.}
  staging=v0.$minor
  (
    cd "$work"
    go mod init langmerge.local/kubernetes-tools >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    local replaces=()
    while read -r mod; do
      replaces+=("-replace=$mod=$mod@$staging")
    done < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
    go mod edit "-require=k8s.io/kubernetes@$KUBERNETES_VERSION" "${replaces[@]}"
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${commands[@]}"
      printf ')\n'
    } > tools.go
    go mod tidy >&2
    local v=k8s.io/component-base/version
    local ldflags="-s -w -X $v.gitVersion=$KUBERNETES_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*} -X $v.gitTreeState=clean"
    local vc=k8s.io/client-go/pkg/version
    ldflags+=" -X $vc.gitVersion=$KUBERNETES_VERSION -X $vc.gitMajor=1 -X $vc.gitMinor=${minor%%.*}"
    go build -trimpath -ldflags "$ldflags" -o "$bin_dir/" "${commands[@]/#/k8s.io/kubernetes/cmd/}"
  )
  rm -rf "$work"
}

build_etcd() {
  local work
  work=$(mktemp -d)
  (
    cd "$work"
    go mod init langmerge.local/etcd-tools >/dev/null 2>&1
    go mod edit "-require=go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
    go mod tidy >&2
    go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$work"
}

build_helm() {
  local work
  work=$(mktemp -d)
  (
    cd "$work"
    go mod init langmerge.local/helm-tools >/dev/null 2>&1
    go mod edit "-require=helm.sh/helm/v3@$HELM_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' > tools.go
    go mod tidy >&2
    # As helm's own Makefile: the default Kubernetes version of `helm template` (without
    # --kube-version) is the client-go helm was built with, not v1.20.
    local client_go minor
    client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)
    minor=$(echo "$client_go" | cut -d. -f2)
    local chartutil=helm.sh/helm/v3/pkg/chartutil
    go build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X $chartutil.k8sVersionMajor=1 -X $chartutil.k8sVersionMinor=$minor" \
      -o "$bin_dir/helm" helm.sh/helm/v3/cmd/helm
  )
  rm -rf "$work"
  touch "$bin_dir/.helm-kube-version"
}

# envtest's convention: tools found in KUBEBUILDER_ASSETS are not built.
in_assets() { [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$1" ]; }
needed() { ! have "$1" && ! in_assets "$1"; }

# Two test runs starting at once must not build into the same folder together.
exec 9>"$cache_root/.build.lock"
flock 9

if needed kube-apiserver || needed kubectl; then
  log "building kube-apiserver and kubectl $KUBERNETES_VERSION (first time on this machine: about 5 minutes)"
  build_kubernetes kube-apiserver kubectl
fi
node_parts=(kube-controller-manager kube-scheduler kubelet kube-proxy)
if [ "${1:-}" = node ]; then
  missing=()
  for part in "${node_parts[@]}"; do have "$part" || missing+=("$part"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "building ${missing[*]} $KUBERNETES_VERSION (about a minute each)"
    build_kubernetes "${missing[@]}"
  fi
fi
if needed etcd; then
  log "building etcd $ETCD_VERSION"
  build_etcd
fi
if ! have helm || [ ! -e "$bin_dir/.helm-kube-version" ]; then
  log "building helm $HELM_VERSION"
  build_helm
fi
echo "$bin_dir"
