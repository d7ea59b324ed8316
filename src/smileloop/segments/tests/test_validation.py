import pytest

from smileloop.segments.rules.validation import MAX_DEPTH, MAX_NODES, validate


def _errors(rule, **kw) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in validate(rule, **kw)]


def test_a_valid_rule_has_no_errors():
    rule = {"all": [
        {"field": "tag", "op": "any_of", "value": ["implant"]},
        {"any": [{"field": "spend_fen_days", "op": "gte", "value": 100000, "days": 365},
                 {"not": {"field": "last_visit_days", "op": "within", "value": 180}}]},
    ]}
    assert validate(rule) == []


def test_an_unknown_field_is_named_by_its_path_with_a_suggestion():
    rule = {"all": [{"field": "stage", "op": "eq", "value": "lead"},
                    {"field": "age", "op": "gte", "value": 30},
                    {"any": [{"field": "spendd", "op": "gte", "value": 1, "days": 30}]}]}
    assert _errors(rule) == [("all[2].any[0]", "unknown field 'spendd'; did you mean 'spend_fen_days'?")]


def test_between_without_a_pair_says_what_it_needs():
    rule = {"all": [{"field": "age", "op": "gte", "value": 30}, {"field": "age", "op": "between", "value": 30}]}
    assert _errors(rule) == [("all[1]", "op 'between' needs value [low, high]")]


def test_between_with_low_above_high_is_refused():
    assert _errors({"field": "visit_count", "op": "between", "value": [5, 2]}) == [
        ("rule", "op 'between' needs low ≤ high")]


def test_days_out_of_range_is_refused():
    rule = {"all": [{"field": "spend_fen_days", "op": "gte", "value": 100, "days": 0}]}
    assert _errors(rule) == [("all[0]", "days must be 1..3650")]


def test_a_missing_parameter_is_reported():
    assert _errors({"any": [{"field": "distance_km", "op": "lte", "value": 3}]}) == [
        ("any[0]", "clinic must be a clinic id or code")]


def test_an_op_the_field_does_not_have_lists_the_valid_ones():
    assert _errors({"all": [{"field": "gender", "op": "gte", "value": "F"}]}) == [
        ("all[0]", "op 'gte' is not valid for field 'gender'; use one of: eq, ne, in")]


def test_a_wrong_value_type_is_named():
    assert _errors({"all": [{"field": "age", "op": "gte", "value": "30"}]}) == [
        ("all[0]", "value must be a whole number from 0 to 150")]
    assert _errors({"all": [{"field": "spend_fen_days", "op": "gte", "value": -1, "days": 30}]}) == [
        ("all[0]", "value must be a whole number of fen (1 yuan = 100 fen), at least 0")]
    assert _errors({"all": [{"field": "unfinished_plan", "op": "is", "value": "yes"}]}) == [
        ("all[0]", "value must be true or false")]


def test_a_bad_list_item_is_named_by_its_index():
    errors = _errors({"all": [{"field": "stage", "op": "in", "value": ["lead", "leed"]}]})
    assert len(errors) == 1
    assert errors[0][0] == "all[0]"
    assert errors[0][1].startswith("value[1] must be one of: lead, contacted")
    assert errors[0][1].endswith("; did you mean 'lead'?")


def test_an_op_without_a_value_refuses_one():
    assert _errors({"not": {"field": "last_visit_days", "op": "never", "value": 3}}) == [
        ("not", "op 'never' takes no value")]


def test_an_unknown_key_in_a_condition_is_refused_with_a_suggestion():
    assert _errors({"all": [{"field": "spend_fen_days", "op": "gte", "value": 1, "days": 30, "dayz": 3}]}) == [
        ("all[0]", "unknown key 'dayz' for field 'spend_fen_days'; did you mean 'days'?")]


@pytest.mark.parametrize("rule, expected", [
    ([], ("rule", 'must be a group {"all": [...]}, {"any": [...]}, {"not": {...}} or a condition '
                  '{"field": ..., "op": ..., "value": ...}')),
    ({"all": []}, ("rule", "'all' needs at least one condition")),
    ({"any": {"field": "age"}}, ("rule", "'any' must be a list of conditions")),
    ({"all": [{"field": "age", "op": "gte", "value": 3}], "any": []}, ("rule", "a group has exactly one of the keys all, any, not")),
    ({"alll": []}, ("rule", "unknown key 'alll'; did you mean 'all'?")),
])
def test_malformed_groups_are_explained(rule, expected):
    assert _errors(rule) == [expected]


def test_depth_is_limited():
    leaf = {"field": "age", "op": "gte", "value": 3}
    ok = leaf
    for _ in range(MAX_DEPTH):
        ok = {"all": [ok]}
    assert validate(ok) == []
    too_deep = {"all": [ok]}
    assert _errors(too_deep) == [("all[0].all[0].all[0].all[0].all[0]", "nested too deeply (at most 5 levels of groups)")]


def test_size_is_limited():
    rule = {"any": [{"field": "age", "op": "gte", "value": n} for n in range(MAX_NODES + 5)]}
    assert _errors(rule) == [("rule", f"the rule has too many parts (at most {MAX_NODES} groups and conditions)")]


def test_references_are_checked_against_the_chain(chain, clinic_a, tags, tiers, db):
    other_chain_clinic = clinic_a.pk + 1000
    rule = {"all": [{"field": "clinic", "op": "in", "value": [clinic_a.pk, other_chain_clinic]},
                    {"field": "tag", "op": "any_of", "value": ["implant", "nosuch"]},
                    {"field": "membership_tier", "op": "in", "value": [tiers[0].pk]}]}
    assert validate(rule) == []  # structure only
    assert _errors(rule, chain_id=chain.pk) == [("all[0]", f"unknown clinic id {other_chain_clinic}"),
                                                ("all[1]", "unknown tag 'nosuch'")]


def test_a_distance_from_a_clinic_without_coordinates_is_refused_by_name(chain, located, clinic_c, db):
    # given: 徐汇门诊 has no latitude/longitude, so a distance from it would silently match nobody
    rule = {"any": [{"field": "distance_km", "op": "lte", "value": 3, "clinic": located[0].pk},
                    {"not": {"field": "distance_km", "op": "lte", "value": 3, "clinic": clinic_c.pk}}]}
    # then
    assert validate(rule) == []  # structure only
    assert _errors(rule, chain_id=chain.pk) == [
        ("any[1].not", "clinic 徐汇门诊 has no coordinates: set its latitude and longitude first")]


def test_every_error_carries_the_bad_value():
    [error] = validate({"all": [{"field": "spendd", "op": "gte", "value": 1}]})
    assert error.value == '"spendd"'


def test_a_leafs_keys_are_named_in_the_readers_language():
    from django.utils import translation

    rule = {"all": [{"field": "distance_km", "op": "lte", "value": -5, "clinic": " "}]}
    with translation.override("en"):
        english = sorted(e.message for e in validate(rule))
    with translation.override("zh-hans"):
        chinese = sorted(e.message for e in validate(rule))
    assert english == ["clinic must be a clinic id or code", "value must be a number of km from 0.1 to 1000"], english
    assert chinese == ["取值 必须是 0.1 到 1000 之间的公里数", "门诊 必须是门诊 id 或编码"], chinese


def test_a_text_value_with_a_nul_character_is_refused_by_name():
    """PostgreSQL cannot compare a text holding NUL: the preview and the builder were a 500 there."""
    assert _errors({"field": "community", "op": "contains", "value": "a\x00b"}) == [
        ("rule", "value must not contain a NUL character")]
    assert [f for f, _m in _errors({"field": "community", "op": "in", "value": ["阳光小区", "x\x00"]})] != []


def test_a_clinic_may_be_named_by_its_code_and_an_unknown_code_is_named_by_its_path(chain, located, clinic_c, db):
    # given: clinic A (located) by code, clinic C (no coordinates) by code, and a code no clinic of the chain has
    rule = {"all": [{"field": "clinic", "op": "in", "value": ["SH01", located[1].pk]},
                    {"field": "distance_km", "op": "lte", "value": 3, "clinic": "SH01"},
                    {"any": [{"field": "distance_km", "op": "lte", "value": 3, "clinic": "SH03"},
                             {"field": "distance_km", "op": "lte", "value": 3, "clinic": "BJ99"}]}]}
    # then
    assert validate(rule) == []  # structure only: a code is a clinic's name as good as its id
    assert _errors(rule, chain_id=chain.pk) == [
        ("all[2].any[1]", "unknown clinic code 'BJ99'"),
        ("all[2].any[0]", "clinic 徐汇门诊 has no coordinates: set its latitude and longitude first")]


def test_a_code_of_another_chains_clinic_is_unknown(chain, clinic_a, db):
    from smileloop.clinics.tests.factories import ClinicFactory

    ClinicFactory(code="GZ01")  # another chain's
    assert _errors({"field": "clinic", "op": "in", "value": ["GZ01"]}, chain_id=chain.pk) == [
        ("rule", "unknown clinic code 'GZ01'")]


def test_clinic_codes_become_ids_and_a_rule_without_codes_is_returned_as_is(chain, located, django_assert_num_queries):
    from smileloop.segments.rules.validation import clinic_codes_to_ids

    rule = {"all": [{"field": "clinic", "op": "in", "value": ["SH01", located[1].pk]},
                    {"not": {"field": "distance_km", "op": "lte", "value": 3, "clinic": "SH02"}},
                    {"field": "tag", "op": "any_of", "value": ["SH01"]}]}  # a tag code is not a clinic's
    with django_assert_num_queries(1):
        by_id = clinic_codes_to_ids(rule, chain_id=chain.pk)
    assert by_id == {"all": [{"field": "clinic", "op": "in", "value": [located[0].pk, located[1].pk]},
                             {"not": {"field": "distance_km", "op": "lte", "value": 3, "clinic": located[1].pk}},
                             {"field": "tag", "op": "any_of", "value": ["SH01"]}]}
    assert rule["all"][0]["value"] == ["SH01", located[1].pk]  # the caller's tree is left alone
    with django_assert_num_queries(0):
        assert clinic_codes_to_ids(by_id, chain_id=chain.pk) is by_id
