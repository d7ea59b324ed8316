import datetime as dt

import pytest

from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask
from smileloop.surveys.demo import demo_load
from smileloop.surveys.models import Survey
from smileloop.surveys.tests.conftest import TODAY, at_local
from smileloop.surveys.tests.factories import AppointmentFactory
from smileloop.visits.enums import AppointmentStatus

pytestmark = pytest.mark.django_db


def test_the_demo_surveys_every_recent_visit_with_a_realistic_answer_mix_and_is_idempotent(
        chain, clinic_a, doctor_a, director_a):
    # given: a chain whose name seeds the demo's answers (the factory's sequence number depends on test order), 300
    # completed visits over the last 60 days (five a patient, on five days), one over a year ago and a no-show
    chain.name = "笑齿口腔"
    chain.save(update_fields=["name"])
    customers = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(60)]
    for i in range(300):
        start = at_local(TODAY - dt.timedelta(days=1 + i % 60), 9 + i % 8)
        AppointmentFactory(chain=chain, clinic=clinic_a, customer=customers[i // 5], doctor=doctor_a,
                           start_at=start, end_at=start + dt.timedelta(minutes=30))
    old = at_local(TODAY - dt.timedelta(days=400), 10)  # beyond the demo's year of surveys
    AppointmentFactory(chain=chain, clinic=clinic_a, customer=customers[0], start_at=old,
                       end_at=old + dt.timedelta(minutes=30))
    AppointmentFactory(chain=chain, clinic=clinic_a, customer=customers[1], status=AppointmentStatus.NO_SHOW,
                       start_at=at_local(TODAY - dt.timedelta(days=2), 10),
                       end_at=at_local(TODAY - dt.timedelta(days=2), 11))
    # when
    result = demo_load(chain=chain, today=TODAY)
    again = demo_load(chain=chain, today=TODAY)
    # then
    assert result["surveys"] == 300 and again["surveys"] == 0
    answered = Survey.objects.filter(answered_at__isnull=False)
    assert 0.25 <= answered.count() / 300 <= 0.45
    scores = list(answered.values_list("score", flat=True))
    promoters = sum(s >= 9 for s in scores)
    detractors = [s for s in scores if s <= 6]
    assert promoters > len(scores) / 2 and 0 < len(detractors) < len(scores) / 4
    moment = at_local(TODAY, 10)
    assert all(s.sent_at == s.created_at and s.created_at < s.answered_at < min(moment, s.expires_at)
               for s in answered)
    # every detractor has its complaint task (recent ones open, older ones handled), with a Chinese comment
    low = Survey.objects.filter(score__lte=6)
    assert all(s.complaint_task_id and s.comment for s in low)
    tasks = FollowupTask.objects.filter(pk__in=[s.complaint_task_id for s in low])
    assert tasks.count() == low.count() == result["complaints"]
    assert all(t.assignee_id == director_a.id for t in tasks)
    assert tasks.filter(status=TaskStatus.DONE).count() == result["complaints_handled"]
    assert Interaction.objects.filter(kind="form", data__survey_id__isnull=False).count() == answered.count()


def test_the_demo_loaded_early_in_the_morning_records_nothing_after_now(chain, clinic_a, doctor_a, director_a,
                                                                          monkeypatch):
    # given `smileloop demo` run at 07:12 in Shanghai, before the 09:00 texts of yesterday's visits went out
    from django.utils import timezone

    now = at_local(TODAY, 7, 12)
    monkeypatch.setattr(timezone, "now", lambda: now)
    customers = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(40)]
    for i, customer in enumerate(customers):
        start = at_local(TODAY - dt.timedelta(days=1 + i % 4), 9 + i % 8)
        AppointmentFactory(chain=chain, clinic=clinic_a, customer=customer, doctor=doctor_a, start_at=start,
                           end_at=start + dt.timedelta(minutes=30))
    # when
    demo_load(chain=chain, today=TODAY)
    # then no survey was sent, opened or answered, and no answer reached the timeline, later than now
    surveys = list(Survey.objects.all())
    assert len(surveys) == 40
    assert all(s.created_at <= now and s.sent_at <= now for s in surveys)
    assert all(s.answered_at is None or s.answered_at <= now for s in surveys)
    assert all(s.opened_at is None or s.opened_at <= now for s in surveys)
    assert not Interaction.objects.filter(occurred_at__gt=now).exists()
