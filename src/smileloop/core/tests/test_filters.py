"""Report filters show what they applied: a missing or invalid value falls back to its initial on its own."""

import re

import pytest
from django.urls import reverse


def _selected(html: str, name: str) -> str:
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S).group(1)
    return re.search(r'<option value="([^"]*)"[^>]*selected', select).group(1)


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "period", "clinic"), [
    ("", "90", ""),                       # unbound: the defaults
    ("?page=2", "90", ""),                # bound by another parameter: still the default, shown as such
    ("?period=30", "30", ""),
    ("?period=7000", "90", ""),           # an invalid period: the default, shown
    ("?period=30&clinic=999999", "30", ""),  # an invalid clinic does not cost the valid period
])
def test_the_nps_page_shows_the_period_and_clinic_it_applied(client, director_a, query, period, clinic):
    client.force_login(director_a.user)
    html = client.get(reverse("surveys:nps") + query).content.decode()
    assert (_selected(html, "period"), _selected(html, "clinic")) == (period, clinic)


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "days"), [("?clinic=", "7"), ("?days=30", "30"), ("?days=5", "7")])
def test_the_team_board_shows_the_period_it_applied(client, director_a, query, days):
    client.force_login(director_a.user)
    html = client.get(reverse("followups:board") + query).content.decode()
    assert _selected(html, "days") == days
