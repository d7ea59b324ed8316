"""Survey invariants: every aggregate the staff see (NPS page, API, selectors) equals a plain-Python reference computed
from the stored answers; the public link writes an answer once or refuses it and writes nothing; staff reads never
leave the caller's clinics; a detractor's answer opens exactly one complaint task, a promoter's none."""

import datetime as dt
import json
import math
from fractions import Fraction

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smileloop.clinics.enums import Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.errors import ValidationFailed
from smileloop.core.testing import writers_run
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.surveys import selectors, services
from smileloop.surveys.enums import NpsGroup
from smileloop.surveys.errors import SurveyAlreadyAnswered, SurveyExpired
from smileloop.surveys.models import Survey
from smileloop.surveys.services import token_new
from smileloop.surveys.tests.conftest import at_local
from smileloop.surveys.tests.factories import AppointmentFactory, SurveyFactory

pytestmark = pytest.mark.django_db

HYPOTHESIS = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# --- a plain-Python reference ----------------------------------------------------------------------------

def ref_round_1(value: Fraction) -> str:
    """One decimal, half away from zero, as text ("33.3", "-16.7", "0.0")."""
    tenths = math.floor(abs(value) * 10 + Fraction(1, 2))
    sign = "-" if value < 0 and tenths else ""
    return f"{sign}{tenths // 10}.{tenths % 10}"


def ref_groups(rows: list[dict], key) -> dict:
    """{group key: (responses, promoters, passives, detractors, nps text, average text)} of the answered rows."""
    groups: dict = {}
    for row in rows:
        if row["score"] is not None:
            groups.setdefault(key(row), []).append(row["score"])
    out = {}
    for k, scores in groups.items():
        n = len(scores)
        p = sum(1 for s in scores if s in (9, 10))
        d = sum(1 for s in scores if s in (0, 1, 2, 3, 4, 5, 6))
        out[k] = (n, p, n - p - d, d, ref_round_1(Fraction(100 * (p - d), n)), ref_round_1(Fraction(sum(scores), n)))
    return out


def ref_rows(stored: list[dict], *, clinic_ids, since=None, until=None, clinic_id=None) -> list[dict]:
    return [r for r in stored
            if r["clinic_id"] in clinic_ids
            and (clinic_id is None or r["clinic_id"] == clinic_id)
            and (since is None or r["visit_date"] >= since)
            and (until is None or r["visit_date"] <= until)]


def ref_totals(rows: list[dict]) -> dict:
    sent = sum(1 for r in rows if r["sent_at"] is not None)
    answered = sum(1 for r in rows if r["answered_at"] is not None)
    return {"created": len(rows), "sent": sent, "opened": sum(1 for r in rows if r["opened_at"] is not None),
            "answered": answered, "detractors": sum(1 for r in rows if r["score"] is not None and r["score"] <= 6),
            "response_rate": ref_round_1(Fraction(100 * answered, sent)) if sent else None}


KEYS = {
    NpsGroup.CLINIC: lambda r: r["clinic_id"],
    NpsGroup.DOCTOR: lambda r: r["doctor_id"],
    NpsGroup.MONTH: lambda r: r["visit_date"].replace(day=1),
}


def selector_groups(rows) -> dict:
    return {row.key: (row.responses, row.promoters, row.passives, row.detractors, str(row.nps), str(row.average))
            for row in rows}


def stored_rows() -> list[dict]:
    """What the reference reads: the surveys as stored, straight from the table."""
    return list(Survey.objects.values("clinic_id", "doctor_id", "visit_date", "score", "sent_at", "opened_at",
                                      "answered_at"))


@pytest.fixture
def world(chain, clinic_a, clinic_b, director_a, chain_admin):
    """Two clinics, a doctor in each, patients, and a survey of another chain that must never count."""
    doctor_a = StaffFactory(chain=chain, role=Role.DOCTOR, name="陈医生", clinics=[clinic_a])
    doctor_b = StaffFactory(chain=chain, role=Role.DOCTOR, name="王医生", clinics=[clinic_b])
    other_chain = ChainFactory(name="别家连锁")
    SurveyFactory(chain=other_chain, clinic=ClinicFactory(chain=other_chain), score=0,
                  sent_at=timezone.now(), visit_date=timezone.localdate() - dt.timedelta(days=1))
    return {
        "clinics": [clinic_a, clinic_b], "doctors": [doctor_a, doctor_b, None],
        "patients": [CustomerFactory(chain=chain, home_clinic=clinic_a), CustomerFactory(chain=chain, home_clinic=clinic_b)],
        "chain": chain, "director": director_a, "admin": chain_admin,
    }


# clinic index, doctor index (2: none), days before today, score (None: not answered), sent, opened
answer_spec = st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 420),
                        st.one_of(st.none(), st.integers(0, 10)), st.booleans(), st.booleans())
answer_sets = st.lists(answer_spec, max_size=25)
EDGE_SETS = [
    [],
    [(0, 0, 1, 0, True, True)] * 4,
    [(1, 1, 2, 10, True, True)] * 3,
    [(0, 0, 0, s, True, True) for s in (6, 7, 8, 9)],
    [(0, 2, 29, None, True, False), (0, 2, 30, 6, True, True), (1, 0, 89, 9, False, False), (0, 1, 90, 7, True, True),
     (0, 0, 364, None, False, False), (1, 2, 365, 10, True, True)],
]


def surveys_store(world, spec: list[tuple]) -> None:
    """Store the answer set as rows (one INSERT); an answered survey was opened and sent (as the service records)."""
    now = timezone.now()
    today = timezone.localdate()
    rows = []
    for i, (clinic_i, doctor_i, days_back, score, sent, opened) in enumerate(spec):
        answered = score is not None
        doctor = world["doctors"][doctor_i]
        rows.append(Survey(chain=world["chain"], clinic=world["clinics"][clinic_i], doctor=doctor,
                           customer=world["patients"][i % 2], visit_date=today - dt.timedelta(days=days_back),
                           token=token_new(), created_at=now - dt.timedelta(days=1), expires_at=now + dt.timedelta(days=13),
                           sent_at=now if (sent or opened or answered) else None,
                           opened_at=now if (opened or answered) else None,
                           answered_at=now if answered else None, score=score))
    Survey.objects.bulk_create(rows)


# --- aggregates --------------------------------------------------------------------------------------------

@HYPOTHESIS
@given(spec=answer_sets, since_back=st.one_of(st.none(), st.integers(0, 400)),
       until_back=st.one_of(st.none(), st.integers(0, 400)), only_clinic=st.sampled_from([None, 0, 1]))
@example(spec=EDGE_SETS[0], since_back=None, until_back=None, only_clinic=None)
@example(spec=EDGE_SETS[1], since_back=None, until_back=None, only_clinic=None)
@example(spec=EDGE_SETS[2], since_back=None, until_back=None, only_clinic=1)
@example(spec=EDGE_SETS[3], since_back=0, until_back=0, only_clinic=0)
@example(spec=EDGE_SETS[4], since_back=90, until_back=None, only_clinic=None)
def test_nps_and_totals_equal_a_plain_python_reference_for_every_scope_and_filter(
        world, admin_scope, director_scope, spec, since_back, until_back, only_clinic):
    today = timezone.localdate()
    since = None if since_back is None else today - dt.timedelta(days=since_back)
    until = None if until_back is None else today - dt.timedelta(days=until_back)
    with transaction.atomic():
        surveys_store(world, spec)
        stored = stored_rows()
        for scope in (admin_scope, director_scope):
            visible = {c.id for c in world["clinics"] if scope.allows_clinic(c.id)}
            clinic_id = None if only_clinic is None else world["clinics"][only_clinic].id
            if clinic_id is not None and clinic_id not in visible:
                continue  # the filter is refused before it reaches the selector (see the API tests)
            rows = ref_rows(stored, clinic_ids=visible, since=since, until=until, clinic_id=clinic_id)
            for group, key in KEYS.items():
                got = selectors.nps(scope, group_by=group, since=since, until=until, clinic_id=clinic_id)
                assert selector_groups(got) == ref_groups(rows, key), (scope.clinic_ids, group)
                keys = [row.key for row in got]
                expected_order = (sorted(keys, key=lambda k: (k is None, k or 0)) if group == NpsGroup.DOCTOR
                                  else sorted(keys))
                assert keys == expected_order
                for row in got:
                    assert row.promoters + row.passives + row.detractors == row.responses
                    assert -100 <= row.nps_exact <= 100
            totals = selectors.survey_totals(scope, since=since, until=until, clinic_id=clinic_id)
            expected = ref_totals(rows)
            assert {k: getattr(totals, k) for k in ("created", "sent", "opened", "answered", "detractors")} == {
                k: v for k, v in expected.items() if k != "response_rate"}
            rate = totals.response_rate
            assert (None if rate is None else str(rate)) == expected["response_rate"]
            assert rate is None or rate <= 100
        transaction.set_rollback(True)


@pytest.fixture
def tokens(world):
    return {"admin": token_create(username=world["admin"].user.username),
            "director": token_create(username=world["director"].user.username)}


def api_get(client, url, token, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


@settings(HYPOTHESIS, max_examples=15)
@given(spec=answer_sets, group=st.sampled_from(list(NpsGroup)), since_back=st.one_of(st.none(), st.integers(0, 400)),
       who=st.sampled_from(["admin", "director"]), by_code=st.booleans())
@example(spec=EDGE_SETS[4], group=NpsGroup.DOCTOR, since_back=None, who="director", by_code=False)
def test_the_api_nps_equals_the_reference(client, world, tokens, spec, group, since_back, who, by_code):
    today = timezone.localdate()
    since = None if since_back is None else today - dt.timedelta(days=since_back)
    with transaction.atomic():
        surveys_store(world, spec)
        params = {"group_by": group.value}
        if since:
            params["since"] = since.isoformat()
        clinic_id = None
        if by_code:  # the caller's own clinic, by code
            clinic_id = world["clinics"][0].id
            params["clinic"] = world["clinics"][0].code
        response = api_get(client, "/api/surveys/nps", tokens[who], **params)
        assert response.status_code == 200, response.content
        visible = {c.id for c in world["clinics"]} if who == "admin" else {world["clinics"][0].id}
        expected = ref_groups(ref_rows(stored_rows(), clinic_ids=visible, since=since, clinic_id=clinic_id),
                              KEYS[group])
        got = {}
        for row in response.json()["rows"]:
            key = row["key"]
            if group == NpsGroup.MONTH:
                key = dt.date.fromisoformat(key + "-01")
            elif key is not None:
                key = int(key)
            got[key] = (row["responses"], row["promoters"], row["passives"], row["detractors"], row["nps"],
                        row["average"])
        assert got == expected
        # the list behind the figures: the same surveys, answered ones as many as the responses
        params.pop("group_by")
        listed = api_get(client, "/api/surveys", tokens[who], answered="true", limit=200, **params).json()
        assert listed["count"] == sum(row[0] for row in expected.values())
        assert {item["clinic"]["id"] for item in listed["items"]} <= visible
        transaction.set_rollback(True)


@pytest.mark.parametrize("period, days", [("30", 30), ("90", 90), ("365", 365), ("all", None)])
def test_the_nps_page_shows_the_reference_figures_for_its_period_and_the_viewers_clinics(
        client, world, period, days):
    # given answers at the edges of every period, in both clinics
    surveys_store(world, EDGE_SETS[4] + EDGE_SETS[3] + [(1, 1, 0, 0, True, True), (1, 1, 400, 3, True, True)])
    today = timezone.localdate()
    since = None if days is None else today - dt.timedelta(days=days - 1)
    client.force_login(world["director"].user)
    # when
    response = client.get(reverse("surveys:nps"), {"period": period})
    # then: the director's clinic only, over the period's visit dates
    assert response.status_code == 200
    rows = ref_rows(stored_rows(), clinic_ids={world["clinics"][0].id}, since=since, until=today)
    for name, group in (("by_clinic", NpsGroup.CLINIC), ("by_doctor", NpsGroup.DOCTOR), ("by_month", NpsGroup.MONTH)):
        assert selector_groups(response.context[name]) == ref_groups(rows, KEYS[group]), name
    totals, expected = response.context["totals"], ref_totals(rows)
    assert (totals.created, totals.sent, totals.answered) == (expected["created"], expected["sent"],
                                                              expected["answered"])
    if expected["response_rate"] is not None:
        assert f"{expected['response_rate']}%" in response.text
    for row in response.context["by_clinic"]:
        assert f"<strong>{row.nps}</strong>" in response.text
    # the 12-month trend (whatever the period): the reference per visit month, gaps where no one answered
    index = today.year * 12 + today.month - 1 - 11
    first = dt.date(index // 12, index % 12 + 1, 1)
    by_month = ref_groups(ref_rows(stored_rows(), clinic_ids={world["clinics"][0].id}, since=first, until=today),
                          KEYS[NpsGroup.MONTH])
    trend = response.context["trend"]
    assert len(trend["months"]) == 12 and trend["months"][0] == first.strftime("%Y-%m")
    for month, nps_text, responses in zip(trend["months"], trend["nps"], trend["responses"], strict=True):
        expected_month = by_month.get(dt.date.fromisoformat(month + "-01"))
        assert (nps_text, responses) == ((expected_month[4], expected_month[0]) if expected_month else (None, 0))
    assert world["clinics"][1].name not in response.text.split('data-testid="nps-by-clinic"')[-1].split("</table>")[0]


def test_visits_either_side_of_midnight_in_shanghai_are_counted_in_their_local_day_and_month(
        client, world, tokens, admin_scope):
    # given visits at 23:59 on 31 January and 00:00 on 1 February, Shanghai time (both 31 January in UTC), and
    # the edges of the week the daily job looks back on
    chain, clinic = world["chain"], world["clinics"][0]
    today = dt.date(2026, 2, 2)
    starts = {"jan31": at_local(dt.date(2026, 1, 31), 23, 59), "feb1": at_local(dt.date(2026, 2, 1), 0, 0),
              "first_day": at_local(dt.date(2026, 1, 26), 0, 30), "too_old": at_local(dt.date(2026, 1, 25), 23, 59)}
    assert starts["jan31"].astimezone(dt.UTC).date() == starts["feb1"].astimezone(dt.UTC).date()
    appointments = {name: AppointmentFactory(chain=chain, clinic=clinic, start_at=start, end_at=start + dt.timedelta(hours=1),
                                             customer=CustomerFactory(chain=chain, home_clinic=clinic))
                    for name, start in starts.items()}
    run_at = at_local(today, 2)
    # when
    assert services.surveys_create_for_visits(chain=chain, today=today, at=run_at)["created"] == 3
    surveys = {s.appointment_id: s for s in Survey.objects.filter(chain=chain, appointment__isnull=False)}
    by_name = {name: surveys.get(a.id) for name, a in appointments.items()}
    assert by_name["too_old"] is None
    assert (by_name["jan31"].visit_date, by_name["feb1"].visit_date, by_name["first_day"].visit_date) == (
        dt.date(2026, 1, 31), dt.date(2026, 2, 1), dt.date(2026, 1, 26))
    for name, score in (("jan31", 10), ("feb1", 0), ("first_day", 7)):
        services.survey_answer(token=by_name[name].token, score=score, tags=[], at=run_at + dt.timedelta(hours=1))
    # then: the month of the visit, not of the UTC instant
    months = {row.label: (row.responses, row.promoters, row.detractors)
              for row in selectors.nps(admin_scope, group_by=NpsGroup.MONTH, since=dt.date(2026, 1, 1))}
    assert months == {"2026-01": (2, 1, 0), "2026-02": (1, 0, 1)}
    feb = api_get(client, "/api/surveys/nps", tokens["admin"], group_by="month", since="2026-02-01").json()
    assert [(r["key"], r["responses"], r["nps"]) for r in feb["rows"]] == [("2026-02", 1, "-100.0")]
    jan31 = api_get(client, "/api/surveys/nps", tokens["admin"], group_by="clinic", since="2026-01-31",
                    until="2026-01-31").json()
    assert [(r["responses"], r["nps"]) for r in jan31["rows"]] == [(1, "100.0")]


# --- the public link ------------------------------------------------------------------------------------

def everything() -> tuple:
    """Every row the public page could write, to prove a refused request wrote nothing."""
    return (list(Survey.objects.order_by("pk").values()), Interaction.objects.count(),
            list(FollowupTask.objects.order_by("pk").values_list("pk", flat=True)))


@pytest.fixture
def survey(world):
    return SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=world["patients"][0],
                         doctor=world["doctors"][0], visit_date=dt.date(2026, 3, 1))


def answer_url(token: str) -> str:
    return f"/surveys/s/{token}/"


def test_invalid_forged_and_malformed_tokens_get_a_plain_404_and_write_nothing(client, world, survey):
    before = everything()
    bad = ["AAAAAAAAAAAA", survey.token.swapcase(), survey.token[:-1], survey.token + "A", "x" * 33,
           "１２３４５６７８９０１２", "%00", "abc%00def", "..", "%3Cscript%3E", "' OR 1=1 --", "张三"]
    for token in bad:
        for method in ("get", "post"):
            response = getattr(client, method)(answer_url(token), {"score": "10"} if method == "post" else None)
            assert response.status_code == 404, (token, method)
            assert "该链接无效。" in response.text or "This link is not valid" in response.text, token
            assert world["clinics"][0].name not in response.text
        assert client.get(f"/surveys/s/{token}/thanks/").status_code == 404
    assert everything() == before


def test_an_expired_or_answered_link_refuses_a_post_and_writes_nothing(client, world):
    now = timezone.now()
    expired = SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=world["patients"][0],
                            created_at=now - dt.timedelta(days=15), expires_at=now - dt.timedelta(seconds=1))
    answered = SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=world["patients"][0], score=9)
    before = everything()
    for survey, state in ((expired, "expired"), (answered, "answered")):
        response = client.post(answer_url(survey.token), {"score": "0", "comment": "改主意了"})
        assert response.status_code == 409
        assert f'data-testid="closed-{state}"' in response.text
    assert everything() == before


VALID_SCORES = {str(i) for i in range(11)}
score_text = st.one_of(st.sampled_from(sorted(VALID_SCORES) + ["-1", "11", "1e1", "9.0", " 9", "٩", "0x9", "", "10 "]),
                       st.text(max_size=4))
comment_text = st.one_of(st.text(max_size=40), st.sampled_from(["\x00", "好\x00", "<script>alert(1)</script>",
                                                                 "a" * 500, "a" * 501, "\r\n" * 3 + "b" * 499,
                                                                 "好" * 100_000]))


@HYPOTHESIS
@given(score=score_text, comment=comment_text)
def test_the_page_stores_a_valid_answer_exactly_as_given_and_refuses_anything_else_writing_nothing(
        client, survey, score, comment):
    with transaction.atomic():
        before = everything()
        response = client.post(answer_url(survey.token), {"score": score, "comment": comment})
        expected_comment = comment.replace("\r\n", "\n").replace("\r", "\n").strip()
        valid = score in VALID_SCORES and len(expected_comment) <= 500 and "\x00" not in expected_comment
        if valid:
            assert response.status_code == 302, response.content[:300]
            stored = Survey.objects.get(pk=survey.pk)
            assert (stored.score, stored.comment) == (int(score), expected_comment)
            assert Interaction.objects.count() == before[1] + 1
            assert FollowupTask.objects.count() == len(before[2]) + (1 if int(score) <= 6 else 0)
            again = client.post(answer_url(survey.token), {"score": score, "comment": comment})
            assert again.status_code == 409
            assert Interaction.objects.count() == before[1] + 1
        else:
            assert response.status_code == 422
            assert 'class="errorlist" role="alert"' in response.text
            assert everything() == before
        transaction.set_rollback(True)


def test_html_in_a_comment_is_stored_as_text_and_shown_escaped_to_staff(client, world, survey, tokens):
    comment = '<script>alert("x")</script><img src=x onerror=alert(1)> & 好'
    response = client.post(answer_url(survey.token), {"score": "3", "comment": comment})
    assert response.status_code == 302
    assert Survey.objects.get(pk=survey.pk).comment == comment
    client.force_login(world["director"].user)
    page = client.get(reverse("surveys:nps"), {"period": "all"}).text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; 好" in page
    assert "<script>alert" not in page and "<img src=x" not in page
    detail = client.get(reverse("customers:detail", args=[survey.customer_id])).text  # the patient's 360 page
    assert "“&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in detail and "<script>alert" not in detail
    item = api_get(client, f"/api/surveys/{survey.id}", tokens["director"]).json()
    assert item["comment"] == comment  # JSON carries the text itself; escaping is the reader's


def test_a_direct_service_call_refuses_a_bad_answer_with_a_message_and_writes_nothing(survey):
    """The page and the API refuse these before the service; the service is the contract, and PostgreSQL cannot
    store a NUL in a text column (a 500 instead of a message)."""
    before = everything()
    for kwargs in ({"score": 5, "comment": "好\x00"}, {"score": "9.0"}, {"score": 9.5},
                   {"score": True}, {"score": None}, {"score": 11}, {"score": -1}, {"score": 10**30},
                   {"score": 5, "tags": "price"}, {"score": 5, "tags": ["parking"]}, {"score": 5, "comment": 5}):
        with pytest.raises(ValidationFailed) as refused:
            services.survey_answer(token=survey.token, **{"tags": [], **kwargs})
        assert {e.field for e in refused.value.errors} & {"score", "tags", "comment"}, kwargs
    assert everything() == before


def test_a_second_answer_through_the_service_is_a_conflict_and_changes_nothing(db):
    """The sequential double submit (the concurrent one: test_concurrent_answers_on_postgresql_record_exactly_one)."""
    chain = ChainFactory()
    survey = SurveyFactory(chain=chain, clinic=ClinicFactory(chain=chain), customer=CustomerFactory(chain=chain))
    services.survey_answer(token=survey.token, score=2, tags=[])
    first = Survey.objects.filter(pk=survey.pk).values().get()
    with pytest.raises(SurveyAlreadyAnswered):
        services.survey_answer(token=survey.token, score=10, tags=[])
    assert Survey.objects.filter(pk=survey.pk).values().get() == first
    assert FollowupTask.objects.count() == 1 and Interaction.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_answers_on_postgresql_record_exactly_one(chain, clinic_a, director_a):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are exercised on PostgreSQL only")
    survey = SurveyFactory(chain=chain, clinic=clinic_a, customer=CustomerFactory(chain=chain, home_clinic=clinic_a))

    def writer(i):
        try:
            services.survey_answer(token=survey.token, score=i % 7, tags=[], comment=f"第{i}次")
        except SurveyAlreadyAnswered:
            return ["lost"]
        return [("won", i % 7, f"第{i}次")]

    results, errors = writers_run(writer, 8)
    assert errors == []
    won = [r for r in results if r != "lost"]
    assert len(won) == 1 and results.count("lost") == 7
    stored = Survey.objects.get(pk=survey.pk)
    assert ("won", stored.score, stored.comment) == won[0]
    assert Interaction.objects.filter(customer=survey.customer).count() == 1
    task = FollowupTask.objects.get()
    assert stored.complaint_task_id == task.id and task.anchor_key == f"survey:{survey.id}"


# --- the staff side: scoping and filters ----------------------------------------------------------------

def api_post(client, url, body, token, key):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def test_a_clinic_scoped_reader_cannot_reach_another_clinics_survey_by_id_or_token(client, world, tokens):
    other = SurveyFactory(chain=world["chain"], clinic=world["clinics"][1], customer=world["patients"][1],
                          score=2, comment="浦东的抱怨")
    open_other = SurveyFactory(chain=world["chain"], clinic=world["clinics"][1], customer=world["patients"][1])
    before = everything()
    director = tokens["director"]
    assert api_get(client, f"/api/surveys/{other.id}", director).status_code == 404
    assert api_post(client, f"/api/surveys/{open_other.id}/sent", {}, director, "k1").status_code == 404
    answer = api_post(client, f"/api/surveys/answer/{open_other.token}", {"score": 10}, director, "k2")
    assert answer.status_code == 404 and "浦东" not in answer.text
    listed = api_get(client, "/api/surveys", director, limit=200).json()
    assert other.id not in {i["id"] for i in listed["items"]}
    assert listed["count"] == Survey.objects.filter(clinic=world["clinics"][0]).count()
    assert everything() == before
    # the chain admin reads it
    assert api_get(client, f"/api/surveys/{other.id}", tokens["admin"]).json()["comment"] == "浦东的抱怨"


@pytest.mark.parametrize("url, params, status, field", [
    ("/api/surveys/nps", {"group_by": "week"}, 422, "query.group_by"),
    ("/api/surveys/nps", {"since": "2026-13-01"}, 422, "query.since"),
    ("/api/surveys/nps", {"since": "1700000000"}, 422, "query.since"),
    ("/api/surveys/nps", {"until": "yesterday"}, 422, "query.until"),
    ("/api/surveys/nps", {"since": "2026-03-02", "until": "2026-03-01"}, 422, "query.until"),
    ("/api/surveys/nps", {"clinic": "SH02"}, 403, None),
    ("/api/surveys/nps", {"clinic": "NOPE"}, 422, "query.clinic"),
    ("/api/surveys/nps", {"clinic": "9223372036854775808"}, 422, None),
    ("/api/surveys/nps", {"clinic": "SH\x0001"}, 422, "query.clinic"),
    ("/api/surveys", {"answered": "maybe"}, 422, "query.answered"),
    ("/api/surveys", {"limit": "0"}, 422, "query.limit"),
    ("/api/surveys", {"offset": "-1"}, 422, "query.offset"),
    ("/api/surveys", {"since": "2026-02-30"}, 422, "query.since"),
    ("/api/surveys", {"clinic": "SH02"}, 403, None),
    ("/api/surveys/99999999999999999999", {}, 422, "path.survey_id"),
    ("/api/surveys/0", {}, 422, None),
])
def test_a_bad_filter_is_a_4xx_with_a_message_never_a_500_or_an_unfiltered_answer(
        client, world, tokens, url, params, status, field):
    SurveyFactory(chain=world["chain"], clinic=world["clinics"][1], customer=world["patients"][1], score=1)
    response = api_get(client, url, tokens["director"], **params)
    assert response.status_code == status, response.content
    body = response.json()
    assert body.get("message") or body.get("errors"), body
    assert "rows" not in body and "items" not in body
    if field:
        assert field in [e["field"] for e in body["errors"]], body


def test_the_nps_page_never_widens_a_readers_scope_with_a_bad_filter(client, world):
    surveys_store(world, [(0, 0, 1, 10, True, True), (1, 1, 1, 0, True, True)])
    SurveyFactory(chain=world["chain"], clinic=world["clinics"][1], customer=world["patients"][1], score=0,
                  comment="浦东的抱怨")
    client.force_login(world["director"].user)
    for params in ({"clinic": world["clinics"][1].id}, {"clinic": "abc"}, {"clinic": "9" * 30}, {"period": "7"},
                   {"period": "all", "clinic": world["clinics"][1].id}, {"clinic": "\x00"}):
        response = client.get(reverse("surveys:nps"), params)
        assert response.status_code == 200, params
        assert "浦东的抱怨" not in response.text
        assert {row.key for row in response.context["by_clinic"]} <= {world["clinics"][0].id}
        assert response.context["totals"].detractors == 0, params  # clinic B's detractors are not counted
        applied = response.context["form"].data
        assert applied.get("clinic", "") in ("", None), params  # the form shows the filter that was applied


# --- the detractor's follow-up ------------------------------------------------------------------------------

@settings(HYPOTHESIS, max_examples=22)
@given(score=st.integers(0, 10), via=st.sampled_from(["page", "api"]), home_other=st.booleans())
def test_a_detractor_gets_exactly_one_complaint_task_and_a_promoter_none(
        client, world, tokens, score, via, home_other):
    with transaction.atomic():
        patient = world["patients"][1 if home_other else 0]  # a patient of clinic B may visit clinic A
        survey = SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=patient)
        if via == "page":
            assert client.post(answer_url(survey.token), {"score": str(score)}).status_code == 302
            assert client.post(answer_url(survey.token), {"score": str(score)}).status_code == 409
        else:
            first = api_post(client, f"/api/surveys/answer/{survey.token}", {"score": score}, tokens["director"], "a1")
            replay = api_post(client, f"/api/surveys/answer/{survey.token}", {"score": score}, tokens["director"], "a1")
            other = api_post(client, f"/api/surveys/answer/{survey.token}", {"score": 10}, tokens["director"], "a2")
            assert first.status_code == replay.status_code == 200 and first.json() == replay.json()
            assert other.status_code == 409
        stored = Survey.objects.get(pk=survey.pk)
        tasks = FollowupTask.objects.filter(anchor_key=f"survey:{survey.id}")
        assert stored.score == score
        assert Interaction.objects.filter(customer=patient, data__survey_id=survey.id).count() == 1
        if score <= 6:
            task = tasks.get()
            assert stored.complaint_task_id == task.id
            assert (task.customer_id, task.clinic_id) == (patient.id, survey.clinic_id)
            assert task.context["score"] == score
        else:
            assert not tasks.exists() and stored.complaint_task_id is None
        transaction.set_rollback(True)


# --- the funnel: whatever happens to the links, in whatever order, the counts stay consistent ---------------

# (operation, survey index, minutes after the previous step, score)
funnel_step = st.tuples(st.sampled_from(["open", "answer", "send", "send_one"]), st.integers(0, 2),
                        st.integers(0, 60 * 24 * 10), st.integers(0, 10))


@settings(HYPOTHESIS, max_examples=25)
@given(steps=st.lists(funnel_step, max_size=12))
def test_opening_sending_and_answering_in_any_order_never_lets_answered_exceed_sent_nor_touch_expired_links(
        world, admin_scope, steps):
    with transaction.atomic():
        start = timezone.now() - dt.timedelta(days=30)
        surveys = [SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=world["patients"][0],
                                 created_at=start, expires_at=start + dt.timedelta(days=days)) for days in (1, 7, 14)]
        at = start
        for op, i, minutes, score in steps:
            at += dt.timedelta(minutes=minutes + 1)
            survey = Survey.objects.get(pk=surveys[i].pk)
            before = Survey.objects.filter(pk=survey.pk).values().get()
            refused = False
            try:
                if op == "open":
                    services.survey_open(token=survey.token, at=at)
                elif op == "answer":
                    services.survey_answer(token=survey.token, score=score, tags=[], at=at)
                elif op == "send":
                    services.surveys_mark_sent(survey_ids=[s.pk for s in surveys], at=at)
                else:
                    services.survey_mark_sent(survey=survey, at=at)
            except (SurveyAlreadyAnswered, SurveyExpired):
                refused = True
            after = Survey.objects.filter(pk=survey.pk).values().get()
            if refused or at >= survey.expires_at:  # a refused call, or any call on an expired link, changes nothing
                assert after == before, (op, at, survey.expires_at)
        for row in Survey.objects.filter(pk__in=[s.pk for s in surveys]).values():
            if row["answered_at"] is not None:
                assert row["sent_at"] is not None and row["opened_at"] is not None
                assert row["sent_at"] <= row["answered_at"] < row["expires_at"]
                assert row["opened_at"] <= row["answered_at"]
            if row["opened_at"] is not None:
                assert row["sent_at"] is not None and row["opened_at"] < row["expires_at"]
            if row["sent_at"] is not None:
                assert row["sent_at"] < row["expires_at"]
        totals = selectors.survey_totals(admin_scope, clinic_id=world["clinics"][0].id)
        assert totals.answered <= totals.opened <= totals.sent <= totals.created
        assert totals.response_rate is None or totals.response_rate <= 100
        assert FollowupTask.objects.filter(anchor_key__in=[f"survey:{s.pk}" for s in surveys]).count() == sum(
            1 for s in Survey.objects.filter(pk__in=[s.pk for s in surveys]) if s.is_detractor)
        transaction.set_rollback(True)


def test_erasing_a_patient_keeps_the_nps_figures_blanks_their_comments_and_closes_their_open_links(
        client, world, admin_scope):
    # given: the patient answered one survey and has an open link; another patient answered too
    patient, other = world["patients"]
    answered = SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=patient, score=3,
                             sent_at=timezone.now() - dt.timedelta(days=1), comment="张三 13800000000")
    open_link = SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=patient)
    SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=other, score=10, comment="很好")
    before = {g: selector_groups(selectors.nps(admin_scope, group_by=g)) for g in NpsGroup}
    # when
    result = services.surveys_erase_hook(customer=patient)
    # then
    assert result == {"survey_comments": 1, "surveys_expired": 1}
    assert {g: selector_groups(selectors.nps(admin_scope, group_by=g)) for g in NpsGroup} == before
    assert Survey.objects.get(pk=answered.pk).comment == ""
    assert Survey.objects.get(pk=other.surveys.get().pk).comment == "很好"
    kept = everything()
    response = client.post(answer_url(open_link.token), {"score": "9"})
    assert response.status_code == 409 and 'data-testid="closed-expired"' in response.text
    assert everything() == kept


@pytest.mark.parametrize("body", [
    {}, {"score": None}, {"score": "9"}, {"score": 9.5}, {"score": True}, {"score": 11}, {"score": -1},
    {"score": 2**63}, {"score": 9, "tags": "price"}, {"score": 9, "tags": ["price", "parking"]},
    {"score": 9, "comment": "a" * 501}, {"score": 9, "comment": "好\x00"}, {"score": 9, "comment": 5},
    {"score": 9, "extra": 1}, [9], "9",
])
def test_the_api_refuses_a_bad_answer_with_a_422_naming_the_field_and_writes_nothing(client, world, tokens, body):
    survey = SurveyFactory(chain=world["chain"], clinic=world["clinics"][0], customer=world["patients"][0])
    before = everything()
    response = api_post(client, f"/api/surveys/answer/{survey.token}", body, tokens["director"], "bad-1")
    assert response.status_code == 422, response.content
    assert response.json()["errors"] and response.json()["message"]
    assert everything() == before
    # the refusal left the link open: a good answer afterwards is recorded
    good = api_post(client, f"/api/surveys/answer/{survey.token}", {"score": 9}, tokens["director"], "good-1")
    assert good.status_code == 200 and good.json()["score"] == 9
