#!/usr/bin/env bash
# A throwaway PostgreSQL server for development and tests (fsync off): scripts/services.sh up|down|status postgres.
# Writes SUANLI_TEST_PG_URL to $SUANLI_SERVICES_DIR/postgres.env.
set -euo pipefail
DIR="$SUANLI_SERVICES_DIR/postgres"
ENV_FILE="$SUANLI_SERVICES_DIR/postgres.env"
PORT="${SUANLI_PG_PORT:-5433}"
bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
running() { [ -n "$(bin_dir)" ] && [ -f "$DIR/data/postmaster.pid" ] && as_pg "$(bin_dir)/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; }
case "$1" in
  up)
    if running; then echo "postgres: already up ($(cat "$ENV_FILE" 2>/dev/null))"; exit 0; fi
    if [ -z "$(bin_dir)" ]; then
      [ "$(id -u)" -eq 0 ] || { echo "postgres: not installed and not root; install Debian's postgresql" >&2; exit 1; }
      echo "postgres: installing Debian's postgresql" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    rm -rf "$DIR"; mkdir -p "$DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
    as_pg "$(bin_dir)/initdb" -D "$DIR/data" -U postgres -A trust --no-sync >/dev/null
    as_pg "$(bin_dir)/pg_ctl" -D "$DIR/data" -w -l "$DIR/log" \
      -o "-k $DIR -p $PORT -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
    echo "SUANLI_TEST_PG_URL=postgresql://postgres@127.0.0.1:$PORT/postgres" > "$ENV_FILE"
    echo "postgres: up on 127.0.0.1:$PORT"
    ;;
  down)
    if running; then as_pg "$(bin_dir)/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null; fi
    rm -f "$ENV_FILE"; echo "postgres: down"
    ;;
  status)
    if running; then echo "postgres: up ($(cat "$ENV_FILE"))"; else echo "postgres: down"; exit 1; fi
    ;;
esac
