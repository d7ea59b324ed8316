"""The consulted-not-treated playbook's two skips are parameters: `aftercare_days` (a visit that many days after a
surgical procedure is a post-operative check, not called; default 90, 0 = no such skip, at most 365) and
`skip_open_plan` (a patient with an open treatment plan is not called; default on). The editor shows their defaults
beside the blank fields, refuses bad values field by field in Chinese and saves nothing then, and the daily run's
statement reads them."""

import re

import pytest
from django.urls import reverse

from smileloop.core.errors import ValidationFailed
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TRIGGER_PARAM_DEFAULTS, Trigger
from smileloop.followups.models import Playbook
from smileloop.followups.services import playbook_update
from smileloop.followups.services.generate import followups_generate
from smileloop.followups.services.playbooks import trigger_params_clean
from smileloop.followups.tests.factories import ProcedureFactory, local
from smileloop.followups.tests.test_consulted import came, consult_tasks, days
from smileloop.followups.tests.test_editor_defaults_and_visit_days import _field, _login
from smileloop.visits.enums import Category, PlanStatus
from smileloop.visits.models import TreatmentPlan
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

CODE = "consult_not_converted"


@pytest.fixture
def consult_item(chain):
    return ServiceItemFactory(chain=chain, code="CS01", name="初诊咨询", category=Category.EXAM, list_price_fen=0)


@pytest.fixture
def implant(chain):
    return ServiceItemFactory(chain=chain, code="IM01", name="种植体植入", category=Category.IMPLANT, is_surgical=True,
                              list_price_fen=800_000)


@pytest.fixture
def playbook(chain, playbooks):
    """The built-in consult playbook, alone (the other playbooks' tasks are not what these tests read)."""
    Playbook.objects.filter(chain=chain).exclude(code=CODE).update(is_active=False)
    return playbooks[CODE]


def _visited_after_surgery(chain, clinic_a, consult_item, implant, today, name: str, surgery_days_before: int):
    """A free consultation three days ago, a surgery `surgery_days_before` days before it, nothing paid since."""
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, name=name)
    visit_day = today - days(3)
    came(customer, visit_day, consult_item)
    ProcedureFactory(customer=customer, item=implant, performed_on=visit_day - days(surgery_days_before))
    return customer


def _with_open_plan(chain, clinic_a, consult_item, today, name: str):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a, name=name)
    came(customer, today - days(3), consult_item)
    TreatmentPlan.objects.create(chain=chain, clinic=clinic_a, customer=customer, title="种植", steps_total=3,
                                 steps_done=1, planned_at=local(today - days(200)), status=PlanStatus.ACTIVE)
    return customer


def _called(playbook) -> set[str]:
    return {t.customer.name for t in consult_tasks(playbook)}


# --- the run reads the parameters ---------------------------------------------------------------------------------

def test_aftercare_days_zero_calls_the_patient_seen_after_surgery(chain, clinic_a, playbook, consult_item, implant,
                                                                  today):
    # given a patient whose consultation came 60 days after an implant (a post-operative check by default)
    _visited_after_surgery(chain, clinic_a, consult_item, implant, today, "术后复查", 60)
    # when the manager sets the aftercare window to 0 (no skip) and the daily run comes
    playbook_update(playbook=playbook, data={"trigger_params": {"days_after_visit": 3, "aftercare_days": "0"}})
    playbook.refresh_from_db()
    assert playbook.trigger_params["aftercare_days"] == 0 and playbook.param("aftercare_days") == 0
    followups_generate(chain=chain, today=today, catchup_days=0)
    # then the patient is called
    assert _called(playbook) == {"术后复查"}


def test_aftercare_days_thirty_skips_only_a_surgery_within_thirty_days(chain, clinic_a, playbook, consult_item,
                                                                       implant, today):
    # given surgeries 45, 30 (the window's edge) and 20 days before the consultation
    for name, before in (("45天前手术", 45), ("30天前手术", 30), ("20天前手术", 20)):
        _visited_after_surgery(chain, clinic_a, consult_item, implant, today, name, before)
    # when the window is 30 days
    playbook_update(playbook=playbook, data={"trigger_params": {"aftercare_days": 30}})
    followups_generate(chain=chain, today=today, catchup_days=2)
    # then only the one whose surgery is older than the window is called
    assert _called(playbook) == {"45天前手术"}


def test_open_plan_skip_off_calls_a_patient_with_an_open_plan(chain, clinic_a, playbook, consult_item, today):
    # given a patient with an open plan (steps left) who came for a consultation
    _with_open_plan(chain, clinic_a, consult_item, today, "开放方案")
    # when the skip is switched off
    playbook_update(playbook=playbook, data={"trigger_params": {"skip_open_plan": "no"}})
    playbook.refresh_from_db()
    assert playbook.trigger_params == {"skip_open_plan": False}
    followups_generate(chain=chain, today=today, catchup_days=0)
    # then they are called
    assert _called(playbook) == {"开放方案"}


def test_the_defaults_skip_a_recent_surgery_and_an_open_plan(chain, clinic_a, playbook, consult_item, implant,
                                                             today):
    # given the built-in parameters (neither new one stored) and patients on both sides of the 90 days
    assert "aftercare_days" not in playbook.trigger_params and "skip_open_plan" not in playbook.trigger_params
    assert (TRIGGER_PARAM_DEFAULTS["aftercare_days"], TRIGGER_PARAM_DEFAULTS["skip_open_plan"]) == (90, True)
    _visited_after_surgery(chain, clinic_a, consult_item, implant, today, "90天前手术", 90)
    _visited_after_surgery(chain, clinic_a, consult_item, implant, today, "91天前手术", 91)
    _with_open_plan(chain, clinic_a, consult_item, today, "开放方案")
    # when
    followups_generate(chain=chain, today=today, catchup_days=0)
    # then as before the parameters: only the surgery older than 90 days is called
    assert _called(playbook) == {"91天前手术"}


# --- validation -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("params", "clean", "bad"), [
    ({"aftercare_days": "0"}, {"aftercare_days": 0}, None),
    ({"aftercare_days": " 365 "}, {"aftercare_days": 365}, None),
    ({"aftercare_days": -1}, {}, "trigger_params.aftercare_days"),
    ({"aftercare_days": "366"}, {}, "trigger_params.aftercare_days"),
    ({"aftercare_days": "1.5"}, {}, "trigger_params.aftercare_days"),
    ({"aftercare_days": None}, {}, "trigger_params.aftercare_days"),
    ({"skip_open_plan": False}, {"skip_open_plan": False}, None),
    ({"skip_open_plan": "yes"}, {"skip_open_plan": True}, None),
    ({"skip_open_plan": "maybe"}, {}, "trigger_params.skip_open_plan"),
    ({"skip_open_plan": 2}, {}, "trigger_params.skip_open_plan"),
])
def test_the_parameters_are_validated(chain, params, clean, bad):
    got, errors = trigger_params_clean(Trigger.CONSULTED_NOT_TREATED, params, chain_id=chain.id)
    assert got == clean
    assert [e.field for e in errors] == ([bad] if bad else [])


def test_the_parameters_belong_to_the_consult_trigger_only(chain):
    _got, errors = trigger_params_clean(Trigger.PLAN_UNFINISHED, {"aftercare_days": 30, "skip_open_plan": False},
                                        chain_id=chain.id)
    assert sorted(e.field for e in errors) == ["trigger_params.aftercare_days", "trigger_params.skip_open_plan"]


def test_a_bad_value_through_the_service_writes_nothing(playbook):
    with pytest.raises(ValidationFailed):
        playbook_update(playbook=playbook, data={"name": "改名", "trigger_params": {"aftercare_days": -1}})
    playbook.refresh_from_db()
    assert (playbook.name, playbook.trigger_params) == ("咨询未成交回访", {"days_after_visit": 3})


# --- the editor -------------------------------------------------------------------------------------------------



def _post(client, playbook, **params):
    return client.post(reverse("followups:playbook_edit", args=[playbook.id]), {
        "name": "改了名字", "goal": playbook.goal, "is_active": "on", "days_after_visit": "3", **params})


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "不能为负数：请填写 0 到 365 天（填 0 = 近期做过手术也照常回访）"),
    ("400", "不能超过 365 天"),
    ("abc", "请填写 0 到 365 之间的整数天数（填 0 = 近期做过手术也照常回访）"),
])
def test_the_editor_refuses_a_bad_aftercare_window_on_its_field_and_saves_nothing(client, chain_admin, playbook,
                                                                                   value, message):
    response = _post(_login(client, chain_admin), playbook, aftercare_days=value, skip_open_plan="no")
    assert response.status_code == 422
    block = _field(response.content.decode(), "aftercare_days")
    assert "has-error" in block and message in block
    playbook.refresh_from_db()
    assert (playbook.name, playbook.trigger_params) == ("咨询未成交回访", {"days_after_visit": 3})


def test_the_editor_refuses_an_unknown_open_plan_choice(client, chain_admin, playbook):
    response = _post(_login(client, chain_admin), playbook, skip_open_plan="maybe")
    assert response.status_code == 422
    assert "has-error" in _field(response.content.decode(), "skip_open_plan")
    playbook.refresh_from_db()
    assert playbook.trigger_params == {"days_after_visit": 3}


def test_the_editor_shows_the_defaults_and_a_blank_keeps_them(client, chain_admin, playbook):
    # given the editor of the built-in playbook
    html = _login(client, chain_admin).get(reverse("followups:playbook_edit", args=[playbook.id])).content.decode()
    # then both parameters are blank, each saying what blank means
    aftercare = _field(html, "aftercare_days")
    assert 'placeholder="90"' in aftercare and "留空 = 90 天；填 0 = 近期做过手术也照常回访。" in aftercare
    assert not re.search(r'name="aftercare_days"[^>]*value=', aftercare)
    open_plan = _field(html, "skip_open_plan")
    assert "有未完成治疗计划的患者" in open_plan and "留空 = 跳过（不回访）。" in open_plan
    assert '<option value="" selected>' in open_plan
    # when saved with them left blank
    response = _post(client, playbook, aftercare_days="", skip_open_plan="")
    assert response.status_code == 302
    # then nothing is stored for them: the run uses the defaults
    playbook.refresh_from_db()
    assert playbook.trigger_params == {"days_after_visit": 3}
    assert (playbook.param("aftercare_days"), playbook.flag("skip_open_plan")) == (90, True)


def test_the_editor_saves_and_shows_chosen_values(client, chain_admin, playbook):
    response = _post(_login(client, chain_admin), playbook, aftercare_days="0", skip_open_plan="no")
    assert response.status_code == 302
    playbook.refresh_from_db()
    assert playbook.trigger_params == {"days_after_visit": 3, "aftercare_days": 0, "skip_open_plan": False}
    html = client.get(reverse("followups:playbook_edit", args=[playbook.id])).content.decode()
    assert 'value="0"' in _field(html, "aftercare_days")
    assert '<option value="no" selected>' in _field(html, "skip_open_plan")
