"""QA edges of tagging the earlier tests left open: names that read alike (width, case) or hide control characters,
bulk selections holding forged, merged-away, erased or impossible ids, messages logged for an erased person, rule
syncs handed an erased person, rows a switched-off rule tag left, and keywords that look like regular expressions."""

import json

import pytest
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.services import token_create
from smileloop.core.bounds import BIGINT_MAX
from smileloop.core.errors import ValidationFailed
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging import services
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.keywords import keyword_automaton_build, keyword_matches, keyword_tags_scan
from smileloop.tagging.models import CustomerTag, KeywordHit, Tag, TagGroup
from smileloop.tagging.tests.factories import (
    CustomerTagFactory,
    InteractionFactory,
    TagFactory,
    TagGroupFactory,
)

pytestmark = pytest.mark.django_db


def _refusal(call) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return [(e.field, e.message) for e in caught.value.errors]


def _erase(person, admin_scope, chain_admin):
    from smileloop.customers.privacy import customer_erase

    customer_erase(scope=admin_scope, customer=person, actor=chain_admin, reason="本人申请注销")


# --- names ------------------------------------------------------------------------------------------------------


TAKEN = ("name", "is already used by another tag in this group")


def test_a_tag_name_differing_only_in_width_case_or_spaces_is_taken_in_its_group_but_free_in_another(chain,
                                                                                                      interests):
    # given: "VIP" in the interests group
    vip = services.tag_create(chain=chain, data={"group": interests, "code": "vip", "name": "VIP"})
    other_group = TagGroupFactory(chain=chain, code="value", name="价值")
    # when/then: full-width, lower-case and padded spellings are refused in that group, by field, and write nothing
    for n, name in enumerate(["ＶＩＰ", "vip", "  Vip  ", "ｖｉｐ"]):
        data = {"group": interests, "code": f"vip-{n}", "name": name}
        assert _refusal(lambda data=data: services.tag_create(chain=chain, data=data)) == [TAKEN]
    assert list(Tag.objects.values_list("name", flat=True)) == ["VIP"]
    # renaming another tag onto it is refused too; the tag itself may change its own spelling
    other = services.tag_create(chain=chain, data={"group": interests, "code": "other", "name": "Other"})
    assert _refusal(lambda: services.tag_update(tag=other, data={"name": "ＶＩＰ"})) == [TAKEN]
    assert Tag.objects.get(pk=other.pk).name == "Other"
    assert services.tag_update(tag=vip, data={"name": "Vip"}).name == "Vip"
    # and another group may have its own "vip"
    assert services.tag_create(chain=chain, data={"group": other_group, "code": "vip-value", "name": "vip"}).pk


@pytest.mark.parametrize("data, field", [
    ({"name": "V\x07IP"}, "name"),
    ({"name": "V\nIP"}, "name"),
    ({"name": "VIP", "description": "看\x1b[31m红字"}, "description"),
    ({"name": "VIP", "kind": "keyword", "keywords": ["种\t植"]}, "keywords"),
])
def test_control_characters_in_a_tags_name_description_or_keywords_are_refused_by_field(chain, interests, data,
                                                                                         field):
    refused = _refusal(lambda: services.tag_create(chain=chain, data={"group": interests, "code": "vip", **data}))
    assert refused == [(field, "must not contain control characters")]
    assert not Tag.objects.exists()


def test_a_groups_name_with_a_control_character_is_refused_and_emoji_names_fit_by_characters(chain):
    assert _refusal(lambda: services.tag_group_create(
        chain=chain, data={"code": "interest", "name": "兴\x00趣", "kind": "interest"})) == [
        ("name", "must not contain control characters")]
    assert not TagGroup.objects.exists()
    group = services.tag_group_create(chain=chain, data={"code": "interest", "name": "兴趣 🦷", "kind": "interest"})
    assert services.tag_create(chain=chain, data={"group": group, "code": "smile", "name": "😀" * 60}).name == "😀" * 60
    assert _refusal(lambda: services.tag_create(chain=chain, data={"group": group, "code": "smile2",
                                                                   "name": "😀" * 61}))[0][0] == "name"


def test_the_tag_form_and_the_api_refuse_a_control_character_in_the_name_by_field(client, marketing, interests):
    client.force_login(marketing.user)
    form = {"group": interests.pk, "name": "V\x07IP", "code": "vip", "kind": "manual", "colour": "#2563eb",
            "keyword_threshold": 2, "keyword_window_days": 30}
    with translation.override("zh-hans"):
        page = client.post(reverse("tagging:tag_create"), form, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert page.status_code == 422 and "不能包含控制字符" in page.content.decode()
    token = token_create(username=marketing.user.username)
    response = client.post("/api/tags", data=json.dumps({"group": "interest", "code": "vip", "name": "V\x07IP"}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "qa-1"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.name"]
    assert not Tag.objects.exists()


# --- bulk tagging -----------------------------------------------------------------------------------------------


@pytest.fixture
def vip(interests):
    return TagFactory(group=interests, code="vip", name="重点客户")


@pytest.mark.parametrize("ids", [[True], [1.5], "12"])
def test_bulk_ids_that_are_not_whole_numbers_are_refused_not_read_as_customer_one(scope_a, front_desk_a, patient_a,
                                                                                   vip, ids):
    refused = _refusal(lambda: services.tags_bulk_apply(scope=scope_a, customer_ids=ids, tag=vip, actor=front_desk_a))
    assert refused == [("customer_ids", "must be a list of customer ids")]
    assert not CustomerTag.objects.exists() and not AuditEvent.objects.filter(action__startswith="tag.").exists()


def test_bulk_ids_past_the_key_column_are_not_found_and_change_nothing(scope_a, front_desk_a, patient_a, vip):
    for action in (services.tags_bulk_apply, services.tags_bulk_remove):
        with pytest.raises(ValidationFailed) as caught:
            action(scope=scope_a, customer_ids=[patient_a.pk, BIGINT_MAX + 1, 2 ** 80], tag=vip, actor=front_desk_a)
        [error] = caught.value.errors
        assert error.field == "customer_ids" and error.value == f"{BIGINT_MAX + 1},{2 ** 80}"
    assert not CustomerTag.objects.exists() and not AuditEvent.objects.filter(action__startswith="tag.").exists()


def test_another_clinics_and_a_nonexistent_patient_read_alike_and_a_merged_away_one_is_not_found(
        chain, clinic_b, scope_a, front_desk_a, patient_a, patient_b, vip):
    survivor = CustomerFactory(chain=chain, home_clinic=patient_a.home_clinic)
    merged = CustomerFactory(chain=chain, home_clinic=patient_a.home_clinic)
    Customer.objects.filter(pk=merged.pk).update(merged_into=survivor)
    ghost = Customer.objects.order_by("-pk")[0].pk + 1000
    with pytest.raises(ValidationFailed) as caught:
        services.tags_bulk_apply(scope=scope_a, customer_ids=[patient_a.pk, patient_b.pk, ghost, merged.pk],
                                 tag=vip, actor=front_desk_a)
    [error] = caught.value.errors
    shown = sorted([patient_b.pk, ghost, merged.pk])
    assert error.message == "not found or outside your clinics: " + ", ".join(map(str, shown))
    assert not CustomerTag.objects.exists() and not AuditEvent.objects.filter(action__startswith="tag.").exists()


def test_a_bulk_selection_with_repeats_tags_each_once_audits_the_ids_once_and_writes_no_timeline(
        chain, clinic_a, scope_a, front_desk_a, vip):
    people = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3)]
    ids = [p.pk for p in people]
    assert services.tags_bulk_apply(scope=scope_a, customer_ids=ids + ids[::-1] + [str(ids[0])], tag=vip,
                                    actor=front_desk_a) == 3
    assert CustomerTag.objects.filter(tag=vip).count() == 3
    event = AuditEvent.objects.get(action="tag.bulk_apply")
    assert event.detail == {"tag": "vip", "added": 3, "customer_ids": sorted(ids)}
    assert not Interaction.objects.filter(data__action__startswith="tag.").exists()
    assert services.tags_bulk_remove(scope=scope_a, customer_ids=ids * 2, tag=vip, actor=front_desk_a) == 3
    assert AuditEvent.objects.get(action="tag.bulk_remove").detail["removed"] == 3


def test_the_bulk_api_refuses_an_id_past_the_key_column_at_the_field(client, front_desk_a, patient_a, vip):
    token = token_create(username=front_desk_a.user.username)
    response = client.post("/api/tags/bulk", data=json.dumps({"tag": "vip", "customer_ids": [patient_a.pk, 2 ** 63]}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "qa-2"})
    assert response.status_code == 422
    assert all(e["field"].startswith("body.customer_ids") for e in response.json()["errors"])
    assert not CustomerTag.objects.exists()


# --- erased people: no profile again ------------------------------------------------------------------------


def test_a_message_logged_after_an_erasure_is_not_counted_and_does_not_tag(chain, clinic_a, interests, admin_scope,
                                                                           chain_admin):
    # given: a keyword tag reached by one mention, and a person erased before a chat of theirs is logged
    TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"], keyword_threshold=1)
    person = CustomerFactory(chain=chain, home_clinic=clinic_a)
    other = CustomerFactory(chain=chain, home_clinic=clinic_a)
    _erase(person, admin_scope, chain_admin)
    InteractionFactory(customer=person, text="我想种植")
    last = InteractionFactory(customer=other, text="种植多少钱")
    # when: the scan runs
    result = keyword_tags_scan(chain=chain)
    # then: only the other patient is counted and tagged; the watermark passes both messages
    assert (result["messages"], result["tagged"], result["watermark"]) == (1, 1, last.pk)
    assert list(CustomerTag.objects.values_list("customer_id", flat=True)) == [other.pk]
    assert list(KeywordHit.objects.values_list("customer_id", flat=True)) == [other.pk]


def test_a_rule_sync_handed_an_erased_person_does_not_tag_them(chain, clinic_a, interests, admin_scope,
                                                                chain_admin):
    tag = TagFactory(group=interests, code="everyone", kind=TagKind.RULE, rule={"all": []})
    person, other = (CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(2))
    _erase(person, admin_scope, chain_admin)
    everyone = Customer.objects.filter(chain=chain).values("id")
    assert services.rule_tag_sync(tag=tag, customer_ids=everyone) == {"added": 1, "removed": 0}
    assert list(CustomerTag.objects.values_list("customer_id", flat=True)) == [other.pk]
    # a rule matching nobody removes its own rows only
    hand = TagFactory(group=interests, code="hand")
    CustomerTagFactory(customer=other, tag=hand)
    assert services.rule_tag_sync(tag=tag, customer_ids=Customer.objects.none().values("id")) == {
        "added": 0, "removed": 1}
    assert list(CustomerTag.objects.values_list("tag__code", flat=True)) == ["hand"]


# --- keywords ---------------------------------------------------------------------------------------------------


def test_keywords_with_regex_metacharacters_match_literally_and_in_full_width():
    automaton = keyword_automaton_build({1: ["C++", "a.b", "(种植)", r"\d"], 2: ["*"]})
    [found] = keyword_matches(automaton, [r"C++ ｃ＋＋ a.b axb (种植) 种植 \d 5 ** ＊ C"])
    assert found == {1: {"C++": 2, "a.b": 1, "(种植)": 1, r"\d": 1}, 2: {"*": 3}}


def test_a_very_long_full_width_message_is_counted_once_per_mention(chain, clinic_a, interests):
    tag = TagFactory(group=interests, code="invisalign", kind=TagKind.KEYWORD, keywords=["Invisalign"],
                     keyword_threshold=3)
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    InteractionFactory(customer=patient, text=("你好" * 50_000) + "ＩＮＶＩＳＡＬＩＧＮ invisalign INVISALIGN")
    assert keyword_tags_scan(chain=chain)["hits"] == 3
    row = CustomerTag.objects.get(customer=patient, tag=tag)
    assert row.evidence["keywords"] == {"Invisalign": 3}


# --- rule tags switched off ---------------------------------------------------------------------------------------


@pytest.fixture
def switched_off(chain, interests, patient_a):
    """A rule tag whose rule put it on patient_a, then switched off: the nightly job skips it from then on."""
    tag = TagFactory(group=interests, code="big", name="高消费", kind=TagKind.RULE,
                     rule={"field": "stage", "op": "in", "value": ["lead"]})
    CustomerTagFactory(customer=patient_a, tag=tag, source=TagSource.RULE)
    return services.tag_update(tag=tag, data={"is_active": False})


def test_the_rows_a_switched_off_rule_tag_left_can_be_taken_off_on_the_360_page(client, front_desk_a, patient_a,
                                                                                 switched_off):
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[patient_a.pk]))
    assert 'name="tag" value="big"' in page.content.decode()  # the × is offered
    response = client.post(reverse("tagging:customer_remove", args=[patient_a.pk]), {"tag": "big"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert not CustomerTag.objects.exists()
    assert Interaction.objects.filter(customer=patient_a, data__action="tag.remove", author=front_desk_a).count() == 1


def test_the_rows_a_switched_off_rule_tag_left_can_be_taken_off_in_bulk_and_while_on_they_cannot(
        scope_a, front_desk_a, patient_a, switched_off):
    services.tag_update(tag=switched_off, data={"is_active": True})
    assert _refusal(lambda: services.tags_bulk_remove(scope=scope_a, customer_ids=[patient_a.pk], tag=switched_off,
                                                      actor=front_desk_a))[0][0] == "tag"
    services.tag_update(tag=switched_off, data={"is_active": False})
    assert services.tags_bulk_remove(scope=scope_a, customer_ids=[patient_a.pk], tag=switched_off,
                                     actor=front_desk_a) == 1
    assert not CustomerTag.objects.exists()
