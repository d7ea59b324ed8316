"""A walk-in without a phone registered once, whatever Back does (views.customer_create).

The empty new-customer page is kept for Back (`private, no-cache`, its form posting to `?send=1` so that the post
does not drop the kept copy): the form Back shows is the first one, with its key. Pages that show what was typed
stay `no-store`. And whatever the browser keeps (a page fetched anew has a new key; a key is forgotten after a week),
a phone-less name the same staff member or clinic registered minutes ago is named before a second one is registered,
and registered only when staff confirm. The read is scoped: a namesake the reader may not see is never shown."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.forms import form_key_valid
from smileloop.core.models import IdempotencyRecord
from smileloop.customers import selectors, services
from smileloop.customers.models import Customer

pytestmark = pytest.mark.django_db

KEY = re.compile(r'<input type="hidden" name="key" value="([0-9a-f]{32})">')
CREATE = reverse("customers:create")
SENT = CREATE + "?send=1"  # where the page's form posts
WARNING = 'data-testid="recent-namesake"'


def _page_key(client) -> str:
    [key] = KEY.findall(client.get(CREATE).text)
    return key


def _walk_in(clinic, key: str, **extra) -> dict:
    return {"name": "陈小雨", "gender": "F", "home_clinic": clinic.id, "key": key, **extra}


def _warned(client, response, **headers):
    """The namesake warning: the POST leads (Post/Redirect/Get) to the page that shows it, fetched here."""
    assert response.status_code == 302 and response["Location"].startswith(CREATE + "?warned=")
    return client.get(response["Location"], headers=headers)


@pytest.fixture
def desk(client, front_desk_a):
    client.force_login(front_desk_a.user)
    return client


@pytest.fixture
def desk_b(chain, clinic_b):
    return StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小赵", clinics=[clinic_b],
                        user__username="frontdesk_b")


# --- the page kept for Back ----------------------------------------------------------------------------


def test_the_empty_new_customer_page_may_be_kept_for_back_and_posts_elsewhere(desk):
    response = desk.get(CREATE)
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-cache"
    assert f'action="{SENT}"' in response.text


def test_a_page_showing_what_was_typed_or_a_message_stays_no_store(desk, clinic_a):
    # a refused form shows the patient's details: never kept
    refused = desk.post(SENT, _walk_in(clinic_a, _page_key(desk), birthday="2999-01-01"))
    assert refused.status_code == 422 and "陈小雨" in refused.text
    assert "no-store" in refused["Cache-Control"]
    # the empty page with a message on it (one left from the last page): not kept either
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))  # "Customer 陈小雨 created." waits to be shown
    with_message = desk.get(CREATE)
    assert "陈小雨" in with_message.text and "no-store" in with_message["Cache-Control"]


def test_the_form_sent_again_from_the_kept_page_leads_to_the_patient_it_registered(desk, clinic_a):
    data = _walk_in(clinic_a, _page_key(desk))
    first = desk.post(SENT, data)
    again = desk.post(SENT, {**data, "csrfmiddlewaretoken": "another-mask"})  # Back, then the same form sent
    assert first.status_code == again.status_code == 302 and first["Location"] == again["Location"]
    assert Customer.objects.filter(name="陈小雨").count() == 1


# --- a namesake registered minutes ago ----------------------------------------------------------------------


def test_a_walk_in_whose_name_was_registered_minutes_ago_is_named_and_nothing_is_written(desk, clinic_a):
    # given 陈小雨, registered without a phone from one page
    assert desk.post(SENT, _walk_in(clinic_a, _page_key(desk))).status_code == 302
    first = Customer.objects.get()
    # when a page fetched anew (a new key) registers the same name, typed with a space
    key = _page_key(desk)
    response = desk.post(SENT, _walk_in(clinic_a, key, name="陈 小雨"), headers={"Accept-Language": "zh-hans"})
    # then nothing is written; the page names her (in Chinese), links to her record, and offers the confirmation
    assert Customer.objects.count() == 1 and IdempotencyRecord.objects.count() == 1
    shown = _warned(desk, response, **{"Accept-Language": "zh-hans"})
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]  # what was typed: never kept
    assert "陈小雨" not in response["Location"] and key not in response["Location"]
    page = shown.text
    assert WARNING in page
    warning = page.split(WARNING, 1)[1].split("</div>", 1)[0]
    assert f'<a href="{reverse("customers:detail", args=[first.id])}">陈小雨</a>' in warning
    assert f"（#{first.id}，无手机号）刚刚登记过。" in warning and "分钟" not in warning
    assert "本次未登记" in warning
    assert 'name="namesake_ok" value="1"' in page and "仍然登记新患者" in page
    assert f'name="key" value="{key}"' in page and 'value="陈 小雨"' in page  # the form as it was sent, with its key


def test_confirmed_the_second_patient_of_that_name_is_registered_once(desk, clinic_a):
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
    data = _walk_in(clinic_a, _page_key(desk))
    assert WARNING in _warned(desk, desk.post(SENT, data)).text
    # when staff say it is another person of that name
    confirmed = desk.post(SENT, {**data, "namesake_ok": "1"})
    # then a second 陈小雨 is registered
    assert confirmed.status_code == 302
    second = Customer.objects.order_by("-id").first()
    assert confirmed["Location"] == reverse("customers:detail", args=[second.id])
    assert Customer.objects.filter(name="陈小雨").count() == 2
    # and that form sent again, confirmed or not (Back to the kept page), leads to her: the confirmation is no part
    # of what the form writes
    for again in ({**data, "namesake_ok": "1"}, data):
        response = desk.post(SENT, again)
        assert response.status_code == 302 and response["Location"] == confirmed["Location"]
    assert Customer.objects.filter(name="陈小雨").count() == 2


@pytest.mark.parametrize(("ago", "language", "said"), [
    (dt.timedelta(seconds=50), "zh-hans", "（#{id}，无手机号）刚刚登记过。"),
    (dt.timedelta(minutes=1, seconds=5), "zh-hans", "（#{id}，无手机号）1 分钟前登记过。"),
    (dt.timedelta(minutes=7, seconds=59), "zh-hans", "（#{id}，无手机号）7 分钟前登记过。"),
    (dt.timedelta(seconds=5), "en", "(no. {id}), without a mobile number, was registered just now."),
    (dt.timedelta(minutes=1, seconds=1), "en", "(no. {id}), without a mobile number, was registered 1 minute ago."),
    (dt.timedelta(minutes=9), "en", "(no. {id}), without a mobile number, was registered 9 minutes ago.")])
def test_the_warning_says_once_how_long_ago_just_now_under_a_minute(desk, clinic_a, ago, language, said):
    # given 陈小雨, registered `ago`
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
    first = Customer.objects.get()
    Customer.objects.filter(pk=first.pk).update(created_at=timezone.now() - ago)
    # when she is registered again from a page fetched anew
    shown = _warned(desk, desk.post(SENT, _walk_in(clinic_a, _page_key(desk))), **{"Accept-Language": language})
    # then the warning says when, once
    warning = " ".join(shown.text.split(WARNING, 1)[1].split("</p>", 1)[0].split())
    assert said.format(id=first.id) in warning
    assert sum(warning.count(word) for word in ("刚刚", "分钟前", "just now", " ago")) == 1


def test_back_to_the_warning_shows_it_again_and_its_form_sent_again_leads_to_the_patient_it_registered(
        desk, clinic_a):
    # given a warning, and the second 陈小雨 registered from it
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
    data = _walk_in(clinic_a, _page_key(desk))
    warned = desk.post(SENT, data)["Location"]
    confirmed = desk.post(SENT, {**data, "namesake_ok": "1"})
    assert confirmed.status_code == 302
    # when the desk goes Back to the warning (a GET: no form is resent on its own)
    again = desk.get(warned)
    # then it is the same form, with its key; sent again, it leads to the patient it registered, nothing new
    assert again.status_code == 200 and f'name="key" value="{data["key"]}"' in again.text
    response = desk.post(SENT, {**data, "namesake_ok": "1"})
    assert response["Location"] == confirmed["Location"]
    assert Customer.objects.filter(name="陈小雨").count() == 2


@pytest.mark.parametrize("case", ["expired", "another_session", "made_up"])
def test_a_warning_expired_or_of_another_session_leads_to_an_empty_form(client, desk, front_desk_a, clinic_a,
                                                                         case):
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
    warned = desk.post(SENT, _walk_in(clinic_a, _page_key(desk), notes="对青霉素过敏"))["Location"]
    if case == "expired":
        session = desk.session
        for warning in session["customers.registration_refusals"].values():
            warning["until"] = timezone.now().timestamp() - 1
        session.save()
    elif case == "another_session":
        client.logout()
        client.force_login(front_desk_a.user)  # a session of its own: nothing of the first one's
    elif case == "made_up":
        warned = CREATE + "?warned=0123456789abcdef0123456789abcdef"
    response = client.get(warned)
    assert response.status_code == 302 and response["Location"] == CREATE
    assert "对青霉素过敏" not in client.get(CREATE).text
    if case == "expired":  # and what was typed is gone from the session
        assert client.session["customers.registration_refusals"] == {}


def test_the_session_keeps_only_the_forms_fields_a_few_warnings_and_not_past_the_window(desk, clinic_a):
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
    for _ in range(7):
        desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
    kept = desk.session["customers.registration_refusals"]
    assert len(kept) == 5
    [warning, *_others] = kept.values()
    assert set(warning["data"]) == {"name", "gender", "home_clinic", "key"}
    assert 0 < warning["until"] - timezone.now().timestamp() <= 10 * 60


@pytest.mark.parametrize("other", ["name", "birthday", "mobile", "older"])
def test_another_name_birthday_a_phone_or_a_registration_older_than_the_window_is_registered_at_once(
        desk, clinic_a, other):
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk), birthday="2015-03-01"))
    if other == "older":
        Customer.objects.update(created_at=timezone.now() - dt.timedelta(minutes=11))
    changed = {"name": {"name": "陈小雪"}, "birthday": {"birthday": "2016-03-01"},
               "mobile": {"mobile": "13912345678"}, "older": {}}[other]
    response = desk.post(SENT, _walk_in(clinic_a, _page_key(desk), **({"birthday": "2015-03-01"} | changed)))
    assert response.status_code == 302
    assert Customer.objects.count() == 2


def test_a_namesake_with_no_birthday_known_is_named(desk, clinic_a):
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
    response = desk.post(SENT, _walk_in(clinic_a, _page_key(desk), birthday="2015-03-01"))
    assert WARNING in _warned(desk, response).text
    assert Customer.objects.count() == 1


def test_a_namesake_another_desk_of_the_same_clinic_registered_is_named(client, desk, front_desk_a, chain, clinic_a):
    # given 陈小雨 registered in clinic A by another of its desks
    other = StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小李", clinics=[clinic_a],
                         user__username="frontdesk_a2")
    client.force_login(other.user)
    client.post(SENT, _walk_in(clinic_a, _page_key(client)))
    # when the first desk registers her in clinic A
    client.force_login(front_desk_a.user)
    response = client.post(SENT, _walk_in(clinic_a, _page_key(client)))
    assert WARNING in _warned(client, response).text
    assert Customer.objects.count() == 1


def test_a_namesake_of_a_clinic_the_reader_does_not_see_is_never_shown(client, front_desk_a, desk_b, clinic_a,
                                                                       clinic_b):
    # given 陈小雨 registered in clinic B a moment ago
    client.force_login(desk_b.user)
    client.post(SENT, _walk_in(clinic_b, _page_key(client)))
    theirs = Customer.objects.get()
    # when clinic A's desk registers a 陈小雨 of its own
    client.force_login(front_desk_a.user)
    response = client.post(SENT, _walk_in(clinic_a, _page_key(client)))
    # then she is registered at once, and the page told nothing about clinic B's patient
    assert response.status_code == 302
    assert Customer.objects.filter(name="陈小雨").count() == 2
    assert str(theirs.id) not in response.get("Location", "").split("/")
    shown = client.get(response["Location"]).text
    assert reverse("customers:detail", args=[theirs.id]) not in shown


def test_the_same_staff_member_registering_in_another_clinic_is_told(client, chain_admin, clinic_a, clinic_b):
    client.force_login(chain_admin.user)
    client.post(SENT, _walk_in(clinic_b, _page_key(client)))
    response = client.post(SENT, _walk_in(clinic_a, _page_key(client)))
    assert WARNING in _warned(client, response).text


def test_the_selector_reads_only_what_the_scope_may_see(front_desk_a, desk_b, chain_admin, clinic_a, clinic_b):
    since = timezone.now() - dt.timedelta(minutes=10)
    Customer.objects.create(chain=clinic_b.chain, name="陈小雨", home_clinic=clinic_b, first_touch_staff=desk_b)
    mine = Customer.objects.create(chain=clinic_a.chain, name="陈小雨", home_clinic=clinic_a,
                                   first_touch_staff=front_desk_a)
    found = selectors.recent_walk_in_namesakes(scope_for_staff(front_desk_a), name="陈小雨", staff_id=desk_b.id,
                                               clinic_id=clinic_b.id, since=since)
    assert found == []  # clinic B's, entered by B's desk: not in clinic A's scope
    found = selectors.recent_walk_in_namesakes(scope_for_staff(chain_admin), name="陈小雨", staff_id=chain_admin.id,
                                               clinic_id=clinic_a.id, since=since)
    assert found == [mine]


def test_the_register_service_refuses_a_recent_phone_less_namesake_unless_told_and_writes_nothing(
        front_desk_a, clinic_a):
    # given 陈小雨, registered without a phone by this desk
    scope = scope_for_staff(front_desk_a)
    first, _created = services.customer_register(scope=scope, data={"name": "陈小雨", "home_clinic": clinic_a},
                                                 actor=front_desk_a, namesakes_check=True)
    # when she is registered again, the name typed with a space, the check asked for
    with pytest.raises(services.RecentNamesakes) as refused:
        services.customer_register(scope=scope, data={"name": "陈 小雨", "home_clinic": clinic_a},
                                   actor=front_desk_a, namesakes_check=True)
    # then she is named, nothing written
    assert refused.value.found == [first] and refused.value.code == "recent_namesake"
    assert Customer.objects.count() == 1
    # and with a phone, or not asked (the desk confirmed), a second is registered
    services.customer_register(scope=scope, data={"name": "陈小雨", "mobile": "13912345678", "home_clinic": clinic_a},
                               actor=front_desk_a, namesakes_check=True)
    services.customer_register(scope=scope, data={"name": "陈小雨", "home_clinic": clinic_a}, actor=front_desk_a)
    assert Customer.objects.filter(name="陈小雨").count() == 3


# --- every refusal for what is on record: a page of its own ---------------------------------------------------------


def test_a_phone_already_on_record_is_refused_on_a_page_of_its_own_that_back_shows_again(desk, clinic_a, zhang_san):
    # given a new patient typed with 张三's phone
    key = _page_key(desk)
    data = _walk_in(clinic_a, key, name="张三丰", mobile="138 0013 8000", notes="对青霉素过敏")
    # when the form is sent
    response = desk.post(SENT, data, headers={"Accept-Language": "zh-hans"})
    # then the POST leads to the refusal's own page (a GET), its address carrying nothing typed
    assert response.status_code == 302 and response["Location"].startswith(CREATE + "?warned=")
    assert "13800138000" not in response["Location"] and key not in response["Location"]
    assert Customer.objects.count() == 1
    # and that page, fetched as often as Back fetches it, names her with a link, the form as typed, with its key
    for _ in range(2):
        shown = desk.get(response["Location"], headers={"Accept-Language": "zh-hans"})
        assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
        assert "该手机号已属于 张三，未重复创建客户。" in shown.text
        assert f'href="{reverse("customers:detail", args=[zhang_san.id])}"' in shown.text
        assert f'name="key" value="{key}"' in shown.text and "对青霉素过敏" in shown.text
    # and the session keeps why as a code and an id (put into words in the reader's language when shown)
    [kept] = desk.session["customers.registration_refusals"].values()
    assert kept["errors"] == [["mobile", "phone_taken", {}]] and kept["existing"] == zhang_san.id
    # and the form corrected and sent from it, with its key, registers the patient
    corrected = desk.post(SENT, {**data, "mobile": "13900139000"})
    assert corrected.status_code == 302 and Customer.objects.filter(name="张三丰").count() == 1


def test_refusals_and_namesake_warnings_share_the_sessions_few_places(desk, clinic_a, zhang_san):
    desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))  # 陈小雨: her namesakes are warned about
    for _ in range(4):
        desk.post(SENT, _walk_in(clinic_a, _page_key(desk)))
        desk.post(SENT, _walk_in(clinic_a, _page_key(desk), name="张三丰", mobile="13800138000"))
    kept = list(desk.session["customers.registration_refusals"].values())
    assert len(kept) == 5
    assert {"namesakes" in refusal for refusal in kept} == {True, False}


def test_a_form_error_stays_on_the_posts_own_page(desk, clinic_a):
    # a malformed phone: corrected where it is shown, nothing kept in the session
    response = desk.post(SENT, _walk_in(clinic_a, _page_key(desk), mobile="12345"))
    assert response.status_code == 422 and 'name="mobile"' in response.text
    assert "customers.registration_refusals" not in desk.session


# --- one rule for form keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "taken"), [
    ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"), (" k-1 \n", "k-1"), ("k" * 64, "k" * 64),
    (None, None), ("", None), ("   ", None), ("k" * 65, None), ("a\x00b", None), ("a\tb", None)])
def test_a_form_key_is_one_to_64_printable_characters(sent, taken):
    assert form_key_valid(sent) == taken

