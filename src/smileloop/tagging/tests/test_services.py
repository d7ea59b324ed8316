import pytest
from django.db import IntegrityError
from django.utils import translation

from smileloop.core.errors import NotFound, PermissionDenied, ValidationFailed
from smileloop.customers.models import Interaction
from smileloop.customers.services import customer_merge
from smileloop.customers.templatetags.customers_ui import interaction_text
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.catalogue import TAGS, tag_catalogue_install
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.models import CustomerTag, KeywordHit, Tag, TagGroup
from smileloop.tagging.services import (
    tag_apply,
    tag_create,
    tag_group_create,
    tag_remove,
    tag_update,
    tags_bulk_apply,
    tags_bulk_remove,
)
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory


@pytest.fixture
def vip(interests):
    return TagFactory(group=interests, code="vip", name="重点客户")


def _errors(exc) -> dict:
    return {e.field: e.message for e in exc.value.errors}


# --- constraints ---


def test_a_patient_carries_a_tag_at_most_once(patient_a, vip):
    CustomerTagFactory(customer=patient_a, tag=vip)
    with pytest.raises(IntegrityError):
        CustomerTagFactory(customer=patient_a, tag=vip)


def test_tag_codes_are_unique_per_chain_but_not_across_chains(chain, interests, vip):
    other = TagFactory(code="vip")  # another chain
    assert other.chain_id != chain.id
    with pytest.raises(IntegrityError):
        TagFactory(group=interests, code="vip")


# --- catalogue ---


def test_tag_create_reports_every_bad_field_at_once(chain, interests, vip):
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": interests.id, "code": "vip", "name": "", "kind": "keyword",
                                      "keywords": [], "keyword_threshold": 0, "keyword_window_days": "x"})
    assert set(_errors(exc)) == {"code", "name", "keywords", "keyword_threshold", "keyword_window_days"}
    assert "already used" in _errors(exc)["code"]
    assert Tag.objects.filter(chain=chain).count() == 1


def test_a_rule_tag_needs_a_rule_and_bad_json_is_reported(chain, interests):
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": "interest", "code": "hv", "name": "高价值", "kind": "rule"})
    assert _errors(exc) == {"rule": "is required for a rule tag"}
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": "interest", "code": "hv", "name": "高价值", "kind": "rule",
                                      "rule": "{\"all\": ["})
    assert "not valid JSON" in _errors(exc)["rule"]


def test_tag_create_accepts_keywords_as_text_and_tag_update_keeps_other_fields(chain, interests):
    tag = tag_create(chain=chain, data={"group": "interest", "code": "Implant", "name": "种植意向",
                                        "kind": "keyword", "keywords": "种植，种牙、 种植 ,"})
    assert (tag.code, tag.keywords, tag.keyword_threshold, tag.keyword_window_days) == (
        "implant", ["种植", "种牙"], 2, 30)
    tag_update(tag=tag, data={"keyword_threshold": 3})
    tag.refresh_from_db()
    assert (tag.keywords, tag.keyword_threshold, tag.name) == (["种植", "种牙"], 3, "种植意向")


def test_a_tag_of_another_chains_group_is_refused(chain):
    foreign = TagGroup.objects.create(chain=CustomerFactory().chain, code="g", name="g", kind="interest")
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": foreign.id, "code": "x", "name": "x"})
    assert set(_errors(exc)) == {"group"}


@pytest.mark.parametrize("group", ["9" * 30, "²", "a\x00b"])
def test_a_group_that_is_no_number_or_code_of_the_chain_is_a_field_error_not_a_crash(chain, group):
    # a number past the key's range, a digit Python's int() refuses, a NUL PostgreSQL refuses in a query
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": group, "code": "x", "name": "x"})
    assert set(_errors(exc)) == {"group"}
    assert not Tag.objects.filter(code="x").exists()


def test_tag_group_create_refuses_a_duplicate_code_and_an_unknown_kind(chain, interests):
    with pytest.raises(ValidationFailed) as exc:
        tag_group_create(chain=chain, data={"code": "interest", "name": "兴趣", "kind": "mood"})
    assert set(_errors(exc)) == {"code", "kind"}


def test_the_default_catalogue_installs_once_and_keeps_the_chains_edits(chain):
    first = tag_catalogue_install(chain=chain)
    Tag.objects.filter(chain=chain, code="implant").update(name="种植（改）")
    second = tag_catalogue_install(chain=chain)
    assert first == {"groups": 6, "tags": len(TAGS)} and second == {"groups": 6, "tags": 0}
    assert Tag.objects.get(chain=chain, code="implant").name == "种植（改）"
    assert Tag.objects.get(chain=chain, code="high-value").rule == {
        "all": [{"field": "spend_fen_days", "op": "gte", "value": 1000000, "days": 365}]}


# --- one patient ---


def test_tag_apply_records_who_and_when_and_is_idempotent(patient_a, vip, front_desk_a):
    row = tag_apply(customer=patient_a, tag=vip, actor=front_desk_a)
    again = tag_apply(customer=patient_a, tag=vip, actor=None, source=TagSource.API)
    assert again.pk == row.pk and again.set_by == front_desk_a and again.source == TagSource.MANUAL
    assert CustomerTag.objects.filter(customer=patient_a).count() == 1
    note = Interaction.objects.get(customer=patient_a)
    assert (note.kind, note.author, note.data) == ("system", front_desk_a, {"tag": "vip", "action": "tag.add"})
    assert note.text == f"Tag added: {vip.name}"  # stored in English, shown in the reader's language
    with translation.override("zh-hans"):
        assert interaction_text(note) == f"添加标签：{vip.name}"


def test_tag_apply_from_the_api_writes_no_timeline_entry(patient_a, vip):
    tag_apply(customer=patient_a, tag=vip, actor=None, source=TagSource.API)
    assert not Interaction.objects.filter(customer=patient_a).exists()


def test_tag_apply_refuses_a_tag_of_another_chain(patient_a):
    foreign = TagFactory()
    with pytest.raises(NotFound):
        tag_apply(customer=patient_a, tag=foreign, actor=None)
    assert not CustomerTag.objects.exists()


def test_tag_remove_takes_the_tag_off_and_notes_it(patient_a, vip, front_desk_a):
    CustomerTagFactory(customer=patient_a, tag=vip, source=TagSource.KEYWORD)
    assert tag_remove(customer=patient_a, tag=vip, actor=front_desk_a) is True
    assert tag_remove(customer=patient_a, tag=vip, actor=front_desk_a) is False
    assert not CustomerTag.objects.exists()
    assert Interaction.objects.filter(customer=patient_a, data__action="tag.remove").count() == 1


# --- bulk ---


def test_bulk_apply_tags_the_selection_once(scope_a, patient_a, vip, front_desk_a, chain, clinic_a):
    other = CustomerFactory(chain=chain, home_clinic=clinic_a)
    CustomerTagFactory(customer=patient_a, tag=vip)
    added = tags_bulk_apply(scope=scope_a, customer_ids=[patient_a.id, other.id, other.id], tag=vip,
                            actor=front_desk_a)
    assert added == 1
    row = CustomerTag.objects.get(customer=other, tag=vip)
    assert (row.source, row.set_by, row.chain_id) == (TagSource.MANUAL, front_desk_a, chain.id)


def test_bulk_apply_with_a_customer_outside_the_scope_names_it_and_changes_nothing(
        scope_a, patient_a, patient_b, vip, front_desk_a):
    with pytest.raises(ValidationFailed) as exc:
        tags_bulk_apply(scope=scope_a, customer_ids=[patient_a.id, patient_b.id, 999999], tag=vip,
                        actor=front_desk_a)
    assert _errors(exc)["customer_ids"] == f"not found or outside your clinics: {patient_b.id}, 999999"
    assert not CustomerTag.objects.exists()


def test_bulk_remove_untags_only_inside_the_scope(scope_a, patient_a, patient_b, vip, front_desk_a):
    CustomerTagFactory(customer=patient_a, tag=vip)
    CustomerTagFactory(customer=patient_b, tag=vip)
    with pytest.raises(ValidationFailed):
        tags_bulk_remove(scope=scope_a, customer_ids=[patient_a.id, patient_b.id], tag=vip, actor=front_desk_a)
    assert CustomerTag.objects.count() == 2
    assert tags_bulk_remove(scope=scope_a, customer_ids=[patient_a.id], tag=vip, actor=front_desk_a) == 1
    assert list(CustomerTag.objects.values_list("customer_id", flat=True)) == [patient_b.id]


def test_bulk_tagging_needs_the_permission(patient_a, vip, scope_a):
    from dataclasses import replace

    with pytest.raises(PermissionDenied):
        tags_bulk_apply(scope=replace(scope_a, permissions=frozenset()), customer_ids=[patient_a.id], tag=vip,
                        actor=None)


# --- merges ---


def test_merging_two_patients_with_the_same_tag_keeps_one_row_and_moves_the_rest(
        admin_scope, chain, interests, vip, chain_admin):
    survivor, merged = CustomerFactory(chain=chain), CustomerFactory(chain=chain)
    implant = TagFactory(group=interests, code="implant", kind=TagKind.KEYWORD, keywords=["种植"])
    CustomerTagFactory(customer=survivor, tag=vip, source=TagSource.MANUAL)
    CustomerTagFactory(customer=merged, tag=vip, source=TagSource.API)
    CustomerTagFactory(customer=merged, tag=implant, source=TagSource.KEYWORD)
    day = survivor.created_at.date()
    KeywordHit.objects.create(customer=survivor, tag=implant, day=day, hits=1, counts={"种植": 1},
                              interaction_ids=[1])
    KeywordHit.objects.create(customer=merged, tag=implant, day=day, hits=2, counts={"种植": 2},
                              interaction_ids=[2])
    customer_merge(scope=admin_scope, survivor=survivor, merged=merged, actor=chain_admin)
    assert dict(CustomerTag.objects.values_list("tag_id", "source")) == {vip.id: TagSource.MANUAL,
                                                                       implant.id: TagSource.KEYWORD}
    assert set(CustomerTag.objects.values_list("customer_id", flat=True)) == {survivor.id}
    hit = KeywordHit.objects.get()
    assert (hit.customer_id, hit.hits, hit.counts, hit.interaction_ids) == (survivor.id, 3, {"种植": 3}, [1, 2])


def test_an_erased_person_is_not_tagged_again_by_hand_or_in_bulk(chain, clinic_a, interests, patient_a, admin_scope,
                                                                  chain_admin):
    # given: a patient whose personal information was erased (their tags went with it), and a live one
    from smileloop.core.errors import Conflict
    from smileloop.customers.privacy import customer_erase
    from smileloop.tagging.selectors import tags_section
    tag = TagFactory(group=interests, code="implant")
    erased = CustomerFactory(chain=chain, home_clinic=clinic_a)
    customer_erase(scope=admin_scope, customer=erased, actor=chain_admin, reason="本人申请注销")
    erased.refresh_from_db()
    # when tagged by hand, then in a (forged) bulk selection with the live one
    with pytest.raises(Conflict) as caught:
        tag_apply(customer=erased, tag=tag, actor=chain_admin)
    with pytest.raises(ValidationFailed) as bulk:
        tags_bulk_apply(scope=admin_scope, customer_ids=[patient_a.id, erased.id], tag=tag, actor=chain_admin)
    # then both are refused, naming why, and nobody is tagged; the 360 page offers no tagging
    assert caught.value.code == "erased"
    assert f"erased, so not tagged: {erased.id}" in bulk.value.errors[0].message
    assert not CustomerTag.objects.filter(tag=tag).exists()
    assert tags_section(admin_scope, erased).can_apply is False
    assert tags_section(admin_scope, patient_a).can_apply is True
