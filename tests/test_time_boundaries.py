"""The chain's day is Asia/Shanghai's, not UTC's: events between 00:00 and 08:00 in Shanghai (16:00–24:00 UTC the
day before) belong to the Shanghai date, on every path that counts or filters by day.

The clock is pinned the way the product's tests pin it (django.utils.timezone.now patched), and events are put at
the edges: 23:30 and 00:30 Shanghai around midnight, month ends (31 January + 1 month), the year's end and 29
February. Each test reaches real rows through the services, selectors and pages."""

import datetime as dt
import warnings
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from smileloop.clinics.audit_views import AuditFilterForm
from smileloop.clinics.selectors import audit_event_list, scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.core.audit import audit_record
from smileloop.core.dates import add_months, day_end
from smileloop.core.jobs import job_run, local_today
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.normalize import birthday_parse
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.followups.selectors import board, inbox_list
from smileloop.followups.services import complaint_task_open, playbooks_install_defaults
from smileloop.giftcards.enums import CardStatus
from smileloop.giftcards.models import GiftCard, GiftCardReminder
from smileloop.giftcards.services import friend_card_issue
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.lifecycle.models import LifecycleSettings
from smileloop.lifecycle.selectors import funnel
from smileloop.membership.enums import MembershipStatus, PlanKind
from smileloop.membership.models import Membership, MembershipReminder
from smileloop.membership.services import membership_enrol
from smileloop.membership.tests.factories import PlanFactory, TierFactory
from smileloop.surveys.enums import NpsGroup
from smileloop.surveys.models import Survey
from smileloop.surveys.selectors import nps
from smileloop.surveys.services import survey_answer
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.services import appointment_upsert, order_record

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A Shanghai wall-clock moment, aware."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def clock(moment: dt.datetime):
    """Pin 'now' for the product (every service reads timezone.now())."""
    return mock.patch("django.utils.timezone.now", return_value=moment.astimezone(dt.UTC))


# --- the clock itself ---------------------------------------------------------------------------------------


def test_at_half_past_midnight_in_shanghai_today_is_the_shanghai_date_though_utc_is_still_yesterday():
    # given: 2026-04-01 00:30 in Shanghai is 2026-03-31 16:30 UTC
    with clock(sh(2026, 4, 1, 0, 30)):
        # then
        assert timezone.now().date() == dt.date(2026, 3, 31)
        assert (timezone.localdate(), local_today(), local_today("Asia/Shanghai")) == (dt.date(2026, 4, 1),) * 3


def test_a_baby_born_at_two_in_the_morning_in_shanghai_may_be_entered_with_todays_date():
    with clock(sh(2026, 4, 1, 2, 0)):
        assert birthday_parse("2026-04-01") == dt.date(2026, 4, 1)
        with pytest.raises(ValueError, match="future"):
            birthday_parse("2026-04-02")


# --- calendar arithmetic: month ends, leap days, the year's end ----------------------------------------------


@pytest.mark.parametrize(("start", "months", "end_day"), [
    (sh(2026, 1, 31, 0, 30), 1, dt.date(2026, 2, 28)),  # 16:30 UTC on 30 January: still the 31st's + 1 month
    (sh(2028, 1, 31, 0, 30), 1, dt.date(2028, 2, 29)),  # a leap year
    (sh(2026, 12, 31, 23, 30), 1, dt.date(2027, 1, 31)),  # the year's end
    (sh(2027, 1, 1, 0, 30), -1, dt.date(2026, 12, 1)),  # 16:30 UTC on 31 December 2026
    (sh(2028, 2, 29, 7, 59), 12, dt.date(2029, 2, 28)),  # 29 February + a year, 23:59 UTC the day before
    (sh(2026, 3, 31, 0, 30), 3, dt.date(2026, 6, 30)),
])
def test_add_months_counts_from_the_shanghai_day_and_clamps_to_the_month_end(start, months, end_day):
    # when
    moved = add_months(start, months)
    # then: same local time, the local day clamped
    assert moved.date() == end_day
    assert (moved.hour, moved.minute) == (start.hour, start.minute)
    assert day_end(moved) == dt.datetime.combine(end_day, dt.time.max, tzinfo=SHANGHAI)


# --- visits: one visit per Shanghai day ----------------------------------------------------------------------


def _visit(customer, clinic, at: dt.datetime, key: str):
    appointment_upsert(customer=customer, clinic=clinic, start_at=at, end_at=at + dt.timedelta(minutes=30),
                       status=AppointmentStatus.COMPLETED, external_id=key)


def _bill(customer, clinic, at: dt.datetime, key: str, fen: int = 5000):
    order_record(customer=customer, clinic=clinic, ordered_at=at, lines=[{"item_code": "EX01"}],
                 payments=[{"method": "cash", "amount_fen": fen}], external_id=key)


def test_a_bill_paid_after_midnight_and_a_visit_that_morning_are_one_visit_day(chain, clinic_a, catalogue):
    # given: the bill at 00:30 Shanghai (UTC: the day before), the appointment at 10:00 the same Shanghai day
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    with clock(sh(2026, 4, 1, 12)):
        _bill(patient, clinic_a, sh(2026, 4, 1, 0, 30), "B-1")
        _visit(patient, clinic_a, sh(2026, 4, 1, 10), "A-1")
    # then
    patient.refresh_from_db()
    assert patient.visit_count == 1
    assert patient.last_visit_at == sh(2026, 4, 1, 10)


def test_a_bill_before_midnight_and_a_visit_after_it_are_two_visit_days(chain, clinic_a, catalogue):
    # given: 23:30 and 00:30 Shanghai, the same UTC date (15:30 and 16:30 UTC on 31 March)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    with clock(sh(2026, 4, 1, 12)):
        _bill(patient, clinic_a, sh(2026, 3, 31, 23, 30), "B-2")
        _visit(patient, clinic_a, sh(2026, 4, 1, 0, 30), "A-2")
    # then
    patient.refresh_from_db()
    assert patient.visit_count == 2


def test_two_bills_on_one_utc_date_but_two_shanghai_days_are_two_visits(chain, clinic_a, catalogue):
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    with clock(sh(2026, 4, 1, 12)):
        _bill(patient, clinic_a, sh(2026, 3, 31, 23, 30), "B-3")
        _bill(patient, clinic_a, sh(2026, 4, 1, 0, 30), "B-4")
        _bill(patient, clinic_a, sh(2026, 4, 1, 7, 59), "B-5")  # 23:59 UTC: same Shanghai day as the one before
    patient.refresh_from_db()
    assert patient.visit_count == 2


# --- surveys: the nightly job, the visit date and NPS by month -----------------------------------------------


def test_the_survey_job_run_after_midnight_asks_about_yesterdays_late_visit_and_not_tonights(
        chain, clinic_a, catalogue):
    # given: a visit at 23:30 on 31 March and one at 00:10 on 1 April (Shanghai), the same UTC date
    late, early = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    with clock(sh(2026, 4, 1, 0, 20)):
        _visit(late, clinic_a, sh(2026, 3, 31, 23, 30), "S-1")
        _visit(early, clinic_a, sh(2026, 4, 1, 0, 10), "S-2")
    # when: the nightly job at 02:50 Shanghai (18:50 UTC on 31 March), no date given
    with clock(sh(2026, 4, 1, 2, 50)):
        counts = job_run("surveys.daily")
    # then: yesterday (Shanghai) is 31 March: only the late visit is asked about, dated 31 March
    assert counts["created"] == 1
    assert list(Survey.objects.values_list("customer_id", "visit_date")) == [(late.id, dt.date(2026, 3, 31))]
    # and the next night asks about the 00:10 visit, dated 1 April
    with clock(sh(2026, 4, 2, 2, 50)):
        job_run("surveys.daily")
    assert Survey.objects.get(customer=early).visit_date == dt.date(2026, 4, 1)


def test_nps_by_month_puts_a_visit_at_2330_on_31_march_in_march_and_one_at_0010_on_1_april_in_april(
        chain, clinic_a, catalogue, admin_scope):
    # given: answered surveys of the two visits
    march, april = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    with clock(sh(2026, 4, 1, 0, 20)):
        _visit(march, clinic_a, sh(2026, 3, 31, 23, 30), "N-1")
        _visit(april, clinic_a, sh(2026, 4, 1, 0, 10), "N-2")
    with clock(sh(2026, 4, 2, 3)):
        job_run("surveys.daily")
    for survey, score in zip(Survey.objects.order_by("visit_date"), (10, 0), strict=True):
        survey_answer(token=survey.token, score=score, tags=[], at=sh(2026, 4, 2, 9))
    # when
    rows = nps(admin_scope, group_by=NpsGroup.MONTH)
    # then: March has the promoter, April the detractor
    assert [(r.label, r.responses, r.promoters, r.detractors) for r in rows] == [
        ("2026-03", 1, 1, 0), ("2026-04", 1, 0, 1)]
    # and a visit-date filter for March counts March's only
    only_march = nps(admin_scope, group_by=NpsGroup.MONTH, since=dt.date(2026, 3, 1), until=dt.date(2026, 3, 31))
    assert [(r.label, r.responses) for r in only_march] == [("2026-03", 1)]


# --- the audit log's date filter -----------------------------------------------------------------------------


def test_the_audit_log_filter_from_1_to_31_march_is_march_in_shanghai(chain, chain_admin, admin_scope):
    # given: events at the edges of March in Shanghai
    moments = {"before": sh(2026, 2, 28, 23, 30), "first": sh(2026, 3, 1, 0, 30),
               "last": sh(2026, 3, 31, 23, 30), "after": sh(2026, 4, 1, 0, 30)}
    for name, moment in moments.items():
        event = audit_record(actor=chain_admin.user, action="customer.view", object_type="customer", object_id=name)
        AuditEvent.objects.filter(pk=event.pk).update(created_at=moment)
    # when: the page's form, as the query string sends it
    form = AuditFilterForm(admin_scope, {"date_from": "2026-03-01", "date_to": "2026-03-31"})
    filters = form.filters()
    filters.pop("page")
    found = set(audit_event_list(admin_scope, **filters).values_list("object_id", flat=True))
    # then
    assert found == {"first", "last"}


# --- the lifecycle funnel's "created since" ------------------------------------------------------------------


def test_the_funnel_since_1_april_counts_a_patient_created_at_0030_and_not_one_at_2330_the_night_before(
        chain, clinic_a, admin_scope):
    # given
    before = CustomerFactory(chain=chain, home_clinic=clinic_a)
    after = CustomerFactory(chain=chain, home_clinic=clinic_a)
    Customer.objects.filter(pk=before.pk).update(created_at=sh(2026, 3, 31, 23, 30))
    Customer.objects.filter(pk=after.pk).update(created_at=sh(2026, 4, 1, 0, 30))
    # when / then
    assert funnel(admin_scope, since=dt.date(2026, 4, 1)).total == 1
    assert funnel(admin_scope, since=dt.date(2026, 3, 31)).total == 2


# --- memberships: expiry at the end of the Shanghai day ------------------------------------------------------


@pytest.fixture
def monthly_plan(chain):
    plan = PlanFactory(chain=chain, name="月卡", kind=PlanKind.PAID, fee_fen=9_900, duration_months=1,
                       spend_threshold_fen=None, auto_enrol=False)
    TierFactory(plan=plan, rank=1, name="月卡会员", discount_bp=500, min_spend_fen=0, family_slots=1)
    return plan


def test_a_month_from_0030_on_31_january_in_shanghai_ends_with_28_february_in_shanghai(chain, clinic_a, monthly_plan):
    # given: enrolled at 00:30 on 31 January Shanghai (16:30 UTC on 30 January)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    membership = membership_enrol(customer=patient, plan=monthly_plan, as_of=sh(2026, 1, 31, 0, 30))
    # then: valid all of 28 February, Shanghai
    assert membership.expires_at == dt.datetime.combine(dt.date(2026, 2, 28), dt.time.max, tzinfo=SHANGHAI)
    # when: the nightly job of 28 February (01:40 Shanghai, no date given): still valid
    with clock(sh(2026, 2, 28, 1, 40)):
        assert job_run("membership.expire")["expired"] == 0
    # and at 23:30 on 28 February (15:30 UTC) still valid
    with clock(sh(2026, 2, 28, 23, 30)):
        assert job_run("membership.expire")["expired"] == 0
    # when: the job of 1 March at 01:40 Shanghai (17:40 UTC on 28 February)
    with clock(sh(2026, 3, 1, 1, 40)):
        assert job_run("membership.expire")["expired"] == 1
    assert Membership.objects.get(pk=membership.pk).status == MembershipStatus.EXPIRED


def test_a_membership_ending_on_31_december_is_still_active_on_new_years_eve_and_expired_on_new_years_day(
        chain, clinic_a, monthly_plan):
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    membership = membership_enrol(customer=patient, plan=monthly_plan, as_of=sh(2026, 11, 30, 23, 30))
    assert timezone.localtime(membership.expires_at).date() == dt.date(2026, 12, 30)
    membership = membership_enrol(customer=CustomerFactory(chain=chain, home_clinic=clinic_a), plan=monthly_plan,
                                  as_of=sh(2026, 12, 1, 0, 30))  # 16:30 UTC on 30 November
    assert timezone.localtime(membership.expires_at).date() == dt.date(2027, 1, 1)
    with clock(sh(2027, 1, 1, 1, 40)):
        assert job_run("membership.expire")["expired"] == 1  # the first one only (ended on 30 December)
    assert Membership.objects.get(pk=membership.pk).status == MembershipStatus.ACTIVE
    with clock(sh(2027, 1, 2, 1, 40)):
        assert job_run("membership.expire")["expired"] == 1
    assert Membership.objects.get(pk=membership.pk).status == MembershipStatus.EXPIRED


# --- gift cards: the expiry day and the reminder days are Shanghai's -----------------------------------------


def test_a_friend_card_given_at_0030_shanghai_counts_its_days_from_that_shanghai_date(chain, clinic_a):
    # given: a 1-month card with reminders 7 and 20 days on, issued at 00:30 on 31 January (16:30 UTC on the 30th)
    programme = ProgrammeFactory(chain=chain, code="friend-1m", name="亲友卡", face_value_fen=60000, valid_months=1,
                                 reminder_days=[7, 20])
    member = CustomerFactory(chain=chain, home_clinic=clinic_a)
    card = friend_card_issue(member=member, programme=programme, trigger="test", key="k-1",
                             as_of=sh(2026, 1, 31, 0, 30))
    # then
    assert timezone.localtime(card.expires_at).date() == dt.date(2026, 2, 28)
    assert sorted(set(GiftCardReminder.objects.filter(card=card).values_list("due_on", flat=True))) == [
        dt.date(2026, 2, 7), dt.date(2026, 2, 20)]
    # when: the job at 23:30 on 28 February (Shanghai): still valid; at 01:30 on 1 March: expired
    with clock(sh(2026, 2, 28, 23, 30)):
        assert job_run("giftcards.expire")["count"] == 0
    with clock(sh(2026, 3, 1, 1, 30)):
        assert job_run("giftcards.expire")["count"] == 1
    assert GiftCard.objects.get(pk=card.pk).status == CardStatus.EXPIRED


def last_stage_move(customer) -> tuple[str, str]:
    data = (Interaction.objects.filter(customer=customer, kind="system", data__has_key="stage_to")
            .order_by("-id").values_list("data", flat=True).first())
    return data["stage_to"], data["cause"]


# --- lifecycle: "no visit for N months" counts Shanghai days, and says so on the timeline --------------------


def test_the_dormant_move_after_midnight_keeps_a_patient_last_seen_at_0030_on_the_cutoff_day(chain, clinic_a, catalogue):
    # given: 6 months to dormant; bills at 23:30 on 30 September and 00:30 on 1 October 2025 (Shanghai): the same
    # UTC date (30 September)
    LifecycleSettings.objects.create(chain=chain, dormant_after_months=6, lost_after_months=6)
    gone, kept = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    with clock(sh(2025, 10, 1, 9)):
        _bill(gone, clinic_a, sh(2025, 9, 30, 23, 30), "L-1")
        _bill(kept, clinic_a, sh(2025, 10, 1, 0, 30), "L-2")
    # when: the nightly job of 1 April 2026 at 02:20 Shanghai (18:20 UTC on 31 March), no date given
    with clock(sh(2026, 4, 1, 2, 20)):
        job_run("lifecycle.stages")
    # then: six months before 1 April is 1 October: the 00:30 visit is within them, the 23:30 one is not
    stages = dict(Customer.objects.filter(pk__in=[gone.pk, kept.pk]).values_list("pk", "stage"))
    assert (stages[gone.pk], stages[kept.pk]) == ("dormant", "treated")
    assert last_stage_move(gone) == ("dormant", "no visit since 2025-09-30 (6 months)")
    # and the next night moves the other one, named by its Shanghai date
    with clock(sh(2026, 4, 2, 2, 20)):
        job_run("lifecycle.stages")
    assert last_stage_move(kept) == ("dormant", "no visit since 2025-10-01 (6 months)")


# --- follow-ups: the inbox's "today" and the team board's days ----------------------------------------------


def test_at_0730_shanghai_the_inbox_and_the_board_read_the_shanghai_day(chain, clinic_a, front_desk_a, director_a):
    # given: tasks due around the Shanghai day of 1 April, opened days ago, SLAs not yet run out
    playbooks_install_defaults(chain=chain)
    due = {"yesterday_late": sh(2026, 3, 31, 23, 30), "today_early": sh(2026, 4, 1, 0, 30),
           "today_late": sh(2026, 4, 1, 23, 30), "tomorrow_early": sh(2026, 4, 2, 0, 30)}
    tasks = {}
    with clock(sh(2026, 3, 28, 10)):
        for name, at in due.items():
            task = complaint_task_open(customer=CustomerFactory(chain=chain, home_clinic=clinic_a), clinic=clinic_a,
                                       brief="", anchor_key=f"tz:{name}")
            FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a, due_at=at,
                                                           sla_due_at=sh(2026, 4, 30))
            tasks[name] = task.pk
    names = {pk: name for name, pk in tasks.items()}
    # when: 07:30 on 1 April in Shanghai (23:30 UTC on 31 March), no date given
    with clock(sh(2026, 4, 1, 7, 30)):
        inbox = inbox_list(scope_for_staff(front_desk_a))
        today_board = board(scope_for_staff(director_a), days=1)
    # then: due by the end of the Shanghai day; late only when due before its start
    assert [(names[t.pk], t.is_overdue) for t in inbox] == [
        ("yesterday_late", True), ("today_early", False), ("today_late", False)]
    assert (today_board.since, today_board.until) == (dt.date(2026, 4, 1), dt.date(2026, 4, 1))
    assert today_board.totals.total == 2


def test_the_tasks_api_window_in_the_chains_time_is_the_shanghai_day(client, chain, clinic_a, front_desk_a):
    # given: tasks due around 1 April, Shanghai
    playbooks_install_defaults(chain=chain)
    due = {"before": sh(2026, 3, 31, 23, 30), "first": sh(2026, 4, 1, 0, 30), "last": sh(2026, 4, 1, 23, 30),
           "after": sh(2026, 4, 2, 0, 30)}
    ids = {}
    for name, at in due.items():
        task = complaint_task_open(customer=CustomerFactory(chain=chain, home_clinic=clinic_a), clinic=clinic_a,
                                   brief="", anchor_key=f"api:{name}")
        FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a, due_at=at)
        ids[task.pk] = name
    token = token_create(username=front_desk_a.user.username)

    def window(**params) -> list[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a naive time reaching the ORM would only warn
            response = client.get("/api/followups/tasks", params, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.content
        return [ids[item["id"]] for item in response.json()["items"]]

    # when / then: naive times are the chain's; an offset is honoured as given
    assert window(due_from="2026-04-01T00:00:00", due_to="2026-04-02T00:00:00") == ["first", "last"]
    assert window(due_from="2026-04-01T00:00:00+08:00", due_to="2026-04-02T00:00:00+08:00") == ["first", "last"]
    assert window(due_from="2026-03-31T16:00:00Z", due_to="2026-04-01T16:00:00Z") == ["first", "last"]


def test_a_naive_due_window_is_read_in_the_chains_own_time_zone(client, chain, clinic_a, front_desk_a):
    # given: a chain on Tokyo time (UTC+9) and a task due at 00:30 on 1 April there (23:30 on 31 March in Shanghai)
    chain.time_zone = "Asia/Tokyo"
    chain.save(update_fields=["time_zone"])
    playbooks_install_defaults(chain=chain)
    task = complaint_task_open(customer=CustomerFactory(chain=chain, home_clinic=clinic_a), clinic=clinic_a,
                               brief="", anchor_key="tokyo:1")
    FollowupTask.objects.filter(pk=task.pk).update(
        assignee=front_desk_a, due_at=dt.datetime(2026, 4, 1, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo")))
    token = token_create(username=front_desk_a.user.username)
    # when: the window of 1 April in the chain's (naive) time
    response = client.get("/api/followups/tasks", {"due_from": "2026-04-01T00:00:00", "due_to": "2026-04-02T00:00:00"},
                          headers={"Authorization": f"Bearer {token}"})
    # then
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [task.pk]


def test_renewal_reminders_are_recorded_on_the_shanghai_day_they_are_due(chain, clinic_a, monthly_plan):
    # given: a membership valid until 30 April (Shanghai), reminders 30 and 7 days ahead: due 31 March and 23 April
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    membership = membership_enrol(customer=patient, plan=monthly_plan, as_of=sh(2026, 3, 30, 10))
    assert timezone.localtime(membership.expires_at).date() == dt.date(2026, 4, 30)

    def nightly(day: dt.date) -> list[tuple[int, dt.date]]:
        with clock(dt.datetime.combine(day, dt.time(1, 40), tzinfo=SHANGHAI)):  # 17:40 UTC the day before
            job_run("membership.expire")
        return list(MembershipReminder.objects.filter(membership=membership).order_by("id")
                    .values_list("days_before", "due_on"))

    # when / then: nothing the night before the first is due; each is recorded on its own due day, not the day after
    assert nightly(dt.date(2026, 3, 30)) == []
    assert nightly(dt.date(2026, 3, 31)) == [(30, dt.date(2026, 3, 31))]
    assert nightly(dt.date(2026, 4, 22)) == [(30, dt.date(2026, 3, 31))]
    assert nightly(dt.date(2026, 4, 23)) == [(30, dt.date(2026, 3, 31)), (7, dt.date(2026, 4, 23))]
    # and a run for a given day (catching up) records the same
    MembershipReminder.objects.all().delete()
    job_run("membership.expire", today=dt.date(2026, 3, 31))
    assert list(MembershipReminder.objects.values_list("days_before", "due_on")) == [(30, dt.date(2026, 3, 31))]
