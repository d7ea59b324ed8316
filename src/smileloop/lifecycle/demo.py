"""Demo lifecycle stages: the seed bulk-loads visits, orders, appointments and memberships without going through
the event services, so every stage is re-derived from those facts in one set-based pass (stages_derive),
which also moves the long-absent patients to dormant and lost with their timeline events. Idempotent: a
second load changes nothing."""

import datetime as dt

from smileloop.clinics.models import Chain
from smileloop.lifecycle.services import stages_derive


def demo_load(*, chain: Chain, today: dt.date) -> dict:
    return stages_derive(chain=chain, today=today)
