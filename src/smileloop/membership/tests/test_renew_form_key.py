"""The card's renew form posted without the key its page renders (hand-made, a page cached from before) is refused
saying so, on the form, and the form shown again carries a new key: it was a 422 without a word (the error sat on the
hidden field, which no page shows)."""

import re

import pytest
from django.urls import reverse

from smileloop.membership import services
from smileloop.membership.models import Membership
from smileloop.membership.tests.conftest import NOW

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
KEY = re.compile(r'name="key" value="([^"]*)"')


@pytest.mark.parametrize("key", [None, "", "a\x00b", "k" * 101], ids=["missing", "blank", "NUL", "too long"])
def test_a_renewal_without_a_usable_key_says_what_is_wrong_and_renews_nothing(client, front_desk_a, wang, paid_plan,
                                                                              annual_tier, key):
    # given a year's paid membership: the card offers the renew form
    services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    before = list(Membership.objects.values_list("id", "fee_fen", "expires_at"))
    client.force_login(front_desk_a.user)
    # when the renewal comes without a usable key
    response = client.post(reverse("membership:renew", args=[wang.id]),
                           {"fee_yuan": "899"} | ({} if key is None else {"key": key}), headers=HTMX)
    # then the renew form says why, nothing is renewed, and the form shown again has a key of its own
    assert response.status_code == 422
    form = response.text.split('id="membership-renew-errors"', 1)[1]
    assert "This form is incomplete (its key is missing): reload the page and try again." in form.split("</div>")[0]
    assert list(Membership.objects.values_list("id", "fee_fen", "expires_at")) == before
    [new_key] = KEY.findall(response.text)
    assert re.fullmatch(r"[0-9a-f]{32}", new_key)
    # and sent again from it, the renewal is taken
    again = client.post(reverse("membership:renew", args=[wang.id]), {"fee_yuan": "899", "key": new_key},
                        headers=HTMX)
    assert again.status_code == 200
    assert Membership.objects.get(customer=wang).fee_fen == 2 * 89_900


def test_a_chinese_reader_is_told_in_chinese(client, front_desk_a, wang, paid_plan, annual_tier):
    services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    client.force_login(front_desk_a.user)
    response = client.post(reverse("membership:renew", args=[wang.id]), {"fee_yuan": "899"},
                           headers=HTMX | {"Accept-Language": "zh-hans"})
    assert response.status_code == 422
    assert "表单不完整（缺少表单标识）：请刷新页面后重试。本次未记录任何内容。" in response.text
