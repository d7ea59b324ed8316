"""Helpers for tests that need real concurrency (PostgreSQL row locks), shared by the apps' test suites."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction

# A module of concurrent writers: skipped before any fixture runs on SQLite (one writer), where a skip from an autouse
# fixture came after each test's transactional database set-up and flush.
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql",
                                     reason="row locks and concurrent writers are exercised on PostgreSQL only")


def paused(func: Callable, reached: threading.Event, *, hold: float = 1.0,
           when: Callable[[Any], bool] | None = None, before: bool = False) -> Callable:
    """A stand-in for `func` (monkeypatched where a write calls it) that runs it, then, the first time (and only when
    `when(result)` holds, if given), sets `reached` and keeps the caller's transaction open `hold` seconds: the moment
    another connection's write lands (see `race`). With `before`, the pause comes before the first call instead: the
    other write lands between what the caller did so far and `func`."""

    def wrapper(*args, **kwargs):
        if before and not reached.is_set():
            reached.set()
            time.sleep(hold)
            return func(*args, **kwargs)
        result = func(*args, **kwargs)
        if not reached.is_set() and (when is None or when(result)):
            reached.set()
            time.sleep(hold)
        return result

    return wrapper


def held(write: Callable[[], Any], reached: threading.Event, *, hold: float = 1.0) -> Callable[[], Any]:
    """`write()` in a transaction kept open `hold` seconds after it returned, as a request's would be until its
    commit: `race`'s other side lands there (the pause `paused` gives inside a write, put after its end)."""

    def run():
        with transaction.atomic():
            result = write()
            reached.set()
            time.sleep(hold)
        return result

    return run


def race(first: Callable[[], Any], then: Callable[[], Any], reached: threading.Event, *,
         atomic: bool = True) -> dict:
    """`first()` on one connection; `then()` on another once `first` has reached its pause (`paused`), in a
    transaction of its own unless `atomic` is False. Returns what each returned or raised, under the keys "first",
    "first_error", "then" and "then_error", for the test to assert on (a deadlock is an OperationalError)."""
    out: dict = {}

    def one():
        try:
            out["first"] = first()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out["first_error"] = exc
            reached.set()
        finally:
            connections.close_all()

    def two():
        try:
            assert reached.wait(20)
            time.sleep(0.1)
            if atomic:
                with transaction.atomic():
                    out["then"] = then()
            else:
                out["then"] = then()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out["then_error"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one), threading.Thread(target=two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return out


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


# --- a real browser: Debian's Chromium driven by Playwright (never a downloaded browser) -------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_marks() -> list:
    """A browser test module's `pytestmark`: marked `browser`, and skipped where Debian's Chromium is missing."""
    import pytest

    return [pytest.mark.browser,
            pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at /usr/bin/chromium "
                                                             "(run `make test-packages`)")]


@contextmanager
def chromium_page(*, locale: str = "en-US", width: int = 1366, height: int = 900, phone: bool = False) -> Iterator:
    """A fresh page of a headless Chromium (a touch screen when `phone`); closed, with the ORM connection Playwright's
    thread used, on exit. Tests skip themselves when Chromium (`browser_marks`) or Playwright (`importorskip`) is missing."""
    with chromium_browser() as browser:
        context = browser.new_context(locale=locale, viewport={"width": width, "height": height}, is_mobile=phone,
                                      has_touch=phone)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()


@contextmanager
def chromium_browser() -> Iterator:
    """Debian's headless Chromium through Playwright's sync API, for tests that open several contexts. On exit the
    browser is closed, and so is the ORM connection used while Playwright's event loop was active (fixtures,
    assertions): left open, the test database could not be dropped at the end of the run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


@contextmanager
def context_page(browser, watcher, *, locale: str, phone: bool = False, width: int = 1366, height: int = 900) -> Iterator:
    """A page in a new context of an open `browser` (several per test: a desk and a phone), watched by `watcher`
    (`JsErrors` or the like); a phone is iPhone-sized and touch. The context is closed on exit."""
    options = (dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
               if phone else dict(viewport={"width": width, "height": height}))
    context = browser.new_context(locale=locale, **options)
    page = watcher.watch(context.new_page())
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


FACTORY_PASSWORD = "pass-1234"  # clinics.tests.factories.StaffFactory's


def browser_log_in(page, live_server, username: str, password: str = FACTORY_PASSWORD) -> None:
    """Log `page` in through the login form, as staff do, and wait until it has left the login page."""
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click(".auth-card button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


class JsErrors(list):
    """Uncaught exceptions and console errors of a page (a page that draws must not log any): `watch(page)`."""

    def watch(self, page):
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        return page

    def _console(self, msg) -> None:
        # The browser asks for /favicon.ico by itself (the layouts link none); that 404 is no page error. A 422 is
        # the house answer to invalid input (htmx swaps it in, see the layout's responseHandling): logged as a
        # failed resource by the browser, but expected.
        if msg.type != "error" or msg.location.get("url", "").endswith("/favicon.ico") or (
                msg.text.startswith("Failed to load resource") and "status of 422" in msg.text):
            return
        self.append(f"console.{msg.type}: {msg.text} @ {msg.location}")
