#!/usr/bin/env bash
# Extra Redis servers that serve as the nodes of the quorum store, beside the machine's Redis
# on 6379, which they never touch. Each listens on its own loopback port, keeps its data in
# /var/lib/redis-quorum/<port> and is durable: appendonly yes with appendfsync always, so a
# node killed with SIGKILL and restarted still holds every write it acknowledged.
# Idempotent: a running node is left alone, a missing one is started.
#
#   tooling/redis-quorum-nodes.sh [start] [PORT ...]   (default ports 6391 to 6395)
#   tooling/redis-quorum-nodes.sh stop [PORT ...]
#
# start prints the URLs, comma-separated, for CDP_QUORUM_TEST_URLS (redis://127.0.0.1:PORT).
# Only the URLs go to stdout; everything else goes to stderr.
set -euo pipefail
cmd=start
case "${1:-}" in
  start | stop) cmd=$1; shift ;;
esac
ports=("$@")
[ "${#ports[@]}" -gt 0 ] || ports=(6391 6392 6393 6394 6395)
base="${REDIS_QUORUM_DIR:-/var/lib/redis-quorum}"

say() { printf '[redis-quorum] %s\n' "$*" >&2; }
ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

urls=()
for port in "${ports[@]}"; do
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" = 6379 ]; then
    say "refusing port $port (a number other than the main Redis's 6379)"; exit 2
  fi
  dir="$base/$port"
  if [ "$cmd" = stop ]; then
    if ping "$port"; then
      say "stopping the node on $port"
      redis-cli -h 127.0.0.1 -p "$port" shutdown >&2 2>&1 || true
    fi
    continue
  fi
  if ! ping "$port"; then
    mkdir -p "$dir"
    say "starting a node on $port (data in $dir)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
      --appendonly yes --appendfsync always --save "" \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
    for _ in $(seq 1 40); do
      if ping "$port"; then break; fi
      sleep 0.25
    done
    ping "$port" || { say "the node on $port did not answer; see $dir/redis.log"; exit 1; }
  fi
  urls+=("redis://127.0.0.1:$port")
done
if [ "$cmd" = start ]; then (IFS=,; echo "${urls[*]}"); fi
