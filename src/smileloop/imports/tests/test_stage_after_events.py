"""`customers.services.stage_after_events` (the stage after a customer's paid bills, without the database: what the
orders import's stage_moves writes for a whole chunk in one statement) is the rule customer_stage_advance applies
bill by bill (`_stage_rule`, `_revives`). Before, the import restated the rule itself, and only a twin test of a few
people pinned the two together; here every stage, stage reached, time set and run of bills is compared."""

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from smileloop.customers.enums import STAGE_PROGRESS, STAGE_SIDE, Stage
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_stage_advance, stage_after_events
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.lifecycle.services import revival_cutoff

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)
# the bills' days ago, oldest first: recent, older than four weeks, older than the dormant threshold, an old one then
# a recent one, a day before a recent marking
BILLS = [[3], [60], [400], [400, 10], [30], [6, 2]]
SET_DAYS_AGO = [None, 5, 90]


def _cases():
    """Progress stages with a few runs (a bill never takes them down); the side states with every run."""
    for stage in STAGE_PROGRESS:
        for reached in sorted({stage, Stage.MEMBER}, key=STAGE_PROGRESS.index)[-2:]:
            if STAGE_PROGRESS.index(reached) >= STAGE_PROGRESS.index(stage):
                for bills in ([3], [400]):
                    yield stage, reached, 90, bills
    for stage, reached, days, bills in itertools.product(STAGE_SIDE, (Stage.LEAD, Stage.ARRIVED, Stage.TREATED,
                                                                      Stage.MEMBER, Stage.REFERRER),
                                                         SET_DAYS_AGO, BILLS):
        yield stage, reached, days, bills


def test_the_stage_after_paid_bills_is_what_recording_them_one_by_one_gives(chain):
    # given a customer of every stage, stage reached and time set, each with a run of paid bills
    now = timezone.now()
    cases = list(_cases())
    people = [CustomerFactory(chain=chain, stage=stage, stage_reached=reached,
                              stage_changed_at=None if days is None else now - days * DAY)
              for stage, reached, days, _bills in cases]
    cutoff_reads = []

    def cutoff():
        cutoff_reads.append(1)
        return revival_cutoff(chain.id)

    for (stage, reached, days, bills), person in zip(cases, people, strict=True):
        times = [now - d * DAY for d in bills]
        # when the pure rule computes the stage after them
        after = stage_after_events(stage=stage, reached=reached, changed_at=None if days is None else now - days * DAY,
                                   events_at=times, to=Stage.TREATED, now=now, cutoff=cutoff)
        # and customer_stage_advance records them one by one, oldest first
        moved = [customer_stage_advance(customer=person.pk, to=Stage.TREATED, cause="paid", at=at, event_at=at)
                 for at in times]
        # then both name the same first bill that moved them, and the same stage and stage reached
        first = moved.index(True) if True in moved else None
        stored = Customer.objects.values_list("stage", "stage_reached").get(pk=person.pk)
        case = (stage, reached, days, bills)
        assert (None if after is None else after[0]) == first, case
        if after is not None:
            assert after[1:] == stored, case
        else:
            assert stored == (stage, reached), case
    # and the chain's revival cutoff is read only for old bills of dormant or lost customers
    assert 0 < len(cutoff_reads) < len(cases)


def test_a_side_state_is_no_stage_to_move_to_on_events():
    with pytest.raises(ValueError):
        stage_after_events(stage=Stage.LEAD, reached=Stage.LEAD, changed_at=None, events_at=[], to=Stage.DORMANT,
                           now=timezone.now(), cutoff=timezone.now)
