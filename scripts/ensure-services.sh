#!/usr/bin/env bash
# Installs the real services the integration tests start on 127.0.0.1 (Debian packages):
# redis-server for shared rate limits, postgresql for the usage store, haproxy for the scale-out test.
# The tests start and stop their own instances.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)  # usage store tests (initdb, pg_ctl)
command -v haproxy >/dev/null 2>&1 || command -v /usr/sbin/haproxy >/dev/null 2>&1 || missing+=(haproxy)  # replicas behind a balancer
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)  # dashboard test (headless, Debian's package)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-services: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package may start a system instance; the tests use their own on ephemeral ports.
command -v service >/dev/null 2>&1 && service redis-server stop >/dev/null 2>&1 || true
command -v service >/dev/null 2>&1 && service postgresql stop >/dev/null 2>&1 || true
command -v service >/dev/null 2>&1 && service haproxy stop >/dev/null 2>&1 || true
