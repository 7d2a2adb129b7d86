#!/usr/bin/env bash
# A local multi-process deployment: one daphne process per port in CLUSTER_PORTS
# (default "8001 8002"), all sharing one PostgreSQL database, one Redis and one
# Prometheus multiprocess directory, logging JSON lines. Runs in the foreground;
# Ctrl-C (or SIGTERM) stops every process. See docs/DEPLOYMENT.md.
#
# Settings (environment): CLUSTER_PORTS, HOST, DATABASE_URL (default: database
# "chat" on the local PostgreSQL, created if missing), REDIS_URL, CLUSTER_DIR
# (default var/cluster), LOG_DIR (when set: one log file per process instead of
# the terminal), plus any setting from docs/DEPLOYMENT.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
CLUSTER_PORTS=${CLUSTER_PORTS:-"8001 8002"}
CLUSTER_DIR=${CLUSTER_DIR:-var/cluster}
mkdir -p "$CLUSTER_DIR"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/chat}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export LOG_FORMAT=${LOG_FORMAT:-json}
# Production mode, minus what needs the TLS proxy this local setup does not have.
export DEBUG=${DEBUG:-false}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-localhost,127.0.0.1}
export SECURE_SSL_REDIRECT=${SECURE_SSL_REDIRECT:-false}
export SECURE_PROXY_SSL_HEADER=${SECURE_PROXY_SSL_HEADER:-off}
export SECURE_HSTS_SECONDS=${SECURE_HSTS_SECONDS:-0}
export SESSION_COOKIE_SECURE=${SESSION_COOKIE_SECURE:-false}
export CSRF_COOKIE_SECURE=${CSRF_COOKIE_SECURE:-false}
# Every process must share one SECRET_KEY (sessions, signed values): keep it across restarts.
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$CLUSTER_DIR/secret_key" ] || (umask 077 && "$PY" -c "import secrets; print(secrets.token_urlsafe(50))" >"$CLUSTER_DIR/secret_key")
  SECRET_KEY=$(cat "$CLUSTER_DIR/secret_key")
  export SECRET_KEY
fi
# One metrics directory per deployment, emptied at its start (stale files of old
# pids would otherwise be summed in).
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$CLUSTER_DIR/metrics}
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

# Create the database when missing (connects to the server's "postgres" database).
"$PY" - <<'EOF'
import os

import dj_database_url
import psycopg
from psycopg import sql

db = dj_database_url.parse(os.environ["DATABASE_URL"])
if db["ENGINE"].endswith("postgresql"):
    params = {"host": db["HOST"] or None, "port": db["PORT"] or None, "user": db["USER"] or None, "password": db["PASSWORD"] or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **{k: v for k, v in params.items() if v}) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
            print(f"run-cluster: created database {db['NAME']}")
EOF
"$PY" manage.py migrate --noinput >"$CLUSTER_DIR/migrate.log" 2>&1 || { cat "$CLUSTER_DIR/migrate.log" >&2; exit 1; }
# WhiteNoise serves STATIC_ROOT when DEBUG=false: collect (hashed, compressed) before serving.
"$PY" manage.py collectstatic --noinput >"$CLUSTER_DIR/collectstatic.log" 2>&1 || { cat "$CLUSTER_DIR/collectstatic.log" >&2; exit 1; }

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

for port in $CLUSTER_PORTS; do
  if [ -n "${LOG_DIR:-}" ]; then
    mkdir -p "$LOG_DIR"
    "$PY" -m mysite.serve --bind "$HOST" --port "$port" mysite.asgi:application >>"$LOG_DIR/server-$port.log" 2>&1 &
  else
    "$PY" -m mysite.serve --bind "$HOST" --port "$port" mysite.asgi:application &
  fi
  pids+=("$!")
  echo "run-cluster: process $! serving http://$HOST:$port" >&2
done

# Stop everything as soon as any one process exits, and report its status.
status=0
wait -n "${pids[@]}" || status=$?
echo "run-cluster: a server process exited (status $status); stopping the others" >&2
exit "$status"
