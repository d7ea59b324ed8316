"""Front-desk QA sweep (pages as their users work them): what a double submit or a stale page does."""

import pytest
from django.urls import reverse

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.models import AuditEvent
from smileloop.customers.models import CustomerMerge
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_a_merge_sent_twice_leads_to_the_kept_record_not_to_a_404(client, director_a, twins):
    # given a director on the duplicates page, who double-clicks "merge" (or the browser resends the form)
    first, second = twins
    client.force_login(director_a.user)
    form = {"customers": f"{first.id},{second.id}", "survivor": second.id, "reason": "same person"}
    assert client.post(reverse("customers:merge"), form).status_code == 302

    # when the same form arrives again: the merged-away record is a tombstone now
    again = client.post(reverse("customers:merge"), form, follow=True)

    # then the kept record's page, saying the group was already merged, and nothing merged twice
    assert again.status_code == 200
    assert again.redirect_chain == [(reverse("customers:detail", args=[second.id]), 302)]
    assert "These records were already merged into 赵六; nothing more was changed." in again.text
    assert CustomerMerge.objects.count() == 1
    assert AuditEvent.objects.filter(action="customer.merge").count() == 1


def test_a_group_a_colleague_merged_into_another_record_is_still_not_found(client, director_a, chain, clinic_a,
                                                                          twins):
    # given the twins, of which a colleague merged the first into a third record meanwhile
    first, second = twins
    third = CustomerFactory(chain=chain, name="赵六", mobile="+8613900139000", home_clinic=clinic_a)
    customer_merge(scope=scope_for_staff(director_a), survivor=third, merged=first, actor=director_a, reason="x")
    client.force_login(director_a.user)

    # when the stale page asks to merge the first into the second
    response = client.post(reverse("customers:merge"), {
        "customers": f"{first.id},{second.id}", "survivor": second.id, "reason": "same person"})

    # then the first is not the second's to take: not found, nothing written
    assert response.status_code == 404
    assert CustomerMerge.objects.count() == 1
    second.refresh_from_db()
    assert second.merged_into_id is None


def test_an_erasure_sent_again_leads_to_the_record_saying_it_is_done(client, director_a, chain, clinic_a):
    # given a patient a director erased from the privacy card
    patient = CustomerFactory(chain=chain, name="钱七", mobile="+8613700137001", home_clinic=clinic_a)
    client.force_login(director_a.user)
    url = reverse("customers:erase", args=[patient.pk])
    form = {"erase-reason": "本人申请", "erase-confirm": "钱七"}
    assert client.post(url, form).status_code == 302

    # when the same form arrives again (Back, another tab): the name it confirms is blanked now
    again = client.post(url, form, follow=True)

    # then the record's page says the erasure is done (it was a 422 on a card without the form: not a word), and
    # nothing was erased or audited twice
    assert again.status_code == 200
    assert again.redirect_chain == [(reverse("customers:detail", args=[patient.pk]), 302)]
    assert "This patient&#x27;s personal information was already erased; nothing more was changed." in again.text
    assert AuditEvent.objects.filter(action="customer.erase").count() == 1


def test_the_consents_an_erasure_withdrew_name_their_source_in_chinese(client, director_a, chain, clinic_a):
    from smileloop.customers.enums import ConsentPurpose
    from smileloop.customers.services import consent_record

    # given a patient who had agreed to SMS marketing, then was erased (which withdraws it)
    patient = CustomerFactory(chain=chain, name="孙八", mobile="+8613700137002", home_clinic=clinic_a)
    consent_record(customer=patient, purpose=ConsentPurpose.MARKETING_SMS, granted=True, source="paper")
    client.force_login(director_a.user)
    assert client.post(reverse("customers:erase", args=[patient.pk]),
                       {"erase-reason": "本人申请", "erase-confirm": "孙八"}).status_code == 302

    # when the record's consents card is read on a Chinese page
    html = client.get(reverse("customers:detail", args=[patient.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").text
    card = html[html.index('id="consents"'):]
    card = card[:card.index("</section>")]

    # then the withdrawal says how it came about in words (it showed the code "erasure")
    assert "已撤回" in card and "删除个人信息" in card
    assert "erasure" not in card


def test_a_name_typed_with_a_full_width_space_inside_is_stored_and_found_whole(client, front_desk_a, clinic_a):
    from smileloop.customers.models import Customer

    # given the desk registering 张三 with the input method's full-width spaces around and inside the name, and a
    # foreigner whose name has its own space
    client.force_login(front_desk_a.user)
    for name, mobile in (("\u3000张\u3000三\u3000", "13700137010"), ("Zhang San", "13700137011")):
        assert client.post(reverse("customers:create"), {"name": name, "mobile": mobile, "gender": "U",
                                                         "home_clinic": clinic_a.id, "key": mobile}).status_code == 302

    # then 张三 is stored whole and found by his name (as 张 三 no search for 张三 found him); Zhang San keeps his space
    assert set(Customer.objects.values_list("name", flat=True)) == {"张三", "Zhang San"}
    found = client.get(reverse("customers:list"), {"q": "张三"})
    assert [c.name for c in found.context["customers"]] == ["张三"]
