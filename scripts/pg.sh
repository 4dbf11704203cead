#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks: Debian's `postgresql` package
# (installed when missing), a fresh cluster in a temporary directory, listening only on a Unix
# socket in that directory, stopped and deleted by pg_stop. Sourced by test.sh and bench.sh.
#
#   pg_start            starts it; sets PG_URL (postgres://…/postgres over the socket) and
#                       PG_STOP_CMD / PG_START_CMD (commands that stop and start it)
#   pg_createdb NAME    a fresh database on the last one started; prints its URL
#   pg_stop             stops every server pg_start started and removes their directories
#
# Each pg_start starts another server (the outage test stops one of its own).
#
# PostgreSQL refuses to run as root: as root the server runs as the package's `postgres` user.

PG_DIRS=()

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

pg_start() {
  local bin
  if ! bin="$(pg_bin_dir)"; then
    say "installing PostgreSQL (Debian package postgresql)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(pg_bin_dir)" || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
  fi
  PG_DIR="$(mktemp -d /tmp/hero_aibroker_pg.XXXXXX)"
  PG_DIRS+=("$PG_DIR")
  local run=()
  local user
  user="$(id -un)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
    user=postgres
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U "$user" --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  # No TCP at all; fsync off: the cluster is thrown away after the run. In the configuration
  # file, so a plain `pg_ctl start` (the outage test) starts it the same way.
  cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
fsync = off
max_connections = 200
CONF
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; die "PostgreSQL did not start"; }
  PG_BIN="$bin"
  PG_RUN=("${run[@]}")
  PG_USER="$user"
  PG_URL="postgres://$user@localhost/postgres?host=$PG_DIR"
  # Shell commands that stop and start this server (the database-outage test runs them).
  PG_STOP_CMD="${run[*]} $bin/pg_ctl -D $PG_DIR/data -m fast -w -t 60 stop"
  PG_START_CMD="${run[*]} $bin/pg_ctl -D $PG_DIR/data -w -t 60 -l $PG_DIR/server.log start"
  export PG_URL PG_STOP_CMD PG_START_CMD
}

# Creates database NAME (dropping an older one) and prints its URL.
pg_createdb() {
  local name="$1"
  PGOPTIONS="--client-min-messages=warning" "${PG_RUN[@]}" "$PG_BIN/psql" -q -h "$PG_DIR" -U "$PG_USER" -d postgres \
    -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
  echo "postgres://$PG_USER@localhost/$name?host=$PG_DIR"
}

pg_stop() {
  local d
  for d in "${PG_DIRS[@]}"; do
    "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$d"
  done
  PG_DIRS=()
  PG_DIR=""
}
