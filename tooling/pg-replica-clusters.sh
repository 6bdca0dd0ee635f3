#!/usr/bin/env bash
# A PostgreSQL 15 primary with streaming standbys on this machine, beside the `main` cluster,
# whose settings it never touches. Idempotent: what runs as made is left alone, a stopped
# cluster is started, a missing one is created, and a standby that no longer streams from the
# primary (promoted, diverged, broken) is rebuilt from a fresh base backup.
#
#   tooling/pg-replica-clusters.sh [PRIMARY:PORT STANDBY:PORT ...]
#       (default: cdprepl0:5451 cdprepl1:5452 cdprepl2:5453)
#   tooling/pg-replica-clusters.sh teardown [PRIMARY:PORT STANDBY:PORT ...]
#
# The primary has `synchronous_standby_names = 'ANY 1 (standby names)'` and
# `synchronous_commit = local`: a transaction is asynchronous unless it sets
# `synchronous_commit = remote_apply` (or on/remote_write), and then waits for one standby.
# Each standby connects with its cluster name as application_name, through its own
# replication slot. Prints the URLs, comma-separated, primary first, for
# CDP_REPLICA_TEST_URLS: postgres://postgres@127.0.0.1:PORT/postgres (trust authentication).
# Only the URLs go to stdout; everything else goes to stderr.
set -euo pipefail
version="${PG_VERSION:-15}"
action=up
if [ "${1:-}" = teardown ]; then action=teardown; shift; fi
specs=("$@")
[ "${#specs[@]}" -gt 0 ] || specs=(cdprepl0:5451 cdprepl1:5452 cdprepl2:5453)
[ "${#specs[@]}" -ge 2 ] || { echo "[pg-replicas] need a primary and at least one standby" >&2; exit 2; }

say() { printf '[pg-replicas] %s\n' "$*" >&2; }

names=(); ports=()
for spec in "${specs[@]}"; do
  name="${spec%%:*}"; port="${spec##*:}"
  if [ "$name" = main ]; then say "refusing to manage the main cluster"; exit 2; fi
  case "$name" in *[!a-z0-9_]*|'') say "cluster names are lowercase letters, digits and _: $name"; exit 2;; esac
  names+=("$name"); ports+=("$port")
done

exists() { pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version $1"; }
ready() { pg_isready -q -h 127.0.0.1 -p "$1" 2>/dev/null; }
psql_at() { local port=$1; shift; psql -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"; }
datadir() { pg_lsclusters -h | awk -v v="$version" -v n="$1" '$1==v && $2==n {print $6}'; }

start() { # name port: start a cluster, three tries (an unclean stop may hold the socket lock briefly)
  local name=$1 port=$2
  if ready "$port"; then return; fi
  for attempt in 1 2 3; do
    say "starting $version/$name (try $attempt)"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >&2 || true
    for _ in $(seq 1 40); do
      if ready "$port"; then break; fi
      sleep 0.5
    done
    if ready "$port"; then return; fi
  done
  say "cluster $version/$name did not become ready on port $port"; exit 1
}

if [ "$action" = teardown ]; then
  for name in "${names[@]}"; do
    if exists "$name"; then
      say "dropping $version/$name"
      pg_dropcluster --stop "$version" "$name" >&2 || true
    fi
  done
  exit 0
fi

primary="${names[0]}"; pport="${ports[0]}"
standby_list="$(IFS=,; echo "${names[*]:1}")"
standby_list="${standby_list//,/, }"

write_primary_conf() {
  cat >"/etc/postgresql/$version/$primary/conf.d/cdp-replication.conf" <<CONF
# Written by tooling/pg-replica-clusters.sh
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_keep_size = '256MB'
synchronous_standby_names = 'ANY 1 ($standby_list)'
synchronous_commit = local
CONF
  chown postgres:postgres "/etc/postgresql/$version/$primary/conf.d/cdp-replication.conf"
}

if ! exists "$primary"; then
  say "creating primary $version/$primary on port $pport"
  pg_createcluster "$version" "$primary" --port "$pport" -- --auth=trust >/dev/null 2>&1
  write_primary_conf
fi
start "$primary" "$pport"
if [ "$(psql_at "$pport" -c 'select pg_is_in_recovery()')" != f ]; then
  say "$primary on port $pport is in recovery, not a primary: drop it with '$0 teardown' and run again"
  exit 1
fi
want="ANY 1 ($standby_list)"
if [ "$(psql_at "$pport" -c 'show synchronous_standby_names')" != "$want" ]; then
  write_primary_conf
  psql_at "$pport" -c 'select pg_reload_conf()' >/dev/null
fi

streaming() { # name: the primary has a streaming walsender for this standby
  [ "$(psql_at "$pport" -c "select count(*) from pg_stat_replication where application_name = '$1' and state = 'streaming'")" = 1 ]
}

rebuild() { # name port: a fresh base backup of the primary, streaming through slot NAME
  local name=$1 port=$2 dir
  if ! exists "$name"; then
    say "creating standby $version/$name on port $port"
    pg_createcluster "$version" "$name" --port "$port" -- --auth=trust >/dev/null 2>&1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop -m immediate >/dev/null 2>&1 || true
  dir="$(datadir "$name")"
  [ -n "$dir" ] && [ "$dir" != / ] || { say "no data directory for $name"; exit 1; }
  find "$dir" -mindepth 1 -delete
  psql_at "$pport" -c "select pg_drop_replication_slot('$name') from pg_replication_slots where slot_name = '$name' and not active" >/dev/null
  say "base backup of $primary into $name"
  runuser -u postgres -- pg_basebackup -d "host=127.0.0.1 port=$pport user=postgres application_name=$name" \
    -D "$dir" -R -X stream -C -S "$name" -c fast >&2
  # pg_basebackup -R wrote primary_conninfo; this later line names the standby for
  # synchronous_standby_names and wins.
  echo "primary_conninfo = 'host=127.0.0.1 port=$pport user=postgres application_name=$name'" >>"$dir/postgresql.auto.conf"
  start "$name" "$port"
}

urls=("postgres://postgres@127.0.0.1:$pport/postgres")
for i in $(seq 1 $((${#names[@]} - 1))); do
  name="${names[$i]}"; port="${ports[$i]}"
  if exists "$name"; then
    start "$name" "$port"
    ok=no
    if [ "$(psql_at "$port" -c 'select pg_is_in_recovery()' 2>/dev/null)" = t ]; then
      for _ in $(seq 1 20); do
        if streaming "$name"; then ok=yes; break; fi
        sleep 0.5
      done
    fi
    [ "$ok" = yes ] || { say "$name does not stream from $primary: rebuilding it"; rebuild "$name" "$port"; }
  else
    rebuild "$name" "$port"
  fi
  for _ in $(seq 1 40); do
    if streaming "$name"; then break; fi
    sleep 0.5
  done
  streaming "$name" || { say "$name did not start streaming from $primary"; exit 1; }
  urls+=("postgres://postgres@127.0.0.1:$port/postgres")
done
(IFS=,; echo "${urls[*]}")
