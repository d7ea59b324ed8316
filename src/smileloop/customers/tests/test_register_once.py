"""The new-customer page registers a person once per form: the hidden key the page renders is claimed in
core.idempotency, so the same form sent again (Back and resubmit, a retried request, a second tab) leads to the patient
the first made, and the key sent with other data is refused. A walk-in without a phone, whom no phone matches, was
registered twice."""

import re

import pytest
from django.urls import reverse

from smileloop.core.models import IdempotencyRecord
from smileloop.customers.models import Customer, Interaction

pytestmark = pytest.mark.django_db

KEY = re.compile(r'<input type="hidden" name="key" value="([0-9a-f]{32})">')


def _page_key(response) -> str:
    [key] = KEY.findall(response.text)
    return key


def _walk_in(clinic, key: str, **extra) -> dict:
    return {"name": "王小宝", "gender": "M", "birthday": "2019-05-01", "home_clinic": clinic.id, "key": key, **extra}


@pytest.fixture
def desk(client, front_desk_a):
    client.force_login(front_desk_a.user)
    return client


def test_the_new_customer_page_renders_a_new_key_each_time_it_is_shown(desk):
    # when the page is opened twice
    first, second = (_page_key(desk.get(reverse("customers:create"))) for _ in range(2))
    # then each form carries a key of its own
    assert first != second


def test_a_walk_in_without_a_phone_sent_twice_is_one_patient_and_the_second_send_leads_to_them(desk, clinic_a):
    # given the page's form, filled for a walk-in without a phone, and sent once
    data = _walk_in(clinic_a, _page_key(desk.get(reverse("customers:create"))))
    first = desk.post(reverse("customers:create"), data)
    [patient] = Customer.objects.all()
    timeline = Interaction.objects.count()
    # when it is sent again (Back and resubmit: the page's CSRF token is masked anew, the data are the same)
    again = desk.post(reverse("customers:create"), {**data, "csrfmiddlewaretoken": "another-mask"})
    # then no second patient: both lead to the first one's page, and the second says so
    assert Customer.objects.count() == 1 and Interaction.objects.count() == timeline
    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"] == reverse("customers:detail", args=[patient.id])
    shown = desk.get(again["Location"]).text
    assert "This form was already sent: this is the patient it registered. Nothing new was recorded." in shown
    assert IdempotencyRecord.objects.count() == 1


def test_a_registration_with_a_phone_sent_twice_leads_to_its_patient_instead_of_refusing_the_phone(desk, clinic_a):
    # given a registration with a phone, sent once
    data = _walk_in(clinic_a, "k-phone", mobile="13912345678")
    first = desk.post(reverse("customers:create"), data)
    # when sent again
    again = desk.post(reverse("customers:create"), data)
    # then the second is the first's answer, not "this number already belongs to a customer"
    assert (first.status_code, again.status_code) == (302, 302)
    assert again["Location"] == first["Location"]
    assert Customer.objects.count() == 1


def test_the_same_form_sent_with_other_data_is_refused_and_comes_back_with_a_new_key(desk, clinic_a):
    # given a form that registered 王小宝
    key = _page_key(desk.get(reverse("customers:create")))
    assert desk.post(reverse("customers:create"), _walk_in(clinic_a, key)).status_code == 302
    # when an earlier copy of the page (Back) is changed and sent again
    response = desk.post(reverse("customers:create"), _walk_in(clinic_a, key, name="王小贝"))
    # then it is refused in words, nothing is written, and the page carries a new key
    assert response.status_code == 409
    assert "This form already registered a different patient" in response.text
    assert list(Customer.objects.values_list("name", flat=True)) == ["王小宝"]
    new_key = _page_key(response)
    assert new_key != key
    # and sent from that page, it registers the other patient
    assert desk.post(reverse("customers:create"), _walk_in(clinic_a, new_key, name="王小贝")).status_code == 302
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["王小宝", "王小贝"]


def test_a_form_without_its_key_is_refused_with_a_message_and_the_page_gives_it_one(desk, clinic_a):
    # when a form comes without its key (a hand-made post, a page cached from before)
    data = _walk_in(clinic_a, "")
    response = desk.post(reverse("customers:create"), data)
    # then it is refused, saying why, nothing is written, and the page shown again carries a key
    assert response.status_code == 422
    assert "This form is incomplete (its key is missing): reload the page and try again." in response.text
    assert not Customer.objects.exists() and not IdempotencyRecord.objects.exists()
    assert desk.post(reverse("customers:create"), {**data, "key": _page_key(response)}).status_code == 302


def test_a_refused_registration_corrected_and_sent_with_the_same_key_registers(desk, clinic_a, zhang_san):
    # given a form refused after its key was claimed (the phone is 张三's)
    key = _page_key(desk.get(reverse("customers:create")))
    refused = desk.post(reverse("customers:create"), _walk_in(clinic_a, key, mobile="13800138000"), follow=True)
    assert refused.redirect_chain[0][0].startswith(reverse("customers:create") + "?warned=")
    assert refused.status_code == 200 and _page_key(refused) == key
    # when it is corrected (no phone) and sent again from the page it came back on
    response = desk.post(reverse("customers:create"), _walk_in(clinic_a, key))
    # then the refusal stored nothing under the key: the patient is registered
    assert response.status_code == 302
    assert Customer.objects.filter(name="王小宝").count() == 1


def test_the_edit_form_sent_twice_changes_the_record_once(desk, clinic_a, zhang_san):
    # A check, not a fix: an edit sets values, so the same edit sent again finds nothing to change and writes nothing
    # (no second "changed" line on the timeline); it needs no key.
    data = {"name": "张三", "mobile": "13800138000", "gender": "M", "home_clinic": clinic_a.id, "community": "静安花园"}
    before = Interaction.objects.filter(customer=zhang_san).count()
    responses = [desk.post(reverse("customers:edit", args=[zhang_san.id]), data) for _ in range(2)]
    assert [r.status_code for r in responses] == [302, 302]
    assert Interaction.objects.filter(customer=zhang_san).count() == before + 1


def test_a_chinese_reader_is_told_in_chinese_that_the_form_was_already_sent(desk, clinic_a):
    # given a form sent once, as a Chinese reader
    data = _walk_in(clinic_a, "k-zh")
    desk.post(reverse("customers:create"), data, headers={"Accept-Language": "zh-hans"})
    # when it is sent again
    again = desk.post(reverse("customers:create"), data, headers={"Accept-Language": "zh-hans"})
    # then the patient's page says so in Chinese
    assert "此表单已提交过：这是它当时登记的患者。本次未新增任何记录。" in desk.get(
        again["Location"], headers={"Accept-Language": "zh-hans"}).text
    # and changed and sent again, it is refused in Chinese
    changed = desk.post(reverse("customers:create"), {**data, "name": "王小贝"}, headers={"Accept-Language": "zh-hans"})
    assert "此表单已登记过另一位患者" in changed.text
