"""Writes for chains, clinics, staff and API tokens."""

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from smileloop.clinics.enums import Role
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
    user = User(username=username, is_staff=is_superuser or role == Role.CHAIN_ADMIN, is_superuser=is_superuser)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    staff = Staff.objects.create(user=user, chain=chain, name=name, role=role)
    if clinics:
        staff.clinics.set(clinics)
    return staff


def token_create(*, username: str, name: str = "") -> str:
    """Create an API token for a staff login; returns the key (shown once, stored hashed)."""
    staff = Staff.objects.filter(user__username=username, is_active=True).first()
    if staff is None:
        raise NotFound(f"No active staff member with username {username!r}")
    key = "sl_" + secrets.token_urlsafe(32)
    ApiToken.objects.create(staff=staff, name=name, prefix=key[:10], key_hash=ApiToken.hash_key(key))
    return key
