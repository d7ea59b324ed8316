"""A rule typed as JSON that does not parse is refused in the reader's words (QA sweep, 2026-12): the Chinese page
said "这不是有效的 JSON：(Expecting property name enclosed in double quotes, line 1)", the parser's English."""

import pytest
from django.conf import settings
from django.urls import reverse

from smileloop.tagging.enums import TagKind
from smileloop.tagging.models import Tag
from smileloop.tagging.tests.factories import TagFactory

pytestmark = pytest.mark.django_db


def _post_rule(client, staff, tag, rule: str, lang: str = "zh-hans"):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client.post(reverse("tagging:tag_edit", args=[tag.id]), {
        "group": tag.group_id, "name": tag.name, "code": tag.code, "kind": "rule", "colour": "#dc2626",
        "rule": rule, "keyword_threshold": 2, "keyword_window_days": 30, "is_active": "on"})


@pytest.mark.parametrize("rule, expected", [
    ("{all: []}", "这不是有效的 JSON（第 1 行：名称须用英文双引号括起）。"),
    ('{"all": [\n  {"field": "age" "op": "lte"}]}', "这不是有效的 JSON（第 2 行：缺少逗号）。"),
    ('{"all": [{"field": }]}', "这不是有效的 JSON（第 1 行：缺少一个值）。"),
    ('{"all": []} x', "这不是有效的 JSON（第 1 行：规则结束后还有多余的内容）。"),
    ('{"all": [{"field": "age}]}', "这不是有效的 JSON（第 1 行：引号没有闭合）。"),
])
def test_a_rule_that_is_not_json_is_refused_in_chinese_with_its_line(client, marketing, interests, rule, expected):
    # given
    tag = TagFactory(group=interests, code="hv", name="高价值", kind=TagKind.RULE, rule={"all": []})
    # when
    response = _post_rule(client, marketing, tag, rule)
    # then
    html = response.content.decode()
    assert response.status_code == 422
    assert expected in html
    assert "Expecting" not in html and "Extra data" not in html and "Unterminated" not in html
    tag.refresh_from_db()
    assert tag.rule == {"all": []}
    assert Tag.objects.filter(chain_id=tag.chain_id, kind=TagKind.RULE).count() == 1


def test_a_rule_that_is_not_json_is_refused_in_english_too(client, marketing, interests):
    # given
    tag = TagFactory(group=interests, code="hv", name="高价值", kind=TagKind.RULE, rule={"all": []})
    # when
    response = _post_rule(client, marketing, tag, "{all: [}", lang="en")
    # then
    assert response.status_code == 422
    assert "This is not valid JSON (line 1: names need straight double quotes)." in response.content.decode()
