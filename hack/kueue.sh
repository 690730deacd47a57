#!/usr/bin/env bash
# Builds Kueue's controller from the Go module proxy at KUEUE_VERSION (hack/versions.env)
# into a cache outside the repo, once per machine, and makes its image: the static binary
# alone (FROM scratch) as localhost/langmerge-kueue:dev. Prints `KUEUE_CHART=<folder>`: the
# Helm chart of the same module, which deploys it (CRDs, RBAC, webhooks, certificates).
# Needs root (container storage) and buildah (hack/images.sh installs it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/langmerge
bin_dir=$cache_root/bin/kueue-$KUEUE_VERSION
image=localhost/langmerge-kueue:dev

log() { printf 'kueue: %s\n' "$*" >&2; }

module=$(go mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
mkdir -p "$bin_dir"
exec 9>"$bin_dir/.build.lock"
flock 9
if [ ! -x "$bin_dir/manager" ]; then
  log "building kueue $KUEUE_VERSION (first time on this machine: about 3 minutes)"
  work=$(mktemp -d)
  # The module's own go.mod and go.sum pin its dependencies; the module cache is read-only.
  cp -r "$module/." "$work" && chmod -R u+w "$work"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/manager" ./cmd/kueue) >&2
  rm -rf "$work"
fi
# Rebuilt when the binary changed (a label carries its digest).
digest=$(sha256sum "$bin_dir/manager" | cut -c1-16)
if [ "$(podman image inspect --format '{{index .Labels "langmerge.binary"}}' "$image" 2>/dev/null)" != "$digest" ]; then
  log "making $image"
  container=$(buildah from scratch)
  buildah copy --quiet "$container" "$bin_dir/manager" /manager >/dev/null
  buildah config --entrypoint '["/manager"]' --user 65532:65532 \
    --label "langmerge.binary=$digest" "$container"
  buildah commit --quiet --rm "$container" "$image" >/dev/null
fi
echo "KUEUE_CHART=$module/charts/kueue"
