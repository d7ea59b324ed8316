import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

BENCH_DB = "smileloop_bench"


def _bench_url(url: str, *, reuse: bool) -> str:
    """Create (or reuse) the benchmark's own database next to the one in `url`; return its URL.

    PostgreSQL: a database named smileloop_bench on the same server (nothing else is touched).
    SQLite: var/bench.sqlite3.
    """
    if url.startswith("sqlite"):
        path = Path(settings.BASE_DIR) / "var" / "bench.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    if not url.startswith(("postgres://", "postgresql://")):
        raise CommandError("--database-url must be a postgres:// or sqlite:/// URL")
    import psycopg

    parts = urlsplit(url)
    if parts.path.strip("/") == BENCH_DB:
        raise CommandError(f"point --database-url at another database of the server, not {BENCH_DB}")
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if exists and not reuse:
            conn.execute(f"DROP DATABASE {BENCH_DB} WITH (FORCE)")
        if not exists or not reuse:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


class Command(BaseCommand):
    help = ("Benchmark the foundation in a separate database (PostgreSQL: smileloop_bench on the server of "
            "--database-url; SQLite: var/bench.sqlite3): seed time, import rows/s, search p50/p95, "
            "360 page time, API upsert throughput against a bare Django view.")

    def add_arguments(self, parser):
        parser.add_argument("suite", choices=["foundation", "checkout", "ledger", "retention"])  # checkout, ledger: issue 3 §10; retention: issue 4 §8
        parser.add_argument("--seconds", type=float, default=10.0, help="ledger: seconds per throughput run")
        parser.add_argument("--check-entries", type=int, default=0,
                            help="ledger: synthesise this many entries (PostgreSQL) and time `ledger check`")
        parser.add_argument("--customers", type=int, default=20_000)
        parser.add_argument("--orders-per-customer", type=float, default=10.0)
        parser.add_argument("--clinics", type=int, default=None, help="default: one per 50,000 customers, 3–20")
        parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else SQLite")
        parser.add_argument("--output", default=None, help="Markdown file to write the results section into, "
                                                           "e.g. docs/benchmarks.md")
        parser.add_argument("--reuse", action="store_true",
                            help="keep an already seeded benchmark database and skip the seed")
        parser.add_argument("--import-rows", type=int, default=100_000)
        parser.add_argument("--queries", type=int, default=200)
        parser.add_argument("--pages", type=int, default=100)
        parser.add_argument("--api-requests", type=int, default=500)
        parser.add_argument("--inner", action="store_true", help="(internal) run inside the benchmark database")
        parser.add_argument("--today", default=None, help="retention: reference date YYYY-MM-DD (default today)")
        parser.add_argument("--keyword-messages", type=int, default=200_000, help="retention: messages scanned")
        parser.add_argument("--parts", default="segments,followups,keywords,lifecycle",
                            help="retention: comma-separated parts to run")

    def handle(self, *args, **o):
        if o["suite"] in ("ledger", "checkout"):
            from smileloop.demo.bench import machine_info, machine_line

            self.stdout.write(machine_line(machine_info()))
        if o["suite"] == "ledger":  # the current database: use a scratch one, it writes a bench chain
            from smileloop.ledger.bench import run as ledger_bench

            ledger_bench(seconds=o["seconds"], check_entries=o["check_entries"], out=self.stdout.write)
            return
        if o["suite"] == "checkout":  # checkout benchmark (issue 3 §10): the current database, --queries runs
            from smileloop.checkout.bench import checkout_bench

            checkout_bench(runs=max(o["queries"], 200), log=self.stdout.write)
            return
        if o["suite"] == "retention":  # issue 4 §8: the current database's largest seeded chain
            self._retention(o)
            return
        if o["customers"] < 100:
            raise CommandError("--customers must be ≥ 100")
        clinics = o["clinics"] or min(20, max(3, o["customers"] // 50_000))
        if not o["inner"]:
            url = o["database_url"] or os.environ.get("DATABASE_URL") or "sqlite:///var/bench.sqlite3"
            bench_url = _bench_url(url, reuse=o["reuse"])
            self.stderr.write(f"benchmark database: {bench_url}")
            # Production settings for what is measured: DEBUG's per-query SQL log would tax every statement.
            env = {**os.environ, "DATABASE_URL": bench_url, "DEBUG": "false"}
            run = [sys.executable, "-c", "from smileloop.cli import main; main()"]
            subprocess.run([*run, "migrate", "--noinput", "-v0"], env=env, check=True)
            inner = [*run, "bench", "foundation", "--inner", "--customers", str(o["customers"]),
                     "--orders-per-customer", str(o["orders_per_customer"]), "--clinics", str(clinics),
                     "--import-rows", str(o["import_rows"]), "--queries", str(o["queries"]),
                     "--pages", str(o["pages"]), "--api-requests", str(o["api_requests"])]
            if o["reuse"]:
                inner.append("--reuse")
            if o["output"]:
                inner += ["--output", str(Path(o["output"]).resolve())]
            raise SystemExit(subprocess.run(inner, env=env).returncode)

        from django.db import connection

        from smileloop.demo.bench import render, run, section_write

        result = run(customers=o["customers"], orders_per_customer=o["orders_per_customer"], clinics=clinics,
                     reuse=o["reuse"], import_rows=o["import_rows"], queries=o["queries"], pages=o["pages"],
                     api_requests=o["api_requests"], log=lambda message: self.stderr.write(message))
        text = render(result)
        self.stdout.write(text)
        if o["output"]:
            vendor = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
            section_write(Path(o["output"]), f"foundation-{connection.vendor}-{o['customers']}",
                          f"{vendor}, {o['customers']:,} customers ({result.machine.get('date')})", text)
            self.stderr.write(f"wrote the results into {o['output']}")

    def _retention(self, o) -> None:
        import datetime as dt

        from django.conf import settings
        from django.db import connection

        from smileloop.demo.bench import render, section_write
        from smileloop.demo.retention_bench import run as retention_run

        settings.DEBUG = False  # production settings for what is measured (no per-query SQL log)
        parts = tuple(p.strip() for p in o["parts"].split(",") if p.strip())
        unknown = set(parts) - {"segments", "followups", "keywords", "lifecycle"}
        if unknown:
            raise CommandError(f"--parts: unknown {', '.join(sorted(unknown))}; use segments, followups, keywords, "
                               "lifecycle")
        try:
            today = dt.date.fromisoformat(o["today"]) if o["today"] else None
        except ValueError:
            raise CommandError(f"--today must be YYYY-MM-DD, got {o['today']!r}")
        if o["keyword_messages"] < 1000:
            raise CommandError("--keyword-messages must be ≥ 1000")
        try:
            result = retention_run(today=today, repeat=5, keyword_messages=o["keyword_messages"], parts=parts,
                                   log=lambda message: self.stderr.write(message))
        except RuntimeError as exc:
            raise CommandError(str(exc))
        text = render(result)
        self.stdout.write(text)
        if o["output"]:
            vendor = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
            customers = result.scale.get("customers", 0)
            section_write(Path(o["output"]), f"retention-{connection.vendor}-{customers}",
                          f"Retention, {vendor}, {customers:,} customers ({result.machine.get('date')})", text)
            self.stderr.write(f"wrote the results into {o['output']}")
