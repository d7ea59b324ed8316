"""The builder's rows say what to do in the reader's words (QA sweep, 2026-12): an empty value read
"运算符“gte”需要一个值" / "op 'any_of' needs a non-empty list of values" (the operator's code, which staff never see
on the page), and an amount that is no number of yuan was reported twice, once as a missing value."""

import re

import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(client, marketing):
    client.force_login(marketing.user)
    return client


def _row_errors(html: str, key: str) -> list[str]:
    row = html[html.index(f'id="cond-{key}"'):]
    row = row[:row.index('id="cond-', 10)] if 'id="cond-' in row[10:] else row
    return [re.sub(r"<[^>]+>", "", m).strip() for m in re.findall(r'class="field-error seg-error"[^>]*>(.*?)</', row, re.S)]


def _preview(client, data: dict, lang: str):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client.post(reverse("segments:preview"), {"mode": "all", **data}, HTTP_HX_REQUEST="true")


@pytest.mark.parametrize("field, op, lang, expected", [
    ("age", "gte", "zh-hans", "请填写取值。"),
    ("age", "gte", "en", "Enter a value."),
    ("last_visit_days", "within", "zh-hans", "请填写取值。"),
    ("tag", "any_of", "zh-hans", "请至少选择一项。"),
    ("community", "in", "zh-hans", "请至少填写一个取值。"),
    ("stage", "eq", "zh-hans", "请选择一个取值。"),
])
def test_an_empty_value_is_asked_for_without_naming_the_operator_code(manager, field, op, lang, expected):
    # when
    response = _preview(manager, {"c-a1-field": field, "c-a1-op": op, "c-a1-value": "", "c-a1-group": ""}, lang)
    # then
    assert response.status_code == 422
    errors = _row_errors(response.content.decode(), "a1")
    assert errors == [expected]
    assert not any(op in e for e in errors)


def test_an_unreadable_amount_is_reported_once_not_also_as_a_missing_value(manager):
    # when
    response = _preview(manager, {"c-a1-field": "lifetime_spend_fen", "c-a1-op": "gte", "c-a1-value": "十万",
                                  "c-a1-group": ""}, "zh-hans")
    # then
    assert response.status_code == 422
    assert _row_errors(response.content.decode(), "a1") == ["请输入以元为单位的金额，例如 1000 或 99.50"]


def test_a_range_the_wrong_way_round_says_so_in_words(manager):
    # when
    response = _preview(manager, {"c-a1-field": "age", "c-a1-op": "between", "c-a1-value": "60",
                                  "c-a1-value2": "30", "c-a1-group": ""}, "zh-hans")
    # then
    assert response.status_code == 422
    assert _row_errors(response.content.decode(), "a1") == ["前一个数不能大于后一个数。"]


@pytest.mark.parametrize("data", [
    {"c-a1-op": "gte", "c-a1-value": "-5"},
    {"c-a1-op": "between", "c-a1-value": "-5", "c-a1-value2": "-1"},
])
def test_a_negative_amount_is_refused_in_yuan_as_typed_not_in_fen(manager, data):
    # when
    response = _preview(manager, {"c-a1-field": "lifetime_spend_fen", "c-a1-group": "", **data}, "zh-hans")
    # then
    assert response.status_code == 422
    assert _row_errors(response.content.decode(), "a1") == ["请输入 0 到 10000000000 元之间的金额。"]


@pytest.mark.parametrize("field, low, high", [("age", "", ""), ("age", "30", ""), ("lifetime_spend_fen", "", "100")])
def test_a_range_with_an_empty_end_asks_for_both_ends(manager, field, low, high):
    # when
    response = _preview(manager, {"c-a1-field": field, "c-a1-op": "between", "c-a1-value": low, "c-a1-value2": high,
                                  "c-a1-group": ""}, "zh-hans")
    # then
    assert response.status_code == 422
    assert _row_errors(response.content.decode(), "a1") == ["请填写范围的两端。"]
