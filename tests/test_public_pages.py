"""The patient-facing public pages (the survey link, reached on a phone without a login) as an attacker and as a
patient meet them: a wrong token of any shape is the same 404 as an unknown one, a GET writes at most the first
"opened" stamp, every answer carries no-store caching, the page shows no staff-only or other patients' data, a
comment is stored exactly or refused in words, and every page a patient meets is in the patients' language.
(What src/smileloop/surveys/tests/ already covers is not repeated: the answered and expired links, the CSRF refusal,
the score and comment validation, the concurrent service call.)"""

import datetime as dt
import re
import string
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from smileloop.surveys.models import Survey
from smileloop.surveys.services import TOKEN_LENGTH, token_new
from smileloop.surveys.tests.factories import SurveyFactory

pytestmark = pytest.mark.django_db

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')
NEXT_INPUT = re.compile(r'name="next" value="[^"]*"')


@pytest.fixture
def doctor(chain, clinic_a):
    return StaffFactory(chain=chain, role=Role.DOCTOR, name="陈医生", clinics=[clinic_a])


@pytest.fixture
def patient(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三丰", home_clinic=clinic_a, mobile="+8613912345678",
                           mobile_tail="5678")


@pytest.fixture
def survey(chain, clinic_a, patient, doctor):
    return SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, doctor=doctor,
                         visit_date=dt.date(2026, 3, 1))


def url(token: str, page: str = "answer") -> str:
    return f"/surveys/s/{token}/" + ("thanks/" if page == "thanks" else "")


def csrf_post(client, address, data, **extra):
    client.get(address)
    return client.post(address, {**data, "csrfmiddlewaretoken": client.cookies[settings.CSRF_COOKIE_NAME].value},
                       **extra)


def everything() -> tuple:
    return (list(Survey.objects.order_by("pk").values()), Interaction.objects.count(), FollowupTask.objects.count(),
            list(Customer.objects.order_by("pk").values()))


def body(response) -> str:
    """The page without what differs per request by design: the CSRF token and the switcher's way back (the path)."""
    return NEXT_INPUT.sub("", CSRF_INPUT.sub("", response.content.decode()))


# --- token enumeration -----------------------------------------------------------------------------------

WRONG_TOKENS = ["a", "A" * (TOKEN_LENGTH - 1), "A" * TOKEN_LENGTH, "A" * 32, "A" * 33, "A" * 500, "张三丰",
                "Ｔｏｋｅｎ１２３４５６", "%F0%9F%98%80" * 3, "%E2%80%8B", "%00", "%0A", "%7F", "..", "-_-_"]


def test_every_wrong_token_answers_exactly_as_an_unknown_one_does_and_writes_nothing(client, survey):
    before = everything()
    reference = {page: client.get(url(token_new(), page)) for page in ("answer", "thanks")}
    posted_reference = client.post(url(token_new()), {"score": "9"})
    variants = [*WRONG_TOKENS, survey.token.swapcase(), survey.token[:-1], survey.token + "a",
                survey.token[::-1], f"%20{survey.token}", f"{survey.token}%20", f"{survey.token}%0A",
                f"%09{survey.token}"]
    for token in variants:
        for page in ("answer", "thanks"):
            response = client.get(url(token, page))
            assert response.status_code == 404, (token, page)
            assert body(response) == body(reference[page]), (token, page)
            for header in ("Cache-Control", "Content-Language", "X-Robots-Tag", "Referrer-Policy"):
                assert response.get(header) == reference[page].get(header), (token, page, header)
        posted = client.post(url(token), {"score": "9"})
        assert posted.status_code == 404 and body(posted) == body(posted_reference), token
    assert everything() == before


def test_an_unknown_and_a_near_miss_token_cost_the_same_single_exact_lookup(client, survey):
    """No prefix or case-insensitive search a timing attack could walk: one equality lookup, whatever the token."""
    def queries(token):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url(token)).status_code == 404
        return [q["sql"] for q in captured.captured_queries if "surveys_survey" in q["sql"]]

    unknown, near = queries(token_new()), queries(survey.token[:-1] + ("a" if survey.token[-1] != "a" else "b"))
    assert len(unknown) == len(near) == 1
    assert re.sub(r"'[^']*'", "?", unknown[0]) == re.sub(r"'[^']*'", "?", near[0])
    assert "LIKE" not in unknown[0].upper() and "UPPER" not in unknown[0].upper()


def test_tokens_are_long_random_base62_and_never_repeat():
    tokens = [token_new() for _ in range(5000)]
    assert len(set(tokens)) == len(tokens)
    alphabet = set(string.ascii_letters + string.digits)
    assert all(len(t) == TOKEN_LENGTH == 12 and set(t) <= alphabet for t in tokens)
    counts = Counter("".join(tokens))  # 60000 characters over 62 symbols: each about 968 times
    assert set(counts) == alphabet
    assert min(counts.values()) > 700 and max(counts.values()) < 1250
    assert Counter(t[0] for t in tokens).most_common(1)[0][1] < 5000 // 62 * 2.5  # no fixed prefix


# --- a GET writes (at most the first "opened" stamp) -------------------------------------------------------

WRITES = ("INSERT", "UPDATE", "DELETE")


def writes_of(client, address, **extra) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        client.get(address, **extra)
    return [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


def test_a_get_writes_only_the_first_opened_stamp_of_an_open_link_and_nothing_else_ever(client, survey, chain,
                                                                                         clinic_a, patient):
    now = timezone.now()
    answered = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, score=10)
    expired = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, created_at=now - dt.timedelta(days=20),
                            expires_at=now - dt.timedelta(days=6))
    first = writes_of(client, url(survey.token))
    assert len(first) == 1 and "surveys_survey" in first[0]
    for address in (url(survey.token), url(survey.token, "thanks"), url(answered.token), url(answered.token, "thanks"),
                    url(expired.token), url(expired.token, "thanks"), url(token_new()), url("x")):
        assert writes_of(client, address) == [], address
        assert writes_of(client, address, HTTP_ACCEPT_LANGUAGE="en") == [], address
    for stored in (answered, expired):
        row = Survey.objects.get(pk=stored.pk)
        assert row.opened_at is None and row.sent_at is None, stored


def test_a_head_or_other_method_neither_writes_nor_opens_the_link(client, survey):
    before = everything()
    for method in ("head", "put", "patch", "delete", "options"):
        response = getattr(client, method)(url(survey.token))
        assert response.status_code == 405, method
    assert client.post(url(survey.token, "thanks"), {"score": "1"}).status_code == 405
    assert everything() == before


# --- caching and headers -------------------------------------------------------------------------------

def test_every_answer_of_a_public_page_is_private_and_never_stored(client, survey, chain, clinic_a, patient):
    csrf_client = Client(enforce_csrf_checks=True)
    answered = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, score=9)
    responses = {
        "form": client.get(url(survey.token)),
        "invalid": client.post(url(survey.token), {"score": "11"}),
        "csrf refused": csrf_client.post(url(survey.token), {"score": "9"}),
        "closed": client.get(url(answered.token)),
        "conflict": client.post(url(answered.token), {"score": "1"}),
        "thanks": client.get(url(answered.token, "thanks")),
        "not found": client.get(url(token_new())),
        "no route": client.get(f"/surveys/s/{survey.token}/nope/"),
        "not allowed": client.put(url(survey.token)),
        "too large": client.generic("POST", url(survey.token), b"x" * 100,
                                    CONTENT_LENGTH=str(settings.REQUEST_BODY_MAX_BYTES + 1),
                                    content_type="application/x-www-form-urlencoded"),
        "answered": client.post(url(survey.token), {"score": "9"}),
    }
    expected = {"form": 200, "invalid": 422, "csrf refused": 403, "closed": 200, "conflict": 409, "thanks": 200,
                "not found": 404, "no route": 404, "not allowed": 405, "too large": 413, "answered": 302}
    for name, response in responses.items():
        assert response.status_code == expected[name], name
        cache = {part.strip() for part in response["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= cache, (name, cache)


# --- what the page shows -------------------------------------------------------------------------------

def test_the_pages_show_no_staff_only_data_nor_other_patients_even_to_a_logged_in_staff_browser(
        client, survey, patient, chain, clinic_a, director_a):
    other = CustomerFactory(chain=chain, name="李四", home_clinic=clinic_a, mobile="+8613700001111")
    SurveyFactory(chain=chain, clinic=clinic_a, customer=other, score=2, comment="李四的投诉")
    for staff_browser in (False, True):
        browser = Client()
        if staff_browser:
            browser.force_login(director_a.user)  # a director testing the link on their own phone
        pages = [browser.get(url(survey.token)).content.decode()]
        pages.append(browser.post(url(survey.token), {"score": "11"}).content.decode())
        if not staff_browser:
            assert browser.post(url(survey.token), {"score": "3", "comment": "疼"}).status_code == 302
        pages += [browser.get(url(survey.token)).content.decode(), browser.get(url(survey.token, "thanks")).content.decode()]
        for html in pages:
            for secret in ("张三丰", "三丰", "13912345678", "5678", "李四", other.mobile[-8:], director_a.name,
                           director_a.user.username, f"/customers/{patient.pk}/", "/customers/", "/followups/",
                           "/admin/", "/api/", f"#{patient.pk}", "data-id", "csrfmiddlewaretoken\" value=\"\""):
                assert secret not in html, (staff_browser, secret)
            assert 'class="member"' in html and "mainnav" not in html


def test_an_erased_patients_links_close_and_show_neither_their_name_nor_their_record_id(
        client, survey, patient, chain, clinic_a, admin_scope):
    answered = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, score=8, comment="张三丰 13912345678")
    customer_erase(scope=admin_scope, customer=patient, actor=None, reason="本人书面申请")
    assert Customer.objects.get(pk=patient.pk).name != "张三丰"
    before = everything()
    for token in (survey.token, answered.token):
        for response in (client.get(url(token)), client.get(url(token, "thanks")),
                         client.post(url(token), {"score": "10", "comment": "再来"})):
            html = response.content.decode()
            assert response.status_code in (200, 302, 409)
            assert "注销" not in html and f"#{patient.pk}" not in html and "张" not in html and "5678" not in html
    assert 'data-testid="closed-expired"' in client.get(url(survey.token)).content.decode()
    assert everything() == before


# --- what a comment can be -----------------------------------------------------------------------------

COMMENTS = [
    "😀👨‍👩‍👧‍👦🦷 牙齿很好 👍🏽",                     # astral plane, a ZWJ family, a skin-tone modifier
    "\u202egnp.exe\u202c 右到左覆盖",                   # bidi override: stored as text, shown escaped
    "制表\t符与换行\n第二行",
    "a\x01b\x07c\x1bd\x7fe",                          # C0/DEL controls inside the text
    "零宽\u200b空格\ufeffBOM",
    "𠀀𪚥𰻞 生僻字",                                   # CJK extension B and later
    "x" * 499 + "😀",                                 # 500 code points (a browser counts 501 UTF-16 units)
]


@pytest.mark.parametrize("comment", COMMENTS)
def test_a_comment_with_emoji_or_control_characters_is_stored_exactly(client, survey, comment):
    response = client.post(url(survey.token), {"score": "8", "comment": comment})
    assert response.status_code == 302, response.content[:400]
    assert Survey.objects.get(pk=survey.pk).comment == comment


def test_invalid_utf8_in_a_comment_is_never_a_server_error(client, survey):
    raw = b"score=8&comment=%ED%A0%80%FF%FE%C3%28ok"
    response = client.generic("POST", url(survey.token), raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code in (302, 422)
    if response.status_code == 302:
        stored = Survey.objects.get(pk=survey.pk).comment
        stored.encode("utf-8")  # storable, no lone surrogate
        assert stored.endswith("ok")


def test_a_body_over_the_limit_is_refused_in_the_patients_words_and_nothing_is_read(client, survey):
    before = everything()
    response = client.generic("POST", url(survey.token), b"score=9&comment=" + b"a" * 1000,
                              CONTENT_LENGTH=str(settings.REQUEST_BODY_MAX_BYTES + 1),
                              content_type="application/x-www-form-urlencoded", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 413
    html = response.content.decode()
    assert 'class="member"' in html and '<html lang="zh-hans">' in html
    assert everything() == before


def test_a_flood_of_form_fields_is_refused_without_a_server_error_or_a_write(client, survey):
    before = everything()
    data = "score=9&" + "&".join(["tags=price"] * (settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 10))
    response = client.generic("POST", url(survey.token), data.encode(),
                              content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 413, 422)
    assert everything() == before


# --- language ----------------------------------------------------------------------------------------------

def test_every_page_a_patient_meets_is_in_chinese_whatever_the_phone_asks_and_says_so_in_its_header(
        client, survey, chain, clinic_a, patient):
    """A patient's phone set to English still gets the clinic's language (the switcher is theirs to use); the
    Content-Language header names the language the page is actually in."""
    answered = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, score=9)
    csrf_client = Client(enforce_csrf_checks=True)
    en = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
    responses = {
        "form": client.get(url(survey.token), **en),
        "form ?lang=en": client.get(url(survey.token) + "?lang=en&language=en", **en),
        "invalid": client.post(url(survey.token), {"score": "x"}, **en),
        "closed": client.get(url(answered.token), **en),
        "conflict": client.post(url(answered.token), {"score": "1"}, **en),
        "thanks": client.get(url(answered.token, "thanks"), **en),
        "not found": client.get(url(token_new()), **en),
        "no route": client.get(f"/surveys/s/{survey.token}/nope/", **en),
        "csrf refused": csrf_client.post(url(survey.token), {"score": "9"}, **en),
        "too large": client.generic("POST", url(survey.token), b"x", CONTENT_LENGTH=str(
            settings.REQUEST_BODY_MAX_BYTES + 1), content_type="application/x-www-form-urlencoded", **en),
    }
    wrong = {}
    for name, response in responses.items():
        html = response.content.decode()
        assert '<html lang="zh-hans">' in html, name
        if response["Content-Language"] != "zh-hans":
            wrong[name] = response["Content-Language"]
    assert wrong == {}


def test_the_patients_chosen_language_is_kept_on_every_page_and_a_bogus_choice_falls_back_to_chinese(
        survey, chain, clinic_a, patient):
    answered = SurveyFactory(chain=chain, clinic=clinic_a, customer=patient, score=9)
    for cookie, language in (("en", "en"), ("fr", "zh-hans"), ("", "zh-hans"), ("zh-hans", "zh-hans"),
                             ("EN", "zh-hans"), ("en\x00", "zh-hans")):
        client = Client()
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = cookie
        for address in (url(survey.token), url(answered.token), url(answered.token, "thanks"), url(token_new()),
                        f"/surveys/s/{survey.token}/nope/"):
            response = client.get(address, HTTP_ACCEPT_LANGUAGE="zh-hans" if language == "en" else "en")
            assert f'<html lang="{language}">' in response.content.decode(), (cookie, address)
            assert response["Content-Language"] == language, (cookie, address)


def test_the_language_switcher_on_the_survey_page_switches_and_comes_back_to_the_same_link(survey):
    client = Client(enforce_csrf_checks=True)
    page = client.get(url(survey.token))
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    assert f'name="next" value="{url(survey.token)}"' in page.content.decode()
    switched = client.post(reverse("set_language"), {"language": "en", "next": url(survey.token),
                                                     "csrfmiddlewaretoken": token})
    assert switched.status_code == 302 and switched["Location"] == url(survey.token)
    assert '<html lang="en">' in client.get(url(survey.token)).content.decode()
    reflected = client.get(url(survey.token) + '?"><script>alert(1)</script>').content.decode()
    assert "<script" not in reflected and 'value="/surveys/s/' in reflected  # the way back is the encoded path
    away = client.post(reverse("set_language"), {"language": "en", "next": "https://evil.example/phish",
                                                 "csrfmiddlewaretoken": token})
    assert "evil.example" not in away.get("Location", "")


# --- CSRF on the public POST ------------------------------------------------------------------------------

def test_a_post_from_another_site_is_refused_even_with_a_valid_looking_token(survey):
    client = Client(enforce_csrf_checks=True)
    client.get(url(survey.token))
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    before = everything()
    forged = client.post(url(survey.token), {"score": "0", "csrfmiddlewaretoken": token},
                         HTTP_ORIGIN="https://evil.example", secure=True, HTTP_REFERER="https://evil.example/x")
    assert forged.status_code == 403 and 'class="member"' in forged.content.decode()
    other = Client(enforce_csrf_checks=True)  # another browser's token with this browser's cookie is refused too
    other.get(url(survey.token))
    mixed = client.post(url(survey.token), {"score": "0",
                                            "csrfmiddlewaretoken": "A" * 64})
    assert mixed.status_code == 403
    assert everything() == before
