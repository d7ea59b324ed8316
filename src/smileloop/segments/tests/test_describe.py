from django.utils import translation

from smileloop.segments.rules.describe import rule_describe, rules_describe


def test_leaves_read_as_the_builders_words_with_the_value_where_the_label_says_n(chain):
    rule = {"all": [
        {"field": "age", "op": "gte", "value": 60},
        {"field": "last_visit_days", "op": "older_than", "value": 365},
        {"field": "spend_fen_days", "op": "gte", "value": 1_000_050, "days": 365},
        {"field": "lifetime_spend_fen", "op": "between", "value": [5_000_000, 12_000_000]},
        {"field": "unfinished_plan", "op": "is", "value": True},
        {"field": "last_contact_days", "op": "never"},
    ]}
    assert rule_describe(rule, chain_id=chain.id) == (
        "Age at least 60 years and Last visit more than 365 days ago"
        " and Paid spend in the last 365 days at least 10,000.50 yuan"
        " and Lifetime spend between 50,000–120,000 yuan and Unfinished treatment plan"
        " and Last staff contact (call, chat, SMS) never")


def test_groups_nest_in_brackets_and_not_is_spelled_out(chain):
    rule = {"any": [
        {"all": [{"field": "gender", "op": "eq", "value": "F"}, {"field": "age", "op": "lte", "value": 12}]},
        {"not": {"field": "stage", "op": "in", "value": ["lead", "lost"]}},
        {"field": "unfinished_plan", "op": "is", "value": False},
    ]}
    assert rule_describe(rule, chain_id=chain.id) == (
        "(Gender is Female and Age at most 12 years) or not (Lifecycle stage is one of Lead, Lost)"
        " or not (Unfinished treatment plan)")


def test_clinics_tags_and_tiers_are_named_with_one_query_per_kind_for_all_rules(
        chain, located, tags, tiers, django_assert_num_queries):
    clinic_a, clinic_b = located
    silver, _gold = tiers
    rules = [
        {"all": [{"field": "tag", "op": "any_of", "value": ["implant", "ortho"]},
                 {"field": "distance_km", "op": "lte", "value": 3, "clinic": clinic_a.id}]},
        {"all": [{"field": "membership_tier", "op": "in", "value": [silver.id]},
                 {"field": "clinic", "op": "not_in", "value": [clinic_b.id]},
                 {"field": "procedure_days", "op": "between", "value": [7, 30], "category": "implant"}]},
        None,
    ]
    with django_assert_num_queries(3):
        texts = rules_describe(rules, chain_id=chain.id)
    assert texts == [
        "Tags has any of 种植意向, 正畸意向 and Distance from a clinic (km) at most 3 km (from clinic 静安门诊)",
        "Membership tier is one of 家庭会员 · 银卡 and Home clinic is none of 浦东门诊"
        " and Procedure done between 7 and 30 days ago (category Implant)",
        "",
    ]


def test_the_same_rule_in_chinese(chain, located):
    clinic_a, _b = located
    rule = {"all": [{"field": "age", "op": "lte", "value": 12},
                    {"field": "last_visit_days", "op": "within", "value": 90},
                    {"field": "spend_fen_days", "op": "gte", "value": 1_000_000, "days": 365},
                    {"not": {"field": "distance_km", "op": "lte", "value": 5, "clinic": clinic_a.id}}]}
    with translation.override("zh-hans"):
        text = rule_describe(rule, chain_id=chain.id)
    assert text == ("年龄 至多 12 岁 且 最近到店 最近 90 天内 且 最近 365 天实付消费 至少 10,000 元"
                    " 且 非（距门诊距离（公里） 至多 5 公里 (距门诊 静安门诊)）")


def test_a_part_the_registry_does_not_know_is_shown_as_json_not_hidden(chain):
    rule = {"all": [{"field": "agee", "op": "lte", "value": 12}, {"field": "age", "op": "lte", "value": 3}]}
    assert rule_describe(rule, chain_id=chain.id) == (
        '{"field": "agee", "op": "lte", "value": 12} and Age at most 3 years')
