"""The playbook pages say what a manager reads: a blank trigger parameter shows the number it stands for ("留空 = 3 天"),
and the consulted-not-treated playbook's steps read as the days after the visit its description names (3, 7, 14), not
as their delays after the trigger day (+0, +4, +11)."""

import re

import pytest
from django.conf import settings
from django.urls import reverse

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import Trigger
from smileloop.followups.models import Playbook
from smileloop.followups.services import playbook_create, playbook_update
from smileloop.followups.services.generate import followups_generate
from smileloop.followups.tests.test_consulted import came, consult_tasks, days
from smileloop.visits.enums import Category
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db


def _login(client, staff):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return client


def _field(html: str, name: str) -> str:
    """The field's block of the editor (its input and help text)."""
    start = html.index(f'name="{name}"')
    return html[html.rfind('<div class="field', 0, start):html.find('<div class="field', start)]


@pytest.mark.parametrize(("trigger", "name", "shown"), [
    (Trigger.CONSULTED_NOT_TREATED, "days_after_visit", ("3", "留空 = 3 天。")),
    (Trigger.PLAN_UNFINISHED, "days_without_appointment", ("14", "留空 = 14 天。")),
    (Trigger.RECALL, "months", ("6", "留空 = 6 个月。")),
    (Trigger.DORMANT, "months_without_visit", ("12", "留空 = 12 个月。")),
    (Trigger.BIRTHDAY_NEXT_MONTH, "days_before", ("30", "留空 = 30 天；改用下方的每月日期时，请清空此项。")),
])
def test_a_blank_parameter_shows_the_default_it_stands_for(client, chain, chain_admin, trigger, name, shown):
    # given a playbook of the chain's own saved with the parameter left blank
    playbook = playbook_create(chain_id=chain.id, trigger=trigger, data={"name": "自定义", "trigger_params": {}})
    # when the manager opens it, and the new-playbook page of the trigger
    edit = _login(client, chain_admin).get(reverse("followups:playbook_edit", args=[playbook.id])).content.decode()
    new = client.get(reverse("followups:playbook_new"), {"trigger": trigger}).content.decode()
    # then the blank field shows its default as placeholder and help text
    placeholder, help_text = shown
    for html in (edit, new):
        block = _field(html, name)
        assert f'placeholder="{placeholder}"' in block and help_text in block
        assert not re.search(rf'name="{name}"[^>]*value=', block)  # blank, not filled in


def test_the_recall_categories_say_what_none_ticked_means(client, chain, chain_admin):
    playbook = playbook_create(chain_id=chain.id, trigger=Trigger.RECALL, data={"name": "复查", "trigger_params": {}})
    html = _login(client, chain_admin).get(reverse("followups:playbook_edit", args=[playbook.id])).content.decode()
    assert "不勾选 = 检查、洁牙。" in html or "不勾选 = 洁牙、检查。" in html


def test_a_blank_days_field_saves_the_default_the_page_showed(client, chain, chain_admin, playbooks, clinic_a,
                                                               consult_item, today):
    # given the built-in consult playbook saved with its days cleared
    playbook = playbooks["consult_not_converted"]
    Playbook.objects.filter(chain=chain).exclude(pk=playbook.pk).update(is_active=False)
    response = _login(client, chain_admin).post(reverse("followups:playbook_edit", args=[playbook.id]), {
        "name": playbook.name, "goal": playbook.goal, "is_active": "on", "days_after_visit": ""})
    assert response.status_code == 302
    playbook.refresh_from_db()
    assert playbook.trigger_params == {}
    # when a patient came three days ago (the "留空 = 3 天" the page showed)
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    came(customer, today - days(3), consult_item)
    followups_generate(chain=chain, today=today, catchup_days=0)
    # then the call is made
    assert [t.customer_id for t in consult_tasks(playbook)] == [customer.id]


@pytest.fixture
def consult_item(chain):
    return ServiceItemFactory(chain=chain, code="CS01", name="初诊咨询", category=Category.EXAM, list_price_fen=0)


def _steps_cell(html: str, name: str) -> str:
    row = html[html.index(f">{name}</a>"):]
    row = row[:row.index("</tr>")]
    cell = row[row.index('data-testid="playbook-steps"'):]
    return re.sub(r"<[^>]+>", " ", cell[cell.index(">") + 1:cell.index("</td>")]).split()


def test_the_list_shows_the_consult_calls_as_days_after_the_visit_as_its_description_does(
        client, chain_admin, playbooks):
    # given the built-in playbooks
    consult = playbooks["consult_not_converted"]
    assert "到店后第 3、7、14 天" in consult.description
    # when the manager reads the list
    html = _login(client, chain_admin).get(reverse("followups:playbooks")).content.decode()
    # then the consult playbook's steps are the days after the visit; others keep their days after the trigger
    assert _steps_cell(html, "咨询未成交回访") == ["到店后", "第", "3", "天", "第", "7", "天", "第", "14", "天"]
    assert _steps_cell(html, "种植术后回访") == ["+1天", "+3天", "+7天", "+30天", "+90天"]
    # and they follow the trigger's days when a manager changes them
    playbook_update(playbook=consult, data={"trigger_params": {"days_after_visit": "5"}})
    html = client.get(reverse("followups:playbooks")).content.decode()
    assert _steps_cell(html, "咨询未成交回访") == ["到店后", "第", "5", "天", "第", "9", "天", "第", "16", "天"]


def test_the_editor_says_which_day_after_the_visit_each_step_calls_on(client, chain_admin, playbooks):
    consult = playbooks["consult_not_converted"]
    html = _login(client, chain_admin).get(reverse("followups:playbook_edit", args=[consult.id])).content.decode()
    assert "步骤天数从触发日（到店后第 3 天）算起：填 0 即在到店后第 3 天回访。" in html
    for day in (3, 7, 14):
        assert f"= 到店后第 {day} 天（触发天数 3 天 + 本步骤天数）。" in html
    assert "0 = 到店后第 3 天（即触发天数）。" in html  # the new step's form
    # another trigger's editor says nothing of visits
    other = client.get(reverse("followups:playbook_edit", args=[playbooks["postop_implant"].id])).content.decode()
    assert "到店后第" not in other
