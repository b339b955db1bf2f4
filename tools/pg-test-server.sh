#!/usr/bin/env bash
# A throwaway PostgreSQL 15 + PostGIS 3 server for the tests and the PostGIS oracle, on
# 127.0.0.1 only, trusting local connections, in a directory of its own.
#
#   tools/pg-test-server.sh start [DIR]   initdb (first time), start, create database `yizhangtu`
#                                         with PostGIS; prints the connection URL on stdout
#   tools/pg-test-server.sh url [DIR]     prints the connection URL of a running server
#   tools/pg-test-server.sh stop [DIR]    stops it (the data stay in DIR until you delete it)
#
# DIR defaults to target/pg-test; the port to 54329 (PGTEST_PORT overrides; `start` remembers it
# in DIR for `url` and `stop`). initdb refuses to
# run as root, so as root the cluster belongs to the `postgres` OS user (Debian's packages create
# it) and the commands run as that user. Needs Debian's `postgresql-15` and
# `postgresql-15-postgis-3` (`.ci/run` installs them).
set -euo pipefail

cmd=${1:-}
dir=${2:-target/pg-test}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
db=yizhangtu

die() { echo "pg-test-server: $*" >&2; exit 1; }
[ -x "$bin/initdb" ] || die "no PostgreSQL 15 in $bin: apt-get install postgresql-15 postgresql-15-postgis-3"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -n "${PGTEST_PORT:-}" ]; then
  port=$PGTEST_PORT
elif [ "$cmd" != start ] && [ -f "$dir/port" ]; then
  port=$(cat "$dir/port")
else
  port=54329
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
url="postgres://postgres@127.0.0.1:$port/$db"

case "$cmd" in
  start)
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || die "no postgres OS user (install postgresql-15)"
      chown postgres "$dir"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    echo "$port" >"$dir/port"
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/data -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$dir/server.log" >&2; die "the server did not start"; }
    fi
    export PGOPTIONS="-c client_min_messages=warning"
    psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
    if ! "${psql[@]}" -d postgres -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
      "${psql[@]}" -d postgres -c "create database $db"
    fi
    "${psql[@]}" -d "$db" -c "create extension if not exists postgis" \
      || die "PostGIS is not available: apt-get install postgresql-15-postgis-3"
    echo "$url"
    ;;
  url)
    as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || die "not running (start it first)"
    echo "$url"
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
