#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package when they are missing and
# this machine allows it (root with apt-get). Tests that need them skip locally, fail in CI.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
# shellcheck source=lib/debian.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian.sh"
if ! can_install_debian_packages; then
  echo "prometheus/promtool missing and cannot install them here (needs root and apt-get)" >&2
  exit 0
fi
echo "installing Debian's prometheus package (prometheus, promtool)" >&2
install_debian_packages prometheus
stop_packaged_service prometheus  # started on :9090 where an init system runs
