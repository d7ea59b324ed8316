"""The 403 page's advice depends on who reads it: a clinic role is sent to its clinic director, a director (who would be
asked themselves) and a chain role to a chain administrator, with the permission the page needs and the roles that have
it; a chain administrator, who has every permission of the chain, is told the page is not for their role."""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.clinics.views import forbidden_advice, permission_denied

pytestmark = pytest.mark.django_db


def _text(response, testid: str) -> str:
    html = response.content.decode()
    marker = f'data-testid="{testid}">'
    assert marker in html, html
    return html.split(marker, 1)[1].split("</p>", 1)[0]


def test_a_clinic_director_refused_a_page_is_told_the_permission_and_to_ask_a_chain_administrator(
        client, director_a):
    # given a director, who has no Perm.CONFIG (programmes are member operations' and the chain admin's)
    client.force_login(director_a.user)
    # when
    response = client.get(reverse("membership:plans"))
    # then
    assert response.status_code == 403
    need, ask = _text(response, "forbidden-need"), _text(response, "forbidden-ask")
    assert "“configure programmes”" in need and "(Clinic director)" in need
    assert "Member operations, Chain admin" in need
    assert ask == "If your role should allow it, ask a chain administrator."
    assert "clinic director" not in ask.lower()


def test_a_front_desk_refused_a_page_is_sent_to_their_clinic_director(client, front_desk_a):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("customers:export"), {"reason": "月报"})
    assert response.status_code == 403
    assert "“export patient lists”" in _text(response, "forbidden-need")
    assert _text(response, "forbidden-ask") == "Ask your clinic director or a chain administrator."


def test_a_chain_role_is_sent_to_a_chain_administrator(client, chain):
    marketing = StaffFactory(chain=chain, role=Role.MARKETING, clinics=[])
    client.force_login(marketing.user)
    response = client.get(reverse("membership:plans"))
    assert response.status_code == 403
    assert _text(response, "forbidden-ask") == "If your role should allow it, ask a chain administrator."


def test_a_chain_administrator_is_told_the_page_is_not_for_their_role(chain_admin):
    # given a refusal no permission explains (a chain admin has them all)
    request = RequestFactory().get("/customers/1/")
    request.user = chain_admin.user
    # when
    response = permission_denied(request, PermissionDenied("Your role may not do this to the operator"))
    # then
    assert response.status_code == 403
    assert 'data-testid="forbidden-need"' not in response.content.decode()
    assert _text(response, "forbidden-ask") == ("This page is not available to the chain administrator role. The "
                                                "system operator can help.")


def test_a_refusal_that_names_no_permission_names_the_role(front_desk_a, director_a):
    assert forbidden_advice(front_desk_a, "Your role may not merge customers") == (
        "Your role (Front desk) may not do this.", "Ask your clinic director or a chain administrator.")
    assert forbidden_advice(director_a, "missing permission no.such") == (
        "Your role (Clinic director) may not do this.", "If your role should allow it, ask a chain administrator.")


def test_the_advice_is_in_simplified_chinese(client, director_a):
    client.force_login(director_a.user)
    with translation.override("zh-hans"):
        response = client.get(reverse("membership:plans"), headers={"Accept-Language": "zh-hans"})
    need, ask = _text(response, "forbidden-need"), _text(response, "forbidden-ask")
    assert "院长" in need and "会员运营、总部管理员" in need
    assert ask == "如果您的岗位应当可以操作，请联系总部管理员。"


def test_the_import_page_names_its_permission_as_the_other_pages_do(client, chain, clinic_a):
    assistant = StaffFactory(chain=chain, role=Role.ASSISTANT, clinics=[clinic_a])
    client.force_login(assistant.user)
    response = client.get(reverse("imports:upload"))
    assert response.status_code == 403
    assert "“import data”" in _text(response, "forbidden-need")
    assert _text(response, "forbidden-ask") == "Ask your clinic director or a chain administrator."
