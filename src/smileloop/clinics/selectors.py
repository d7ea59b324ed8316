"""Reads for clinics and staff; `scope_for_user` is where every request's Scope comes from."""

import datetime as dt
import zoneinfo

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from smileloop.clinics.enums import CHAIN_ROLES, ROLE_PERMISSIONS, Perm
from smileloop.clinics.hours import is_open
from smileloop.clinics.models import ApiToken, Clinic, Staff
from smileloop.core.audit import PATIENT_LIST_ACTIONS
from smileloop.core.errors import PermissionDenied
from smileloop.core.models import AuditEvent
from smileloop.core.scoping import Scope


def scope_for_staff(staff: Staff) -> Scope:
    clinic_ids = None if staff.role in CHAIN_ROLES else frozenset(staff.clinics.values_list("id", flat=True))
    return Scope(
        user_id=staff.user_id,
        staff_id=staff.id,
        chain_id=staff.chain_id,
        clinic_ids=clinic_ids,
        permissions=ROLE_PERMISSIONS.get(staff.role, frozenset()),
        role=staff.role,
    )


def active_staff_of(user) -> Staff | None:
    """The login's staff profile, or None for an anonymous user, a login without one, or an inactive one."""
    staff = getattr(user, "staff", None) if user is not None and user.is_authenticated else None
    return staff if staff is not None and staff.is_active else None


def clinic_is_open(clinic: Clinic, *, at: dt.datetime | None = None) -> bool:
    """Whether the clinic is open at `at` (now by default; an aware moment), read in its chain's time zone: a
    late-night clinic's Monday ["18:00", "02:00"] holds Tuesday 01:00 (clinics.hours). A clinic without hours given
    is not known to be open (False). Reads `clinic.chain` (select it with the clinic for a list)."""
    moment = (at or timezone.now()).astimezone(zoneinfo.ZoneInfo(clinic.chain.time_zone))
    return is_open(clinic.opening_hours or {}, moment)


def admin_chain_for_user(user) -> int | None:
    """The chain this login may administer in the Django admin (core.admin_scope), or None: an active staff member
    whose role carries Perm.ADMIN_SITE administers their own chain, nobody else any."""
    staff = active_staff_of(user)
    if staff is None or Perm.ADMIN_SITE not in ROLE_PERMISSIONS.get(staff.role, frozenset()):
        return None
    return staff.chain_id


def scope_for_user(user) -> Scope:
    """Raises PermissionDenied for a login without an active staff profile."""
    staff = active_staff_of(user)
    if staff is None:
        raise PermissionDenied("This login has no active staff profile")
    return scope_for_staff(staff)


def clinic_list(scope: Scope) -> QuerySet[Clinic]:
    qs = Clinic.objects.filter(chain_id=scope.chain_id, is_active=True)
    if scope.clinic_ids is not None:
        qs = qs.filter(id__in=scope.clinic_ids)
    return qs.order_by("id")


def staff_list(scope: Scope, *, roles: list[str] | None = None) -> QuerySet[Staff]:
    qs = Staff.objects.filter(chain_id=scope.chain_id, is_active=True)
    if scope.clinic_ids is not None:
        qs = qs.filter(clinics__in=scope.clinic_ids).distinct()
    if roles:
        qs = qs.filter(role__in=roles)
    return qs.order_by("id")


def audit_staff_list(scope: Scope) -> QuerySet[Staff]:
    """Staff whose audit events the scope may read: the chain's (chain roles; the admin's rule, core.admin), or those
    assigned to one of the scope's clinics (a clinic director: their clinics' staff, themselves included; not a chain
    role's staff, who have no clinic). Switched-off profiles too: a colleague who left keeps their history."""
    qs = Staff.objects.filter(chain_id=scope.chain_id)
    if scope.clinic_ids is not None:
        # a chain role's clinics are ignored (scope_for_staff) but kept when a front desk is promoted: such an
        # assignment must not hand a director every chain-wide event of theirs (reveals of other clinics' patients)
        qs = qs.filter(clinics__in=scope.clinic_ids).exclude(role__in=CHAIN_ROLES).distinct()
    return qs


def audit_event_list(scope: Scope, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
                     actor: Staff | None = None, action: str = "", customer_id: int | None = None,
                     clinic_id: int | None = None) -> QuerySet[AuditEvent]:
    """The audit events of the scope's staff (audit_staff_list) and, for a clinic role, the events about their clinics'
    patients by anyone (AuditEvent.clinic_id: a chain admin who looked at a patient's phone is in that clinic
    director's log), newest first: from `since` (inclusive) to `until` (exclusive), of one staff member (`actor`; the
    scope still applies, whoever is named), of one action, about one patient (their record's events, and the merge
    that took it into another), of one clinic (its staff's events and those about its patients). Events without an
    actor (the login lockout) are not staff's and never listed. Rows come with the staff members' names
    (`actor__staff`).

    The scope is written two ways, as measured on SQLite at 400,000 events (the planner follows the form): for a
    clinic role, `actor IN (their clinics' staff)`, read through the (actor, created_at) index, staff member by
    staff member (a small clinic's page in under a millisecond); for a chain role, whose staff write nearly every
    event, a per-row EXISTS, so the newest events are read through the created_at index and the page stops after
    50 (2.6 ms, against 108 ms for the IN form, which read and sorted every event). A patient's merges are found
    first (the action index; merges are few), so that the patient filter is two index look-ups OR'ed, not a scan."""
    actors = audit_staff_list(scope).order_by()
    if clinic_id is not None:
        actors = actors.filter(clinics__id=clinic_id)
    # the clinics whose patients' events are read whoever acted: the one filtered on (if the scope holds it), or the
    # scope's; none for a chain role without the filter (its staff are the whole chain already)
    if clinic_id is not None:
        patients_of = [clinic_id] if (scope.allows_clinic(clinic_id) and Clinic.objects.filter(
            pk=clinic_id, chain_id=scope.chain_id).exists()) else []
    else:
        patients_of = [] if scope.clinic_ids is None else sorted(scope.clinic_ids)
    if scope.clinic_ids is None:
        by_staff = Q(Exists(actors.filter(user_id=OuterRef("actor_id"))))
    else:
        by_staff = Q(actor_id__in=actors.values("user_id"))
    # (events with a clinic always have an actor: core.audit.audit_record; saying so here again would make SQLite
    # join the users first and sort every event of theirs, 1 s at 400,000 events instead of 3 ms)
    qs = AuditEvent.objects.filter(by_staff | Q(clinic_id__in=patients_of) if patients_of else by_staff)
    if actor is not None:
        qs = qs.filter(actor_id=actor.user_id)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    if action:
        qs = qs.filter(action=action)
    if customer_id is not None:
        merges = list(AuditEvent.objects.filter(action="customer.merge", detail__merged_id=customer_id)
                      .values_list("pk", flat=True))
        qs = qs.filter(Q(object_type="customer", object_id=str(customer_id)) | Q(pk__in=merges + _listing(customer_id)))
    return qs.select_related("actor__staff").order_by("-created_at", "-id")


def _listing(customer_id: int) -> list[int]:
    """The events on many patients at once (core.audit.PATIENT_LIST_ACTIONS: bulk tagging) whose list names this one,
    found like the merges first: through the action index, the lists read only of those few events."""
    events = AuditEvent.objects.filter(action__in=PATIENT_LIST_ACTIONS)
    if connection.vendor == "postgresql":
        events = events.filter(detail__customer_ids__contains=[customer_id])
    else:  # Django has no JSON containment on SQLite; its json_each reads the list
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        events = events.extra(where=[f"EXISTS (SELECT 1 FROM json_each({table}.detail, '$.customer_ids') AS ids "
                                     f"WHERE ids.value = %s)"], params=[customer_id])
    return list(events.values_list("pk", flat=True))


def token_authenticate(key: str) -> Staff | None:
    if not key:
        return None
    token = (
        ApiToken.objects.select_related("staff__user")
        .filter(key_hash=ApiToken.hash_key(key), revoked_at__isnull=True, staff__is_active=True,
                staff__user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.staff


def token_staff_check(key_hash: str) -> tuple | None:
    """(staff id, role, clinic-assignment fingerprint) of the live token with this hash (not revoked, staff and
    login active: a login switched off in the admin may no more use its tokens than log in), else None.

    The per-request check of the API hot path: one small SELECT on the unique key_hash index, without
    loading the token, staff and user rows (TokenAuth keeps those per process, see clinics.api). The
    fingerprint is (count, max id, sum of ids) of the staff member's clinic-assignment rows: adding or
    removing a clinic always changes it (assignment ids are never reused), so a cached Scope is dropped
    on the very next request after the change.
    """
    qn = connection.ops.quote_name
    token, staff = qn(ApiToken._meta.db_table), qn(Staff._meta.db_table)
    through = qn(Staff.clinics.through._meta.db_table)
    user = qn(Staff.user.field.related_model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.{qn('id')}, s.{qn('role')}, "
            f"(SELECT COUNT(*) FROM {through} c WHERE c.{qn('staff_id')} = s.{qn('id')}), "
            f"(SELECT COALESCE(MAX(c.{qn('id')}), 0) FROM {through} c WHERE c.{qn('staff_id')} = s.{qn('id')}), "
            f"(SELECT COALESCE(SUM(c.{qn('id')}), 0) FROM {through} c WHERE c.{qn('staff_id')} = s.{qn('id')}) "
            f"FROM {token} t JOIN {staff} s ON s.{qn('id')} = t.{qn('staff_id')} "
            f"JOIN {user} u ON u.{qn('id')} = s.{qn('user_id')} "
            f"WHERE t.{qn('key_hash')} = %s AND t.{qn('revoked_at')} IS NULL AND s.{qn('is_active')} "
            f"AND u.{qn('is_active')}",
            [key_hash])
        row = cursor.fetchone()
    return (row[0], row[1], (int(row[2]), int(row[3]), int(row[4]))) if row else None


def token_touch(key_hash: str) -> None:
    ApiToken.objects.filter(key_hash=key_hash).update(last_used_at=timezone.now())
