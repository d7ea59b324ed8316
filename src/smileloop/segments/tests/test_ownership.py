"""Whose segment it is: the chain's segments (what marketing counts on, what the chain's playbooks are triggered
by) are changed by chain roles only; a clinic's segments by its clinic staff too. Services, API and pages."""

import json

import pytest
from django.urls import reverse

from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.errors import PermissionDenied, ValidationFailed
from smileloop.segments import selectors, services
from smileloop.segments.models import Segment
from smileloop.segments.tests.factories import SegmentFactory

pytestmark = pytest.mark.django_db
LEADS = {"all": [{"field": "stage", "op": "eq", "value": "lead"}]}


def api(client, method, url, body=None, *, staff, key="k-1"):
    headers = {"Authorization": f"Bearer {token_create(username=staff.user.username)}", "Idempotency-Key": key}
    # no body: nothing (the test client sent the text "None", a body the API refuses where it takes none)
    return getattr(client, method)(url, json.dumps(body) if body is not None else "",
                                   content_type="application/json", headers=headers)


def test_a_clinic_director_cannot_change_or_delete_the_chains_segment(director_scope, director_a, chain):
    segment = SegmentFactory(chain=chain, name="沉睡客户", rule=LEADS)
    with pytest.raises(PermissionDenied, match="whole chain"):
        services.segment_update(segment=segment, actor=director_a, name="改名", scope=director_scope)
    with pytest.raises(PermissionDenied):
        services.segment_delete(segment=segment, actor=director_a, scope=director_scope)
    segment.refresh_from_db()
    assert (segment.name, segment.is_active) == ("沉睡客户", True)


def test_a_clinic_directors_segment_is_their_clinics_and_theirs_to_change(director_scope, director_a, chain,
                                                                          clinic_a, marketing):
    segment = services.segment_create(chain=chain, name="本院潜客", rule=LEADS, actor=director_a, scope=director_scope)
    assert segment.clinic_id == clinic_a.id
    services.segment_update(segment=segment, actor=director_a, description="静安", scope=director_scope)
    # Chain roles change every clinic's segments, and may make it the chain's; a director may not.
    with pytest.raises(ValidationFailed) as refused:
        services.segment_update(segment=segment, actor=director_a, clinic=None, scope=director_scope)
    assert refused.value.errors[0].field == "clinic"
    services.segment_update(segment=segment, actor=marketing, clinic=None, scope=scope_for_staff(marketing))
    segment.refresh_from_db()
    assert segment.clinic_id is None and segment.description == "静安"


def test_staff_of_two_clinics_say_which_one_and_only_one_of_theirs(chain, clinic_a, clinic_b):
    from smileloop.clinics.enums import Role
    from smileloop.clinics.tests.factories import ClinicFactory

    other = ClinicFactory(chain=chain, code="SH03", name="徐汇门诊")
    director = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_a, clinic_b])
    scope = scope_for_staff(director)
    with pytest.raises(ValidationFailed) as unsaid:
        services.segment_create(chain=chain, name="两院", rule=LEADS, actor=director, scope=scope)
    with pytest.raises(ValidationFailed) as foreign:
        services.segment_create(chain=chain, name="两院", rule=LEADS, actor=director, scope=scope, clinic=other.id)
    assert [e.field for e in unsaid.value.errors] == ["clinic"] == [e.field for e in foreign.value.errors]
    assert not Segment.objects.exists()
    assert services.segment_create(chain=chain, name="两院", rule=LEADS, actor=director, scope=scope,
                                   clinic=clinic_b).clinic_id == clinic_b.id


def test_clinic_staff_see_the_chains_segments_and_their_clinics_not_other_clinics(director_scope, admin_scope,
                                                                                  chain, clinic_a, clinic_b):
    SegmentFactory(chain=chain, name="全连锁")
    SegmentFactory(chain=chain, name="静安的", clinic=clinic_a)
    theirs = SegmentFactory(chain=chain, name="浦东的", clinic=clinic_b)
    assert {s.name for s in selectors.segment_list(director_scope)} == {"全连锁", "静安的"}
    assert {s.name for s in selectors.segment_list(admin_scope)} == {"全连锁", "静安的", "浦东的"}
    with pytest.raises(Exception, match="not found"):
        selectors.segment_get(director_scope, theirs.id)


def test_the_api_refuses_a_directors_change_of_the_chains_segment(client, director_a, marketing, chain, clinic_a,
                                                                   clinic_b):
    segment = SegmentFactory(chain=chain, name="沉睡客户", rule=LEADS)
    body = {"name": "改名", "rule": LEADS}
    changed = api(client, "put", f"/api/segments/{segment.id}", body, staff=director_a)
    deleted = api(client, "delete", f"/api/segments/{segment.id}", staff=director_a, key="k-2")
    assert (changed.status_code, deleted.status_code) == (403, 403)
    assert "whole chain" in changed.json()["message"]
    segment.refresh_from_db()
    assert (segment.name, segment.is_active) == ("沉睡客户", True)
    # Marketing may file one for a clinic; a director may not file one for another clinic.
    made = api(client, "post", "/api/segments", {"name": "浦东潜客", "rule": LEADS, "clinic": clinic_b.code},
               staff=marketing, key="k-3")
    assert made.status_code == 201 and made.json()["clinic_id"] == clinic_b.id
    refused = api(client, "post", "/api/segments", {"name": "越权", "rule": LEADS, "clinic": clinic_b.id},
                  staff=director_a, key="k-4")
    assert refused.status_code == 403 and not Segment.objects.filter(name="越权").exists()
    own = api(client, "post", "/api/segments", {"name": "本院", "rule": LEADS}, staff=director_a, key="k-5")
    assert own.status_code == 201 and own.json()["clinic_id"] == clinic_a.id
    # A change that leaves clinic_id out keeps the owner.
    kept = api(client, "put", f"/api/segments/{made.json()['id']}", {"name": "浦东潜客2", "rule": LEADS},
               staff=marketing, key="k-6")
    assert kept.status_code == 200 and kept.json()["clinic_id"] == clinic_b.id


def test_the_page_of_the_chains_segment_offers_a_director_save_as_new_only(client, director_a, chain, clinic_a):
    segment = SegmentFactory(chain=chain, name="沉睡客户", rule=LEADS)
    client.force_login(director_a.user)
    html = client.get(reverse("segments:edit", args=[segment.id])).content.decode()
    assert 'data-testid="segment-read-only"' in html
    assert reverse("segments:delete", args=[segment.id]) not in html
    assert f'formaction="{reverse("segments:create")}"' in html
    form = {"name": "沉睡客户", "mode": "all", "c-x1-field": "stage", "c-x1-op": "eq", "c-x1-value": "member",
            "c-x1-group": ""}
    assert client.post(reverse("segments:edit", args=[segment.id]), form).status_code == 403
    assert client.post(reverse("segments:delete", args=[segment.id])).status_code == 403
    segment.refresh_from_db()
    assert segment.rule == LEADS and segment.is_active
    # "Save as a new segment" posts the same form to the create page: a copy of the clinic's.
    saved = client.post(reverse("segments:create"), {**form, "name": "本院沉睡"})
    assert saved.status_code in (200, 302, 303), saved.content.decode()[:500]
    copy = Segment.objects.get(name="本院沉睡")
    assert copy.clinic_id == clinic_a.id and copy.rule["all"][0]["value"] == "member"


def test_the_list_says_whose_each_segment_is(client, marketing, chain, clinic_b):
    SegmentFactory(chain=chain, name="全连锁")
    SegmentFactory(chain=chain, name="浦东的", clinic=clinic_b)
    client.force_login(marketing.user)
    html = client.get(reverse("segments:list"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The whole chain" in html and clinic_b.name in html
