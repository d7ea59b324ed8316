"""Who works a task: an assignee rule resolved along a fixed fallback chain, only to active staff of the
task's clinic.

The same `StaffDirectory` (one small query per chain: active staff with their clinics) drives both the
single-task path (`resolve`, e.g. a complaint) and the set-based path (`expression`, a SQL CASE built from
constants, used by the daily INSERT … SELECT and by reassignment UPDATEs), so both always agree.

Fallbacks (first active candidate of the task's clinic wins; pools are shared round-robin by customer id):
- consultant:          owning consultant → front desk → clinic director → chain admin
- treating_doctor:     treating doctor → owning consultant → front desk → clinic director → chain admin
- doctor_or_assistant: an assistant of the clinic (they make the routine post-op calls for the doctor)
                       → treating doctor → front desk → clinic director → chain admin
- front_desk:          front desk → owning consultant → clinic director → chain admin
- clinic_director:     clinic director → chain admin
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Case, ExpressionWrapper, F, IntegerField, Value, When
from django.db.models.functions import Cast, Coalesce
from django.db.models.lookups import Exact, In, IsNull

from smileloop.clinics.enums import Role
from smileloop.clinics.models import Staff
from smileloop.followups.enums import AssigneeRule

CONSULTANT, DOCTOR = "@consultant", "@doctor"  # personal sources; every other entry names a role pool
FALLBACKS: dict[str, tuple[str, ...]] = {
    AssigneeRule.CONSULTANT: (CONSULTANT, Role.FRONT_DESK, Role.CLINIC_DIRECTOR),
    AssigneeRule.TREATING_DOCTOR: (DOCTOR, CONSULTANT, Role.FRONT_DESK, Role.CLINIC_DIRECTOR),
    AssigneeRule.DOCTOR_OR_ASSISTANT: (Role.ASSISTANT, DOCTOR, Role.FRONT_DESK, Role.CLINIC_DIRECTOR),
    AssigneeRule.FRONT_DESK: (Role.FRONT_DESK, CONSULTANT, Role.CLINIC_DIRECTOR),
    AssigneeRule.CLINIC_DIRECTOR: (Role.CLINIC_DIRECTOR,),
}


@dataclass
class StaffDirectory:
    """Active staff of one chain: who works at which clinic, by role (ids sorted, so round-robin is stable)."""

    at_clinic: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    pools: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)
    chain_admin: int | None = None

    @classmethod
    def load(cls, chain_id: int, *, exclude: set[int] | None = None) -> "StaffDirectory":
        directory = cls()
        pools: dict[tuple[int, str], set[int]] = defaultdict(set)
        rows = Staff.objects.filter(chain_id=chain_id, is_active=True).values_list("id", "role", "clinics__id")
        for staff_id, role, clinic_id in rows:
            if exclude and staff_id in exclude:
                continue
            directory.active.add(staff_id)
            if role == Role.CHAIN_ADMIN and (directory.chain_admin is None or staff_id < directory.chain_admin):
                directory.chain_admin = staff_id
            if clinic_id is not None:
                directory.at_clinic[clinic_id].add(staff_id)
                pools[(clinic_id, role)].add(staff_id)
        directory.pools = {key: sorted(ids) for key, ids in pools.items()}
        return directory

    def _person_ok(self, staff_id: int | None, clinic_id: int | None) -> bool:
        if not staff_id:
            return False
        return staff_id in (self.at_clinic.get(clinic_id, ()) if clinic_id else self.active)

    def resolve(self, rule: str, *, clinic_id: int | None, customer_id: int, consultant_id: int | None = None,
                doctor_id: int | None = None) -> int | None:
        """The assignee for one task (the Python twin of `expression`)."""
        for source in FALLBACKS[rule]:
            if source == CONSULTANT and self._person_ok(consultant_id, clinic_id):
                return consultant_id
            if source == DOCTOR and self._person_ok(doctor_id, clinic_id):
                return doctor_id
            if source in (CONSULTANT, DOCTOR):
                continue
            pool = self.pools.get((clinic_id, source)) if clinic_id else None
            if pool:
                return pool[customer_id % len(pool)]
        return self.chain_admin

    def expression(self, rule: str, *, clinic, customer, consultant, doctor=None):
        """A SQL expression of the assignee. Each argument is a field path of the query the expression goes
        into, or an expression (e.g. a subquery for the customer's consultant inside an UPDATE)."""
        clinic, customer, consultant = _ref(clinic), _ref(customer), _ref(consultant)
        doctor = _ref(doctor) if doctor is not None else None
        parts = []
        for source in FALLBACKS[rule]:
            whens = []
            if source in (CONSULTANT, DOCTOR):
                person = consultant if source == CONSULTANT else doctor
                if person is None:
                    continue
                whens = [When(Exact(clinic, cid) & In(person, sorted(ids)), then=person)
                         for cid, ids in sorted(self.at_clinic.items()) if ids]
                if self.active:
                    whens.append(When(IsNull(clinic, True) & In(person, sorted(self.active)), then=person))
            else:
                for (cid, role), pool in sorted(self.pools.items()):
                    if role == source:
                        then = Value(pool[0]) if len(pool) == 1 else _round_robin(customer, pool)
                        whens.append(When(Exact(clinic, cid), then=then))
            if whens:
                # Cast: a CASE whose branches are all NULL would be typed text on PostgreSQL, and COALESCE
                # refuses to mix text and integer.
                parts.append(Cast(Case(*whens, default=Value(None), output_field=IntegerField()), IntegerField()))
        parts.append(Value(self.chain_admin, output_field=IntegerField()))
        return parts[0] if len(parts) == 1 else Coalesce(*parts, output_field=IntegerField())


def _ref(value):
    return F(value) if isinstance(value, str) else value


def _round_robin(customer, pool: list[int]):
    """CASE customer_id % n WHEN 0 THEN a WHEN 1 THEN b … END, as plain SQL on SQLite and PostgreSQL."""
    mod = ExpressionWrapper(customer % len(pool), output_field=IntegerField())
    return Case(*[When(Exact(mod, Value(i)), then=Value(sid)) for i, sid in enumerate(pool)],
                output_field=IntegerField())
