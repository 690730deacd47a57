#!/usr/bin/env bash
# Builds Argo CD's application controller and repo server (one binary, hack/argocd/) from the
# Go module proxy at the version pinned in hack/versions.env, into a cache outside the repo,
# once per machine; installs Debian's redis-server (Argo CD's cache) when it is missing and
# this machine allows it. Prints, one per line:
#   ARGOCD=<the binary>  MODULE=<Argo CD's module: manifests/crds, hack/>  REDIS=<redis-server>
#
#   hack/argocd.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib/debian.sh
source "$here/lib/debian.sh"

# Argo CD's go.mod names Go 1.27: the go command fetches that toolchain from the proxy.
export GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN GOFLAGS=-buildvcs=false CGO_ENABLED=0
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/langmerge
source_dir=$here/argocd

log() { printf 'argocd: %s\n' "$*" >&2; }

if ! grep -q "github.com/argoproj/argo-cd/v3 $ARGOCD_VERSION\$" "$source_dir/go.mod"; then
  log "hack/argocd/go.mod does not require argo-cd/v3 $ARGOCD_VERSION (hack/versions.env):"
  log "set both to one version and run 'go mod tidy' in hack/argocd"
  exit 2
fi

if ! command -v redis-server >/dev/null; then
  if ! can_install_debian_packages; then
    log "redis-server missing and cannot install it here (needs root and apt-get)"
    exit 1
  fi
  log "installing Debian's redis-server package"
  install_debian_packages redis-server
  stop_packaged_service redis-server  # started where an init system runs
fi

digest=$(cat "$source_dir/go.mod" "$source_dir/go.sum" "$source_dir/main.go" | sha256sum | cut -c1-12)
bin_dir=$cache_root/bin/argocd-$ARGOCD_VERSION-$digest
mkdir -p "$bin_dir"
(
  flock 9
  if [ ! -x "$bin_dir/argocd" ]; then
    log "building Argo CD $ARGOCD_VERSION (first time on this machine: about 3 minutes on 2 cores)"
    started=$SECONDS
    (cd "$source_dir" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin_dir/argocd.partial" .) >&2
    mv "$bin_dir/argocd.partial" "$bin_dir/argocd"
    log "built in $((SECONDS - started)) s"
  fi
) 9>"$bin_dir/.build.lock"

module=$(cd "$source_dir" && go list -m -f '{{.Dir}}' "github.com/argoproj/argo-cd/v3")
echo "ARGOCD=$bin_dir/argocd"
echo "MODULE=$module"
echo "REDIS=$(command -v redis-server)"
