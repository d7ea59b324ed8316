import datetime as dt
import math

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory
from smileloop.core.errors import ValidationFailed
from smileloop.customers.enums import InteractionKind
from smileloop.customers.models import Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.templatetags.customers_ui import interaction_text
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.timeline import timeline_text
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask
from smileloop.surveys import selectors, services
from smileloop.surveys.errors import SurveyAlreadyAnswered, SurveyExpired, SurveyNotFound
from smileloop.surveys.models import Survey, SurveySettings
from smileloop.surveys.services import TOKEN_ALPHABET, TOKEN_LENGTH
from smileloop.surveys.tasks import surveys_job
from smileloop.surveys.tests.conftest import TODAY, at_local
from smileloop.surveys.tests.factories import AppointmentFactory, SurveyFactory
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Order

pytestmark = pytest.mark.django_db

YESTERDAY = TODAY - dt.timedelta(days=1)
RUN_AT = at_local(TODAY, 2)


def visit(chain, clinic, customer, *, day=YESTERDAY, hour=10, status=AppointmentStatus.COMPLETED, doctor=None):
    start = at_local(day, hour)
    return AppointmentFactory(chain=chain, clinic=clinic, customer=customer, doctor=doctor, status=status,
                              start_at=start, end_at=start + dt.timedelta(minutes=45))


# --- creation ------------------------------------------------------------------------------------------

def test_each_completed_visit_of_yesterday_gets_exactly_one_survey_even_when_run_twice(
        chain, clinic_a, clinic_b, patient, doctor_a):
    # given: yesterday's visits in two clinics (one 23:30 local, i.e. 15:30 UTC), and visits that do not count
    other = CustomerFactory(chain=chain, home_clinic=clinic_b)
    done_a = visit(chain, clinic_a, patient, doctor=doctor_a)
    done_b = visit(chain, clinic_b, other, hour=23)
    visit(chain, clinic_a, other, status=AppointmentStatus.NO_SHOW)
    visit(chain, clinic_a, other, status=AppointmentStatus.BOOKED, day=TODAY)
    visit(chain, clinic_a, other, day=TODAY)  # today's visit is surveyed tomorrow
    # when
    first = services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    second = services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    # then
    assert first == {"visits": 2, "created": 2}
    assert second == {"visits": 0, "created": 0}
    surveys = {s.appointment_id: s for s in Survey.objects.all()}
    assert set(surveys) == {done_a.id, done_b.id}
    survey = surveys[done_a.id]
    assert (survey.clinic_id, survey.customer_id, survey.doctor_id, survey.visit_date) == (
        clinic_a.id, patient.id, doctor_a.id, YESTERDAY)
    assert surveys[done_b.id].visit_date == YESTERDAY
    assert survey.created_at == RUN_AT
    assert survey.expires_at == RUN_AT + dt.timedelta(days=14)
    assert (survey.sent_at, survey.opened_at, survey.answered_at, survey.score) == (None, None, None, None)


def test_a_patient_erased_since_the_visit_is_not_asked(chain, clinic_a, patient, director_scope):
    # given yesterday's visit, then the patient's erasure (PIPL) before the night's run
    visit(chain, clinic_a, patient)
    customer_erase(scope=director_scope, customer=patient, actor=None, reason="本人书面申请")
    # when
    result = services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    # then no link (a credential) is made for the anonymous record
    assert result == {"visits": 0, "created": 0}
    assert not Survey.objects.exists()


def test_two_appointments_of_one_patient_on_one_day_are_one_survey(chain, clinic_a, patient, doctor_a):
    # given a cleaning at 9:00 and a filling at 11:00 yesterday, and tomorrow a third visit on that same day
    first = visit(chain, clinic_a, patient, hour=9, doctor=doctor_a)
    visit(chain, clinic_a, patient, hour=11)
    # when
    created = services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    visit(chain, clinic_a, patient, hour=15)  # recorded late, the day already asked about
    again = services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    # then the patient is asked once, about the day's first appointment
    assert (created, again) == ({"visits": 1, "created": 1}, {"visits": 0, "created": 0})
    assert list(Survey.objects.values_list("appointment_id", flat=True)) == [first.id]


def test_a_missed_run_is_caught_up_within_a_week_but_not_beyond(chain, clinic_a, patient):
    # given
    within = visit(chain, clinic_a, patient, day=TODAY - dt.timedelta(days=7))
    visit(chain, clinic_a, patient, day=TODAY - dt.timedelta(days=8))
    # when
    result = services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    # then
    assert result["created"] == 1
    assert Survey.objects.get().appointment_id == within.id


def test_the_same_day_order_of_the_visit_is_linked(chain, clinic_a, clinic_b, patient):
    # given: the visit's bill, another clinic's bill the same day and the patient's bill of another day
    appointment = visit(chain, clinic_a, patient)
    bill = Order.objects.create(chain=chain, clinic=clinic_a, customer=patient, ordered_at=at_local(YESTERDAY, 11),
                                amount_fen=30000)
    Order.objects.create(chain=chain, clinic=clinic_b, customer=patient, ordered_at=at_local(YESTERDAY, 9))
    Order.objects.create(chain=chain, clinic=clinic_a, customer=patient, ordered_at=at_local(TODAY, 0, 30))
    # when
    services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    # then
    assert Survey.objects.get(appointment=appointment).order_id == bill.id


def test_the_link_lifetime_is_configurable_per_chain(chain, clinic_a, patient):
    # given
    SurveySettings.objects.create(chain=chain, expiry_days=3)
    visit(chain, clinic_a, patient)
    # when
    services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    # then
    assert Survey.objects.get().expires_at == RUN_AT + dt.timedelta(days=3)


def test_visits_of_a_merged_record_get_no_survey(chain, clinic_a, patient):
    # given
    tombstone = CustomerFactory(chain=chain, home_clinic=clinic_a, merged_into=patient)
    visit(chain, clinic_a, tombstone)
    # when
    result = services.surveys_create_for_visits(chain=chain, today=TODAY, at=RUN_AT)
    # then
    assert result["created"] == 0


def test_the_daily_job_runs_every_chain_and_is_idempotent(chain, clinic_a, patient):
    # given
    other_chain = ChainFactory()
    other_clinic = ClinicFactory(chain=other_chain)
    visit(chain, clinic_a, patient)
    visit(other_chain, other_clinic, CustomerFactory(chain=other_chain))
    # when
    first = surveys_job(today=TODAY)
    second = surveys_job(today=TODAY)
    # then
    assert first["created"] == 2 and first["chains"] >= 2
    assert second["created"] == 0
    assert Survey.objects.filter(chain=other_chain).count() == 1


def test_tokens_are_long_random_url_safe_and_unique():
    # when
    tokens = [services.token_new() for _ in range(2000)]
    # then
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == TOKEN_LENGTH and set(t) <= set(TOKEN_ALPHABET) for t in tokens)
    assert TOKEN_LENGTH * math.log2(len(TOKEN_ALPHABET)) > 70  # bits of entropy
    # every position uses the whole alphabet (no fixed prefix, no counter)
    assert all(len({t[i] for t in tokens}) > 50 for i in range(TOKEN_LENGTH))


def test_the_database_refuses_a_second_survey_for_one_visit_and_a_score_out_of_range(chain, clinic_a, patient):
    appointment = visit(chain, clinic_a, patient)
    SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, appointment=appointment)
    with pytest.raises(IntegrityError), transaction.atomic():
        SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, appointment=appointment)
    with pytest.raises(IntegrityError), transaction.atomic():
        SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, score=11)


# --- answering -----------------------------------------------------------------------------------------

@pytest.fixture
def survey(chain, clinic_a, patient, doctor_a):
    return SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, doctor=doctor_a, visit_date=YESTERDAY)


def test_an_answer_is_recorded_once_with_a_timeline_entry(survey, patient):
    # given
    at = timezone.now()
    # when
    answered = services.survey_answer(token=survey.token, score=9, tags=["price", "doctor_explanation", "price"],
                                      comment="  医生讲解很耐心  ", at=at)
    # then
    survey.refresh_from_db()
    assert (survey.score, survey.tags, survey.comment, survey.answered_at) == (
        9, ["doctor_explanation", "price"], "医生讲解很耐心", at)
    assert survey.opened_at == at and survey.sent_at == at  # answering proves the link arrived
    assert survey.complaint_task_id is None and answered.complaint_task_id is None
    entry = Interaction.objects.get(customer=patient)
    assert entry.kind == InteractionKind.FORM
    assert entry.data == {"survey_id": survey.id, "score": 9, "tags": ["doctor_explanation", "price"], "via": "link"}
    assert entry.text == "satisfaction survey: 9/10 · about: doctor_explanation, price · “医生讲解很耐心”"
    with translation.override("zh-hans"):
        assert interaction_text(entry) == "满意度评价：9/10 · 涉及：医生讲解、价格 · “医生讲解很耐心”"
    with translation.override("en"):
        assert interaction_text(entry) == "satisfaction survey: 9/10 · about: Doctor's explanation, Price · “医生讲解很耐心”"
    assert FollowupTask.objects.count() == 0


def test_a_low_score_opens_one_complaint_task_for_the_director_due_within_24_hours(
        survey, patient, director_a, front_desk_a):
    # given
    at = timezone.now()
    # when
    services.survey_answer(token=survey.token, score=4, tags=["waiting_time"], comment="等待时间太长了", at=at)
    # then
    survey.refresh_from_db()
    task = FollowupTask.objects.get()
    assert survey.complaint_task_id == task.id
    assert task.assignee_id == director_a.id
    assert task.customer_id == patient.id and task.clinic_id == survey.clinic_id
    assert task.status == TaskStatus.OPEN
    assert task.anchor_key == f"survey:{survey.id}"
    assert task.due_at == at + dt.timedelta(hours=24)
    assert task.brief == (f"Low score after the visit of {survey.visit_date.isoformat()} (doctor {survey.doctor.name})."
                          " satisfaction survey: 4/10 · about: waiting_time · “等待时间太长了”")
    with translation.override("zh-hans"):
        assert timeline_text(task.brief) == (f"{survey.visit_date.isoformat()} 就诊后评分较低（医生：{survey.doctor.name}）。"
                                             "满意度评价：4/10 · 涉及：等待时间 · “等待时间太长了”")
    assert task.context["score"] == 4 and task.context["comment"] == "等待时间太长了"
    # and a second attempt changes nothing and opens no second task
    with pytest.raises(SurveyAlreadyAnswered):
        services.survey_answer(token=survey.token, score=0, tags=[], comment="", at=at)
    assert FollowupTask.objects.count() == 1
    survey.refresh_from_db()
    assert survey.score == 4


@pytest.mark.parametrize("score, opens_task", [(6, True), (7, False), (0, True), (10, False)])
def test_only_scores_of_six_or_less_open_a_complaint(survey, director_a, score, opens_task):
    services.survey_answer(token=survey.token, score=score, tags=[], comment="")
    assert FollowupTask.objects.exists() is opens_task


def test_an_expired_survey_cannot_be_answered_and_nothing_changes(survey, patient):
    # given
    after = survey.expires_at
    # when / then
    with pytest.raises(SurveyExpired):
        services.survey_answer(token=survey.token, score=10, tags=[], comment="", at=after)
    survey.refresh_from_db()
    assert (survey.score, survey.answered_at, survey.opened_at) == (None, None, None)
    assert not Interaction.objects.filter(customer=patient).exists()


@pytest.mark.parametrize("score, tags, comment, field", [
    (None, [], "", "score"),
    ("", [], "", "score"),
    (11, [], "", "score"),
    (-1, [], "", "score"),
    ("seven", [], "", "score"),
    (True, [], "", "score"),
    ("１０", [], "", "score"),  # full-width digits: int() reads them, the page and the API do not
    ("1_0", [], "", "score"),  # int() reads "1_0" as 10
    (7.0, [], "", "score"),
    (8, ["parking"], "", "tags"),
    (8, "price", "", "tags"),
    (8, [], "长" * 501, "comment"),
])
def test_invalid_answers_are_refused_per_field_and_nothing_is_saved(survey, patient, score, tags, comment, field):
    with pytest.raises(ValidationFailed) as exc:
        services.survey_answer(token=survey.token, score=score, tags=tags, comment=comment)
    assert [e.field for e in exc.value.errors] == [field]
    survey.refresh_from_db()
    assert survey.answered_at is None and survey.score is None
    assert not Interaction.objects.filter(customer=patient).exists()


def test_a_comment_of_exactly_500_characters_is_accepted(survey):
    services.survey_answer(token=survey.token, score=8, tags=[], comment="好" * 500)
    survey.refresh_from_db()
    assert len(survey.comment) == 500


def test_of_two_simultaneous_answers_only_the_first_to_update_wins(survey, patient, monkeypatch):
    # given: the loser read the survey before the winner committed (a stale, unanswered copy)
    stale = Survey.objects.select_related("clinic", "doctor", "customer").get(pk=survey.pk)
    services.survey_answer(token=survey.token, score=10, tags=[], comment="winner")
    monkeypatch.setattr(selectors, "survey_get_by_token", lambda token, **kw: stale)
    # when / then: the conditional UPDATE … WHERE answered_at IS NULL matches nothing
    with pytest.raises(SurveyAlreadyAnswered):
        services.survey_answer(token=survey.token, score=1, tags=["pain"], comment="loser")
    survey.refresh_from_db()
    assert (survey.score, survey.comment) == (10, "winner")
    assert Interaction.objects.filter(customer=patient).count() == 1
    assert FollowupTask.objects.count() == 0


def test_an_unknown_or_malformed_token_is_not_found(survey):
    for token in ["", "x" * 12, survey.token + "x", "../../etc", "a" * 200]:
        with pytest.raises(SurveyNotFound):
            services.survey_answer(token=token, score=9, tags=[], comment="")


def test_opening_marks_the_first_view_only_and_never_an_expired_survey(survey, chain, clinic_a, patient):
    # given
    first, later = timezone.now(), timezone.now() + dt.timedelta(hours=1)
    # when
    services.survey_open(token=survey.token, at=first)
    services.survey_open(token=survey.token, at=later)
    # then
    survey.refresh_from_db()
    assert survey.opened_at == first and survey.sent_at == first
    # and an expired one stays untouched
    expired = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient,
                            created_at=timezone.now() - dt.timedelta(days=20),
                            expires_at=timezone.now() - dt.timedelta(days=6))
    services.survey_open(token=expired.token)
    expired.refresh_from_db()
    assert expired.opened_at is None


def test_marking_links_sent_keeps_the_first_send(survey):
    first = timezone.now() - dt.timedelta(hours=2)
    assert services.surveys_mark_sent(survey_ids=[survey.id], at=first) == 1
    assert services.surveys_mark_sent(survey_ids=[survey.id]) == 0
    survey.refresh_from_db()
    assert survey.sent_at == first


def test_marking_links_sent_skips_expired_links_and_the_single_send_refuses_them(survey, chain, clinic_a, patient):
    # given
    expired = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient,
                            created_at=timezone.now() - dt.timedelta(days=20),
                            expires_at=timezone.now() - dt.timedelta(days=6))
    # when
    marked = services.surveys_mark_sent(survey_ids=[survey.id, expired.id])
    # then
    assert marked == 1
    with pytest.raises(SurveyExpired):
        services.survey_mark_sent(survey=expired)
    expired.refresh_from_db()
    assert expired.sent_at is None


def test_a_comment_is_counted_with_one_character_per_line_break(survey):
    # given 500 characters as a browser's textarea counts them, submitted with CR LF line breaks
    comment = "\r\n".join(["等待时间太长了" * 7] * 10)  # 10 lines of 49 + 9 breaks = 499
    # when
    answered = services.survey_answer(token=survey.token, score=7, tags=[], comment=comment)
    # then
    assert answered.comment == comment.replace("\r\n", "\n") and len(answered.comment) == 499
