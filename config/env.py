"""The only place that reads the environment. Strict: a bad value stops start-up with a clear message."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


class EnvError(RuntimeError):
    pass


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise EnvError(f"Environment variable {name} is required")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise EnvError(f"Environment variable {name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise EnvError(f"Environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise EnvError(f"Environment variable {name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def database_config(url: str) -> dict:
    """Parse a postgres:// or sqlite:/// URL into Django's DATABASES entry."""
    if not (url.startswith("postgres://") or url.startswith("postgresql://") or url.startswith("sqlite:")):
        raise EnvError(f"DATABASE_URL must start with postgres:// or sqlite:/// (got {url.split(':')[0]}:)")
    config = dj_database_url.parse(url, conn_max_age=60 if url.startswith("postgres") else 0)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        name = config["NAME"]
        if name and name != ":memory:" and not os.path.isabs(name):
            config["NAME"] = str(BASE_DIR / name)
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
        # Persistent, like PostgreSQL's: a new SQLite connection per request re-reads the schema (~400
        # tables and indexes), re-prepares every statement and, closing the last connection, checkpoints
        # the WAL. Under gunicorn that was two thirds of an API upsert and a third of the 360 page
        # (docs/benchmarks.md, the eighteenth VM). No server can drop an SQLite connection, so it lives long.
        config["CONN_MAX_AGE"] = SQLITE_CONN_MAX_AGE
    else:
        # JIT off: every query here is short or index-driven, and JIT spent 0.5–1.5 s compiling plans of
        # segment counts that run in a fraction of that (docs/benchmarks.md, retention).
        options = config.setdefault("OPTIONS", {})
        options["options"] = "-c jit=off"
        # Parameters bound on the server, and statements a connection runs again and again (the API's
        # upsert, the token check, the 360 page's reads) prepared after a few uses, so PostgreSQL parses
        # and plans them once per connection instead of on every request: planning the upsert's single
        # statement cost more than running it (docs/benchmarks.md, 2026-12-03 late VM).
        # DATABASE_PREPARED_STATEMENTS=false for a transaction-mode pooler that cannot keep them
        # (PgBouncer before 1.21, or without max_prepared_statements).
        options["server_side_binding"] = True
        options["prepare_threshold"] = PREPARE_THRESHOLD if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
        # A kept connection the server has dropped meanwhile (a restart, a failover, an idle timeout in a pooler)
        # is found by one SELECT 1 before a request's first query and replaced, instead of failing that request.
        config["CONN_HEALTH_CHECKS"] = True
    return config


# Uses of one statement on a connection before it is prepared (psycopg's own default).
PREPARE_THRESHOLD = 5

# Seconds a worker keeps its SQLite connection between requests (see database_config).
SQLITE_CONN_MAX_AGE = 600


DEFAULT_SQLITE_URL = f"sqlite:///{BASE_DIR / 'var' / 'smileloop.sqlite3'}"
