import datetime as dt

import pytest

from smileloop.customers.models import Customer, Interaction
from smileloop.demo.services import chain_seed
from smileloop.followups.bench import bench_followups
from smileloop.followups.demo import demo_load
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask, Playbook

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 23)


@pytest.fixture
def seeded():
    from smileloop.giftcards.tests.factories import ProgrammeFactory
    from smileloop.membership.tests.factories import MembershipFactory, TierFactory

    chain = chain_seed(customers=150, clinics=2, years=2, seed=3, today=TODAY).chain
    tier = TierFactory(plan__chain=chain)
    for customer in Customer.objects.filter(chain=chain, visit_count__gt=0).order_by("id")[:5]:
        MembershipFactory(customer=customer, tier=tier)
    ProgrammeFactory(chain=chain, code="friend-card", reminder_days=[7, 30])
    return chain


def test_the_demo_has_tasks_due_today_for_every_playbook_and_a_worked_history(seeded):
    # when
    result = demo_load(chain=seeded, today=TODAY)
    again = demo_load(chain=seeded, today=TODAY)
    # then
    assert result["loaded"] and result["playbooks_without_tasks_today"] == []
    codes = set(Playbook.objects.filter(chain=seeded).values_list("code", flat=True))
    due_today = set(FollowupTask.objects.filter(due_at__date=TODAY).values_list("playbook__code", flat=True))
    assert due_today == codes
    done = FollowupTask.objects.filter(status=TaskStatus.DONE)
    assert done.count() > 20
    assert Interaction.objects.filter(data__followup_task_id__isnull=False).count() >= done.count()
    assert again == {"installed": 0, "loaded": False}


def test_the_bench_shows_a_second_run_creates_nothing_and_cleans_up(seeded):
    result = bench_followups(chain=seeded, today=TODAY)
    assert result["tasks_created"] > 0
    assert result["second_run_created"] == 0
    assert {"first_run_s", "second_run_s", "seconds_by_playbook"} <= set(result)
    assert not FollowupTask.objects.exists()
