# Debian packages for the set-up scripts (sourced): installed quietly, without recommends,
# where this machine allows it (root with apt-get).

can_install_debian_packages() {
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null
}

install_debian_packages() {  # install_debian_packages PACKAGE...
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

stop_packaged_service() {  # stop_packaged_service NAME: the tests start their own server
  if command -v service >/dev/null; then service "$1" stop >/dev/null 2>&1 || true; fi
}
