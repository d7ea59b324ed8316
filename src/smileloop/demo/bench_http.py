"""The API served the way production serves it: gunicorn in its own process, driven over HTTP by wrk.

The in-process part of the bench (`bench._bench_api`) goes through `django.test.Client`, which never closes the
database connection between requests, so it cannot see what a real server pays per request (a new SQLite connection
per request cost two thirds of an upsert before anyone measured it: docs/benchmarks.md, the eighteenth VM). Here
the same two endpoints are served by gunicorn (`config.settings.bench`: production settings, plus the bare view)
and loaded by wrk, a C load generator whose own cost per request is small next to either endpoint's, in alternating
rounds. Needs Debian's `wrk` (`make test` installs it) and a database another process can open.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from smileloop.customers.models import Customer
from smileloop.demo.bench import BENCH_SEED
from smileloop.demo.generate import mobile_for, mobile_params

LABEL = "API upsert vs bare JSON view, over HTTP"
TARGET = "≥ 50%"
API_NAME, BARE_NAME = "网络接口", "网络裸视图"
_API_BASE, _BARE_BASE = 80_000_000, 90_000_000
_LINES_PER_SECOND = 4_000  # bodies written per second of a round: more than either endpoint serves on two cores

# One body per request from a file the bench wrote: every upsert a new phone and Idempotency-Key, so nothing is a
# replay and the bare view never meets the unique phone index. `done` reports completed requests, the run's length
# and the non-2xx answers.
_WRK_SCRIPT = r"""
local lines = {}
for line in io.lines(os.getenv("SMILELOOP_WRK_BODIES")) do lines[#lines + 1] = line end
local token = os.getenv("SMILELOOP_WRK_TOKEN") or ""
local path = os.getenv("SMILELOOP_WRK_PATH")
local n = 0
request = function()
  n = n % #lines + 1
  local key, body = lines[n]:match("^(%S+) (.*)$")
  local headers = {["Content-Type"] = "application/json"}
  if token ~= "" then
    headers["Authorization"] = "Bearer " .. token
    headers["Idempotency-Key"] = key
  end
  return wrk.format("POST", path, headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SMILELOOP %d %d %d %d %d\n", summary.requests, summary.duration, e.status,
                         e.connect + e.read + e.write + e.timeout, #lines))
end
"""


def database_url() -> str | None:
    """The URL of the current database for another process, or None when it cannot open it (in-memory SQLite)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(s["NAME"])
        return None if connection.is_in_memory_db() or name.startswith("file:") else f"sqlite:///{name}"
    if connection.vendor == "postgresql":
        auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{quote(s['NAME'], safe='')}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bodies(path: Path, *, chain, name: str, base: int, count: int, keyed: bool) -> None:
    """`count` lines 'key {json}', each a new person: indexes from past what earlier runs wrote, and any phone
    already in the pool left out (so runs with --reuse never clash)."""
    a, b = mobile_params(BENCH_SEED)
    start = base + Customer.objects.filter(chain=chain, name__startswith=name).count()
    mobiles = [mobile_for(start + i, a=a, b=b) for i in range(count)]
    taken = set()
    for i in range(0, len(mobiles), 5_000):
        taken.update(Customer.objects.filter(chain=chain, mobile__in=mobiles[i:i + 5_000])
                     .values_list("mobile", flat=True))
    with path.open("w", encoding="utf-8") as handle:
        for i, mobile in enumerate(mobiles):
            if mobile not in taken:
                key = f"http-{uuid.uuid4().hex}" if keyed else "-"
                handle.write(f'{key} {{"name": "{name}{start + i}", "mobile": "{mobile}"}}\n')


def _wait_until_served(url: str, server: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # answered: the app is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {seconds:.0f} s")


def bench_http(result, chain, token: str, log, *, seconds: float = 6.0, rounds: int = 2) -> None:
    """Add one line to `result`: upserts per second through the served API against the served bare view."""
    wrk = shutil.which("wrk")
    if wrk is None:
        result.add(LABEL, "not measured: wrk is not installed (Debian: apt-get install wrk)", TARGET)
        return
    url = database_url()
    if url is None:
        result.add(LABEL, "not measured: this database cannot be opened by a server process", TARGET)
        return
    # SQLite takes one writer at a time: one process, as README advises; PostgreSQL: a process per core (2 to 4).
    workers = 1 if connection.vendor == "sqlite" else max(2, min(4, os.cpu_count() or 2))
    port = _free_port()
    folder = Path(settings.BASE_DIR) / "var" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "wrk-upsert.lua"
    script.write_text(_WRK_SCRIPT, encoding="utf-8")
    server_log = folder / "gunicorn.log"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.bench"}
    log(f"API over HTTP: gunicorn ({workers} worker{'s' if workers > 1 else ''}) and wrk, {rounds} rounds of "
        f"{seconds:g} s a side …")
    with server_log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--timeout", "60", "--no-control-socket", "--log-level", "warning"],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    totals = {"api": [0, 0.0, 0], "bare": [0, 0.0, 0]}  # requests, seconds, non-2xx answers
    try:
        _wait_until_served(f"http://127.0.0.1:{port}/login/", server)
        count = int(seconds * _LINES_PER_SECOND)
        for r in range(rounds):
            for side in ("api", "bare") if r % 2 == 0 else ("bare", "api"):
                bodies = folder / f"wrk-{side}.txt"
                _bodies(bodies, chain=chain, name=API_NAME if side == "api" else BARE_NAME,
                        base=_API_BASE if side == "api" else _BARE_BASE, count=count, keyed=side == "api")
                run_env = {**os.environ, "SMILELOOP_WRK_BODIES": str(bodies),
                           "SMILELOOP_WRK_TOKEN": token if side == "api" else "",
                           "SMILELOOP_WRK_PATH": "/api/customers/upsert" if side == "api" else "/bench/bare-upsert"}
                done = subprocess.run(
                    [wrk, "-t1", f"-c{2 * workers}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script),
                     f"http://127.0.0.1:{port}"], env=run_env, capture_output=True, text=True, check=True)
                line = next((x for x in done.stdout.splitlines() if x.startswith("SMILELOOP ")), None)
                if line is None:
                    raise RuntimeError(f"wrk printed no summary: {(done.stdout + done.stderr)[-300:]}")
                requests, micros, status_errors, socket_errors, lines = map(int, line.split()[1:])
                if requests + 2 * workers >= lines:
                    raise RuntimeError(f"{requests} requests used up the {lines} bodies written for them")
                totals[side][0] += requests
                totals[side][1] += micros / 1e6
                totals[side][2] += status_errors + socket_errors
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        tail = server_log.read_text(errors="replace")[-300:] if server_log.exists() else ""
        result.add(LABEL, f"failed: {exc} {tail}".strip()[:300], TARGET)
        return
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    api_rate, bare_rate = (totals[s][0] / totals[s][1] for s in ("api", "bare"))
    bad = totals["api"][2] + totals["bare"][2]
    note = f"; {bad} error responses" if bad else ""
    result.add(LABEL, f"{api_rate:,.0f} req/s vs {bare_rate:,.0f} req/s = {api_rate / bare_rate:.1%} (gunicorn, "
                      f"{workers} worker{'s' if workers > 1 else ''}, wrk){note}", TARGET)
