"""Writes for chains, clinics, staff and API tokens."""

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from smileloop.clinics.enums import ROLE_PERMISSIONS, Perm, Role
from smileloop.clinics.models import ApiToken, Chain, Clinic, Staff
from smileloop.core.errors import FieldError, NotFound, ValidationFailed


@transaction.atomic
def staff_create(*, chain: Chain, username: str, name: str, role: str, clinics: list[Clinic] = (),
                 password: str | None = None, is_superuser: bool = False) -> Staff:
    if role not in Role.values:
        raise ValidationFailed([FieldError("role", f"unknown role; use one of {', '.join(Role.values)}", role)])
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationFailed([FieldError("username", "is already taken", username)])
    user = User(username=username, is_staff=is_superuser or _opens_admin(role), is_superuser=is_superuser)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    staff = Staff.objects.create(user=user, chain=chain, name=name, role=role)
    if clinics:
        staff.clinics.set(clinics)
    return staff


@transaction.atomic
def staff_attach(*, user, chain: Chain, name: str, role: str, clinics: list[Clinic] = ()) -> Staff:
    """A staff profile for a login that exists and has none (the operator's own, on a new installation)."""
    if role not in Role.values:
        raise ValidationFailed([FieldError("role", f"unknown role; use one of {', '.join(Role.values)}", role)])
    if Staff.objects.filter(user=user).exists():
        raise ValidationFailed([FieldError("user", "already has a staff profile", user.pk)])
    staff = Staff.objects.create(user=user, chain=chain, name=name, role=role)
    if clinics:
        staff.clinics.set(clinics)
    staff_admin_access_sync(staff=staff)
    return staff


def _opens_admin(role: str) -> bool:
    return Perm.ADMIN_SITE in ROLE_PERMISSIONS.get(role, frozenset())


def staff_admin_access_sync(*, staff: Staff) -> None:
    """The login opens the Django admin (is_staff) exactly while it is a superuser's or an active staff member's
    whose role administers the chain: a front desk promoted to chain admin gets it, a chain admin moved to another
    role or switched off loses it (core.admin_scope would show them nothing, but the admin's door stays shut)."""
    user = staff.user
    is_staff = user.is_superuser or (staff.is_active and _opens_admin(staff.role))
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


def token_create(*, username: str, name: str = "") -> str:
    """Create an API token for a staff login; returns the key (shown once, stored hashed)."""
    staff = Staff.objects.filter(user__username=username, is_active=True).first()
    if staff is None:
        raise NotFound(f"No active staff member with username {username!r}")
    key = "sl_" + secrets.token_urlsafe(32)
    ApiToken.objects.create(staff=staff, name=name, prefix=key[:10], key_hash=ApiToken.hash_key(key))
    return key
