"""The patient's survey link submitted twice at the same moment (a double tap, two tabs, a retry on a bad network),
through the page itself: each submit is its own request on its own database connection, exactly one answer is
stored, the other submit gets the "already answered" page, and nothing else is written twice (run only on
PostgreSQL, like the repo's other concurrency tests)."""

import datetime as dt

import pytest
from django.conf import settings
from django.test import Client

from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.surveys.models import Survey
from smileloop.surveys.tests.factories import SurveyFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]

WRITERS = 6


def _browser(address: str) -> tuple[Client, str]:
    """A patient's browser that has opened the form (it holds the CSRF cookie the form's token matches)."""
    client = Client(enforce_csrf_checks=True)
    client.get(address)
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


def test_simultaneous_submits_of_one_link_store_one_answer_and_tell_the_others_it_was_answered(
        chain, clinic_a, director_a):
    survey = SurveyFactory(chain=chain, clinic=clinic_a, customer=CustomerFactory(chain=chain, home_clinic=clinic_a),
                           visit_date=dt.date(2026, 3, 1))
    address = f"/surveys/s/{survey.token}/"
    browsers = [_browser(address) for _ in range(WRITERS)]

    def writer(i):
        client, token = browsers[i]
        response = client.post(address, {"score": str(i), "comment": f"第{i}次", "csrfmiddlewaretoken": token})
        return [(i, response.status_code, response.content.decode())]

    results, errors = writers_run(writer, WRITERS)
    assert errors == []
    won = [i for i, status, _ in results if status == 302]
    lost = [(i, html) for i, status, html in results if status != 302]
    assert len(won) == 1, [(i, s) for i, s, _ in results]
    assert len(lost) == WRITERS - 1
    for i, html in lost:
        assert 'data-testid="closed-answered"' in html, (i, html[:300])
    stored = Survey.objects.get(pk=survey.pk)
    assert (stored.score, stored.comment) == (won[0], f"第{won[0]}次")
    assert Interaction.objects.filter(customer=survey.customer).count() == 1
    assert FollowupTask.objects.filter(anchor_key=f"survey:{survey.pk}").count() == (1 if won[0] <= 6 else 0)
    assert [s for _, s, _ in results].count(409) == WRITERS - 1


def test_opening_the_link_while_it_is_being_answered_never_undoes_the_answer(chain, clinic_a, director_a):
    survey = SurveyFactory(chain=chain, clinic=clinic_a, customer=CustomerFactory(chain=chain, home_clinic=clinic_a))
    address = f"/surveys/s/{survey.token}/"
    poster = Client(enforce_csrf_checks=True)
    poster.get(f"/surveys/s/{'x' * 12}/")  # a CSRF cookie without opening the link: the race opens it
    token = poster.cookies[settings.CSRF_COOKIE_NAME].value

    def writer(i):
        if i == 0:
            response = poster.post(address, {"score": "9", "csrfmiddlewaretoken": token})
        else:
            response = Client().get(address)
        return [response.status_code]

    results, errors = writers_run(writer, WRITERS)
    assert errors == []
    assert sorted(results) == [200] * (WRITERS - 1) + [302]
    stored = Survey.objects.get(pk=survey.pk)
    assert stored.score == 9 and stored.answered_at is not None
    assert stored.opened_at is not None and stored.sent_at is not None
    assert Interaction.objects.filter(customer=survey.customer).count() == 1
