#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1: start them when installed but
# stopped, install them from Debian's packages when absent (as root, or with
# ALLOW_INSTALL=1 and sudo), otherwise fail with a message that says what to do.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
may_install() { [ "$(id -u)" = 0 ] || [ "${ALLOW_INSTALL:-0}" = 1 ]; }

wait_for() {  # wait_for NAME CHECK
  for _ in $(seq 1 30); do "$2" && return 0; sleep 0.5; done
  echo "ensure-services: $1 did not come up on 127.0.0.1" >&2; exit 1
}

if ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    may_install || { echo "ensure-services: PostgreSQL is not installed; run 'apt-get install postgresql' or rerun with ALLOW_INSTALL=1" >&2; exit 1; }
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # Trust local TCP connections, as the test URL carries no password.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  echo "ensure-services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  # The package may have started the cluster before pg_hba.conf was edited: make it re-read the file.
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main reload || true
  wait_for PostgreSQL pg_up
fi

if ! redis_up; then
  if ! command -v redis-server >/dev/null; then
    may_install || { echo "ensure-services: Redis is not installed; run 'apt-get install redis-server' or rerun with ALLOW_INSTALL=1" >&2; exit 1; }
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  # The package's own service may already be running now.
  if ! redis_up; then
    echo "ensure-services: starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  wait_for Redis redis_up
fi
echo "ensure-services: PostgreSQL and Redis are up"
