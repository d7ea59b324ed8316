"""Shared fixtures: a chain with two clinics and staff in each role that matters for scoping."""

import os

import pytest
from django.core.signals import request_finished, request_started
from django.utils import translation
from hypothesis import settings as hypothesis_settings

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.visits.enums import Category
from smileloop.visits.tests.factories import ServiceItemFactory

# Property tests draw the same examples on every run (`make test`, CI), so a commit's result does not depend on luck;
# `HYPOTHESIS_PROFILE=explore make test` draws new ones to look for what the fixed ones miss (a failure it finds is
# printed as a reproducible sequence: make it a test of its own).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def no_language_left_active():
    """Every test starts with no language active (the default, settings.LANGUAGE_CODE): a message asserted in English
    must not depend on which test ran before in this process. A request through the test client leaves its language
    active (Django's LocaleMiddleware activates it and never restores it; a server's next request activates its own):
    that is reset here after the test. A test that activated another language itself (`translation.activate`) and
    left it fails: use `translation.override`, which restores it. The language is reset either way."""
    before = translation.get_language()
    requests = {"started": 0, "finished": 0, "language": None}  # the language when the last one finished

    def started(**kwargs):
        requests["started"] += 1

    def finished(**kwargs):
        requests["finished"] += 1
        requests["language"] = translation.get_language()

    request_started.connect(started, weak=False, dispatch_uid="no_language_left_active")
    request_finished.connect(finished, weak=False, dispatch_uid="no_language_left_active")
    try:
        yield
    finally:
        request_started.disconnect(dispatch_uid="no_language_left_active")
        request_finished.disconnect(dispatch_uid="no_language_left_active")
        after = translation.get_language()
        translation.deactivate()  # none active: the default follows settings.LANGUAGE_CODE again
        # a streamed answer whose body the test did not read has not finished: its request's language is still active
        left_by_a_request = requests["language"] == after or requests["started"] > requests["finished"]
        if after != before and not left_by_a_request:
            pytest.fail(f"the test left the language {after!r} active (it began in {before!r}): use "
                        "translation.override, which restores it", pytrace=False)


@pytest.fixture
def chain(db):
    return ChainFactory(name="笑齿口腔连锁")


@pytest.fixture
def clinic_a(chain):
    return ClinicFactory(chain=chain, code="SH01", name="静安门诊", city="上海")


@pytest.fixture
def clinic_b(chain):
    return ClinicFactory(chain=chain, code="SH02", name="浦东门诊", city="上海")


@pytest.fixture
def front_desk_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小王", clinics=[clinic_a],
                        user__username="frontdesk_a")


@pytest.fixture
def director_a(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, name="院长老李", clinics=[clinic_a],
                        user__username="director_a")


@pytest.fixture
def marketing(chain):
    return StaffFactory(chain=chain, role=Role.MARKETING, name="市场小周", user__username="marketing")


@pytest.fixture
def chain_admin(chain):
    return StaffFactory(chain=chain, role=Role.CHAIN_ADMIN, name="总部管理员", user__username="chainadmin")


@pytest.fixture
def scope_a(front_desk_a):
    return scope_for_staff(front_desk_a)


@pytest.fixture
def director_scope(director_a):
    return scope_for_staff(director_a)


@pytest.fixture
def admin_scope(chain_admin):
    return scope_for_staff(chain_admin)


@pytest.fixture
def catalogue(chain):
    items = [
        ("EX01", "口腔检查", Category.EXAM, 5000, False, False),
        ("CL01", "洁牙", Category.CLEANING, 30000, False, False),
        ("CL99", "9.9元特价洁牙", Category.CLEANING, 990, True, False),
        ("FI01", "树脂补牙", Category.FILLING, 60000, False, False),
        ("IM01", "种植体植入", Category.IMPLANT, 1200000, False, True),
        ("OC01", "电动牙刷", Category.ORAL_CARE_PRODUCT, 39900, False, False),
    ]
    return {
        code: ServiceItemFactory(chain=chain, code=code, name=name, category=cat, list_price_fen=price,
                                 is_special_price=special, is_surgical=surgical)
        for code, name, cat, price, special, surgical in items
    }


@pytest.fixture
def browser():
    """Debian's headless Chromium for the browser tests (`smileloop.core.testing.context_page` opens pages in it)."""
    pytest.importorskip("playwright.sync_api")
    from smileloop.core.testing import chromium_browser

    with chromium_browser() as browser:
        yield browser


@pytest.fixture
def js_errors():
    """The script errors of every page a browser test watches; each test asserts it stays empty."""
    from smileloop.core.testing import JsErrors

    return JsErrors()


@pytest.fixture
def erasure(monkeypatch):
    """`erasure(director, person)` → (erase, reached): the PIPL erasure of `person` as a callable for
    core.testing.race, paused (with `reached` set) once it holds their row and is about to take them out of their
    family; `pause=False` for the other side of a race (reached is then None). The family race tests' first side."""
    import threading

    from smileloop.core.testing import paused
    from smileloop.customers import privacy
    from smileloop.customers.models import Customer

    def make(director, person, *, pause: bool = True):
        reached = None
        if pause:
            reached = threading.Event()
            monkeypatch.setattr(privacy, "_household_leave", paused(privacy._household_leave, reached, before=True))

        def erase():
            privacy.customer_erase(scope=scope_for_staff(director), customer=Customer.objects.get(pk=person.pk),
                                   actor=director, reason="本人申请")
            return True

        return erase, reached

    return make
