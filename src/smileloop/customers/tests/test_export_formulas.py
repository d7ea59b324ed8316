"""The customer export neutralises formulas (CSV injection) in every free-text column, including behind a leading
tab, carriage return or spaces, which spreadsheets skip before they look for one."""

import csv
import io

import pytest
from django.urls import reverse

from smileloop.customers.tests.factories import CustomerFactory


@pytest.mark.parametrize(("name", "community", "clinic"), [
    ("\t=1+1", " =2+2", '=HYPERLINK("http://x")'),
    ("\r@SUM(1)", "  -3+3", "+cmd"),
])
def test_export_neutralises_formulas_behind_tabs_and_spaces_and_in_clinic_names(client, director_a, chain, clinic_a,
                                                                                 name, community, clinic):
    # given
    clinic_a.name = clinic
    clinic_a.save()
    CustomerFactory(chain=chain, home_clinic=clinic_a, name=name, community=community)
    client.force_login(director_a.user)

    # when
    response = client.post(reverse("customers:export"), {"reason": "r"})

    # then
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    record = list(csv.reader(io.StringIO(body)))[1]
    assert [record[1], record[5], record[6]] == ["'" + name, "'" + clinic, "'" + community]
