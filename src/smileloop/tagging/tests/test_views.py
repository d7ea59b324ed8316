import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.models import CustomerTag, Tag
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def vip(interests):
    return TagFactory(group=interests, code="vip", name="重点客户")


@pytest.fixture
def implant(interests):
    return TagFactory(group=interests, code="implant", name="种植意向", kind=TagKind.KEYWORD, keywords=["种植"])


def login(client, staff):
    client.force_login(staff.user)
    return client


# --- the catalogue page ---


def test_the_tags_page_lists_groups_with_counts_of_patients_in_the_viewers_clinics(
        client, front_desk_a, vip, patient_a, patient_b, django_assert_max_num_queries):
    CustomerTagFactory(customer=patient_a, tag=vip)
    CustomerTagFactory(customer=patient_b, tag=vip)  # clinic B: not counted for clinic A's front desk
    TagFactory.create_batch(5, group=vip.group)
    login(client, front_desk_a)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("tagging:list"))
    assert response.status_code == 200
    assert '<td class="num" data-testid="count-vip">1</td>' in response.content.decode()
    assert "New tag" not in response.content.decode()  # front desk may tag patients, not edit tags


def test_the_tags_page_is_in_chinese_for_a_chinese_session(client, marketing, vip):
    login(client, marketing)
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        response = client.get(reverse("tagging:list"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    html = response.content.decode()
    assert "新建标签" in html and "患者数" in html


def test_creating_a_keyword_tag_through_the_form_with_bad_fields_shows_each_error(client, marketing, interests):
    login(client, marketing)
    response = client.post(reverse("tagging:tag_create"), {
        "group": interests.id, "name": "种植意向", "code": "implant", "kind": "keyword", "colour": "#7c3aed",
        "keywords": "", "keyword_threshold": 2, "keyword_window_days": 30, "keyword_kinds": ["chat"]})
    assert response.status_code == 422
    assert "A keyword tag needs at least one keyword." in response.content.decode()
    assert not Tag.objects.filter(code="implant").exists()
    response = client.post(reverse("tagging:tag_create"), {
        "group": interests.id, "name": "种植意向", "code": "implant", "kind": "keyword", "colour": "#7c3aed",
        "keywords": "种植，种牙", "keyword_threshold": 3, "keyword_window_days": 30, "keyword_kinds": ["chat"],
        "is_active": "on"})
    assert response.status_code == 302
    tag = Tag.objects.get(code="implant")
    assert (tag.keywords, tag.keyword_threshold, tag.keyword_kinds) == (["种植", "种牙"], 3, ["chat"])


def test_editing_a_rule_tag_with_invalid_json_is_refused(client, marketing, interests):
    tag = TagFactory(group=interests, code="hv", name="高价值", kind=TagKind.RULE, rule={"all": []})
    login(client, marketing)
    response = client.post(reverse("tagging:tag_edit", args=[tag.id]), {
        "group": interests.id, "name": "高价值", "code": "hv", "kind": "rule", "colour": "#dc2626",
        "rule": "{all: [}", "keyword_threshold": 2, "keyword_window_days": 30, "is_active": "on"})
    assert response.status_code == 422
    assert "This is not valid JSON" in response.content.decode()
    tag.refresh_from_db()
    assert tag.rule == {"all": []}


def test_a_rule_tags_edit_page_reads_its_rule_in_words_and_keeps_the_json_in_collapsed_technical_details(
        client, marketing, interests):
    # given: a rule tag ("age at most 12"), whose edit page showed the rule only as raw JSON
    tag = TagFactory(group=interests, code="kids", name="儿童", kind=TagKind.RULE,
                     rule={"field": "age", "op": "lte", "value": 12})
    login(client, marketing)
    # when
    page = client.get(reverse("tagging:tag_edit", args=[tag.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    # then: the words come first; the JSON is inside a closed "technical details" block
    assert "<p class=\"rule-words\" data-rule-words><strong>规则</strong> 年龄 至多 12 岁</p>" in page
    details = page[page.index('<details class="technical-details">'):]
    assert details.index("<summary>技术细节</summary>") < details.index('name="rule"') < details.index("</details>")
    assert page.count('name="rule"') == 1


def test_a_refused_rule_opens_the_technical_details_to_show_its_error(client, marketing, interests):
    tag = TagFactory(group=interests, code="hv", name="高价值", kind=TagKind.RULE, rule={"all": []})
    login(client, marketing)
    response = client.post(reverse("tagging:tag_edit", args=[tag.id]), {
        "group": interests.id, "name": "高价值", "code": "hv", "kind": "rule", "colour": "#dc2626",
        "rule": "{all: [}", "keyword_threshold": 2, "keyword_window_days": 30, "is_active": "on"})
    assert response.status_code == 422
    assert '<details class="technical-details" open>' in response.content.decode()


def test_front_desk_may_not_create_tags(client, front_desk_a, interests):
    login(client, front_desk_a)
    assert client.get(reverse("tagging:tag_create")).status_code == 403


def test_the_patients_of_a_tag_page_shows_only_the_viewers_patients(client, front_desk_a, vip, patient_a, patient_b):
    CustomerTagFactory(customer=patient_a, tag=vip)
    CustomerTagFactory(customer=patient_b, tag=vip)
    login(client, front_desk_a)
    html = client.get(reverse("tagging:tag_customers", args=[vip.id])).content.decode()
    assert patient_a.name in html and patient_b.name not in html


@pytest.mark.parametrize("page", ["9" * 30, str(2**62), "10000000000000000000"])
def test_a_page_number_past_any_offset_shows_an_empty_page_not_an_error(client, front_desk_a, vip, patient_a, page):
    # An edited address (?page=…) whose offset no database column holds was a 500.
    CustomerTagFactory(customer=patient_a, tag=vip)
    login(client, front_desk_a)
    response = client.get(reverse("tagging:tag_customers", args=[vip.id]), {"page": page})
    assert response.status_code == 200
    html = response.content.decode()
    assert patient_a.name not in html and "?page=" in html  # nothing on it, and a way back

# --- the 360 page section ---


def test_the_360_page_shows_the_patients_tags_grouped_with_who_set_them(client, front_desk_a, patient_a, vip,
                                                                         implant):
    CustomerTagFactory(customer=patient_a, tag=vip, set_by=front_desk_a)
    CustomerTagFactory(customer=patient_a, tag=implant, source=TagSource.KEYWORD,
                       evidence={"keywords": {"种植": 2}})
    login(client, front_desk_a)
    html = client.get(reverse("customers:detail", args=[patient_a.id])).content.decode()
    assert 'data-testid="tags"' in html
    assert "重点客户" in html and f"Staff · {front_desk_a.name}" in html
    assert "种植×2" in html


def test_adding_a_tag_on_the_360_page_returns_the_updated_section(client, front_desk_a, patient_a, vip):
    login(client, front_desk_a)
    response = client.post(reverse("tagging:customer_add", args=[patient_a.id]), {"tag": vip.id}, **HX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith("<section id=\"tags\"")
    row = CustomerTag.objects.get(customer=patient_a, tag=vip)
    assert (row.source, row.set_by) == (TagSource.MANUAL, front_desk_a)


def test_removing_a_tag_on_the_360_page(client, front_desk_a, patient_a, vip):
    CustomerTagFactory(customer=patient_a, tag=vip)
    login(client, front_desk_a)
    response = client.post(reverse("tagging:customer_remove", args=[patient_a.id]), {"tag": "vip"}, **HX)
    assert response.status_code == 200 and "No tags yet." in response.content.decode()
    assert not CustomerTag.objects.exists()


def test_a_tag_whose_code_is_digits_is_taken_off_by_its_code_not_read_as_an_id(client, front_desk_a, patient_a,
                                                                                interests):
    # the 360 page names the tag to take off by its code; a code of digits was read as the tag of that id
    sale = TagFactory(group=interests, code="900618", name="618大促")
    other = TagFactory(group=interests, code="other", name="别的", pk=900618)  # the tag whose id the code spells
    CustomerTagFactory(customer=patient_a, tag=sale)
    CustomerTagFactory(customer=patient_a, tag=other)
    login(client, front_desk_a)
    response = client.post(reverse("tagging:customer_remove", args=[patient_a.id]), {"tag": "900618"}, **HX)
    assert response.status_code == 200
    assert list(CustomerTag.objects.filter(customer=patient_a).values_list("tag_id", flat=True)) == [other.pk]


def test_a_rule_tag_cannot_be_added_by_hand_on_the_360_page_and_nothing_changes(client, front_desk_a, patient_a,
                                                                                interests):
    # given: a rule tag (the 360 page does not offer it; a hand-set row would outlive the rule, whose nightly
    # sync never removes a tag set another way)
    high_value = TagFactory(group=interests, code="high-value", name="高价值", kind=TagKind.RULE,
                            rule={"field": "lifetime_spend_fen", "op": "gte", "value": 1000000})
    login(client, front_desk_a)
    # when
    response = client.post(reverse("tagging:customer_add", args=[patient_a.id]), {"tag": high_value.id}, **HX)
    # then
    assert response.status_code == 422
    assert "高价值 is set by its rule" in response.content.decode()
    assert not CustomerTag.objects.exists()
    assert not patient_a.interactions.exists()


def test_a_tag_set_by_its_rule_cannot_be_removed_by_hand_on_the_360_page(client, front_desk_a, patient_a, interests):
    # given: a patient carrying a rule tag its nightly sync set (it would put it back the next night)
    high_value = TagFactory(group=interests, code="high-value", name="高价值", kind=TagKind.RULE,
                            rule={"field": "lifetime_spend_fen", "op": "gte", "value": 1000000})
    CustomerTagFactory(customer=patient_a, tag=high_value, source=TagSource.RULE)
    login(client, front_desk_a)
    # then: the section offers no remove button for it
    html = client.get(reverse("customers:detail", args=[patient_a.id])).content.decode()
    assert "Remove tag 高价值" not in html
    # when: the removal is posted anyway
    response = client.post(reverse("tagging:customer_remove", args=[patient_a.id]), {"tag": "high-value"}, **HX)
    # then
    assert response.status_code == 422
    assert "高价值 is set by its rule every night; change the rule to take it off." in response.content.decode()
    assert CustomerTag.objects.filter(customer=patient_a, tag=high_value).exists()
    assert not patient_a.interactions.exists()


def test_tagging_a_patient_of_another_clinic_is_404_and_changes_nothing(client, front_desk_a, patient_b, vip):
    login(client, front_desk_a)
    response = client.post(reverse("tagging:customer_add", args=[patient_b.id]), {"tag": vip.id}, **HX)
    assert response.status_code == 404
    assert not CustomerTag.objects.exists()


# --- bulk from the customer list ---


def test_the_customer_list_has_a_checkbox_per_row_and_loads_the_bulk_form(client, front_desk_a, patient_a, vip):
    login(client, front_desk_a)
    html = client.get(reverse("customers:list")).content.decode()
    assert f'name="customer_ids" value="{patient_a.id}" form="bulk-tags"' in html
    assert f'hx-get="{reverse("tagging:bulk")}"' in html
    form = client.get(reverse("tagging:bulk"), **HX).content.decode()
    assert 'id="bulk-tags"' in form and "重点客户" in form


def test_bulk_tagging_from_the_list_tags_the_ticked_customers_and_returns_to_the_list(
        client, front_desk_a, patient_a, chain, clinic_a, vip):
    other = CustomerFactory(chain=chain, home_clinic=clinic_a)
    login(client, front_desk_a)
    response = client.post(reverse("tagging:bulk"), {"customer_ids": [patient_a.id, other.id], "tag": vip.id,
                                                     "action": "apply", "next": "/customers/?q=wang"})
    assert response.status_code == 302 and response["Location"] == "/customers/?q=wang"
    assert set(CustomerTag.objects.values_list("customer_id", flat=True)) == {patient_a.id, other.id}
    page = client.get(response["Location"]).content.decode()
    assert "Tag 重点客户 added to 2 customers." in page


@pytest.mark.parametrize("next_url", ["' OR 1=1 --", "customers:list", "javascript:alert(1)", "//evil.example/x",
                                      "https://evil.example/", "<script>alert(1)</script>"])
def test_bulk_tagging_goes_back_only_to_a_page_of_this_site(client, front_desk_a, patient_a, vip, next_url):
    login(client, front_desk_a)
    response = client.post(reverse("tagging:bulk"), {"customer_ids": [patient_a.id], "tag": vip.id,
                                                     "action": "apply", "next": next_url})
    assert response.status_code == 302 and response["Location"] == "/customers/"
    assert CustomerTag.objects.filter(customer=patient_a, tag=vip).exists()


def test_bulk_tagging_with_a_bad_tag_or_action_says_which_field_and_changes_nothing(client, front_desk_a, patient_a,
                                                                                  vip):
    login(client, front_desk_a)
    response = client.post(reverse("tagging:bulk"), {"customer_ids": [patient_a.id], "tag": "999999",
                                                     "action": "zzz"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("Tag: Select a valid choice") for m in shown), shown
    assert any(m.startswith("Action: Select a valid choice. zzz") for m in shown), shown
    assert not CustomerTag.objects.exists()


@pytest.mark.parametrize("forged", ["9" * 30, str(2**63), "0", "abc"])
def test_bulk_tagging_with_a_forged_customer_number_says_so_and_changes_nothing(client, front_desk_a, patient_a, vip,
                                                                              forged):
    # A number past the key column's range (a forged checkbox value) failed the query: a 500 instead of a message.
    login(client, front_desk_a)
    response = client.post(reverse("tagging:bulk"), {"customer_ids": [patient_a.id, forged], "tag": vip.id,
                                                     "action": "apply"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == ["Select customers from the list."], shown
    assert not CustomerTag.objects.exists()


@pytest.mark.parametrize("view", ["tagging:customer_add", "tagging:customer_remove"])
def test_a_tag_code_with_a_nul_character_is_no_tag_not_a_server_error(client, front_desk_a, patient_a, vip, view):
    # PostgreSQL refuses a NUL in a query: removing "vip\0" was a 500 there
    CustomerTagFactory(customer=patient_a, tag=vip)
    login(client, front_desk_a)
    response = client.post(reverse(view, args=[patient_a.id]), {"tag": vip.code + "\x00"}, **HX)
    assert response.status_code in (404, 422)
    assert CustomerTag.objects.filter(customer=patient_a, tag=vip).exists()


@pytest.mark.parametrize("tag", ["999999", "abc", "-5", ""])
def test_a_plain_post_of_a_bad_tag_on_the_360_page_says_so(client, front_desk_a, patient_a, tag):
    login(client, front_desk_a)
    response = client.post(reverse("tagging:customer_add", args=[patient_a.id]), {"tag": tag}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 1 and shown[0].startswith("Tag: "), shown
    assert not CustomerTag.objects.exists()


def test_bulk_tagging_with_a_customer_outside_the_scope_changes_nothing_and_says_which(
        client, front_desk_a, patient_a, patient_b, vip):
    login(client, front_desk_a)
    response = client.post(reverse("tagging:bulk"), {"customer_ids": [patient_a.id, patient_b.id], "tag": vip.id,
                                                     "action": "apply", "next": "https://evil.example/"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"] == "/customers/"
    assert not CustomerTag.objects.exists()
    page = client.get("/customers/").content.decode()
    assert f"outside your clinics: {patient_b.id}" in page


def test_bulk_tagging_a_selection_holding_an_erased_patient_says_so_in_chinese(client, director_a, patient_a, chain,
                                                                                 clinic_a, vip, admin_scope,
                                                                                 chain_admin):
    from smileloop.customers.privacy import customer_erase
    erased = CustomerFactory(chain=chain, home_clinic=clinic_a)
    customer_erase(scope=admin_scope, customer=erased, actor=chain_admin, reason="本人申请注销")
    login(client, director_a)
    response = client.post(reverse("tagging:bulk"), {"customer_ids": [patient_a.id, erased.id], "tag": vip.id,
                                                     "action": "apply"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f"以下客户的个人信息已删除，不能再打标签：{erased.id}" in page
    assert not CustomerTag.objects.filter(tag=vip).exists()
