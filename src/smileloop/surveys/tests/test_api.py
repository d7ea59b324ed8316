import datetime as dt
import json

import pytest
from django.utils import timezone

from smileloop.clinics.services import token_create
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.surveys.models import Survey
from smileloop.surveys.tests.factories import SurveyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_director(director_a):
    return token_create(username=director_a.user.username)


@pytest.fixture
def token_front_desk(front_desk_a):
    return token_create(username=front_desk_a.user.username)


@pytest.fixture
def token_admin(chain_admin):
    return token_create(username=chain_admin.user.username)


@pytest.fixture
def surveys(chain, clinic_a, clinic_b, doctor_a):
    return {
        "a_open": SurveyFactory(chain=chain, clinic=clinic_a, doctor=doctor_a,
                                customer=CustomerFactory(chain=chain, home_clinic=clinic_a)),
        "a_done": SurveyFactory(chain=chain, clinic=clinic_a, score=10, tags=["environment"], comment="很干净",
                                customer=CustomerFactory(chain=chain, home_clinic=clinic_a)),
        "b_done": SurveyFactory(chain=chain, clinic=clinic_b, score=4,
                                customer=CustomerFactory(chain=chain, home_clinic=clinic_b)),
    }


def get(client, url, token, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


def post(client, url, body, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def test_the_list_is_scoped_and_filterable(client, token_director, token_admin, surveys, clinic_a):
    # when
    mine = get(client, "/api/surveys", token_director).json()
    answered = get(client, "/api/surveys", token_admin, answered="true").json()
    by_code = get(client, "/api/surveys", token_admin, clinic="SH02").json()
    # then
    assert mine["count"] == 2
    assert {item["clinic"]["id"] for item in mine["items"]} == {clinic_a.id}
    assert {item["id"] for item in answered["items"]} == {surveys["a_done"].id, surveys["b_done"].id}
    assert [item["id"] for item in by_code["items"]] == [surveys["b_done"].id]
    item = next(i for i in mine["items"] if i["id"] == surveys["a_open"].id)
    assert item["url"] == f"/surveys/s/{surveys['a_open'].token}/"
    assert item["state"] == "open" and item["doctor"]["name"] == "陈医生"


def test_survey_times_are_given_in_local_time_like_the_rest_of_the_api(client, token_director, surveys):
    """Appointments, orders and tasks answer with +08:00; surveys answered in UTC (…T23:00:00Z is 07:00 the next
    day in Shanghai), so a client reading the date part got the day before."""
    from smileloop.surveys.models import Survey

    Survey.objects.filter(pk=surveys["a_open"].pk).update(
        created_at=dt.datetime(2026, 12, 4, 23, 0, tzinfo=dt.UTC), expires_at=dt.datetime(2026, 12, 18, 23, 0, tzinfo=dt.UTC))
    item = get(client, f"/api/surveys/{surveys['a_open'].id}", token_director).json()
    assert (item["created_at"], item["expires_at"]) == ("2026-12-05T07:00:00+08:00", "2026-12-19T07:00:00+08:00")


def test_a_survey_of_another_clinic_is_404_and_a_foreign_clinic_filter_is_refused(
        client, token_director, surveys):
    assert get(client, f"/api/surveys/{surveys['b_done'].id}", token_director).status_code == 404
    response = get(client, "/api/surveys", token_director, clinic="SH02")
    assert response.status_code == 403


def test_reading_surveys_needs_the_survey_permission(client, token_front_desk, surveys):
    response = get(client, "/api/surveys", token_front_desk)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_the_nps_endpoint_groups_and_is_scoped(client, token_admin, token_director, surveys, clinic_a, clinic_b):
    chain_wide = get(client, "/api/surveys/nps", token_admin, group_by="clinic").json()
    assert chain_wide["rows"] == [
        {"key": str(clinic_a.id), "label": "静安门诊", "responses": 1, "promoters": 1, "passives": 0,
         "detractors": 0, "average": "10.0", "nps": "100.0"},
        {"key": str(clinic_b.id), "label": "浦东门诊", "responses": 1, "promoters": 0, "passives": 0,
         "detractors": 1, "average": "4.0", "nps": "-100.0"},
    ]
    mine = get(client, "/api/surveys/nps", token_director, group_by="month").json()
    assert [(r["responses"], r["nps"]) for r in mine["rows"]] == [(1, "100.0")]
    bad = get(client, "/api/surveys/nps", token_admin, group_by="weekday")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.group_by"


def test_nps_over_dates_given_the_wrong_way_round_is_422_on_until(client, token_admin, surveys):
    # when
    swapped = get(client, "/api/surveys/nps", token_admin, since="2026-03-02", until="2026-03-01")
    one_day = get(client, "/api/surveys/nps", token_admin, since="2026-03-01", until="2026-03-01")
    # then
    assert swapped.status_code == 422
    assert swapped.json()["errors"] == [{"field": "query.until", "message": "must be on or after since",
                                         "value": "2026-03-01"}]
    assert one_day.status_code == 200


def test_answering_through_the_api_is_idempotent(client, token_director, surveys, director_a):
    # given
    survey = surveys["a_open"]
    url = f"/api/surveys/answer/{survey.token}"
    body = {"score": 5, "tags": ["price"], "comment": "价格比预期高"}
    # when
    first = post(client, url, body, token_director)
    replay = post(client, url, body, token_director)
    # then
    assert first.status_code == 200
    assert first.json()["score"] == 5 and first.json()["state"] == "answered"
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert FollowupTask.objects.count() == 1
    assert first.json()["complaint_task_id"] == FollowupTask.objects.get().id
    entry = Interaction.objects.get(customer=survey.customer)
    assert entry.author_id == director_a.id and entry.data["via"] == "api"


def test_a_new_key_on_an_answered_survey_is_a_409_and_changes_nothing(client, token_director, surveys):
    survey = surveys["a_done"]
    before = Survey.objects.filter(pk=survey.pk).values().get()
    response = post(client, f"/api/surveys/answer/{survey.token}", {"score": 0}, token_director, key="k-2")
    assert response.status_code == 409
    assert response.json()["code"] == "survey_already_answered"
    assert Survey.objects.filter(pk=survey.pk).values().get() == before


def test_an_expired_survey_is_a_409(client, token_director, chain, clinic_a):
    survey = SurveyFactory(chain=chain, clinic=clinic_a, created_at=timezone.now() - dt.timedelta(days=20),
                           expires_at=timezone.now() - dt.timedelta(days=6))
    response = post(client, f"/api/surveys/answer/{survey.token}", {"score": 9}, token_director)
    assert response.status_code == 409 and response.json()["code"] == "survey_expired"


def test_invalid_answers_get_errors_per_field_and_save_nothing(client, token_director, surveys):
    survey = surveys["a_open"]
    url = f"/api/surveys/answer/{survey.token}"
    response = post(client, url, {"score": 12, "tags": ["parking"], "comment": "x" * 501}, token_director)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.score", "body.tags", "body.comment"]
    missing = post(client, url, {"tags": []}, token_director, key="k-3")
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "body.score"
    assert Survey.objects.get(pk=survey.pk).answered_at is None


def test_an_answer_whose_text_holds_a_lone_surrogate_is_422_on_its_field_and_saves_nothing(client, token_director,
                                                                                            surveys):
    # given: JSON's "\\ud800" escape, which no database can store as UTF-8 (it was a 500)
    survey = surveys["a_open"]
    body = {"score": 7, "tags": ["pain"], "comment": "疼\ud800"}
    # when
    response = post(client, f"/api/surveys/answer/{survey.token}", body, token_director)
    # then
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.comment"]
    assert response.json()["errors"][0]["message"].startswith("must not contain a lone surrogate")
    assert Survey.objects.get(pk=survey.pk).answered_at is None


def test_answering_a_survey_outside_ones_clinics_or_without_a_key_is_refused(
        client, token_director, token_front_desk, surveys):
    foreign = surveys["b_done"]
    assert post(client, f"/api/surveys/answer/{foreign.token}", {"score": 9}, token_director).status_code == 404
    assert post(client, "/api/surveys/answer/nonexistent12", {"score": 9}, token_director, key="k-9").status_code == 404
    no_key = post(client, f"/api/surveys/answer/{surveys['a_open'].token}", {"score": 9}, token_director, key=None)
    assert no_key.status_code == 400 and no_key.json()["code"] == "idempotency_key_required"
    # a front desk may record a satisfaction call (customer.edit), and only once
    ok = post(client, f"/api/surveys/answer/{surveys['a_open'].token}", {"score": 9}, token_front_desk, key="fd-1")
    assert ok.status_code == 200


def test_marking_a_link_sent(client, token_director, surveys):
    survey = surveys["a_open"]
    response = post(client, f"/api/surveys/{survey.id}/sent", {}, token_director)
    assert response.status_code == 200 and response.json()["sent_at"] is not None
    survey.refresh_from_db()
    assert survey.sent_at is not None


def test_the_list_has_no_n_plus_one(client, token_admin, chain, clinic_a, surveys, django_assert_max_num_queries):
    for _ in range(10):
        SurveyFactory(chain=chain, clinic=clinic_a, customer=CustomerFactory(chain=chain, home_clinic=clinic_a))
    with django_assert_max_num_queries(8):
        assert get(client, "/api/surveys", token_admin).status_code == 200


def test_marking_a_link_sent_needs_the_survey_permission_so_the_answer_is_not_shown_to_the_front_desk(
        client, token_front_desk, surveys):
    # given an answered survey of the front desk's clinic (front desk: customer.edit, no survey.view)
    survey = surveys["a_done"]
    before = Survey.objects.filter(pk=survey.pk).values().get()
    # when
    response = post(client, f"/api/surveys/{survey.id}/sent", {}, token_front_desk)
    # then
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden" and "survey.view" in response.json()["message"]
    assert "很干净" not in response.text
    assert Survey.objects.filter(pk=survey.pk).values().get() == before


def test_an_expired_link_that_was_never_sent_cannot_be_marked_sent(client, token_director, chain, clinic_a):
    # given
    survey = SurveyFactory(chain=chain, clinic=clinic_a, created_at=timezone.now() - dt.timedelta(days=20),
                           expires_at=timezone.now() - dt.timedelta(days=6))
    # when
    response = post(client, f"/api/surveys/{survey.id}/sent", {}, token_director)
    # then
    assert response.status_code == 409 and response.json()["code"] == "survey_expired"
    survey.refresh_from_db()
    assert survey.sent_at is None


def test_a_survey_of_a_patient_from_another_clinic_gives_no_patient_id(client, token_director, chain, clinic_a,
                                                                        clinic_b):
    # given a visit to clinic A by a patient of clinic B
    visitor = SurveyFactory(chain=chain, clinic=clinic_a, score=9,
                            customer=CustomerFactory(chain=chain, home_clinic=clinic_b))
    # when
    one = get(client, f"/api/surveys/{visitor.id}", token_director).json()
    listed = get(client, "/api/surveys", token_director).json()
    # then the clinic's director reads the answer, but not who the patient is
    assert one["score"] == 9 and one["customer_id"] is None
    assert [item["customer_id"] for item in listed["items"] if item["id"] == visitor.id] == [None]
