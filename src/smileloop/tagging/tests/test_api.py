import json

import pytest

from smileloop.clinics.services import token_create
from smileloop.core.models import IdempotencyRecord
from smileloop.tagging.enums import TagSource
from smileloop.tagging.models import CustomerTag, Tag
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


@pytest.fixture
def marketing_token(marketing):
    return token_create(username=marketing.user.username)


@pytest.fixture
def vip(interests):
    return TagFactory(group=interests, code="vip", name="重点客户")


def send(client, method, url, body=None, *, token, key="key-1"):
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    # no body: nothing (the test client sent the text "None", a body the API refuses where it takes none)
    return getattr(client, method)(url, data=json.dumps(body) if body is not None else "",
                                   content_type="application/json", headers=headers)


def get(client, url, *, token):
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def test_the_catalogue_lists_groups_with_their_tags(client, token_a, vip):
    response = get(client, "/api/tags", token=token_a)
    assert response.status_code == 200
    [group] = response.json()
    assert group["code"] == "interest" and [t["code"] for t in group["tags"]] == ["vip"]


def test_creating_a_tag_is_idempotent_on_the_key(client, marketing_token, interests):
    body = {"group": "interest", "code": "implant", "name": "种植意向", "kind": "keyword", "keywords": ["种植"]}
    first = send(client, "post", "/api/tags", body, token=marketing_token)
    again = send(client, "post", "/api/tags", body, token=marketing_token)
    assert first.status_code == 201 and again.status_code == 201 and again.json() == first.json()
    assert Tag.objects.filter(code="implant").count() == 1


def test_creating_a_tag_with_bad_fields_is_422_per_field(client, marketing_token, interests):
    body = {"group": "nope", "code": "x", "name": "x", "kind": "keyword", "keywords": [], "keyword_threshold": 0}
    response = send(client, "post", "/api/tags", body, token=marketing_token)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"body.group", "body.keywords", "body.keyword_threshold"}


def test_a_rule_naming_a_field_with_a_lone_surrogate_is_422_and_its_answer_is_stored_for_replay(
        client, marketing_token, interests):
    # given: JSON's "\\ud800" in a rule's field name, echoed by the error (storing that answer for replays was a 500
    # on PostgreSQL, whose jsonb refuses a lone surrogate)
    body = {"group": "interest", "code": "odd", "name": "odd", "kind": "rule",
            "rule": {"field": "c\ud800", "op": "contains", "value": "x"}}
    # when
    first = send(client, "post", "/api/tags", body, token=marketing_token, key="k-odd")
    replay = send(client, "post", "/api/tags", body, token=marketing_token, key="k-odd")
    # then
    assert first.status_code == replay.status_code == 422
    [error] = first.json()["errors"]
    assert error["field"] == "body.rule" and "\ufffd" in error["value"]
    assert "\ud800" not in error["value"] + first.json()["message"]
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert not Tag.objects.filter(code="odd").exists()


def test_front_desk_may_not_create_tags(client, token_a, interests):
    response = send(client, "post", "/api/tags", {"group": "interest", "code": "x", "name": "x"}, token=token_a)
    assert response.status_code == 403 and not Tag.objects.filter(code="x").exists()


def test_applying_a_tag_records_the_api_as_source_and_replays_on_retry(client, token_a, front_desk_a, patient_a,
                                                                        vip):
    url = f"/api/tags/customers/{patient_a.id}"
    first = send(client, "post", url, {"tag": "vip"}, token=token_a, key="apply-1")
    again = send(client, "post", url, {"tag": "vip"}, token=token_a, key="apply-1")
    assert first.status_code == 200 and again.json() == first.json()
    [tag] = first.json()["tags"]
    assert (tag["tag"], tag["source"], tag["set_by_id"]) == ("vip", TagSource.API, front_desk_a.id)
    assert IdempotencyRecord.objects.filter(key="apply-1").count() == 1


def test_a_write_without_an_idempotency_key_is_refused(client, token_a, patient_a, vip):
    response = send(client, "post", f"/api/tags/customers/{patient_a.id}", {"tag": "vip"}, token=token_a, key=None)
    assert response.status_code == 400 and not CustomerTag.objects.exists()


def test_a_customer_outside_the_scope_is_404_for_reads_and_writes(client, token_a, patient_b, vip):
    assert get(client, f"/api/tags/customers/{patient_b.id}", token=token_a).status_code == 404
    response = send(client, "post", f"/api/tags/customers/{patient_b.id}", {"tag": "vip"}, token=token_a)
    assert response.status_code == 404 and not CustomerTag.objects.exists()


def test_removing_a_tag_and_listing_a_customers_tags(client, token_a, patient_a, vip):
    CustomerTagFactory(customer=patient_a, tag=vip)
    assert [t["tag"] for t in get(client, f"/api/tags/customers/{patient_a.id}", token=token_a).json()["tags"]] == [
        "vip"]
    response = send(client, "delete", f"/api/tags/customers/{patient_a.id}/vip", token=token_a, key="rm-1")
    assert response.status_code == 200 and response.json()["tags"] == []


def test_when_a_tag_was_set_is_given_in_local_time_like_the_rest_of_the_api(client, token_a, patient_a, vip):
    import datetime as dt

    from smileloop.tagging.models import CustomerTag

    CustomerTagFactory(customer=patient_a, tag=vip)
    CustomerTag.objects.filter(customer=patient_a).update(set_at=dt.datetime(2026, 12, 4, 23, 0, tzinfo=dt.UTC))
    [row] = get(client, f"/api/tags/customers/{patient_a.id}", token=token_a).json()["tags"]
    assert row["set_at"] == "2026-12-05T07:00:00+08:00"


def test_bulk_apply_is_all_or_nothing_and_names_the_ids_outside_the_scope(client, token_a, patient_a, patient_b,
                                                                          vip):
    body = {"tag": "vip", "customer_ids": [patient_a.id, patient_b.id]}
    response = send(client, "post", "/api/tags/bulk", body, token=token_a, key="bulk-1")
    assert response.status_code == 422
    assert response.json()["errors"][0] == {"field": "body.customer_ids", "message":
                                            f"not found or outside your clinics: {patient_b.id}",
                                            "value": str(patient_b.id)}
    assert not CustomerTag.objects.exists()
    ok = send(client, "post", "/api/tags/bulk", {"tag": "vip", "customer_ids": [patient_a.id]}, token=token_a,
              key="bulk-2")
    assert ok.json() == {"tag": "vip", "action": "apply", "changed": 1}


@pytest.fixture
def big_spender(interests):
    from smileloop.tagging.enums import TagKind

    return TagFactory(group=interests, code="hv", name="高价值", kind=TagKind.RULE,
                      rule={"field": "lifetime_spend_fen", "op": "gte", "value": 1000000})


def test_a_rule_tag_cannot_be_put_on_through_the_api(client, token_a, patient_a, big_spender):
    # Its rule sets it every night; a row set by hand would outlive the rule (the sync never removes it).
    response = send(client, "post", f"/api/tags/customers/{patient_a.id}", {"tag": "hv"}, token=token_a)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body.tag" and "rule tag" in error["message"]
    bulk = send(client, "post", "/api/tags/bulk", {"tag": "hv", "customer_ids": [patient_a.id]}, token=token_a,
                key="bulk-1")
    assert bulk.status_code == 422 and not CustomerTag.objects.exists()


def test_a_row_its_rule_set_cannot_be_taken_off_through_the_api(client, token_a, patient_a, big_spender):
    CustomerTagFactory(customer=patient_a, tag=big_spender, source=TagSource.RULE)
    response = send(client, "delete", f"/api/tags/customers/{patient_a.id}/hv", token=token_a)
    assert response.status_code == 422 and "rule tag" in response.json()["errors"][0]["message"]
    bulk = send(client, "post", "/api/tags/bulk", {"tag": "hv", "customer_ids": [patient_a.id], "action": "remove"},
                token=token_a, key="bulk-2")
    assert bulk.status_code == 422
    assert CustomerTag.objects.filter(customer=patient_a, tag=big_spender).count() == 1


def test_a_hand_set_row_of_a_tag_that_became_a_rule_tag_can_be_taken_off(client, token_a, patient_a, big_spender):
    CustomerTagFactory(customer=patient_a, tag=big_spender, source=TagSource.MANUAL)
    response = send(client, "delete", f"/api/tags/customers/{patient_a.id}/hv", token=token_a)
    assert response.status_code == 200 and not CustomerTag.objects.exists()
