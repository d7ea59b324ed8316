#!/usr/bin/env bash
# The whole suite: lint, migrations check, pytest on SQLite, then again on PostgreSQL when one is
# reachable (TEST_DATABASE_URL, or the local server at 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "== ruff"; $BIN/ruff check src config tests conftest.py
echo "== import boundaries"; $BIN/lint-imports
echo "== migrations are current"; DJANGO_SETTINGS_MODULE=config.settings.test $BIN/smileloop makemigrations --check --dry-run >/dev/null

echo "== pytest on SQLite"
$BIN/pytest -q --durations=15 "$@"

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
if [ -n "$pg_url" ]; then
  echo "== pytest on PostgreSQL ($pg_url)"
  TEST_DATABASE_URL="$pg_url" $BIN/pytest -q --durations=15 "$@"
else
  echo "== PostgreSQL not reachable: skipped the PostgreSQL run"
fi
