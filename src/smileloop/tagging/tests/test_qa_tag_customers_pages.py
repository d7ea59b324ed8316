"""A page of a tag's patients past the last one says so (QA sweep, 2026-12): "?page=3" of a tag two patients carry
said "No patient in your clinics carries this tag", as if the tag were unused."""

import pytest
from django.conf import settings
from django.urls import reverse

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def carried(chain, clinic_a, interests):
    tag = TagFactory(group=interests, code="vip", name="重点客户")
    for name in ("王芳", "李娜"):
        CustomerTagFactory(customer=CustomerFactory(chain=chain, home_clinic=clinic_a, name=name), tag=tag)
    return tag


def _page(client, staff, tag, page: str):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return client.get(reverse("tagging:tag_customers", args=[tag.id]), {"page": page})


@pytest.mark.parametrize("page", ["3", "99999999999999999999"])
def test_a_page_past_the_last_says_so_and_links_back_to_the_first(client, marketing, carried, page):
    # when
    response = _page(client, marketing, carried, page)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "此页已超出带此标签患者的最后一页。" in html and 'href="?page=1"' in html
    assert "您所在门诊没有带此标签的患者" not in html


def test_the_first_page_lists_the_patients(client, marketing, carried):
    # when
    html = _page(client, marketing, carried, "1").content.decode()
    # then
    assert "王芳" in html and "李娜" in html and "此页已超出" not in html
