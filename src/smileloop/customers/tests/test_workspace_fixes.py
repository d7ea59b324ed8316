"""Staff workspace defects found by QA: a refused merge says what and where, the edit page's wording about a phone
already on another record, an over-long search, full-width customer numbers, the list's tag filter and the address of
a merged-away record."""

import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.errors import NotFound
from smileloop.core.models import AuditEvent
from smileloop.customers import selectors
from smileloop.customers.enums import Stage
from smileloop.customers.models import Customer, CustomerMerge, HouseholdMember
from smileloop.customers.services import customer_merge, household_member_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory, TagGroupFactory

pytestmark = pytest.mark.django_db

ZH = {"Accept-Language": "zh-hans"}
EN = {"Accept-Language": "en"}


@pytest.fixture
def liu_qiang(chain, clinic_a):
    return CustomerFactory(chain=chain, name="刘强", mobile="+8613700137000", mobile_tail="7000",
                           home_clinic=clinic_a, stage=Stage.LEAD, first_touch_channel="referral")


def login(client, staff):
    client.force_login(staff.user)
    return client


def group_section(html: str, ids: str) -> str:
    """The duplicates page's section of the group whose hidden `customers` field is `ids`."""
    for section in re.findall(r'<section class="card merge-group[^"]*">.*?</section>', html, flags=re.S):
        if f'name="customers" value="{ids}"' in section:
            return section
    raise AssertionError(f"no group {ids} on the page")


# --- 2. a refused merge says what is missing, beside the group -------------------------------------------------


def test_a_merge_whose_reason_is_only_spaces_names_the_reason_beside_its_group(client, director_a, twins):
    # given a likely duplicate on the duplicates page
    first, second = twins
    login(client, director_a)
    ids = f"{first.id},{second.id}"
    # when the director keeps the second record and gives a reason of spaces only
    response = client.post(reverse("customers:merge"), {"customers": ids, "survivor": second.id, "reason": "   ",
                                                         "tab": "same_name_birthday"}, headers=ZH)
    # then the page comes back with the problem named, in the group's form, with the choice kept
    assert response.status_code == 422
    section = group_section(response.text, ids)
    assert re.search(r'data-testid="merge-error"><p>合并原因：此项为必填项。</p>', section)
    assert 'aria-invalid="true"' in section
    assert re.search(rf'value="{second.id}"[^>]*checked', section)
    assert not re.search(rf'value="{first.id}"[^>]*checked', section)
    assert "未合并任何记录：请查看下方标出的那一组。" in response.text
    # and the tab the director was on stays the current one
    assert 'href="/customers/duplicates/?reason=same_name_birthday" aria-current="page"' in response.text
    assert not CustomerMerge.objects.exists()
    first.refresh_from_db()
    assert first.merged_into_id is None


def test_a_refused_merge_keeps_the_reason_typed_and_names_the_field_in_english(client, director_a, twins):
    first, second = twins
    login(client, director_a)
    response = client.post(reverse("customers:merge"), {"customers": f"{first.id},{second.id}", "survivor": "",
                                                         "reason": "same person"}, headers=EN)
    section = group_section(response.text, f"{first.id},{second.id}")
    assert response.status_code == 422
    assert "Keep this record: This field is required." in section
    assert 'value="same person"' in section


def test_a_group_the_service_refuses_is_merged_not_even_in_part(client, director_a, chain, clinic_a):
    # given a group of three: the record kept is a child in one family, the last record heads another family
    survivor = CustomerFactory(chain=chain, name="孙丽", home_clinic=clinic_a)
    plain = CustomerFactory(chain=chain, name="孙丽", home_clinic=clinic_a)
    head = CustomerFactory(chain=chain, name="孙丽", home_clinic=clinic_a)
    household_member_add(head=CustomerFactory(chain=chain, name="孙父", home_clinic=clinic_a), relation="child",
                         member=survivor)
    household_member_add(head=head, relation="child", member=CustomerFactory(chain=chain, name="孙小宝",
                                                                             home_clinic=clinic_a))
    login(client, director_a)
    ids = f"{survivor.id},{plain.id},{head.id}"
    # when merging all three into the first
    response = client.post(reverse("customers:merge"), {"customers": ids, "survivor": survivor.id,
                                                         "reason": "同一人"}, headers=EN)
    # then the family conflict is said beside the group, and not even the plain record was merged
    assert response.status_code == 422
    section = group_section(response.text, ids)
    assert "One of these records heads a family and the record to keep belongs to another family" in section
    assert "Records you chose" in section  # not a group the page lists: shown first, as chosen
    assert not CustomerMerge.objects.exists()
    assert not Customer.objects.filter(merged_into__isnull=False).exists()
    assert HouseholdMember.objects.filter(customer=head).exists()


def test_a_refused_merge_of_a_record_outside_the_scope_is_404(client, director_a, twins, li_si):
    first, _second = twins
    login(client, director_a)
    response = client.post(reverse("customers:merge"), {"customers": f"{first.id},{li_si.id}",
                                                         "survivor": first.id, "reason": ""})
    assert response.status_code == 404
    assert "李四" not in response.text


# --- 3. the edit page: a phone already on another record --------------------------------------------------------


def edit(client, customer, mobile, home_clinic):
    return client.post(reverse("customers:edit", args=[customer.id]), {
        "name": customer.name, "mobile": mobile, "gender": "U", "home_clinic": home_clinic.id}, headers=ZH)


def test_editing_in_the_phone_of_a_patient_of_another_clinic_names_no_one_and_sends_to_a_chain_admin(
        client, front_desk_a, clinic_a, zhang_san, li_si):
    login(client, front_desk_a)
    response = edit(client, zhang_san, "13900139000", clinic_a)
    assert response.status_code == 422
    notice = re.search(r'data-testid="existing-customer">(.*?)</div>', response.text, flags=re.S).group(1)
    assert "该手机号已在其他门诊一位客户的档案上。本次修改未保存。如果是同一个人，请联系总部管理员合并这两份档案。" in notice
    assert "李四" not in response.text and "李*" not in response.text
    assert reverse("customers:detail", args=[li_si.id]) not in response.text
    assert "未重复创建" not in response.text and "请改为合并" not in response.text
    assert response.context["form"].errors["mobile"] == ["该手机号已在另一位客户的档案上。"]
    zhang_san.refresh_from_db()
    assert zhang_san.mobile == "+8613800138000"


def test_editing_in_the_phone_of_a_visible_patient_tells_a_front_desk_whom_to_ask(client, front_desk_a, clinic_a,
                                                                                 zhang_san, liu_qiang):
    login(client, front_desk_a)
    response = edit(client, zhang_san, "13700137000", clinic_a)
    notice = re.search(r'data-testid="existing-customer">(.*?)</div>', response.text, flags=re.S).group(1)
    assert f"该手机号已在另一份档案上：刘强（#{liu_qiang.id}）。本次修改未保存。" in notice
    assert "如果两份档案是同一个人，请联系院长或总部管理员合并。" in notice
    assert reverse("customers:detail", args=[liu_qiang.id]) in notice
    assert 'data-testid="compare-and-merge"' not in notice  # a front desk may not merge
    assert "未重复创建" not in response.text


def test_editing_in_the_phone_of_a_visible_patient_offers_a_director_to_compare_and_merge(client, director_a,
                                                                                         clinic_a, zhang_san,
                                                                                         liu_qiang):
    # given a director, who may merge, enters 刘强's number on 张三's record
    login(client, director_a)
    response = edit(client, zhang_san, "13700137000", clinic_a)
    low, high = sorted([zhang_san.id, liu_qiang.id])
    link = f"/customers/duplicates/?customers={low}%2C{high}"
    assert f'href="{link}" data-testid="compare-and-merge"' in response.text
    assert "如果两份档案是同一个人，请合并：对比两份档案并选择要保留的一份。" in response.text
    # when following the link: the two records are the first group, with a merge form
    page = client.get(link, headers=EN)
    assert page.status_code == 200
    section = group_section(page.text, f"{low},{high}")
    assert "Records you chose" in section and "张三" in section and "刘强" in section
    assert 'name="reason"' in section
    # and merging them from there works as any group
    done = client.post(reverse("customers:merge"), {"customers": f"{low},{high}", "survivor": low,
                                                     "reason": "同一人，两次登记"})
    assert done.status_code == 302
    assert Customer.objects.get(pk=high).merged_into_id == low


def test_the_compare_link_is_404_for_a_record_outside_the_scope(client, director_a, zhang_san, li_si):
    login(client, director_a)
    response = client.get(reverse("customers:merge_candidates"), {"customers": f"{zhang_san.id},{li_si.id}"})
    assert response.status_code == 404
    assert client.get(reverse("customers:merge_candidates"), {"customers": "x,y"}).status_code == 404


def test_the_new_customer_form_keeps_its_own_wording(client, front_desk_a, clinic_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:create"), {
        "name": "张三丰", "mobile": "138-0013-8000", "gender": "U", "home_clinic": clinic_a.id, "key": "k1"}, headers=ZH,
        follow=True)
    assert "该手机号已属于 张三，未重复创建客户。" in response.text


# --- 4. a search longer than the box takes -----------------------------------------------------------------------


def test_a_search_longer_than_50_characters_says_so_and_lists_no_one(client, chain_admin, zhang_san, li_si):
    login(client, chain_admin)
    for headers in (ZH, {**ZH, "HX-Request": "true"}):  # the page (a URL made by hand) and the live search
        response = client.get(reverse("customers:list"), {"q": "张" * 51}, headers=headers)
        assert response.status_code == 200
        assert "<tbody>" not in response.text
        assert "搜索内容过长：最多 50 个字符（当前为 51 个），未执行搜索。" in response.text
        assert "张三" not in response.text.replace("张" * 51, "") and "李四" not in response.text


def test_a_search_of_50_characters_is_run(client, chain_admin, zhang_san):
    login(client, chain_admin)
    response = client.get(reverse("customers:list"), {"q": "张" * 50}, headers=EN)
    assert list(response.context["customers"]) == []
    assert 'data-testid="search-error"' not in response.text
    assert "No customer matches." in response.text


def test_the_export_of_a_search_too_long_is_refused_and_not_audited(client, director_a, zhang_san):
    login(client, director_a)
    response = client.post(reverse("customers:export"), {"reason": "review", "q": "张" * 51}, headers=EN)
    assert response.status_code == 422
    assert "The search is too long" in response.text
    assert not AuditEvent.objects.filter(action="customer.export").exists()


# --- 5. full-width customer numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["＃{id}", "＃{wide}", "#{wide}", " ＃ {id} ", "{wide}"])
def test_a_customer_number_typed_with_a_chinese_ime_is_found(scope_a, zhang_san, typed):
    wide = "".join(chr(ord(d) + 0xFEE0) for d in str(zhang_san.id))  # １２３
    assert selectors.customer_find(scope_a, typed.format(id=zhang_san.id, wide=wide)) == zhang_san


def test_the_came_with_field_takes_a_full_width_customer_number(client, front_desk_a, clinic_a, zhang_san):
    login(client, front_desk_a)
    response = client.post(reverse("customers:create"), {
        "name": "张小宝", "gender": "M", "home_clinic": clinic_a.id, "relative": f"＃{zhang_san.id}", "key": "k1",
        "relation": "parent"})
    assert response.status_code == 302
    child = Customer.objects.get(name="张小宝")
    assert HouseholdMember.objects.get(customer=child).household.head_id == zhang_san.id


def test_the_family_member_field_takes_a_full_width_customer_number(client, front_desk_a, zhang_san, liu_qiang):
    login(client, front_desk_a)
    response = client.post(reverse("customers:family_add", args=[zhang_san.id]),
                           {"member": f"＃{liu_qiang.id}", "relation": "spouse"})
    assert response.status_code == 302
    assert HouseholdMember.objects.get(customer=liu_qiang).household.head_id == zhang_san.id


# --- 6. the list's tag filter ------------------------------------------------------------------------------------


@pytest.fixture
def implant(chain):
    return TagFactory(group=TagGroupFactory(chain=chain, name="兴趣"), name="种植意向")


def test_the_list_filters_by_tag_within_the_scope_and_with_the_other_filters(client, chain, clinic_a, front_desk_a,
                                                                             chain_admin, implant, zhang_san,
                                                                             liu_qiang, li_si):
    # given 张三 (clinic A, treated) and 李四 (clinic B) carry the tag; 刘强 (clinic A) does not
    CustomerTagFactory(customer=zhang_san, tag=implant)
    CustomerTagFactory(customer=li_si, tag=implant)
    url = reverse("customers:list")
    # then the chain admin sees both carriers, and the tag combines with clinic, stage, source and search
    login(client, chain_admin)
    assert set(client.get(url, {"tag": implant.id}).context["customers"]) == {zhang_san, li_si}
    assert list(client.get(url, {"tag": implant.id, "clinic": li_si.home_clinic_id}).context["customers"]) == [li_si]
    assert list(client.get(url, {"tag": implant.id, "stage": Stage.TREATED}).context["customers"]) == [zhang_san]
    assert list(client.get(url, {"tag": implant.id, "source": "referral"}).context["customers"]) == [li_si]
    assert list(client.get(url, {"tag": implant.id, "q": "zs"}).context["customers"]) == [zhang_san]
    assert list(client.get(url, {"tag": implant.id, "q": "lq"}).context["customers"]) == []
    # and a front desk of clinic A sees only their carrier
    login(client, front_desk_a)
    response = client.get(url, {"tag": implant.id})
    assert list(response.context["customers"]) == [zhang_san]
    assert "李四" not in response.text


def test_the_tag_select_offers_the_chains_tags_by_group_and_not_another_chains(client, chain, front_desk_a,
                                                                              implant, zhang_san):
    foreign = TagFactory(group=TagGroupFactory(chain=ChainFactory()), name="外链标签")
    foreigner = CustomerFactory(chain=foreign.chain, home_clinic=ClinicFactory(chain=foreign.chain))
    CustomerTagFactory(customer=foreigner, tag=foreign)
    login(client, front_desk_a)
    page = client.get(reverse("customers:list"), headers=EN)
    assert re.search(rf'<optgroup label="兴趣">\s*<option value="{implant.id}">种植意向</option>', page.text)
    assert "外链标签" not in page.text
    # a tag of another chain is no choice: left out (the select shows "All tags"), and no one of that chain shows
    response = client.get(reverse("customers:list"), {"tag": foreign.id})
    assert list(response.context["customers"]) == [zhang_san]


def test_the_tag_select_is_not_shown_without_tags(client, front_desk_a, zhang_san):
    login(client, front_desk_a)
    assert 'name="tag"' not in client.get(reverse("customers:list")).text.split("</form>")[0]


def test_the_tag_filter_is_one_query_whatever_the_number_of_patients(client, chain, clinic_a, front_desk_a, implant,
                                                                    django_assert_num_queries):
    CustomerTagFactory.create_batch(20, customer__chain=chain, customer__home_clinic=clinic_a, tag=implant)
    login(client, front_desk_a)
    # session, user with staff, staff clinics, clinic choices, tag choices, customers (SQLite: ids, then rows)
    with django_assert_num_queries(7 if connection.vendor == "sqlite" else 6):
        response = client.get(reverse("customers:list"), {"tag": implant.id})
    assert len(response.context["customers"]) == 20


def test_the_export_applies_the_tag_filter(client, director_a, implant, zhang_san, liu_qiang):
    CustomerTagFactory(customer=zhang_san, tag=implant)
    login(client, director_a)
    response = client.post(reverse("customers:export"), {"reason": "种植回访", "tag": implant.id})
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert "张三" in body and "刘强" not in body
    assert AuditEvent.objects.get(action="customer.export").detail["filters"] == {"tag_id": str(implant.id)}


# --- 7. the address of a merged-away record ----------------------------------------------------------------------


def test_a_merged_away_record_leads_to_the_record_it_became(client, chain_admin, twins):
    first, second = twins
    customer_merge(scope=scope_for_staff(chain_admin), survivor=second, merged=first, actor=chain_admin, reason="重复")
    login(client, chain_admin)
    response = client.get(reverse("customers:detail", args=[first.id]), headers=ZH)
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[second.id])
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"客户 #{first.id} 已合并到此档案。"]


def test_a_record_merged_twice_leads_to_the_last_one(client, chain_admin, chain, clinic_a, twins):
    first, second = twins
    third = CustomerFactory(chain=chain, name="赵六", home_clinic=clinic_a)
    scope = scope_for_staff(chain_admin)
    customer_merge(scope=scope, survivor=second, merged=first, actor=chain_admin, reason="重复")
    customer_merge(scope=scope, survivor=third, merged=second, actor=chain_admin, reason="重复")
    login(client, chain_admin)
    response = client.get(reverse("customers:detail", args=[first.id]))
    assert response["Location"] == reverse("customers:detail", args=[third.id])


def test_an_htmx_request_for_a_merged_away_record_is_a_full_navigation(client, chain_admin, twins):
    first, second = twins
    customer_merge(scope=scope_for_staff(chain_admin), survivor=second, merged=first, actor=chain_admin, reason="重复")
    login(client, chain_admin)
    response = client.get(reverse("customers:detail", args=[first.id]), {"section": "timeline", "page": 2},
                          headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("customers:detail", args=[second.id])


def test_a_merged_away_record_whose_survivor_is_out_of_scope_is_404_and_reveals_nothing(client, chain, clinic_a,
                                                                                         clinic_b, chain_admin):
    # given a clinic-A record merged into a clinic-B one
    merged = CustomerFactory(chain=chain, name="钱七", home_clinic=clinic_a)
    survivor = CustomerFactory(chain=chain, name="钱七", home_clinic=clinic_b)
    customer_merge(scope=scope_for_staff(chain_admin), survivor=survivor, merged=merged, actor=chain_admin,
                   reason="重复")
    # when a clinic-A front desk opens the old address
    login(client, StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_a]))
    response = client.get(reverse("customers:detail", args=[merged.id]))
    # then it is a 404 like any other id outside their clinics
    assert response.status_code == 404
    assert "钱七" not in response.text
    assert not list(get_messages(response.wsgi_request))


def test_the_edit_page_of_a_merged_away_record_leads_to_the_survivors_and_a_post_to_it_is_404(client, chain_admin,
                                                                                              twins):
    # given a record merged into its twin
    first, second = twins
    customer_merge(scope=scope_for_staff(chain_admin), survivor=second, merged=first, actor=chain_admin, reason="重复")
    login(client, chain_admin)

    # when its edit page is opened, the survivor's edit page opens instead
    response = client.get(reverse("customers:edit", args=[first.id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:edit", args=[second.id])

    # but a form posted to the old record changes nothing
    name = second.name
    response = client.post(reverse("customers:edit", args=[first.id]), {"name": "改名"})
    assert response.status_code == 404
    second.refresh_from_db()
    assert second.name == name


def test_a_live_record_or_one_of_another_chain_is_no_merged_record(chain_admin, twins):
    first, _second = twins
    scope = scope_for_staff(chain_admin)
    other = CustomerFactory()  # another chain's
    for customer_id in (first.id, other.id, 0, "abc", 2**63):
        with pytest.raises(NotFound):
            selectors.customer_survivor_get(scope, customer_id)


def test_editing_keeps_a_consultant_and_home_clinic_of_another_clinic_that_the_form_does_not_offer(
        client, chain, clinic_a, clinic_b, front_desk_a):
    # given a patient of clinic A whose consultant works at clinic B
    consultant_b = StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_b], name="刘冉佳",
                                user__username="consultant_b")
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a, consultant=consultant_b, name="张三")
    client.force_login(front_desk_a.user)
    # when clinic A's front desk opens the edit page and saves it as shown, changing the address only
    page = client.get(f"/customers/{patient.id}/edit/")
    assert page.status_code == 200 and "刘冉佳" in page.text
    form = page.context["form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    data.update({"home_clinic": clinic_a.id, "consultant": consultant_b.id, "address": "新地址"})
    response = client.post(f"/customers/{patient.id}/edit/", data)
    # then the consultant is kept
    assert response.status_code in (200, 302), response.content[:500]
    saved = Customer.objects.get(pk=patient.pk)
    assert (saved.consultant_id, saved.address) == (consultant_b.id, "新地址")
