# Sourced by .ci/run: start a throwaway local PostgreSQL server for the multi-worker `udl tune` test
# and export UDL_TEST_POSTGRES_URL. The server lives in a fresh temp folder on a free port, so a
# second CI run on the same machine never meets it; .ci/run stops it and removes the folder on exit.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]; then
  UDL_PG_DIR="$(mktemp -d /tmp/udl-ci-pg.XXXXXX)"
  UDL_PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$UDL_PG_DIR"
    UDL_PG_AS=(runuser -u postgres --)  # the server refuses to run as root
  else
    UDL_PG_AS=()
  fi
  "${UDL_PG_AS[@]}" "$PG_BIN/initdb" -D "$UDL_PG_DIR/data" -A trust -U udl >/dev/null
  "${UDL_PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$UDL_PG_DIR/data" -l "$UDL_PG_DIR/log" -w \
    -o "-p $UDL_PG_PORT -k $UDL_PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null
  udl_pg_stop() {
    "${UDL_PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$UDL_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$UDL_PG_DIR"
  }
  trap udl_pg_stop EXIT
  "${UDL_PG_AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$UDL_PG_PORT" -U udl udl_test
  export UDL_TEST_POSTGRES_URL="postgresql://udl@127.0.0.1:$UDL_PG_PORT/udl_test"
  echo "PostgreSQL for tests: $UDL_TEST_POSTGRES_URL"
else
  echo "PostgreSQL not available: the postgres tuning test will be skipped"
fi
