"""The "consulted, not treated" playbook (咨询未成交回访): patients who came for a (free) consultation or exam and
neither paid for treatment nor booked again are called by their consultant, days after the visit; a booking closes
the call."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.tests.factories import ChainFactory
from smileloop.core.errors import ValidationFailed
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.defaults import DEFAULT_PLAYBOOKS
from smileloop.followups.enums import Goal, TaskStatus, Trigger
from smileloop.followups.models import FollowupTask, Playbook
from smileloop.followups.script import tasks_scripts_fill
from smileloop.followups.services import playbook_update, playbooks_install_defaults
from smileloop.followups.services.generate import followups_close_by_goal, followups_generate
from smileloop.followups.services.playbooks import step_clean, trigger_params_clean
from smileloop.followups.tests.factories import AppointmentFactory, ProcedureFactory, local
from smileloop.visits.enums import AppointmentStatus, Category, PlanStatus
from smileloop.visits.models import Order, TreatmentPlan
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

CODE = "consult_not_converted"


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@pytest.fixture
def consult_item(chain):
    return ServiceItemFactory(chain=chain, code="CS01", name="初诊咨询", category=Category.EXAM, list_price_fen=0)


@pytest.fixture
def playbook(playbooks):
    return playbooks[CODE]


def came(customer, day: dt.date, item=None, *, hour: int = 10, status=AppointmentStatus.COMPLETED):
    return AppointmentFactory(customer=customer, start_at=local(day, hour), status=status, service_item=item)


def billed(customer, day: dt.date, *, amount_fen: int, refunded_fen: int = 0) -> Order:
    return Order.objects.create(chain=customer.chain, clinic=customer.home_clinic, customer=customer,
                                ordered_at=local(day, 11), list_total_fen=amount_fen, amount_fen=amount_fen,
                                refunded_fen=refunded_fen)


def consult_tasks(playbook):
    return FollowupTask.objects.filter(playbook=playbook).select_related("step", "customer", "clinic", "doctor")


# --- the source ----------------------------------------------------------------------------------------------

def test_only_patients_who_came_and_were_neither_treated_nor_booked_again_get_the_call(
        chain, clinic_a, playbook, consult_item, consultant_a, chain_admin, admin_scope, today):
    visit_day = today - days(3)

    def patient(name, **kw):
        return CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_a, name=name, **kw)

    # given: came three days ago for a free consultation, nothing since
    unpaid = patient("王芳")
    came(unpaid, visit_day, consult_item)
    # arrived (never closed as completed), twice that day: one call
    arrived = patient("李娜")
    came(arrived, visit_day, consult_item, hour=9, status=AppointmentStatus.ARRIVED)
    came(arrived, visit_day, consult_item, hour=15, status=AppointmentStatus.ARRIVED)
    # a bill refunded in full is a sale undone; one at 0 (a free exam on the POS) is no treatment
    refunded = patient("赵敏")
    came(refunded, visit_day, consult_item)
    billed(refunded, visit_day, amount_fen=30_000, refunded_fen=30_000)
    billed_zero = patient("孙悦")
    came(billed_zero, visit_day, consult_item)
    billed(billed_zero, visit_day, amount_fen=0)
    # treated before the visit's day: a returning patient whose new consultation did not convert is called too —
    # paid last year, or the day before; spend an import recorded without its bills is history from before it
    returning = patient("郑雨")
    came(returning, visit_day, consult_item)
    billed(returning, today - days(300), amount_fen=30_000)
    day_before = patient("钱坤")
    came(day_before, visit_day, consult_item)
    billed(day_before, visit_day - days(1), amount_fen=30_000)
    imported_spend = patient("何静", lifetime_spend_fen=88_000)  # a PMS import's spend without its bills
    came(imported_spend, visit_day, consult_item)
    # not these: paid that day (even before the visit's hour), or the day after; a partial refund still leaves
    # treatment paid
    paid = patient("周杰")
    came(paid, visit_day, consult_item)
    billed(paid, visit_day, amount_fen=50_000)
    paid_early = patient("冯涛")
    came(paid_early, visit_day, consult_item, hour=15)
    Order.objects.filter(pk=billed(paid_early, visit_day, amount_fen=50_000).pk).update(ordered_at=local(visit_day, 0))
    paid_later = patient("蒋欣")
    came(paid_later, visit_day, consult_item)
    billed(paid_later, visit_day + days(1), amount_fen=50_000)
    partly = patient("吴磊")
    came(partly, visit_day, consult_item)
    billed(partly, visit_day, amount_fen=50_000, refunded_fen=20_000)
    # booked again (ahead), or came again since (that visit anchors its own call, later)
    booked = patient("马丽")
    came(booked, visit_day, consult_item)
    came(booked, today + days(5), status=AppointmentStatus.BOOKED)
    again = patient("林晓")
    came(again, visit_day, consult_item)
    came(again, today - days(1), consult_item)
    # a lead who never came: booked and missed, or cancelled
    lead = patient("陈晨")
    came(lead, visit_day, status=AppointmentStatus.NO_SHOW)
    came(lead, visit_day, hour=15, status=AppointmentStatus.CANCELLED)
    # erased, and a merged duplicate (its visit moved onto a survivor who paid after it)
    erased = patient("已注销客户")
    came(erased, visit_day, consult_item)
    Customer.objects.filter(pk=erased.pk).update(erased_at=timezone.now())
    survivor = patient("黄蕾")
    billed(survivor, visit_day + days(1), amount_fen=20_000)
    duplicate = patient("黄蕾")
    came(duplicate, visit_day, consult_item)
    customer_merge(scope=admin_scope, survivor=survivor, merged=duplicate, actor=chain_admin, reason="same person")
    # and one seen two days ago: not due yet
    recent = patient("刘洋")
    came(recent, today - days(2), consult_item)

    # when
    result = followups_generate(chain=chain, today=today, catchup_days=0)

    # then
    tasks = list(consult_tasks(playbook))
    assert sorted(t.customer_id for t in tasks) == sorted([unpaid.id, arrived.id, refunded.id, billed_zero.id,
                                                            returning.id, day_before.id, imported_spend.id])
    assert result["by_playbook"][CODE] == 7
    task = next(t for t in tasks if t.customer_id == unpaid.id)
    assert task.step.seq == 1
    assert task.anchor_key == f"consult:{visit_day.isoformat()}"
    assert task.anchor_at == local(today, 0)
    assert task.due_at == local(today, 18)
    assert task.assignee_id == consultant_a.id
    assert task.context["procedure"] == "初诊咨询"
    tasks_scripts_fill([task], today=today)
    assert task.script_text.startswith(f"王芳您好，这里是{clinic_a.name}。您3天前来我们这里做了口腔咨询和检查")


def test_a_catch_up_run_reads_each_visit_against_a_bill_of_its_own_day_or_later(
        chain, clinic_a, playbook, consult_item, today):
    # given two patients with a bill on the same day, between their visits: it is after the first one's visit
    # (treated) and before the second one's (a returning patient who did not convert)
    bill_day = today - days(5)
    treated, returning = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    came(treated, today - days(6), consult_item)
    billed(treated, bill_day, amount_fen=40_000)
    came(returning, today - days(4), consult_item)
    billed(returning, bill_day, amount_fen=40_000)
    # when the run catches up three days (visit days today - 6 … today - 3)
    followups_generate(chain=chain, today=today, catchup_days=3)
    # then only the second is called, about their own visit
    assert [(t.customer_id, t.anchor_key) for t in consult_tasks(playbook)] == [
        (returning.id, f"consult:{(today - days(4)).isoformat()}")]


def test_a_patient_in_treatment_or_aftercare_is_not_called_about_a_consultation(
        chain, clinic_a, playbook, consult_item, today):
    visit_day = today - days(3)
    implant = ServiceItemFactory(chain=chain, code="IM01", name="种植体植入", category=Category.IMPLANT,
                                 is_surgical=True, list_price_fen=800_000)
    filling = ServiceItemFactory(chain=chain, code="FI01", name="树脂充填", category=Category.FILLING,
                                 list_price_fen=30_000)
    patients = {name: CustomerFactory(chain=chain, home_clinic=clinic_a, name=name)
                for name in ("开放方案", "方案已完成", "术后复查", "术后半年", "补牙后", "当天检查")}
    for customer in patients.values():
        came(customer, visit_day, consult_item)  # a free visit, three days ago, nothing paid since
    # given: an implant plan with steps left (the visit is a step's check), and one whose steps are all done
    for name, done in (("开放方案", 1), ("方案已完成", 3)):
        TreatmentPlan.objects.create(chain=chain, clinic=clinic_a, customer=patients[name], title="种植",
                                     steps_total=3, steps_done=done, planned_at=local(today - days(200)),
                                     status=PlanStatus.ACTIVE if done < 3 else PlanStatus.COMPLETED)
    # surgery 60 days before the visit (a post-operative check) and 200 days before (a new consultation); a filling
    # (not surgical) 10 days before, and an exam recorded on the consultation itself
    ProcedureFactory(customer=patients["术后复查"], item=implant, performed_on=visit_day - days(60))
    ProcedureFactory(customer=patients["术后半年"], item=implant, performed_on=visit_day - days(200))
    ProcedureFactory(customer=patients["补牙后"], item=filling, performed_on=visit_day - days(10))
    ProcedureFactory(customer=patients["当天检查"], item=consult_item, performed_on=visit_day)

    followups_generate(chain=chain, today=today, catchup_days=0)

    # then the open plan and the recent surgery are treatment, not a consultation that did not convert
    called = {t.customer.name for t in consult_tasks(playbook)}
    assert called == {"方案已完成", "术后半年", "补牙后", "当天检查"}


def test_the_days_after_the_visit_come_from_the_trigger_parameter(chain, clinic_a, playbook, consult_item, today):
    # given the wait set to 5 days, visits 5 and 3 days ago
    playbook_update(playbook=playbook, data={"trigger_params": {"days_after_visit": "5"}})
    five, three = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    came(five, today - days(5), consult_item)
    came(three, today - days(3), consult_item)
    # when
    followups_generate(chain=chain, today=today, catchup_days=0)
    # then
    assert [t.customer_id for t in consult_tasks(playbook)] == [five.id]


def test_the_daily_run_makes_each_call_once_and_the_later_steps_on_their_days(
        chain, clinic_a, playbook, consult_item, today):
    # given a free consultation three days ago (only this playbook on: the runs below are many)
    Playbook.objects.filter(chain=chain).exclude(pk=playbook.pk).update(is_active=False)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    came(customer, today - days(3), consult_item)
    # when the run is repeated that day, and runs every day for two weeks (each with its catch-up days)
    assert followups_generate(chain=chain, today=today)["by_playbook"][CODE] == 1
    assert followups_generate(chain=chain, today=today)["by_playbook"][CODE] == 0
    for k in range(1, 15):
        followups_generate(chain=chain, today=today + days(k))
    assert followups_generate(chain=chain, today=today + days(14))["created"] == 0
    # then one task per step, due 3, 7 and 14 days after the visit
    rows = list(consult_tasks(playbook).order_by("step__seq").values_list("step__seq", "due_at"))
    assert rows == [(1, local(today, 18)), (2, local(today + days(4), 18)), (3, local(today + days(11), 18))]


def test_a_booking_closes_the_call_and_stops_the_later_steps(chain, clinic_a, playbook, consult_item, today):
    # given the first call made
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    came(customer, today - days(3), consult_item)
    followups_generate(chain=chain, today=today)
    [task] = consult_tasks(playbook)
    # when the patient books a treatment for next week
    came(customer, today + days(6), status=AppointmentStatus.BOOKED)
    closed = followups_close_by_goal(chain=chain)
    # then the call is closed by its goal, and no later step is made
    task.refresh_from_db()
    assert closed["by_goal"] == {Goal.APPOINTMENT_BOOKED.value: 1}
    assert (task.status, task.closed_reason) == (TaskStatus.CLOSED, "goal:appointment_booked")
    followups_generate(chain=chain, today=today + days(4))
    assert consult_tasks(playbook).count() == 1


def test_a_cancelled_booking_does_not_close_the_call(chain, clinic_a, playbook, consult_item, today):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    came(customer, today - days(3), consult_item)
    followups_generate(chain=chain, today=today)
    came(customer, today + days(6), status=AppointmentStatus.CANCELLED)
    assert followups_close_by_goal(chain=chain)["closed"] == 0
    assert consult_tasks(playbook).get().status == TaskStatus.OPEN


# --- parameters and the editor ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("params", "clean", "bad"), [
    ({"days_after_visit": "7"}, {"days_after_visit": 7}, None),
    ({}, {}, None),
    ({"days_after_visit": "0"}, {}, "trigger_params.days_after_visit"),
    ({"days_after_visit": "三天"}, {}, "trigger_params.days_after_visit"),
    ({"days_after_visit": "400"}, {}, "trigger_params.days_after_visit"),
    ({"days_without_appointment": 14}, {}, "trigger_params.days_without_appointment"),
])
def test_the_trigger_parameter_is_validated(chain, params, clean, bad):
    got, errors = trigger_params_clean(Trigger.CONSULTED_NOT_TREATED, params, chain_id=chain.id)
    assert got == clean
    assert [e.field for e in errors] == ([bad] if bad else [])


def test_a_bad_parameter_is_refused_and_nothing_changes(playbook):
    with pytest.raises(ValidationFailed):
        playbook_update(playbook=playbook, data={"trigger_params": {"days_after_visit": "0"}})
    playbook.refresh_from_db()
    assert playbook.trigger_params == {"days_after_visit": 3}


def _login(client, staff, lang="zh-hans"):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client


def test_the_editor_shows_the_trigger_and_its_parameter_in_chinese(client, chain_admin, playbook):
    html = _login(client, chain_admin).get(reverse("followups:playbook_edit", args=[playbook.id])).content.decode()
    assert "咨询未成交回访" in html and "咨询未成交" in html
    assert 'name="days_after_visit"' in html and 'value="3"' in html
    assert "到店后无治疗、无预约的天数" in html
    new = client.get(reverse("followups:playbook_new"), {"trigger": Trigger.CONSULTED_NOT_TREATED})
    assert new.status_code == 200
    assert 'value="consulted_not_treated" selected' in new.content.decode()
    assert 'name="days_after_visit"' in new.content.decode()


def test_the_editor_refuses_a_bad_parameter_in_chinese_and_saves_nothing(client, chain_admin, playbook):
    response = _login(client, chain_admin).post(reverse("followups:playbook_edit", args=[playbook.id]), {
        "name": playbook.name, "goal": playbook.goal, "is_active": "on", "days_after_visit": "0"})
    assert response.status_code == 422
    assert "必须在 1 到 365 之间" in response.content.decode()
    playbook.refresh_from_db()
    assert playbook.trigger_params == {"days_after_visit": 3}


def test_the_editor_saves_a_good_parameter(client, chain_admin, playbook):
    response = _login(client, chain_admin).post(reverse("followups:playbook_edit", args=[playbook.id]), {
        "name": playbook.name, "goal": playbook.goal, "is_active": "on", "days_after_visit": "5"})
    assert response.status_code == 302
    playbook.refresh_from_db()
    assert playbook.trigger_params == {"days_after_visit": 5}


# --- the built-in playbook and its migration ---------------------------------------------------------------------

def test_the_built_in_playbook_is_the_consultants_with_valid_scripts(chain):
    playbooks_install_defaults(chain=chain)
    playbook = Playbook.objects.get(chain=chain, code=CODE)
    assert (playbook.name, playbook.trigger, playbook.goal) == ("咨询未成交回访", Trigger.CONSULTED_NOT_TREATED,
                                                                 Goal.APPOINTMENT_BOOKED)
    steps = list(playbook.steps.order_by("seq"))
    assert [s.delay_days for s in steps] == [0, 4, 11]
    assert {s.assignee_rule for s in steps} == {"consultant"}
    for s in steps:
        assert step_clean({"delay_days": s.delay_days, "assignee_rule": s.assignee_rule, "channel": s.channel,
                           "sla_hours": s.sla_hours, "script": s.script})[1] == []


def _migration():
    return importlib.import_module("smileloop.followups.migrations.0008_consult_not_converted")


def test_the_migration_installs_the_playbook_as_the_defaults_have_it_on_chains_that_lack_it(chain, clinic_a):
    # given a chain with the built-in set from before the playbook existed, and a chain with no playbooks yet
    playbooks_install_defaults(chain=chain)
    Playbook.objects.get(chain=chain, code=CODE).delete()
    empty = ChainFactory()
    # when
    migration = _migration()
    migration.forwards(apps, None)
    migration.forwards(apps, None)  # a second run installs nothing more
    # then
    [installed] = Playbook.objects.filter(code=CODE)
    spec = next(p for p in DEFAULT_PLAYBOOKS if p["code"] == CODE)
    assert installed.chain_id == chain.id and installed.is_builtin and installed.is_active
    assert (installed.name, installed.trigger, installed.trigger_params, installed.goal, installed.description) == (
        spec["name"], spec["trigger"], spec["trigger_params"], spec["goal"], spec["description"])
    fields = ("seq", "delay_days", "assignee_rule", "channel", "script", "sla_hours", "lapse_days")
    assert list(installed.steps.order_by("seq").values(*fields)) == [{f: s[f] for f in fields} for s in spec["steps"]]
    assert not Playbook.objects.filter(chain=empty).exists()


def test_the_migration_leaves_a_chains_edited_playbook_alone(chain):
    playbooks_install_defaults(chain=chain)
    playbook = Playbook.objects.get(chain=chain, code=CODE)
    playbook_update(playbook=playbook, data={"name": "咨询未成交（改）"})
    _migration().forwards(apps, None)
    assert list(Playbook.objects.filter(chain=chain, code=CODE).values_list("name", flat=True)) == ["咨询未成交（改）"]
