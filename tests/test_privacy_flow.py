"""Cross-app flow of an erasure (customers.privacy.customer_erase): the hooks the higher apps register (follow-ups,
surveys, gift cards, family card), the obligations that refuse it (wallet, gift card), the records that stay (bills,
plans, procedures, balances) and the targeting that forgets the person (segments, the follow-up run)."""

import datetime as dt
import io

import openpyxl
import pytest
from django.utils import timezone

from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer
from smileloop.customers.privacy import ObligationsOwed, customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import complaint_task_open, followups_generate, playbooks_install_defaults
from smileloop.giftcards.models import GiftCardEvent, GiftCardReminder
from smileloop.giftcards.services import friend_card_issue, giftcard_holder_note
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.ledger.models import Account
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.services import wallet_topup
from smileloop.membership.models import FamilyBinding
from smileloop.membership.services import family_bind
from smileloop.membership.tests.factories import MembershipFactory, TierFactory, TreatmentPlanFactory
from smileloop.segments.rules.compiler import compile as segment_compile
from smileloop.surveys.tests.factories import SurveyFactory
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory
from smileloop.visits.models import Order, TreatmentPlan

REASON = "本人书面申请 2026-12-01"


def _erase(scope, customer, **kwargs):
    return customer_erase(scope=scope, customer=customer, actor=None, reason=REASON, **kwargs)


def test_a_wallet_balance_refuses_the_erasure_until_it_is_forfeited_on_purpose(chain, clinic_a, admin_scope):
    # given a patient with 500 yuan of stored value
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    wallet_topup(customer=person, amount_fen=50000, method="cash", key="topup-1")
    # when erased without forfeiting: refused, nothing changed
    with pytest.raises(ObligationsOwed) as refused:
        _erase(admin_scope, person)
    assert [(o.code, o.amount_fen) for o in refused.value.obligations] == [("wallet", 50000)]
    assert refused.value.code == "erase_obligations"
    row = Customer.objects.get(pk=person.pk)
    assert (row.name, row.erased_at) == ("王芳", None)
    assert not AuditEvent.objects.filter(action="customer.erase").exists()
    # when the patient gives it up
    _erase(admin_scope, person, forfeit=True)
    # then erased; the balance stays in the ledger on the anonymous record, and the audit row says what was given up
    assert Customer.objects.get(pk=person.pk).erased_at is not None
    assert Account.objects.get(customer=person, kind="wallet_principal").balance == 50000
    assert AuditEvent.objects.get(action="customer.erase").detail["forfeited"] == [
        {"code": "wallet", "amount_fen": 50000}]
    assert ledger_check(chain_id=chain.id) == []


def test_bills_plans_and_their_refunds_stay_with_the_anonymous_record(chain, clinic_a, catalogue, admin_scope):
    # given a treated patient with a paid bill and an unfinished plan
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    settlement = checkout_pay(priced=checkout_price(customer=person, clinic=clinic_a, lines=[{"item_code": "CL01"}]),
                              payments=[{"method": "cash", "amount_fen": 30000}], key="pay-1")
    plan = TreatmentPlanFactory(customer=person, steps_total=4, steps_done=1)
    spend = Customer.objects.get(pk=person.pk).lifetime_spend_fen
    # when
    _erase(admin_scope, person)
    # then every record is kept, and the bill can still be refunded
    assert list(Order.objects.filter(customer=person).values_list("pk", flat=True)) == [settlement.order_id]
    assert TreatmentPlan.objects.get(pk=plan.pk).customer_id == person.pk
    assert Customer.objects.get(pk=person.pk).lifetime_spend_fen == spend
    assert checkout_refund(settlement=settlement, key="refund-1", reason="取消").amount_fen == 30000
    assert ledger_check(chain_id=chain.id) == []


def test_the_hooks_cancel_follow_ups_blank_survey_comments_end_family_bindings_and_drop_tags(chain, clinic_a, admin_scope):
    # given a bound family member with an open complaint task and an answered and an open survey
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王大明")
    MembershipFactory(customer=holder, tier=TierFactory(plan__chain=chain, family_slots=3))
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小红")
    family_bind(holder=holder, member=person, relation="spouse", consent_source="form", consent_evidence="F-1")
    task = complaint_task_open(customer=person, clinic=clinic_a, brief="李小红说医生态度差", anchor_key="survey:1")
    answered = SurveyFactory(chain=chain, clinic=clinic_a, customer=person, score=3, comment="李小红：等了一个小时")
    open_survey = SurveyFactory(chain=chain, clinic=clinic_a, customer=person)
    tag_apply(customer=person, tag=TagFactory(group__chain=chain, name="种植意向"), actor=None)
    # when
    _erase(admin_scope, person)
    # then
    task.refresh_from_db()
    assert (task.status, task.closed_reason, task.brief) == (TaskStatus.CANCELLED,
                                                             "patient's personal information erased", "")
    answered.refresh_from_db()
    open_survey.refresh_from_db()
    assert (answered.comment, answered.score) == ("", 3)
    assert open_survey.expires_at <= timezone.now()
    binding = FamilyBinding.objects.get(member=person)
    assert (binding.unbound_at is not None, binding.unbind_reason) == (True, "personal information erased")
    assert not CustomerTag.objects.filter(customer=person).exists()
    detail = AuditEvent.objects.get(action="customer.erase").detail
    assert (detail["followups_cancelled"], detail["survey_comments"], detail["surveys_expired"],
            detail["family_bindings_ended"], detail["tags_removed"]) == (1, 1, 1, 1, 1)


def test_a_gift_card_holder_is_erased_only_when_the_card_is_given_up_and_its_events_no_longer_name_them(
        chain, clinic_a, admin_scope):
    # given a member's friend card whose holder became known when the friend first paid with it
    member = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王大明")
    friend = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李娜")
    card = friend_card_issue(member=member, programme=ProgrammeFactory(chain=chain, reminder_days=[7, 30]),
                             trigger="benefit", key="card-1")
    giftcard_holder_note(card=card, customer=friend, at=timezone.now())
    assert GiftCardEvent.objects.filter(card=card, detail__contains="李娜").exists()
    # when the friend asks to be erased: refused while the card holds value
    with pytest.raises(ObligationsOwed) as refused:
        _erase(admin_scope, friend)
    assert [(o.code, o.amount_fen) for o in refused.value.obligations] == [("gift_card", 60000)]
    open_before = {r.pk: r.recipient for r in GiftCardReminder.objects.filter(card=card, cancelled_at__isnull=True)}
    assert set(open_before.values()) == {"giver", "holder"}
    # when they give it up
    _erase(admin_scope, friend, forfeit=True)
    # then the card's history names the anonymous record; reminders to the holder are cancelled, the giver's are not
    assert not GiftCardEvent.objects.filter(card=card, detail__contains="李娜").exists()
    assert GiftCardEvent.objects.filter(card=card, detail__contains=f"已注销客户 #{friend.pk}").exists()
    still_open = set(GiftCardReminder.objects.filter(card=card, cancelled_at__isnull=True).values_list("pk", flat=True))
    assert still_open == {pk for pk, recipient in open_before.items() if recipient == "giver"}


def test_an_erased_person_is_in_no_segment_and_gets_no_new_follow_up(chain, clinic_a, admin_scope):
    # given two leads who never came, one of them erased
    today = timezone.localdate()
    playbooks_install_defaults(chain=chain)
    kept = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李娜",
                           first_touch_at=timezone.now() - dt.timedelta(days=1))
    gone = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳",
                           first_touch_at=timezone.now() - dt.timedelta(days=1))
    _erase(admin_scope, gone)
    # when
    leads = set(segment_compile(admin_scope, {"all": [{"field": "stage", "op": "eq", "value": "lead"}]})
                .values_list("id", flat=True))
    followups_generate(chain=chain, today=today)
    # then
    assert leads == {kept.pk}
    assert set(FollowupTask.objects.values_list("customer_id", flat=True)) == {kept.pk}


def test_the_data_copy_includes_bills_and_balances_from_the_other_apps(client, chain, clinic_a, catalogue,
                                                                      director_a):
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="王芳")
    wallet_topup(customer=person, amount_fen=50000, method="cash", key="topup-1")
    checkout_pay(priced=checkout_price(customer=person, clinic=clinic_a, lines=[{"item_code": "CL01"}]),
                 payments=[{"method": "cash", "amount_fen": 30000}], key="pay-1")
    client.force_login(director_a.user)
    # when
    response = client.post(f"/customers/{person.pk}/privacy/copy/", {"copy-reason": "本人申请"},
                           HTTP_ACCEPT_LANGUAGE="en")
    # then the workbook holds the order and its line, and the wallet account with its balance
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    titles = book.sheetnames
    assert "orders" in titles and "order lines" in titles
    accounts = [list(r) for r in book["accounts"].iter_rows(values_only=True)] if "accounts" in titles else []
    assert any(50000 in row for row in accounts)
    assert not any("token" in str(cell).lower() for ws in book.worksheets for cell in next(ws.iter_rows(
        values_only=True)))


def test_a_follow_up_task_keeps_neither_the_detractors_comment_nor_the_birthday_it_copied(chain, clinic_a, admin_scope):
    # given a detractor's answer (its complaint task copies the comment) and a member's birthday-care task (it copies
    # the birthday)
    from smileloop.surveys.services import survey_answer

    today = timezone.localdate()
    playbooks_install_defaults(chain=chain)
    person = CustomerFactory(chain=chain, home_clinic=clinic_a, name="李小红",
                             birthday=(today + dt.timedelta(days=30)).replace(year=1985))
    MembershipFactory(customer=person, tier=TierFactory(plan__chain=chain))
    survey = SurveyFactory(chain=chain, clinic=clinic_a, customer=person)
    survey_answer(token=survey.token, score=2, tags=[], comment="李小红：牙医弄疼了我")
    followups_generate(chain=chain, today=today, catchup_days=0)
    contexts = list(FollowupTask.objects.filter(customer=person).values_list("context", flat=True))
    assert any(c.get("comment") == "李小红：牙医弄疼了我" for c in contexts)
    assert any(c.get("birthday") for c in contexts)
    # when
    _erase(admin_scope, person)
    # then no task of theirs holds either; what is not about the person stays
    contexts = list(FollowupTask.objects.filter(customer=person).values_list("context", flat=True))
    assert not any("comment" in c or "birthday" in c for c in contexts)
    assert any(c.get("survey_id") == survey.pk for c in contexts)


def test_the_data_copy_masks_the_other_people_its_texts_name(client, chain, clinic_a, director_a):
    # given a member's friend card, whose holder heads a family of her own
    from smileloop.customers.services import household_relative_add

    giver = CustomerFactory(chain=chain, home_clinic=clinic_a, name="吕星辰")
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a, name="陈梓睿")
    household_relative_add(customer=holder, relative=CustomerFactory(chain=chain, home_clinic=clinic_a, name="王蕾"),
                           relation="parent")
    card = friend_card_issue(member=giver, programme=ProgrammeFactory(chain=chain), trigger="benefit", key="card-1")
    giftcard_holder_note(card=card, customer=holder, at=timezone.now())
    client.force_login(director_a.user)

    def texts(person):
        response = client.post(f"/customers/{person.pk}/privacy/copy/", {"copy-reason": "本人申请"},
                               HTTP_ACCEPT_LANGUAGE="en")
        book = openpyxl.load_workbook(io.BytesIO(response.content))
        return " | ".join(str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row)

    # when / then: each copy names the other people by their surname initial only, and its own person in full
    theirs = texts(holder)
    assert "陈梓睿" in theirs and "吕星辰" not in theirs and "王蕾" not in theirs
    assert "吕**" in theirs and "王*" in theirs
    mine = texts(giver)
    assert "吕星辰" in mine and "陈梓睿" not in mine and "陈**" in mine
