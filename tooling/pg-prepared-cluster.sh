#!/usr/bin/env bash
# A PostgreSQL 15 cluster that allows prepared transactions (two-phase commit), beside the
# machine's `main` cluster, whose settings it never touches. Idempotent: a running cluster with
# the setting is left alone; a stopped one is started; one with another setting is reconfigured
# and restarted (max_prepared_transactions takes effect only at server start).
#
#   tooling/pg-prepared-cluster.sh [NAME] [PORT] [MAX_PREPARED]   (defaults: cdp2pc 5433 64)
#
# Prints the URL to use: postgres://postgres@127.0.0.1:PORT/postgres (trust authentication).
set -euo pipefail
name="${1:-cdp2pc}"
port="${2:-5433}"
max_prepared="${3:-64}"
version="${PG_VERSION:-15}"

say() { printf '[pg-prepared] %s\n' "$*" >&2; }

if [ "$name" = main ]; then
  say "refusing to configure the main cluster"; exit 2
fi

ready() { pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; }

current_setting() {
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'SHOW max_prepared_transactions' 2>/dev/null || true
}

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version $name"; then
  say "creating cluster $version/$name on port $port"
  pg_createcluster "$version" "$name" --port "$port" -- --auth=trust >/dev/null
fi

conf_value="$(pg_conftool "$version" "$name" show -s max_prepared_transactions 2>/dev/null || true)"
if [ "$conf_value" != "$max_prepared" ]; then
  pg_conftool "$version" "$name" set max_prepared_transactions "$max_prepared" >&2
fi

status="$(pg_lsclusters -h | awk -v v="$version" -v n="$name" '$1==v && $2==n {print $4}')"
if [ "$status" = online ] && ready && [ "$(current_setting)" = "$max_prepared" ]; then
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  exit 0
fi

if [ "$status" = online ]; then
  say "restarting $version/$name to apply max_prepared_transactions=$max_prepared"
  pg_ctlcluster --skip-systemctl-redirect "$version" "$name" restart >&2
else
  # Up to three tries: right after an unclean stop the old server's processes may still
  # hold the socket lock for a moment, and the first start fails on it.
  for attempt in 1 2 3; do
    say "starting $version/$name (try $attempt)"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >&2 || true
    for _ in $(seq 1 40); do
      if ready; then break; fi
      sleep 0.5
    done
    if ready; then break; fi
  done
fi
for _ in $(seq 1 120); do
  if ready; then break; fi
  sleep 0.5
done
ready || { say "cluster $version/$name did not become ready on port $port"; exit 1; }
if [ "$(current_setting)" != "$max_prepared" ]; then
  say "max_prepared_transactions is $(current_setting), expected $max_prepared"; exit 1
fi
echo "postgres://postgres@127.0.0.1:$port/postgres"
