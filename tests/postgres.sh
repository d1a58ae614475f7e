#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests: its data under .cache/postgres (ignored), a
# loopback port, trust authentication on loopback only. Run as root (as CI does), the
# server runs as an unprivileged user, since initdb refuses root.
#
#   tests/postgres.sh start   installs Debian's postgresql when missing, starts the
#                             cluster, prints the URL to give RESEAL_TEST_POSTGRES
#   tests/postgres.sh stop    stops it
set -euo pipefail
cd "$(dirname "$0")/.."

data=.cache/postgres/data
log=.cache/postgres/server.log
port_file=.cache/postgres/port
user=reseal-pg

bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_server() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

case "${1:-}" in
start)
    if [ -z "$(bin_dir)" ]; then
        echo "== installing postgresql (Debian)" >&2
        apt-get update -qq && apt-get install -y -qq postgresql > /dev/null
    fi
    bin=$(bin_dir)
    mkdir -p .cache/postgres
    if [ "$(id -u)" = 0 ]; then
        id -u "$user" > /dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
        chown "$user" .cache/postgres
        # The server needs to reach its folder through the checkout.
        chmod o+x . .cache
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_server "$bin/initdb" -D "$data" -U reseal --auth=trust --no-sync > /dev/null
    fi
    if [ -f "$port_file" ] && as_server "$bin/pg_ctl" -D "$data" status > /dev/null 2>&1; then
        port=$(cat "$port_file")
    else
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        # Durability is not what the tests check: fsync off keeps them fast. Enough
        # connections for every test binary's workers at once.
        as_server "$bin/pg_ctl" -D "$data" -l "$log" -w -o \
            "-h 127.0.0.1 -p $port -k '' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            start > /dev/null
        echo "$port" > "$port_file"
    fi
    echo "postgres://reseal@127.0.0.1:$port/postgres"
    ;;
stop)
    bin=$(bin_dir)
    if [ -n "$bin" ] && [ -f "$data/PG_VERSION" ]; then
        as_server "$bin/pg_ctl" -D "$data" -m fast stop > /dev/null 2>&1 || true
    fi
    rm -f "$port_file"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
