import datetime as dt
import re

import pytest
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.ledger.enums import AccountKind, EntryReason
from smileloop.ledger.models import Account, Entry
from smileloop.ledger.services import Posting, account_for, ledger_post, system_account
from smileloop.loyalty import selectors
from smileloop.loyalty.models import Topup
from smileloop.loyalty.services import points_award, wallet_balance, wallet_topup

pytestmark = pytest.mark.urls("smileloop.loyalty.tests.urls")


def test_the_360_page_shows_points_lots_and_wallet(client, front_desk_a, wang, rules, bonus_rules, now):
    # given
    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=340))
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    client.force_login(front_desk_a.user)
    # when
    response = client.get(reverse("customers:detail", args=[wang.id]))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="loyalty-card"' in html
    assert 'data-testid="points-available">1000<' in html
    assert "1000 expire within 30 days" in html
    assert "¥5,400.00" in html


def test_a_top_up_form_with_a_bad_amount_answers_422_and_changes_nothing(client, front_desk_a, wang):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:topup", args=[wang.id]), {"amount_yuan": "-5", "method": "cash",
                                                                      "key": "k1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "field-error" in response.content.decode()
    assert Topup.objects.count() == 0


def test_a_top_up_form_tops_up_once_even_if_submitted_twice(client, front_desk_a, wang, bonus_rules):
    client.force_login(front_desk_a.user)
    data = {"amount_yuan": "10000", "method": "wechat_pay", "key": "k1"}
    for _ in range(2):
        response = client.post(reverse("loyalty:topup", args=[wang.id]), data, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
    assert wallet_balance(wang).total == 1_100_000 and Topup.objects.count() == 1


def test_another_clinics_patient_is_a_404_on_the_forms(client, front_desk_a, stranger_b, bonus_rules):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:topup", args=[stranger_b.id]),
                           {"amount_yuan": "100", "method": "cash", "key": "k1"})
    assert response.status_code == 404 and Topup.objects.count() == 0


def test_the_configuration_page_is_for_config_roles_only(client, chain_admin, front_desk_a, rules, family_package):
    client.force_login(chain_admin.user)
    ok = client.get(reverse("loyalty:config"))
    assert ok.status_code == 200 and "家庭口腔护理套餐" in ok.content.decode()
    client.force_login(front_desk_a.user)
    assert client.get(reverse("loyalty:config")).status_code == 403


def test_the_redeem_cap_reads_as_a_percentage(client, chain_admin, terms):
    client.force_login(chain_admin.user)
    zh = client.get(reverse("loyalty:config"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    en = client.get(reverse("loyalty:config"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "100 积分抵 1 元，每单最多抵扣账单金额的 10%。" in zh and "1000/10000" not in zh
    assert "100 points = 1 yuan, at most 10% of a bill." in en and "basis points" not in en


def test_a_gift_can_be_created_from_the_configuration_page(client, chain_admin, chain):
    client.force_login(chain_admin.user)
    response = client.post(reverse("loyalty:gift_create"), {"name": "漱口水", "points_price": "500", "stock": "-1",
                                                            "is_active": "on"})
    assert response.status_code == 422
    response = client.post(reverse("loyalty:gift_create"), {"name": "漱口水", "points_price": "500", "stock": "20",
                                                            "is_active": "on"})
    assert response.status_code == 302


# --- the card's action forms, loaded when opened (core.subforms) ----------------------------------------


def test_the_360_page_renders_the_card_forms_closed_and_fetches_one_when_opened(client, front_desk_a, wang,
                                                                                family_package):
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id])).content.decode()
    card = page.split('data-testid="loyalty-card"')[1].split("</section>")[0]
    # closed: the summaries, and where each form comes from, but none of the forms (no widgets, no choices)
    for name in ("topup", "award", "gift", "package"):
        assert f'hx-get="{reverse("loyalty:form", args=[wang.id, name])}"' in card
    assert 'name="amount_yuan"' not in card and "家庭口腔护理套餐" not in card
    # opened (htmx): the form alone, posting to its action
    fragment = client.get(reverse("loyalty:form", args=[wang.id, "package"]), HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html
    assert f'hx-post="{reverse("loyalty:package", args=[wang.id])}"' in html
    assert "家庭口腔护理套餐" in html and 'name="key"' in html


def test_a_covered_person_id_no_database_can_hold_is_an_invalid_choice_not_a_500(client, front_desk_a, wang,
                                                                                    family_package):
    from smileloop.loyalty.models import PackagePurchase

    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:package", args=[wang.id]), {
        "package": family_package.id, "covered": [str(wang.id), "99999999999999999999"], "key": "k-1"},
        HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "99999999999999999999" in response.content.decode()  # "… is not one of the available choices."
    assert not PackagePurchase.objects.exists()


def test_without_javascript_a_card_form_opens_on_a_page_of_its_own(client, front_desk_a, wang):
    client.force_login(front_desk_a.user)
    response = client.get(reverse("loyalty:form", args=[wang.id, "topup"]))
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert 'name="amount_yuan"' in html and f'action="{reverse("loyalty:topup", args=[wang.id])}"' in html
    assert f'href="{reverse("customers:detail", args=[wang.id])}#loyalty"' in html


def test_a_refused_form_comes_back_open_in_place_with_its_errors(client, front_desk_a, wang):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("loyalty:topup", args=[wang.id]), {"amount_yuan": "-5", "method": "cash",
                                                                      "key": "k1"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    opened = html.split('data-subform="topup" open>')[1].split("</details>")[0]
    assert 'name="amount_yuan"' in opened and "field-error" in opened
    assert 'data-subform="award" hx-get=' in html  # the others stay closed


def test_card_forms_are_scoped_and_need_the_edit_permission(client, front_desk_a, chain, clinic_a, wang, stranger_b):
    client.force_login(front_desk_a.user)
    assert client.get(reverse("loyalty:form", args=[stranger_b.id, "topup"])).status_code == 404
    assert client.get(reverse("loyalty:form", args=[wang.id, "nope"])).status_code == 404
    assert client.post(reverse("loyalty:form", args=[wang.id, "topup"])).status_code == 405
    assistant = StaffFactory(chain=chain, role=Role.ASSISTANT, clinics=[clinic_a], user__username="assistant_a")
    client.force_login(assistant.user)
    assert client.get(reverse("loyalty:form", args=[wang.id, "topup"])).status_code == 403


def test_the_card_reads_equal_the_orm_ones(wang, rules, bonus_rules, now):
    """The card's accounts, lots and history are plain reads (core.sql): the same rows, fields and order as the
    ORM queries they replace."""
    def fields(obj):
        return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}

    points_award(customer=wang, rule_code="referral", key="r1", at=now - dt.timedelta(days=340))
    points_award(customer=wang, rule_code="referral", key="r2", at=now - dt.timedelta(days=20))
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    accounts = selectors.holder_accounts(wang)
    orm_accounts = Account.objects.filter(chain_id=wang.chain_id, customer_id=wang.pk, code__isnull=True,
                                          closed_at__isnull=True, kind__in=selectors.HOLDER_KINDS)
    assert {k: fields(a) for k, a in accounts.items()} == {a.kind: fields(a) for a in orm_accounts}
    assert len(accounts) == 3
    points = accounts["points"]
    summary = selectors.points_summary(wang, account=points)
    assert [fields(lot) for lot in summary.lots] == [
        fields(lot) for lot in points.lots.filter(remaining__gt=0).order_by("expires_at", "id")]
    assert len(summary.lots) == 2 and summary.available == 2000
    history = selectors.ledger_history(wang, limit=3)
    orm_history = list(Entry.objects.filter(account__customer_id=wang.pk, account__code__isnull=True)
                       .select_related("transaction", "account", "lot").order_by("-transaction__created_at", "-id")[:3])
    assert [(fields(e), fields(e.transaction), fields(e.account), e.lot and fields(e.lot)) for e in history] == [
        (fields(e), fields(e.transaction), fields(e.account), e.lot and fields(e.lot)) for e in orm_history]
    assert len(history) == 3


def test_the_ledger_rows_read_in_chinese_with_amounts_in_yuan(client, front_desk_a, wang, rules, bonus_rules, now):
    from django.utils import translation

    from smileloop.ledger.models import LedgerTransaction
    from smileloop.loyalty.services import wallet_spend

    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    wallet_spend(payer=wang, amount_fen=12_345, key="s1", source="test")
    memos = set(LedgerTransaction.objects.values_list("memo", flat=True))
    # stored in English, as the API and `ledger check` read them
    assert {"top-up via cash", "bonus: top up ≥ 500000 fen, get 40000 fen"} <= memos, memos
    assert any(m.startswith("principal ") for m in memos)
    client.force_login(front_desk_a.user)
    with translation.override("zh-hans"):
        html = client.get(reverse("customers:detail", args=[wang.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    card = html[html.index('data-testid="loyalty-card"'):]
    assert "充值满 ¥5,000.00 赠 ¥400.00" in card and "充值（现金）" in card
    assert "本金 ¥" in card
    assert "top-up via" not in card and "bonus:" not in card and "principal" not in card


def test_the_ledger_rows_read_in_english_state_amounts_shown_in_yuan_as_yuan(client, front_desk_a, wang, bonus_rules,
                                                                            terms):
    from django.utils import translation

    from smileloop.loyalty.services import points_redeem

    # given a 5,000-yuan top-up with its 400-yuan bonus, and 1,234 points taken off a bill (12.34 yuan)
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    ledger_post(chain_id=wang.chain_id, key="seed", reason=EntryReason.EARN, postings=[
        Posting(account_for(chain_id=wang.chain_id, kind=AccountKind.POINTS, customer=wang), 5000),
        Posting(system_account(chain_id=wang.chain_id, kind=AccountKind.POINTS_ISSUED), -5000)])
    points_redeem(customer=wang, points=1234, key="r1", source="test")
    client.force_login(front_desk_a.user)
    # when an English reader opens the 360 page
    with translation.override("en"):
        html = client.get(reverse("customers:detail", args=[wang.id]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    # then the amounts, shown in yuan, are not called fen
    movements = _movements(html)
    assert "bonus: top up ≥ ¥5,000.00, get ¥400.00" in movements and "¥12.34 off a bill" in movements, movements
    assert " fen" not in movements


def test_money_movements_show_with_the_currency_sign_and_a_minus_like_the_orders(client, front_desk_a, wang,
                                                                                bonus_rules):
    # given a 5,000-yuan top-up (and its 400-yuan bonus) of which 1,234.50 yuan were spent
    from smileloop.loyalty.services import wallet_spend

    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    wallet_spend(payer=wang, amount_fen=123_450, key="s1", source="test")
    client.force_login(front_desk_a.user)
    # when the 360 page is shown
    html = client.get(reverse("customers:detail", args=[wang.id])).content.decode()
    # then the amounts column reads as money, as the orders' discounts and refunds do (−¥30.00)
    cells = re.findall(r'<td class="num mono">([^<]*)</td>', _movements(html))
    assert "¥5,000.00" in cells and "¥400.00" in cells, cells
    assert any(cell.startswith("−¥") for cell in cells), cells
    assert not [cell for cell in cells if cell.startswith("-") or cell[:1].isdigit()], cells


def _movements(html: str) -> str:
    """The loyalty card's "Recent movements" table."""
    start = html.index('data-testid="loyalty-history"')
    return html[start:html.index("</table>", start)]


def test_the_wallet_history_names_no_family_member_of_another_clinic(client, front_desk_a, chain_admin, wang,
                                                                      stranger_b, family_membership, bonus_rules):
    # given 王芳's family card, to which a chain role bound 赵敏 of clinic B; 赵敏 pays from the family wallet
    # and 王芳 transfers stored value to her (memos stored as "…; paid by #<id>" and "family transfer #a → #b")
    import re

    from django.utils import translation

    from smileloop.ledger.models import LedgerTransaction
    from smileloop.loyalty.services import wallet_spend, wallet_transfer
    from smileloop.membership.enums import WalletShareMode
    from smileloop.membership.services import family_bind, wallet_share_consent_grant

    family_bind(holder=wang, member=stranger_b, relation="sibling", consent_source="paper", consent_evidence="F-2")
    wallet_share_consent_grant(holder=wang, member=stranger_b, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    wallet_spend(payer=stranger_b, holder=wang, amount_fen=10_000, key="s1", source="order:1")
    wallet_transfer(from_customer=wang, to_customer=stranger_b, amount_fen=20_000, key="x1", actor=None)
    memos = set(LedgerTransaction.objects.values_list("memo", flat=True))
    # when clinic A's front desk and a chain admin read 王芳's card
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id])).content.decode()
    with translation.override("zh-hans"):
        page_zh = client.get(reverse("customers:detail", args=[wang.id]),
                             HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    client.force_login(chain_admin.user)
    admin_page = client.get(reverse("customers:detail", args=[wang.id])).content.decode()
    # then clinic A sees 赵敏 masked, with neither her id nor a link; the chain admin as before
    seen, seen_zh, admin_seen = _movements(page), _movements(page_zh), _movements(admin_page)
    other = re.compile(rf"#{stranger_b.id}\b")
    for rows in (seen, seen_zh):
        assert not other.search(rows), rows
        assert "赵敏" not in rows and reverse("customers:detail", args=[stranger_b.id]) not in rows
    assert "paid by 赵*" in seen and f"family transfer #{wang.id} → 赵*" in seen, seen
    assert "由 赵* 支付" in seen_zh and f"家庭转账 #{wang.id} → 赵*" in seen_zh, seen_zh
    assert f"paid by #{stranger_b.id}" in admin_seen
    assert f"family transfer #{wang.id} → #{stranger_b.id}" in admin_seen
    # and the stored memos (API, exports, `ledger check`) are unchanged
    assert f"family transfer #{wang.id} → #{stranger_b.id}" in memos
    assert any(m.endswith(f"; paid by #{stranger_b.id}") for m in memos), memos


def test_a_family_members_history_names_no_card_holder_of_another_clinic(client, front_desk_a, clinic_b, wang,
                                                                          spouse, family_membership, bonus_rules):
    # given 王芳 of clinic B, whose family card a chain role bound her husband 李强 of clinic A to
    import re

    from smileloop.loyalty.services import wallet_transfer
    from smileloop.membership.enums import WalletShareMode
    from smileloop.membership.services import family_bind, wallet_share_consent_grant

    wang.home_clinic = clinic_b
    wang.save(update_fields=["home_clinic"])
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    wallet_share_consent_grant(holder=wang, member=spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    wallet_transfer(from_customer=wang, to_customer=spouse, amount_fen=20_000, key="x1", actor=None)
    # when clinic A's front desk reads 李强's card
    client.force_login(front_desk_a.user)
    rows = _movements(client.get(reverse("customers:detail", args=[spouse.id])).content.decode())
    # then the transfer names her masked, without her id; him as before
    assert f"family transfer 王* → #{spouse.id}" in rows, rows
    assert not re.search(rf"#{wang.id}\b", rows) and "王芳" not in rows
