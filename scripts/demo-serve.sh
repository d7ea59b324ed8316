#!/usr/bin/env bash
# `make demo`'s last step: the background-job worker beside the web server. The worker runs in the
# background and is stopped when the server stops (Ctrl-C, an error, or the shell closing).
# The server is gunicorn, as in production, not runserver: runserver closes the database connection after
# every request, and a new SQLite connection per request made every page a third slower
# (docs/benchmarks.md, the eighteenth VM). One process (SQLite has one writer) with threads for parallel reads.
set -euo pipefail
BIN="${BIN:-.venv/bin}"
ADDR="${1:-127.0.0.1:8000}"
mkdir -p var
# Links patients open (survey invitations in follow-up scripts) point at this server unless told otherwise.
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://$ADDR}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.dev}"
# DEBUG off, as production runs: the product's own 404/403/500 pages rather than Django's debug pages, and no
# per-query SQL log. Static files come from var/static/ (collectstatic) through WhiteNoise. DEBUG=true to debug.
export DEBUG="${DEBUG:-false}"
"$BIN/smileloop" worker >var/worker.log 2>&1 &
WORKER=$!
stop_worker() {
    # SIGTERM: Huey stops at once (a background job ignores SIGINT here); jobs are idempotent, so one cut
    # short simply runs again on its next schedule.
    if kill -0 "$WORKER" 2>/dev/null; then
        kill -TERM "$WORKER" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$WORKER" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$WORKER" 2>/dev/null || true
    fi
}
trap stop_worker EXIT INT TERM
echo "worker started (pid $WORKER, log var/worker.log)"
# --timeout: a large spreadsheet's check runs in the worker, but a slow machine's first page can take a while.
"$BIN/gunicorn" config.wsgi:application --bind "$ADDR" --worker-class gthread --workers 1 --threads 8 \
    --timeout 120 --no-control-socket --access-logfile - --access-logformat '%(t)s "%(r)s" %(s)s %(M)sms'

