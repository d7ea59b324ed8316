"""Helpers for tests that need real concurrency (PostgreSQL row locks), shared by the apps' test suites."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def writers_run(writer: Callable[[int], list[Any]], count: int) -> tuple[list[Any], list[Exception]]:
    """Start `count` threads at the same moment (a barrier), each calling `writer(i)` on its own database
    connection, and wait for all. Returns every outcome the writers returned (flattened) and every exception
    that escaped one (a deadlock, a lost update …), for the test to assert on."""
    barrier = threading.Barrier(count)
    outcomes: list[Any] = []
    errors: list[Exception] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            outcomes.extend(writer(i))
        except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts there were none
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, errors
