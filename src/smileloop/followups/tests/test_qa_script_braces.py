"""A step's script with a brace without its pair is refused when saved (QA sweep, 2026-12): it was saved, and every
task of the step then showed the template as written ("{name}您好{"), its variables never filled in."""

import pytest
from django.conf import settings
from django.urls import reverse

from smileloop.followups.models import PlaybookStep

pytestmark = pytest.mark.django_db


def _post_step(client, staff, playbook, step, script: str, lang: str):
    client.force_login(staff.user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    return client.post(reverse("followups:step_edit", args=[playbook.id, step.id]), {
        f"s{step.id}-delay_days": "0", f"s{step.id}-assignee_rule": "front_desk", f"s{step.id}-channel": "call",
        f"s{step.id}-sla_hours": "24", f"s{step.id}-script": script})


@pytest.mark.parametrize("script", ["{name}您好{", "{name}您好，满意吗}", "您好 {name"])
def test_a_script_with_a_stray_brace_is_refused_in_chinese_and_nothing_is_saved(client, chain_admin, playbooks,
                                                                               script):
    # given
    step = playbooks["recall"].steps.get(seq=1)
    before = step.script
    # when
    response = _post_step(client, chain_admin, playbooks["recall"], step, script, "zh-hans")
    # then
    assert response.status_code == 422
    assert "花括号不成对：变量应写成 {name} 这样的形式" in response.content.decode()
    step.refresh_from_db()
    assert step.script == before
    assert PlaybookStep.objects.filter(playbook=playbooks["recall"], script=script).count() == 0


def test_a_script_with_paired_braces_is_still_saved(client, chain_admin, playbooks):
    # given
    step = playbooks["recall"].steps.get(seq=1)
    # when
    response = _post_step(client, chain_admin, playbooks["recall"], step, "{name}您好，{clinic}提醒您复查", "en")
    # then
    assert response.status_code == 302
    assert PlaybookStep.objects.filter(playbook=playbooks["recall"], is_active=True,
                                       script="{name}您好，{clinic}提醒您复查").count() == 1
