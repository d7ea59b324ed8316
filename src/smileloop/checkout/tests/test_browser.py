"""The bill page in a real browser (Debian's Chromium through Playwright; never downloads a browser): what the
cashier's keyboard and mouse do to a bill."""

import os

import pytest

from smileloop.checkout.models import Settlement
from smileloop.core.testing import browser_marks, chromium_page

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop here

pytestmark = browser_marks()


@pytest.fixture
def page():
    pytest.importorskip("playwright.sync_api")
    with chromium_page() as page:
        yield page


def test_tabbing_from_the_amount_to_the_pay_button_re_prices_but_does_not_pay(live_server, page, transactional_db,
                                                                             front_desk_a, clinic_a, catalogue, alice):
    # given the cashier's priced bill for a cleaning (300.00 − 88折 = 264.00)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", front_desk_a.user.username)
    page.fill("#id_password", "pass-1234")
    page.click(".auth-card button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/checkout/new/?customer={alice.id}")
    page.locator("select[name=item]").first.select_option(str(catalogue["CL01"].id))
    page.wait_for_selector("[data-testid=cash]")
    # when they choose WeChat Pay, type the whole amount in the second row and press Tab (focus moves to "Pay")
    page.locator("#pay-method-1").select_option("wechat_pay")
    page.wait_for_timeout(600)
    page.locator("#pay-amount-1").fill("264")
    with page.expect_response(lambda r: r.url.endswith("/checkout/new/") and r.request.method == "POST"):
        page.locator("#pay-amount-1").press("Tab")
    page.wait_for_timeout(300)
    # then the bill is re-priced in place, nothing is paid, and what they entered is still there
    assert page.url.endswith(f"/checkout/new/?customer={alice.id}")
    assert Settlement.objects.count() == 0
    assert page.locator("#pay-method-1").input_value() == "wechat_pay"
    assert page.locator("#pay-amount-1").input_value() == "264"
    # and a click on "Pay" pays it, once, with the method chosen
    page.locator("button[name=action][value=pay]").click()
    page.wait_for_url("**/checkout/settlements/*/")
    settlement = Settlement.objects.get()
    assert list(settlement.order.payments.values_list("method", "amount_fen")) == [("wechat_pay", 26400)]
