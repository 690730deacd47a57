#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package when they are missing and
# this machine allows it (root with apt-get). Tests that need them skip locally, fail in CI.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "prometheus/promtool missing and cannot install them here (needs root and apt-get)" >&2
  exit 0
fi
echo "installing Debian's prometheus package (prometheus, promtool)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a server on :9090 where an init system runs; the tests start their own.
if command -v service >/dev/null; then service prometheus stop >/dev/null 2>&1 || true; fi
