"""A patient's answer and their erasure at the same moment (PostgreSQL): one waits for the other, never a deadlock.

The answer locked the survey (its conditional UPDATE), then needed the patient's row (the timeline entry's and the
complaint task's foreign keys, checked at commit); the erasure held the patient's row and waited for the survey
(its hook expires open links): a deadlock, a 500 for one of the two. The answer now locks the patient first."""

import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.surveys import services as survey_services
from smileloop.surveys.models import Survey
from smileloop.surveys.services import survey_answer
from smileloop.surveys.tests.factories import SurveyFactory


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_low_score_answered_while_the_patient_is_erased_is_not_a_deadlock(chain, clinic_a, patient, director_a,
                                                                            monkeypatch):
    survey = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient)
    reached = threading.Event()
    # after the answer's UPDATE of the survey row: the erasure lands here
    monkeypatch.setattr(survey_services, "survey_answer_texts", paused(survey_services.survey_answer_texts, reached))

    def answer():
        return survey_answer(token=survey.token, score=3, tags=[], comment="拔牙后一直疼")

    def erase():
        return customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=patient.pk),
                              actor=director_a, reason="本人申请")

    out = race(answer, erase, reached)
    # both went through, one after the other: the answer first (it held the patient), then the erasure blanked it
    assert "first" in out and "then" in out, out
    survey.refresh_from_db()
    assert survey.comment == "" and Customer.objects.get(pk=patient.pk).erased_at is not None
    assert not Interaction.objects.filter(customer=patient, text__contains="拔牙后一直疼").exists()
    assert Survey.objects.filter(pk=survey.pk, score=3).exists()
