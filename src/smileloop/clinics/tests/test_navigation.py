"""The main navigation shows a staff member exactly the pages their role may open."""

import re

import pytest
from django.urls import reverse

from smileloop.clinics.context_processors import NAV_ITEMS
from smileloop.clinics.enums import CHAIN_ROLES, Role
from smileloop.clinics.tests.factories import StaffFactory

NAV_LINK = re.compile(r'<a href="([^"]+)" class="mainnav-link')


def _nav_links(html: str) -> list[str]:
    nav = html.split('<nav class="mainnav"', 1)[1].split("</nav>", 1)[0]
    return NAV_LINK.findall(nav)


@pytest.mark.parametrize("role", Role.values)
def test_every_entry_shown_opens_and_every_entry_hidden_is_refused(client, chain, clinic_a, role):
    staff = StaffFactory(chain=chain, role=role, clinics=[] if role in CHAIN_ROLES else [clinic_a])
    client.force_login(staff.user)
    shown = _nav_links(client.get(reverse("customers:list")).content.decode())
    assert reverse("customers:list") in shown
    for url_name, *_ in NAV_ITEMS:
        url = reverse(url_name)
        status = client.get(url).status_code
        if url in shown:
            assert status == 200, f"{role} sees {url_name} in the navigation, but the page answers {status}"
        else:
            assert status == 403, f"{role} does not see {url_name}, but the page answers {status}"


def test_a_front_desk_sees_no_configuration_and_an_admin_sees_everything(client, front_desk_a, chain_admin):
    client.force_login(front_desk_a.user)
    front = _nav_links(client.get(reverse("customers:list")).content.decode())
    for hidden in ("imports:upload", "membership:plans", "loyalty:config", "segments:list", "followups:board"):
        assert reverse(hidden) not in front
    client.force_login(chain_admin.user)
    admin = _nav_links(client.get(reverse("customers:list")).content.decode())
    assert admin == [reverse(name) for name, *_ in NAV_ITEMS]


def test_member_operations_configure_the_membership_and_loyalty_programmes(client, chain):
    staff = StaffFactory(chain=chain, role=Role.MEMBER_OPS, clinics=[])
    client.force_login(staff.user)
    shown = _nav_links(client.get(reverse("customers:list")).content.decode())
    for name in ("membership:plans", "loyalty:config"):
        assert reverse(name) in shown and client.get(reverse(name)).status_code == 200


def test_the_login_page_shows_no_navigation(client, chain):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert "mainnav-link" not in response.content.decode()
