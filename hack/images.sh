#!/usr/bin/env bash
# Builds the operator, trainer and merger images from their Dockerfiles, as a user would, on a
# base image made here from Debian packages (no container registry is reachable here).
#
#   hack/images.sh            build what changed (buildah's layer cache: seconds when nothing
#                             did), print `RESULT image_size_mb_<name>=N` lines, and prune
#                             the versions the builds superseded
#   hack/images.sh --tools    only install the tools (what hack/controllers.sh needs too)
#
# Images land in the machine's container storage as localhost/langmerge-<name>:dev; the base
# image is keyed by its package list, suite and the machine's extra CA certificates. Needs
# root (apt-get for buildah/podman/runc/mmdebstrap when missing, container storage).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib/debian.sh
source "$here/lib/debian.sh"

log() { printf 'images: %s\n' "$*" >&2; }

ensure_tools() {
  local missing=()
  for tool in buildah podman runc mmdebstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if ! can_install_debian_packages; then
    log "missing ${missing[*]} and cannot install them here (needs root and apt-get)"
    exit 3
  fi
  log "installing Debian's ${missing[*]}"
  install_debian_packages buildah podman runc mmdebstrap uidmap containernetworking-plugins
}

# Python 3.11, pip (to install uv) and passwd (useradd), nothing else. A proxy that signs TLS
# with its own CA (this workplace's) must be trusted inside too: the machine's extra CAs are
# copied in and SSL_CERT_FILE points uv and pip at the bundle.
base_packages=python3,python3-pip,ca-certificates,passwd
extra_cas=/usr/local/share/ca-certificates

base_image() {
  local key
  key=$( { echo "$DEBIAN_SUITE $base_packages"; cat "$extra_cas"/*.crt 2>/dev/null || true; } \
    | sha256sum | cut -c1-12)
  local name=localhost/langmerge-base:$DEBIAN_SUITE-$key
  if ! podman image exists "$name"; then
    log "making $name with mmdebstrap (about 2 minutes)"
    local work
    work=$(mktemp -d)
    local hooks=()
    if compgen -G "$extra_cas/*.crt" >/dev/null; then
      hooks+=(--customize-hook="copy-in $extra_cas /usr/local/share/"
        --customize-hook='chroot "$1" update-ca-certificates')
    fi
    mmdebstrap --quiet --variant=minbase --include="$base_packages" "${hooks[@]}" \
      "$DEBIAN_SUITE" "$work/base.tar" \
      "deb http://deb.debian.org/debian $DEBIAN_SUITE main" \
      "deb http://deb.debian.org/debian $DEBIAN_SUITE-updates main" \
      "deb http://deb.debian.org/debian-security $DEBIAN_SUITE-security main" >&2
    podman import --quiet --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'CMD ["python3"]' "$work/base.tar" "$name" >/dev/null
    rm -rf "$work"
  fi
  echo "$name"
}

ensure_tools
[ "${1:-}" = --tools ] && exit 0
base=$(base_image)
for name in operator trainer merger; do
  log "building localhost/langmerge-$name:dev"
  # chroot isolation and runc: crun refuses this machine's hybrid cgroup layout.
  buildah bud --quiet --isolation chroot --runtime runc --network host --layers \
    --build-arg "BASE_IMAGE=$base" -f "$repo/$name/Dockerfile" \
    -t "localhost/langmerge-$name:dev" "$repo" >/dev/null
  bytes=$(podman image inspect --format '{{.Size}}' "localhost/langmerge-$name:dev")
  echo "RESULT image_size_mb_$name=$((bytes / 1000000))"
done
# The versions these builds superseded (untagged, no image built on them): gigabytes each.
podman image prune --force >/dev/null
