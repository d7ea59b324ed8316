"""A rule tag's rule is checked in the segment rule language when it is saved (service, form, API) and reads as
words on the tag list."""

import json

import pytest
from django.urls import reverse

from smileloop.clinics.services import token_create
from smileloop.core.errors import ValidationFailed
from smileloop.tagging.enums import TagKind
from smileloop.tagging.models import Tag
from smileloop.tagging.services import tag_create, tag_update
from smileloop.tagging.tests.factories import TagFactory

SENIOR = {"all": [{"field": "age", "op": "gte", "value": 60}]}
TYPO = {"all": [{"field": "agee", "op": "gte", "value": 60}]}


def _errors(exc) -> dict[str, str]:
    return {e.field: str(e.message) for e in exc.value.errors}


def test_a_rule_with_an_unknown_field_is_refused_by_its_path_and_nothing_is_saved(chain, interests):
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": "interest", "code": "senior", "name": "老年", "kind": "rule",
                                      "rule": TYPO})
    errors = _errors(exc)
    assert list(errors) == ["rule.all[0]"]
    assert "unknown field 'agee'" in errors["rule.all[0]"] and "'age'" in errors["rule.all[0]"]
    assert not Tag.objects.filter(code="senior").exists()


def test_a_rule_naming_a_tag_the_chain_lacks_is_refused(chain, interests):
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": "interest", "code": "loyal", "name": "忠诚", "kind": "rule",
                                      "rule": {"all": [{"field": "tag", "op": "any_of", "value": ["nope"]}]}})
    assert "nope" in next(iter(_errors(exc).values()))


def test_a_rule_may_not_test_the_tag_it_sets(chain, interests):
    TagFactory(group=interests, code="vip", name="重点客户")
    tag = tag_create(chain=chain, data={"group": "interest", "code": "loyal", "name": "忠诚", "kind": "rule",
                                        "rule": {"all": [{"field": "tag", "op": "any_of", "value": ["vip"]}]}})
    with pytest.raises(ValidationFailed) as exc:
        tag_update(tag=tag, data={"rule": {"any": [{"field": "tag", "op": "none_of", "value": ["loyal"]}]}})
    assert _errors(exc) == {"rule": "must not test the tag it sets"}
    tag.refresh_from_db()
    assert tag.rule == {"all": [{"field": "tag", "op": "any_of", "value": ["vip"]}]}


def test_a_valid_rule_is_saved_as_given(chain, interests):
    tag = tag_create(chain=chain, data={"group": "interest", "code": "senior", "name": "老年", "kind": "rule",
                                        "rule": json.dumps(SENIOR)})
    assert tag.rule == SENIOR


def test_the_tag_form_shows_the_rules_problem_on_the_rule_field(client, marketing, interests):
    tag = TagFactory(group=interests, code="senior", name="老年", kind=TagKind.RULE, rule=SENIOR)
    client.force_login(marketing.user)
    response = client.post(reverse("tagging:tag_edit", args=[tag.id]), {
        "group": interests.id, "name": "老年", "code": "senior", "kind": "rule", "colour": "#dc2626",
        "rule": json.dumps(TYPO), "keyword_threshold": 2, "keyword_window_days": 30, "is_active": "on"})
    assert response.status_code == 422
    assert "all[0]: unknown field" in response.context["form"].errors["rule"][0]
    tag.refresh_from_db()
    assert tag.rule == SENIOR


def test_the_api_answers_422_with_the_path_in_the_rule(client, marketing, interests):
    token = token_create(username=marketing.user.username)
    response = client.post("/api/tags", data=json.dumps({"group": "interest", "code": "senior", "name": "老年",
                                                          "kind": "rule", "rule": TYPO}),
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "rule-1"})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.rule.all[0]"]
    assert not Tag.objects.filter(code="senior").exists()


def test_the_tag_list_reads_a_rule_as_words_and_links_the_builder_only_for_who_may_use_it(
        client, marketing, front_desk_a, interests):
    senior = TagFactory(group=interests, code="senior", name="老年", kind=TagKind.RULE, rule=SENIOR)
    builder = f'{reverse("segments:create")}?tag={senior.id}'
    client.force_login(marketing.user)
    html = client.get(reverse("tagging:list")).content.decode()
    assert ">Age at least 60 years</span>" in html
    assert f'<a href="{builder}">Edit in the segment builder</a>' in html
    client.force_login(front_desk_a.user)
    html = client.get(reverse("tagging:list")).content.decode()
    assert ">Age at least 60 years</span>" in html
    assert builder not in html


def test_a_tag_that_another_rule_tests_keeps_its_code(chain, interests):
    vip = TagFactory(group=interests, code="vip", name="重点客户")
    tag_create(chain=chain, data={"group": "interest", "code": "loyal", "name": "忠诚", "kind": "rule",
                                  "rule": {"all": [{"field": "tag", "op": "any_of", "value": ["vip"]}]}})
    with pytest.raises(ValidationFailed) as exc:
        tag_update(tag=vip, data={"code": "vip2"})
    assert _errors(exc) == {"code": "is tested by the rules of 忠诚; change those rules first"}
    vip.refresh_from_db()
    assert vip.code == "vip"
    tag_update(tag=vip, data={"name": "重点"})  # other changes are fine
    lonely = TagFactory(group=interests, code="lonely", name="孤单")
    tag_update(tag=lonely, data={"code": "alone"})  # and a tag no rule tests is renamed as before
    lonely.refresh_from_db()
    assert lonely.code == "alone"


def test_the_builder_opened_for_a_rule_tag_is_titled_by_it(client, marketing, interests):
    senior = TagFactory(group=interests, code="senior", name="老年", kind=TagKind.RULE, rule=SENIOR)
    client.force_login(marketing.user)
    html = client.get(reverse("segments:create"), {"tag": senior.id}).content.decode()
    assert "<h1>Rule of the tag “老年”</h1>" in html


def _rename_in_chinese(client, staff, tag, group, code):
    """Post the tag form with a new code, in Chinese."""
    from django.utils import translation

    client.force_login(staff.user)
    with translation.override("zh-hans"):
        return client.post(reverse("tagging:tag_edit", args=[tag.id]), {
            "group": group.id, "name": tag.name, "code": code, "kind": "manual", "colour": "#dc2626",
            "keyword_threshold": 2, "keyword_window_days": 30, "is_active": "on"}, HTTP_ACCEPT_LANGUAGE="zh-hans")


def test_the_tag_form_says_in_chinese_which_rules_keep_a_code(client, marketing, interests):
    vip = TagFactory(group=interests, code="vip", name="重点客户")
    TagFactory(group=interests, code="loyal", name="忠诚", kind=TagKind.RULE,
               rule={"all": [{"field": "tag", "op": "any_of", "value": ["vip"]}]})
    response = _rename_in_chinese(client, marketing, vip, interests, "vip2")
    assert response.status_code == 422
    assert response.context["form"].errors["code"] == ["标签 忠诚 的规则引用了此编码，请先修改这些规则"]


def test_a_tag_that_a_saved_segment_tests_keeps_its_code_until_the_segment_is_deleted(chain, interests):
    from smileloop.segments.services import segment_create, segment_delete

    vip = TagFactory(group=interests, code="vip", name="重点客户")
    rule = {"all": [{"field": "age", "op": "gte", "value": 18},
                    {"any": [{"field": "tag", "op": "all_of", "value": ["other", "vip"]}]}]}
    TagFactory(group=interests, code="other", name="其他")
    segment = segment_create(chain=chain, name="成人重点", rule=rule, actor=None)
    segment_create(chain=chain, name="老年", rule=SENIOR, actor=None)  # does not test the tag: not named
    with pytest.raises(ValidationFailed) as exc:
        tag_update(tag=vip, data={"code": "vip2"})
    assert _errors(exc) == {"code": "is tested by the segments 成人重点; change those segments first"}
    vip.refresh_from_db()
    assert vip.code == "vip"
    segment_delete(segment=segment, actor=None)  # a deleted segment no longer holds the code
    tag_update(tag=vip, data={"code": "vip2"})
    vip.refresh_from_db()
    assert vip.code == "vip2"


def test_the_tag_form_says_in_chinese_which_segments_keep_a_code(client, marketing, interests):
    from smileloop.segments.services import segment_create

    vip = TagFactory(group=interests, code="vip", name="重点客户")
    segment_create(chain=marketing.chain, name="重点人群",
                   rule={"all": [{"field": "tag", "op": "any_of", "value": ["vip"]}]}, actor=None)
    response = _rename_in_chinese(client, marketing, vip, interests, "vip2")
    assert response.status_code == 422
    assert response.context["form"].errors["code"] == ["分群 重点人群 的条件引用了此编码，请先修改这些分群"]
    vip.refresh_from_db()
    assert vip.code == "vip"


def test_a_rule_tag_naming_a_clinic_by_code_is_stored_with_its_id(chain, interests, clinic_a):
    # given a rule naming clinic A by its code
    rule = {"all": [{"field": "clinic", "op": "in", "value": ["SH01"]}]}
    # when saved as a rule tag
    tag = tag_create(chain=chain, data={"group": "interest", "code": "jingan", "name": "静安", "kind": "rule",
                                        "rule": rule})
    # then it is stored by id, as the segments app stores rules
    assert Tag.objects.get(pk=tag.pk).rule == {"all": [{"field": "clinic", "op": "in", "value": [clinic_a.pk]}]}


def test_a_rule_tag_naming_an_unknown_clinic_code_is_refused_by_its_path(chain, interests, clinic_a):
    with pytest.raises(ValidationFailed) as exc:
        tag_create(chain=chain, data={"group": "interest", "code": "beijing", "name": "北京", "kind": "rule",
                                      "rule": {"all": [{"field": "clinic", "op": "in", "value": ["BJ01"]}]}})
    assert _errors(exc) == {"rule.all[0]": "unknown clinic code 'BJ01'"}
    assert not Tag.objects.filter(code="beijing").exists()
