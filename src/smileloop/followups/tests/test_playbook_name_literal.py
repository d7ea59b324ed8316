"""A playbook's name is the chain's text, shown as written wherever its tasks appear: only a step's script is a
template ({name} there is the patient). Reported: a playbook named "{{name}}" showed as "{name}" in its tasks."""

import datetime as dt

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from smileloop.customers.models import Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import Outcome
from smileloop.followups.models import FollowupTask, Playbook
from smileloop.followups.services import complaint_task_open, followup_complete

pytestmark = pytest.mark.django_db

NAME = "{{name}}回访 {clinic} 100%"


def _get(client, staff, url):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return client.get(url).content.decode()


def test_a_playbook_named_like_a_script_variable_shows_its_name_as_written_with_its_tasks(
        client, chain, clinic_a, front_desk_a, director_a, playbooks):
    # given a playbook whose name looks like a template, and one of its tasks, due an hour ago
    Playbook.objects.filter(pk=playbooks["complaint"].pk).update(name=NAME)
    customer = CustomerFactory(chain=chain, name="王芳", home_clinic=clinic_a, mobile="+8613800138001")
    task = complaint_task_open(customer=customer, clinic=clinic_a, brief="", anchor_key="t:1")
    FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a,
                                                   due_at=timezone.now() - dt.timedelta(hours=1))
    # when its pages are read, and it is completed
    pages = {url: _get(client, front_desk_a, url) for url in (
        reverse("followups:inbox"), reverse("followups:task", args=[task.id]),
        reverse("customers:detail", args=[customer.id]))}
    pages["board"] = _get(client, director_a, reverse("followups:board"))
    task.refresh_from_db()
    followup_complete(task=task, outcome=Outcome.REACHED, actor=front_desk_a, note="已回电")
    pages["timeline"] = _get(client, front_desk_a, reverse("customers:detail", args=[customer.id]))
    # then each shows the name as written (HTML-escaped only), never a formatted "{name}"
    for where, html in pages.items():
        assert NAME in html, where
        assert html.count("{name}") == html.count("{{name}}"), where
    assert f"{NAME}：" in pages["timeline"]
    entry = Interaction.objects.get(customer=customer, data__followup_task_id=task.id)
    assert entry.text.startswith(f"{NAME}: reached")
