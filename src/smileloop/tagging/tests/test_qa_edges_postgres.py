"""Two staff tagging or untagging one patient with one tag at the same moment, on PostgreSQL (threads behind a
barrier, each with its own connection and the 360 page): one row, one timeline entry per change, no 500. SQLite
serialises writers, so these run on PostgreSQL only."""

import pytest
from django.test import Client
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.testing import postgresql_only, writers_run
from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory, TagGroupFactory

pytestmark = [pytest.mark.django_db(transaction=True), postgresql_only]

HX = {"HTTP_HX_REQUEST": "true"}



def _staff(chain, clinic, n):
    return [StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic], user__username=f"desk{i}")
            for i in range(n)]


def _post_all(staff, url, data):
    def writer(i):
        client = Client()
        client.force_login(staff[i].user)
        return [client.post(url, data, **HX).status_code]

    return writers_run(writer, len(staff))


def _entries(customer, action):
    return Interaction.objects.filter(customer=customer, data__action=action).count()


def test_two_staff_adding_the_same_tag_at_once_make_one_row_and_one_timeline_entry(chain, clinic_a):
    tag = TagFactory(group=TagGroupFactory(chain=chain), code="vip", name="重点客户")
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    staff = _staff(chain, clinic_a, 4)

    statuses, errors = _post_all(staff, reverse("tagging:customer_add", args=[patient.pk]), {"tag": tag.pk})

    assert errors == [] and statuses == [200] * 4
    [row] = CustomerTag.objects.filter(customer=patient, tag=tag)
    assert row.set_by in staff
    assert _entries(patient, "tag.add") == 1
    assert Interaction.objects.get(customer=patient, data__action="tag.add").author == row.set_by


def test_two_staff_removing_the_same_tag_at_once_write_one_timeline_entry(chain, clinic_a):
    tag = TagFactory(group=TagGroupFactory(chain=chain), code="vip", name="重点客户")
    patient = CustomerFactory(chain=chain, home_clinic=clinic_a)
    staff = _staff(chain, clinic_a, 4)
    tag_apply(customer=patient, tag=tag, actor=staff[0])

    statuses, errors = _post_all(staff, reverse("tagging:customer_remove", args=[patient.pk]), {"tag": tag.code})

    assert errors == [] and statuses == [200] * 4
    assert not CustomerTag.objects.filter(customer=patient, tag=tag).exists()
    assert (_entries(patient, "tag.add"), _entries(patient, "tag.remove")) == (1, 1)
