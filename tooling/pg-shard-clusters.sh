#!/usr/bin/env bash
# PostgreSQL 15 clusters that serve as separate shard servers, beside the machine's `main`
# cluster, whose settings they never touch. Idempotent: a running cluster is left alone, a
# stopped one is started, a missing one is created.
#
#   tooling/pg-shard-clusters.sh [NAME:PORT ...]   (default: cdpshard1:5441 cdpshard2:5442)
#
# Prints the URLs, comma-separated, for CDP_SHARD_TEST_URLS:
# postgres://postgres@127.0.0.1:PORT/postgres (trust authentication). Only the URLs go to
# stdout: what pg_createcluster and pg_ctlcluster print goes to stderr, so a warning such as
# a stale pid file never ends up inside the URL list.
set -euo pipefail
version="${PG_VERSION:-15}"
specs=("$@")
[ "${#specs[@]}" -gt 0 ] || specs=(cdpshard1:5441 cdpshard2:5442)

say() { printf '[pg-shards] %s\n' "$*" >&2; }

urls=()
for spec in "${specs[@]}"; do
  name="${spec%%:*}"
  port="${spec##*:}"
  if [ "$name" = main ]; then
    say "refusing to manage the main cluster"; exit 2
  fi
  ready() { pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; }
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version $name"; then
    say "creating cluster $version/$name on port $port"
    pg_createcluster "$version" "$name" --port "$port" -- --auth=trust >/dev/null
  fi
  status="$(pg_lsclusters -h | awk -v v="$version" -v n="$name" '$1==v && $2==n {print $4}')"
  if [ "$status" != online ] || ! ready; then
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
    ready || { say "cluster $version/$name did not become ready on port $port"; exit 1; }
  fi
  urls+=("postgres://postgres@127.0.0.1:$port/postgres")
done
(IFS=,; echo "${urls[*]}")
