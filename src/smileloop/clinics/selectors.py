"""Reads for clinics and staff; `scope_for_user` is where every request's Scope comes from."""

from django.db.models import QuerySet
from django.utils import timezone

from smileloop.clinics.enums import CHAIN_ROLES, ROLE_PERMISSIONS
from smileloop.clinics.models import ApiToken, Clinic, Staff
from smileloop.core.errors import PermissionDenied
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


def scope_for_user(user) -> Scope:
    """Raises PermissionDenied for a login without an active staff profile."""
    staff = getattr(user, "staff", None) if user is not None and user.is_authenticated else None
    if staff is None or not staff.is_active:
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


def token_authenticate(key: str) -> Staff | None:
    if not key:
        return None
    token = (
        ApiToken.objects.select_related("staff__user")
        .filter(key_hash=ApiToken.hash_key(key), revoked_at__isnull=True, staff__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.staff
