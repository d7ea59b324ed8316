"""The retention loop across apps: a completed visit → a satisfaction task whose script carries the survey
link → the patient answers badly → a complaint task in the director's inbox; the lead → booked → treated
stages follow the events on the way."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask
from smileloop.followups.script import tasks_scripts_fill
from smileloop.followups.selectors import inbox_list
from smileloop.followups.services import followups_generate, playbooks_install_defaults
from smileloop.surveys.models import Survey
from smileloop.surveys.services import survey_answer, surveys_create_for_visits
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.services import appointment_upsert

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = dt.date(2026, 11, 20)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI)


def test_a_bad_visit_turns_into_a_satisfaction_call_with_the_survey_link_and_a_complaint_for_the_director(
        chain, clinic_a, front_desk_a, director_a):
    doctor = StaffFactory(chain=chain, role=Role.DOCTOR, name="陈医生", clinics=[clinic_a])
    patient = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a)
    yesterday = TODAY - dt.timedelta(days=1)
    appointment_upsert(customer=patient, clinic=clinic_a, start_at=at(yesterday, 9), end_at=at(yesterday, 10),
                       doctor=doctor, status=AppointmentStatus.BOOKED, external_id="PMS-1")
    assert Customer.objects.get(pk=patient.pk).stage == Stage.BOOKED
    appointment_upsert(customer=patient, clinic=clinic_a, start_at=at(yesterday, 9), end_at=at(yesterday, 10),
                       doctor=doctor, status=AppointmentStatus.COMPLETED, external_id="PMS-1")
    assert Customer.objects.get(pk=patient.pk).stage == Stage.ARRIVED

    playbooks_install_defaults(chain=chain)
    followups_generate(chain=chain, today=TODAY)
    surveys_create_for_visits(chain=chain, today=TODAY)
    survey = Survey.objects.get(customer=patient)

    [task] = [t for t in inbox_list(scope_for_staff(front_desk_a), today=TODAY)
              if t.playbook.code == "satisfaction"]
    tasks_scripts_fill([task], today=TODAY)
    link = f"{settings.PUBLIC_BASE_URL}/surveys/s/{survey.token}/"
    assert link in task.script_text

    survey_answer(token=survey.token, score=3, tags=["waiting_time"], comment="等了一个小时", at=at(TODAY, 12))
    complaint = FollowupTask.objects.get(customer=patient, playbook__code="complaint")
    assert complaint.assignee_id == director_a.id
    assert complaint.status == TaskStatus.OPEN
    assert complaint.due_at <= at(TODAY, 12) + dt.timedelta(hours=24)
    assert complaint.id in {t.id for t in inbox_list(scope_for_staff(director_a), today=TODAY)}
