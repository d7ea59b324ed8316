"""A clinic's member operations in a real browser, in Chinese: member operations enrol a patient on the 360 page's
member card, top up her wallet, award points and bind her husband to the family card; the director bills her at
checkout partly from the wallet, points and a voucher, and refunds a line; her husband pays from her wallet with
her consent. After each step the 360 page must show what the ledger and the membership tables hold, to the fen, in
Chinese, with no script errors, on the same page after an htmx swap (a top-up that reaches a stored-value tier
brings the member card along), and fit a 390 px phone.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright's sync API; never downloads a browser.
"""

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from smileloop.checkout.models import Settlement
from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.testing import browser_log_in, browser_marks, context_page
from smileloop.customers.enums import Stage
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.giftcards.services import voucher_issue
from smileloop.giftcards.tests.factories import CampaignFactory
from smileloop.loyalty.enums import EarnTrigger, SpecialPrice
from smileloop.loyalty.models import EarnRule, RedeemSettings, TopupBonusRule
from smileloop.loyalty.selectors import points_summary, wallet_balance
from smileloop.loyalty.services.points import points_award
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.membership.enums import MembershipStatus, PlanKind
from smileloop.membership.models import FamilyBinding, Membership, MembershipPlan, Tier
from smileloop.membership.selectors import own_membership
from smileloop.membership.services import family_bind, membership_enrol

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would refuse the ORM.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SCREENSHOT_DIR = Path(os.environ.get("SMILELOOP_SCREENSHOT_DIR", "/tmp"))

pytestmark = browser_marks()


@pytest.fixture
def desk_page(browser, js_errors):
    with context_page(browser, js_errors, locale="zh-CN") as page:  # the staff pages follow the browser's language
        yield page


@pytest.fixture
def phone_page(browser, js_errors):
    with context_page(browser, js_errors, locale="zh-CN", phone=True) as page:
        yield page


log_in = browser_log_in


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOT_DIR / f"smileloop-member-ops-{name}.png"), full_page=True)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def english_words(text: str) -> list[str]:
    """Latin words of three letters or more in a Chinese page's text: an untranslated string (item codes such as
    CL01 and voucher codes are not words; the fixtures name everyone in Chinese)."""
    return re.findall(r"\b[A-Za-z][a-z]{2,}\b", text)


def fen(text: str) -> int:
    """'¥5,400.00' → 540000."""
    match = re.search(r"¥\s*([\d,]+\.\d{2})", text)
    assert match, text
    return int(Decimal(match.group(1).replace(",", "")) * 100)


def open_subform(page, card: str, name: str):
    """Open a collapsed action form of a 360 card (htmx loads it on toggle) and return its loaded form."""
    details = page.locator(f"{card} details[data-subform={name}]")
    details.locator("summary").click()
    form = details.locator(".subform-body form")
    form.wait_for()
    return form


@pytest.fixture
def programme(transactional_db, chain, clinic_a, catalogue):
    """A paid family card (¥1,280 a year, 9折, two family slots, 1.5× points) and the loyalty rules of DOMAIN.md:
    1 point per yuan (pending 7 days), 200 points for a completed profile, 100 points = ¥1 up to 10% of a bill,
    top up ¥5,000 and get ¥400."""
    plan = MembershipPlan.objects.create(chain=chain, name="家庭年卡", kind=PlanKind.PAID, fee_fen=128_000,
                                         duration_months=12, auto_enrol=False)
    tier = Tier.objects.create(plan=plan, rank=1, name="家庭年卡会员", discount_bp=1000, family_slots=2,
                               points_multiplier=Decimal("1.50"), excluded_categories=["oral_care_product"],
                               exclude_special_price=True, friend_discount_bp=0)
    EarnRule.objects.create(chain=chain, code="spend", name="消费积分", trigger=EarnTrigger.SPEND,
                            special_price=SpecialPrice.ANY, points_per_yuan=Decimal(1), pending_days=7,
                            validity_months=12)
    EarnRule.objects.create(chain=chain, code="profile", name="完善个人资料", trigger=EarnTrigger.PROFILE_COMPLETION,
                            points=200, pending_days=0, validity_months=12)
    RedeemSettings.objects.create(chain=chain, points_per_yuan=100, max_share_bp=1000, is_enabled=True)
    TopupBonusRule.objects.create(chain=chain, min_topup_fen=500_000, bonus_fen=40_000)
    wang = CustomerFactory(chain=chain, name="王芳", mobile="+8613900139001", mobile_tail="9001",
                           home_clinic=clinic_a, stage=Stage.TREATED)
    li = CustomerFactory(chain=chain, name="李强", mobile="+8613900139002", mobile_tail="9002",
                         home_clinic=clinic_a, stage=Stage.TREATED)
    member_ops = StaffFactory(chain=chain, role=Role.MEMBER_OPS, name="会员运营小陈", user__username="memberops")
    return {"plan": plan, "tier": tier, "wang": wang, "li": li, "member_ops": member_ops}


def test_member_ops_enrol_top_up_award_points_and_bind_a_spouse_on_the_360_page(
        live_server, desk_page, js_errors, programme):
    page, wang, li = desk_page, programme["wang"], programme["li"]
    log_in(page, live_server, "memberops")
    page.goto(f"{live_server.url}/customers/{wang.id}/")
    card = page.locator("#membership")
    assert "本人未入会" in card.inner_text(), card.inner_text()
    shot(page, "360-before")

    # when: enrolling her in the family card (the plan's fee recorded)
    form = open_subform(page, "#membership", "enrol")
    form.locator("select[name=plan]").select_option(label="家庭年卡")
    form.locator("input[name=fee_yuan]").fill("1280")
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#membership dl.facts') !== null")
    shot(page, "360-enrolled")

    # then: the card shows the tier, its 9折 and the event with the fee, as the membership table holds them
    membership = own_membership(wang)
    assert (membership.tier_id, membership.status, membership.fee_fen) == (
        programme["tier"].id, MembershipStatus.ACTIVE, 128_000)
    facts = card.locator("dl.facts").inner_text()
    assert "家庭年卡会员" in facts and f"{timezone.localdate(membership.expires_at):%Y-%m-%d}" in facts
    assert "9折" in card.locator("[data-testid=member-discount]").inner_text()
    history = card.locator(".member-history").inner_text()
    assert "¥1,280.00" in history and "会员运营小陈" in history
    assert english_words(card.inner_text()) == []
    # a plan of one tier offers no tier change (its list would be empty); once the plan has a second tier, the form
    # asks for the tier to move to (not "create a tier", as the configuration's button says)
    assert card.locator("details[data-subform=tier]").count() == 0
    Tier.objects.create(plan=programme["plan"], rank=2, name="家庭尊享会员", discount_bp=1500, family_slots=4)
    page.reload()
    form = open_subform(page, "#membership", "tier")
    assert form.locator("label[for=id_tier]").inner_text().startswith("目标等级")

    # when: topping up ¥5,000 in cash (the ¥5,000 rule adds ¥400 bonus)
    form = open_subform(page, "#loyalty", "topup")
    form.locator("input[name=amount_yuan]").fill("5000")
    form.locator("select[name=method]").select_option("cash")
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('[data-testid=wallet]').textContent.includes('5,400.00')")

    # then: the wallet reads as the ledger holds it, to the fen
    wallet = wallet_balance(wang)
    assert (wallet.principal, wallet.bonus, wallet.total) == (500_000, 40_000, 540_000)
    assert fen(page.locator("[data-testid=wallet]").inner_text()) == wallet.total
    assert "本金 ¥5,000.00" in page.locator("[data-testid=wallet]").inner_text()
    assert "赠送 ¥400.00" in page.locator("[data-testid=wallet]").inner_text()
    movements = page.locator("[data-testid=loyalty-history]").inner_text()
    assert "¥5,000.00" in movements and "¥400.00" in movements

    # when: awarding the 200 points of a completed profile
    form = open_subform(page, "#loyalty", "award")
    form.locator("select[name=rule]").select_option(label="完善个人资料")
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('[data-testid=points-available]').textContent.trim() === '200'")
    assert points_summary(wang).available == 200

    # when: binding her husband, an adult, first without the evidence of his consent
    form = open_subform(page, "#membership", "bind")
    form.locator("input[name=member]").fill("13900139002")
    form.locator("select[name=relation]").select_option("spouse")
    form.locator("select[name=consent_source]").select_option(index=1)
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#membership details[data-subform=bind][open] .field-error')")
    form = page.locator("#membership details[data-subform=bind] form")
    assert "请记录同意" in form.locator(".field-error").first.inner_text()
    assert not FamilyBinding.objects.exists()
    # then, with his signed form's number
    form.locator("input[name=consent_evidence]").fill("家庭卡同意书 2026-001")
    form.locator("button[type=submit]").click()
    page.locator("#membership ul.family a", has_text="李强").wait_for()

    # then: the binding is stored with his consent, and the card counts the slot
    binding = FamilyBinding.objects.get(member=li, unbound_at__isnull=True)
    assert (binding.holder_id, binding.relation, binding.consent_evidence) == (
        membership.id, "spouse", "家庭卡同意书 2026-001")
    family = page.locator("#membership ul.family").inner_text()
    assert "配偶" in family and "家庭卡同意书 2026-001" in family
    assert "已使用 1 / 2 个家庭名额" in card.inner_text()
    assert english_words(page.locator("main").inner_text()) == []
    shot(page, "360-bound")

    # and: the husband's own 360 page names the family card and its discount
    page.locator("#membership ul.family a", has_text="李强").click()
    page.wait_for_url(f"{live_server.url}/customers/{li.id}/")
    assert "王芳" in page.locator("#membership").inner_text()
    assert "9折" in page.locator("[data-testid=member-discount]").inner_text()
    assert js_errors == []


@pytest.fixture
def member(programme, director_a, catalogue):
    """王芳 as the first test leaves her (made through the same services): on the family card with ¥5,400 stored
    (¥400 of it bonus), 200 points and her husband bound; and a 洁牙 voucher of a campaign in her name."""
    wang, li, ops = programme["wang"], programme["li"], programme["member_ops"]
    membership_enrol(customer=wang, plan=programme["plan"], fee_fen=128_000, actor=ops)
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="topup-1", actor=ops, clinic=wang.home_clinic)
    points_award(customer=wang, rule_code="profile", key="profile-1", actor=ops)
    family_bind(holder=wang, member=li, relation="spouse", consent_source="paper", consent_evidence="同意书 001",
                actor=ops)
    campaign = CampaignFactory(chain=wang.chain, code="clean", name="洁牙体验券", item=catalogue["CL01"])
    voucher = voucher_issue(campaign=campaign, customer=wang, key="voucher-1", actor=ops)
    return {**programme, "voucher": voucher}


def test_director_bills_a_member_with_wallet_points_and_a_voucher_and_refunds_a_line(
        live_server, desk_page, js_errors, member, catalogue):
    page, wang = desk_page, member["wang"]
    log_in(page, live_server, "director_a")
    page.goto(f"{live_server.url}/customers/{wang.id}/")
    page.locator(".profile-actions a.btn-primary").click()
    page.wait_for_url(f"{live_server.url}/checkout/new/?customer={wang.id}")
    items = page.locator("select[name=item]")
    items.nth(0).select_option(str(catalogue["FI01"].id))
    page.wait_for_selector("[data-testid=cash]")
    items.nth(1).select_option(str(catalogue["CL01"].id))
    page.fill("#id_vouchers", member["voucher"].code)
    page.select_option("#id_points_mode", "max")
    page.select_option("#id_wallet_mode", "own")
    # (first more than the wallet holds: refused, in the words the page uses for the wallet, 储值 — not 储值卡,
    # which is a gift card here)
    page.fill("#id_wallet_amount", "9999")
    page.locator("#id_wallet_amount").press("Tab")
    problem = page.locator("#breakdown [data-testid=problem]")
    page.wait_for_function("() => document.querySelector('#breakdown [data-testid=problem]')?.textContent"
                           ".includes('9,999')")
    assert problem.inner_text() == "储值：可用 ¥5,400.00，申请使用 ¥9,999.00", problem.inner_text()
    page.fill("#id_wallet_amount", "100")
    with page.expect_response(lambda r: r.url.endswith("/checkout/new/") and r.request.method == "POST"):
        page.locator("#id_wallet_amount").press("Tab")
    page.wait_for_function("() => document.querySelector('[data-testid=cash]')?.textContent.includes('438.00')")
    shot(page, "bill")
    # then: the breakdown: 9折 on both lines (¥810), the voucher pays 洁牙 (its other ¥30 forfeited), 200 points
    # are ¥2, ¥100 from the wallet, ¥438 left for the till
    breakdown = page.locator("#breakdown")
    assert fen(breakdown.locator("[data-testid=total]").inner_text()) == 81_000
    assert fen(breakdown.locator("[data-testid=tender-voucher]").inner_text()) == 27_000
    assert fen(breakdown.locator("[data-testid=tender-points]").inner_text()) == 200
    assert fen(breakdown.locator("[data-testid=tender-wallet]").inner_text()) == 10_000
    assert english_words(breakdown.inner_text()) == []
    page.select_option("#pay-method-0", "wechat_pay")
    page.locator("button[name=action][value=pay]").click()
    page.wait_for_url("**/checkout/settlements/*/")
    shot(page, "receipt")
    settlement = Settlement.objects.get()
    order = settlement.order
    assert (order.amount_fen, order.customer_id) == (81_000, wang.id)
    # then: the receipt lists every tender and the till's payments as the order holds them
    assert page.locator("[data-testid=receipt] ul.tenders li strong").all_inner_texts() == [
        "¥270.00", "¥2.00", "¥100.00", "¥438.00"]
    payments = page.locator("[data-testid=payments]").inner_text()
    assert "微信支付 ¥438.00" in payments and "储值 ¥100.00" in payments
    assert english_words(page.locator("main").inner_text()) == []

    # then: back on the 360 page, the wallet, points, spend and bill are the ledger's and the order's
    page.locator(".breadcrumbs a").click()
    page.wait_for_url(f"{live_server.url}/customers/{wang.id}/")
    assert_360_matches_books(page, wang, wallet_fen=530_000, available=0, pending=807)  # 538 paid × 1.5
    orders = page.locator("#orders article.order").first.inner_text()
    assert "¥810.00" in orders and "已付款" in orders
    assert "已核销" in page.locator("[data-testid=giftcards]").inner_text()
    shot(page, "360-paid")

    # when: the filling is refunded (a line of the bill), from the receipt
    page.go_back()
    page.wait_for_url("**/checkout/settlements/*/")
    refund = page.locator("#refund")
    refund.locator("select[name=scope]").select_option("lines")
    refund.locator("label", has_text="树脂补牙").locator("input[name=line]").check()
    refund.locator("[name=reason]").fill("补牙返工")
    refund.locator("button[type=submit]").click()
    page.locator("[data-testid=refunds]").wait_for()

    # then: the refund gives back every tender in the refunded share (2/3 of the bill, ADR 0004) and takes back
    # the points the refunded money earned, as the refund settlement records them
    done = settlement.refunds.get()
    assert (done.amount_fen, done.cash_fen) == (54_000, 29_200)
    refunds = page.locator("[data-testid=refunds]").inner_text()
    assert "¥540.00" in refunds and "¥292.00" in refunds and "-538" in refunds.replace("−", "-")
    assert english_words(refunds) == []
    page.locator(".breadcrumbs a").click()
    page.wait_for_url(f"{live_server.url}/customers/{wang.id}/")
    assert_360_matches_books(page, wang, wallet_fen=536_667, available=133, pending=269)
    assert "部分退款" in page.locator("#orders article.order").first.inner_text()
    shot(page, "360-refunded")
    assert js_errors == []


def assert_360_matches_books(page, customer, *, wallet_fen: int, available: int, pending: int) -> None:
    """The 360 page's balances and lifetime spend are what the ledger and the customer row hold (and what the
    test expects them to be)."""
    customer.refresh_from_db()
    wallet, points = wallet_balance(customer), points_summary(customer)
    assert (wallet.total, points.available, points.pending) == (wallet_fen, available, pending)
    shown = page.locator("[data-testid=wallet]").inner_text()
    assert fen(shown) == wallet.total
    assert f"本金 ¥{wallet.principal // 100:,}.{wallet.principal % 100:02d}" in shown
    assert f"赠送 ¥{wallet.bonus // 100:,}.{wallet.bonus % 100:02d}" in shown
    assert int(page.locator("[data-testid=points-available]").inner_text()) == points.available
    if points.pending:
        assert str(points.pending) in page.locator("[data-testid=points-pending]").inner_text()
    kpis = page.locator("dl.kpis").inner_text()
    assert f"¥{customer.lifetime_spend_fen // 100:,}.{customer.lifetime_spend_fen % 100:02d}" in kpis


def test_a_top_up_that_reaches_a_stored_value_tier_shows_the_new_membership_without_a_reload(
        live_server, desk_page, js_errors, programme):
    # given: a stored-value plan whose 银卡 is reached by topping up ¥5,000 (enrolled automatically)
    stored = MembershipPlan.objects.create(chain=programme["plan"].chain, name="储值会员", kind=PlanKind.STORED_VALUE,
                                           auto_enrol=True)
    Tier.objects.create(plan=stored, rank=1, name="银卡", min_topup_fen=500_000, discount_bp=300, family_slots=0,
                        friend_discount_bp=0)
    page, wang = desk_page, programme["wang"]
    log_in(page, live_server, "memberops")
    page.goto(f"{live_server.url}/customers/{wang.id}/")
    page.evaluate("window.__sameDocument = true")
    assert "本人未入会" in page.locator("#membership").inner_text()

    # when: member operations top her wallet up by ¥5,000
    form = open_subform(page, "#loyalty", "topup")
    form.locator("input[name=amount_yuan]").fill("5000")
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('[data-testid=wallet]').textContent.includes('5,400.00')")

    # then: she is a 银卡 member, and the member card on the same page says so (not the stale "no membership")
    membership = Membership.objects.get(customer=wang)
    assert (membership.plan_id, membership.tier.name) == (stored.id, "银卡")
    card = page.locator("#membership")
    page.wait_for_function("() => document.querySelector('#membership dl.facts') !== null", timeout=5_000)
    assert "银卡" in card.locator("dl.facts").inner_text()
    assert "97折" in card.locator("[data-testid=member-discount]").inner_text()
    assert card.locator("details[data-subform=enrol]").count() == 0  # no "Enrol" left to refuse her
    assert page.evaluate("window.__sameDocument === true")
    assert js_errors == []


def test_the_member_card_and_the_bill_fit_a_390_px_phone(live_server, phone_page, js_errors, member, catalogue):
    page, wang = phone_page, member["wang"]
    log_in(page, live_server, "director_a")
    # the 360 page with its member card (family card, history) and loyalty card, forms opened
    page.goto(f"{live_server.url}/customers/{wang.id}/")
    page.locator("#membership").scroll_into_view_if_needed()
    open_subform(page, "#membership", "bind")
    open_subform(page, "#loyalty", "topup")
    shot(page, "phone-360")
    assert no_horizontal_scroll(page)
    for card in ("#membership", "#loyalty"):
        box = page.locator(card).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (card, box)
    # the bill, priced with every tender
    page.goto(f"{live_server.url}/checkout/new/?customer={wang.id}")
    page.locator("select[name=item]").first.select_option(str(catalogue["FI01"].id))
    page.wait_for_selector("[data-testid=cash]")
    page.fill("#id_vouchers", member["voucher"].code)
    page.locator("select[name=item]").nth(1).select_option(str(catalogue["CL01"].id))
    page.select_option("#id_points_mode", "max")
    page.select_option("#id_wallet_mode", "own")
    page.wait_for_selector("[data-testid=tender-wallet]")
    shot(page, "phone-bill")
    assert no_horizontal_scroll(page)
    box = page.locator("#breakdown").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert js_errors == []


def test_her_husband_pays_from_the_family_card_holders_wallet_with_her_consent_for_this_use(
        live_server, desk_page, js_errors, member, catalogue):
    page, wang, li = desk_page, member["wang"], member["li"]
    log_in(page, live_server, "director_a")
    page.goto(f"{live_server.url}/customers/{li.id}/")
    page.locator(".profile-actions a.btn-primary").click()
    page.wait_for_url(f"{live_server.url}/checkout/new/?customer={li.id}")
    page.locator("select[name=item]").first.select_option(str(catalogue["CL01"].id))
    page.wait_for_selector("[data-testid=cash]")
    # then: his bill carries her family card's 9折
    assert "9折" in page.locator("#breakdown").inner_text()

    # when: the family holder's wallet is chosen without her consent (no standing consent recorded)
    with page.expect_response(lambda r: r.url.endswith("/checkout/new/") and r.request.method == "POST") as answer:
        page.select_option("#id_wallet_mode", "family")
    assert answer.value.status == 422
    # then: the page says, in Chinese, whose consent is missing, and offers no "Pay"
    problem = page.locator("#breakdown [data-testid=problem]")
    assert "王芳" in problem.inner_text() and "同意" in problem.inner_text(), problem.inner_text()
    assert english_words(problem.inner_text()) == []
    assert page.locator("button[name=action][value=pay]").count() == 0

    # when: she consents to this use (ticked), the wallet pays the whole ¥270
    with page.expect_response(lambda r: r.url.endswith("/checkout/new/") and r.request.method == "POST"):
        page.check("#id_per_use_consent")
    page.locator("#breakdown [data-testid=tender-wallet]").wait_for()
    assert fen(page.locator("[data-testid=tender-wallet]").inner_text()) == 27_000
    assert fen(page.locator("[data-testid=cash]").inner_text()) == 0
    page.locator("button[name=action][value=pay]").click()
    page.wait_for_url("**/checkout/settlements/*/")
    assert "储值 ¥270.00" in page.locator("[data-testid=payments]").inner_text()
    assert Settlement.objects.get().customer_id == li.id

    # then: her 360 page shows her wallet down by ¥270 (principal and bonus in their 5,000 : 400 shares), as the
    # ledger holds it, and the spend names him
    page.goto(f"{live_server.url}/customers/{wang.id}/")
    assert_360_matches_books(page, wang, wallet_fen=513_000, available=200, pending=0)
    assert (wallet_balance(wang).principal, wallet_balance(wang).bonus) == (475_000, 38_000)
    assert f"#{li.id}" in page.locator("[data-testid=loyalty-history] tbody tr").first.inner_text()
    assert wallet_balance(li).total == 0
    assert english_words(page.locator("main").inner_text()) == []
    assert js_errors == []
