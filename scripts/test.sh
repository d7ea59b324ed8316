#!/usr/bin/env bash
# The whole suite: lint, migrations check, pytest on SQLite and, at the same time, again on PostgreSQL when one is
# reachable (TEST_DATABASE_URL, or the local server at 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "== ruff"; $BIN/ruff check src config tests conftest.py
echo "== import boundaries"; $BIN/lint-imports
echo "== migrations are current"; DJANGO_SETTINGS_MODULE=config.settings.test $BIN/smileloop makemigrations --check --dry-run >/dev/null

pg_url="${TEST_DATABASE_URL:-}"
if [ -z "$pg_url" ] && $BIN/python - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 5432))
except OSError:
    sys.exit(1)
PY
then
  pg_url="postgres://postgres@127.0.0.1:5432/postgres"
fi

sqlite_run() { env -u TEST_DATABASE_URL $BIN/pytest -q --durations=15 "$@"; }
postgres_run() { TEST_DATABASE_URL="$pg_url" $BIN/pytest -q --durations=15 "$@"; }

if [ -z "$pg_url" ]; then
  echo "== pytest on SQLite"
  sqlite_run "$@"
  echo "== PostgreSQL not reachable: skipped the PostgreSQL run"
elif [ "${SMILELOOP_TEST_SERIAL:-}" = "1" ]; then
  echo "== pytest on SQLite"
  sqlite_run "$@"
  echo "== pytest on PostgreSQL ($pg_url)"
  postgres_run "$@"
else
  # The two runs at once: each is one pytest process, and the PostgreSQL one leaves half its time to the server, so
  # together they keep two cores busy and take about as long as the PostgreSQL run alone (the suite's 90-minute
  # budget). SMILELOOP_TEST_SERIAL=1 runs them one after the other.
  log=$(mktemp "${TMPDIR:-/tmp}/smileloop-sqlite-run.XXXXXX")
  echo "== pytest on SQLite (in the background, its output after the PostgreSQL run's) and on PostgreSQL ($pg_url)"
  sqlite_run "$@" >"$log" 2>&1 &
  sqlite_pid=$!
  postgres_status=0
  postgres_run "$@" || postgres_status=$?
  sqlite_status=0
  wait "$sqlite_pid" || sqlite_status=$?
  echo "== pytest on SQLite (exit $sqlite_status)"
  cat "$log"
  rm -f "$log"
  echo "== PostgreSQL run exit $postgres_status, SQLite run exit $sqlite_status"
  [ "$postgres_status" -eq 0 ] && [ "$sqlite_status" -eq 0 ]
fi
