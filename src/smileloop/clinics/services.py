"""Writes for chains, clinics, staff and API tokens."""

import getpass
import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_noop

from smileloop.clinics.enums import ROLE_PERMISSIONS, Perm, Role
from smileloop.clinics.lockout import login_failure_record, login_lockout_wait
from smileloop.clinics.models import ApiToken, Chain, Clinic, Staff
from smileloop.core.audit import audit_record
from smileloop.core.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed


@transaction.atomic
def staff_create(*, chain: Chain, username: str, name: str, role: str, clinics: list[Clinic] = (),
                 password: str | None = None, is_superuser: bool = False, password_temporary: bool = False,
                 actor=None, ip_address: str | None = None) -> Staff:
    """A member of staff with their login. `password_temporary`: a chain admin chose the first password (the admin's
    add form), so the new member of staff must replace it at their first login. `actor`: the admin who added them
    (audited as staff.create, with the role and clinics given; the seed and the set-up commands pass none)."""
    if role not in Role.values:
        raise ValidationFailed([FieldError("role", f"unknown role; use one of {', '.join(Role.values)}", role)])
    User = get_user_model()
    # "Alice" beside "alice": the lockout counts them as one (lockout._normal_username) and the add form refuses it
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed([FieldError("username", "is already taken", username)])
    user = User(username=username, is_staff=is_superuser or _opens_admin(role), is_superuser=is_superuser)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # two admins adding one username at the same moment: the second is told, not a 500
        raise ValidationFailed([FieldError("username", "is already taken", username)]) from None
    staff = Staff.objects.create(user=user, chain=chain, name=name, role=role,
                                 password_change_required=bool(password and password_temporary))
    if clinics:
        staff.clinics.set(clinics)
    if actor is not None:
        staff_access_audit(staff=staff, actor=actor, ip_address=ip_address)
    return staff


@transaction.atomic
def staff_attach(*, user, chain: Chain, name: str, role: str, clinics: list[Clinic] = (), actor=None,
                 ip_address: str | None = None) -> Staff:
    """A staff profile for a login that exists and has none (the operator's own, on a new installation); audited
    like staff_create when an admin (`actor`) attached it."""
    if role not in Role.values:
        raise ValidationFailed([FieldError("role", f"unknown role; use one of {', '.join(Role.values)}", role)])
    if Staff.objects.filter(user=user).exists():
        raise ValidationFailed([FieldError("user", "already has a staff profile", user.pk)])
    staff = Staff.objects.create(user=user, chain=chain, name=name, role=role)
    if clinics:
        staff.clinics.set(clinics)
    staff_admin_access_sync(staff=staff)
    if actor is not None:
        staff_access_audit(staff=staff, actor=actor, ip_address=ip_address)
    return staff


def staff_access_audit(*, staff: Staff, actor, before: tuple[str, set[int]] | None = None,
                       ip_address: str | None = None) -> None:
    """Who gave a member of staff which role and clinics, and when (PIPL: least privilege is only checkable if
    grants are on the record; Django's admin history names the fields, not their values). `before`: the role and
    clinic ids before an edit (nothing is written when neither changed); None: the member of staff is new
    (staff.create). Clinics are named by code, as staff know them."""
    clinic_ids = set(staff.clinics.values_list("pk", flat=True))
    role_before, clinics_before = before if before is not None else ("", set())
    if before is not None and role_before == staff.role and clinics_before == clinic_ids:
        return
    codes = dict(Clinic.objects.filter(pk__in=clinic_ids | clinics_before).values_list("pk", "code"))
    detail = {"username": staff.user.get_username(), "name": staff.name, "chain_id": staff.chain_id}
    if role_before != staff.role:
        detail |= {"role_from": role_before, "role_to": staff.role}
    for key, ids in (("clinics_added", clinic_ids - clinics_before), ("clinics_removed", clinics_before - clinic_ids)):
        if ids:
            detail[key] = ", ".join(sorted(codes.get(pk, str(pk)) for pk in ids))
    audit_record(actor=actor, action="staff.create" if before is None else "staff.access_change",
                 object_type="staff", object_id=staff.pk, detail=detail, ip_address=ip_address)


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


# --- a member of staff's login, managed by a chain admin (clinics.admin.StaffAdmin) ------------------------------

def staff_login_active(staff: Staff) -> bool:
    """The member of staff can log in and use their API tokens: their profile and their login are both on."""
    return staff.is_active and staff.user.is_active


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed([FieldError("reason", gettext_noop("Say why: it is written in the audit log."))])
    return reason


def _login_audit(*, action: str, staff: Staff, actor, reason: str, ip_address: str | None) -> None:
    audit_record(actor=actor, action=action, object_type="staff", object_id=staff.pk, reason=reason,
                 ip_address=ip_address, detail={"username": staff.user.get_username(), "name": staff.name,
                                                "chain_id": staff.chain_id})


def _sessions_end(user) -> int:
    """Delete the login's stored sessions (the database backend's; the only kind configured), so that a reactivation
    does not bring back a browser left logged in: they log in again. Sessions live at most SESSION_COOKIE_AGE (10 h),
    so the live ones are few enough to decode. Returns how many were deleted."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    if not settings.SESSION_ENGINE.endswith(".db"):
        return 0
    user_pk = str(user.pk)
    ended = [session.pk for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
             if str(session.get_decoded().get("_auth_user_id")) == user_pk]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


@transaction.atomic
def staff_deactivate(*, staff: Staff, actor, reason: str, ip_address: str | None = None) -> Staff:
    """A member of staff left: their profile and their login are switched off at once. Their next request is
    anonymous (clinics.auth's get_user refuses an inactive login, so every session of theirs ends), their API tokens
    are refused (selectors.token_staff_check), their stored sessions are deleted (a reactivation does not revive a
    browser left logged in), and the admin's door closes (staff_admin_access_sync). Nothing is
    deleted: the audit log, the timeline and the ledger keep naming them. Nobody switches off their own login."""
    reason = _reason_required(reason)
    if staff.user_id == getattr(actor, "pk", None):
        raise PermissionDenied(gettext_noop("You cannot deactivate your own login; ask another chain administrator."))
    if not staff_login_active(staff):
        raise Conflict(gettext_noop("This login is already deactivated."))
    _sessions_end(staff.user)
    return _login_switch(staff, active=False, action="staff.deactivate", actor=actor, reason=reason,
                         ip_address=ip_address)


@transaction.atomic
def staff_reactivate(*, staff: Staff, actor, reason: str, ip_address: str | None = None) -> Staff:
    """Switch a deactivated member of staff back on: they log in with their password (set a new one if they forgot
    it), their API tokens that were not revoked work again, and a chain admin's role opens the admin again."""
    reason = _reason_required(reason)
    if staff_login_active(staff):
        raise Conflict(gettext_noop("This login is already active."))
    return _login_switch(staff, active=True, action="staff.reactivate", actor=actor, reason=reason,
                         ip_address=ip_address)


def _login_switch(staff: Staff, *, active: bool, action: str, actor, reason: str, ip_address: str | None) -> Staff:
    """The profile and the login on or off together, the admin's door with them, audited."""
    staff.is_active = active
    staff.save(update_fields=["is_active", "updated_at"])
    staff.user.is_active = active
    staff.user.save(update_fields=["is_active"])
    staff_admin_access_sync(staff=staff)
    _login_audit(action=action, staff=staff, actor=actor, reason=reason, ip_address=ip_address)
    return staff


@transaction.atomic
def staff_password_set(*, staff: Staff, actor, password: str, reason: str, ip_address: str | None = None) -> Staff:
    """A new (temporary) password for a member of staff who forgot theirs, checked by Django's password validators.
    Their sessions elsewhere end (Django ties a session to the password it was opened with); the audit log records
    who set it and why, never the password."""
    reason = _reason_required(reason)
    user = staff.user
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise ValidationFailed([FieldError("password1", message) for message in error.messages]) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    # Someone else's choice is temporary: they pick their own at their next page (not when it is one's own).
    staff.password_change_required = user.pk != getattr(actor, "pk", None)
    staff.save(update_fields=["password_change_required", "updated_at"])
    _login_audit(action="staff.password_set", staff=staff, actor=actor, reason=reason, ip_address=ip_address)
    return staff


def staff_password_change(*, user, old_password: str, new_password: str, ip_address: str | None = None,
                          device: str | None = None) -> None:
    """A member of staff (or the operator) changes their own password, proving the current one. A wrong current
    password counts as a failed login (clinics.lockout, for the username or this trusted browser `device`, and the
    address), so an unlocked desk PC is no place to guess a colleague's password; while locked out it is refused. The
    new password passes Django's validators and differs from the current one. Done: a temporary password no longer
    needs changing, the audit log records it (never the password), and the login's other sessions end (Django ties
    a session to the password it was opened with; the caller keeps its own with update_session_auth_hash). The checks
    run outside the write's transaction: a lockout's audit row must stay when the change is refused."""
    username = user.get_username()
    wait = login_lockout_wait(username=username, ip=ip_address, device=device)
    if not wait and not user.check_password(old_password or ""):
        wait = login_failure_record(username=username, ip=ip_address, device=device)
        if not wait:
            raise ValidationFailed([FieldError("old_password", gettext_noop(
                "Your current password was entered incorrectly."))])
    if wait:
        raise ValidationFailed([FieldError("old_password", gettext_noop(
            "Too many wrong passwords: try again in a few minutes."))])
    errors = []
    if new_password == old_password:
        errors.append(FieldError("new_password1", gettext_noop("The new password must differ from the current one.")))
    else:
        try:
            password_validation.validate_password(new_password, user)
        except ValidationError as error:
            errors += [FieldError("new_password1", message) for message in error.messages]
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        staff = Staff.objects.filter(user=user).first()
        if staff is not None and staff.password_change_required:
            staff.password_change_required = False
            staff.save(update_fields=["password_change_required", "updated_at"])
        audit_record(actor=user, action="staff.password_change", object_type="staff" if staff else "user",
                     object_id=staff.pk if staff else user.pk, ip_address=ip_address,
                     detail={"username": username, "chain_id": staff.chain_id if staff else None})


@transaction.atomic
def token_create(*, username: str, name: str = "", replace: bool = False) -> str:
    """Create an API token for a staff login; returns the key (shown once, stored hashed). Audited like its revocation
    (api_token.create: whose token, its prefix and name, and the operating-system account that ran the command, as
    tokens are made on the server, by no staff member). `replace`: a rotation, so the login's live tokens of the same
    name are revoked in the same transaction (an integration's old key stops when its new one exists, never both
    live by oversight, never neither)."""
    # the login too (switched off in the operator's user admin): a token it could never use is no token
    staff = Staff.objects.select_related("user").filter(user__username=username, is_active=True,
                                                        user__is_active=True).first()
    if staff is None:
        raise NotFound(f"No active staff member with username {username!r}")
    if replace:
        api_tokens_revoke(tokens=ApiToken.objects.filter(staff=staff, name=name), actor=None,
                          detail={"os_user": _os_user(), "replaced": True})
    key = "sl_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(staff=staff, name=name, prefix=key[:10], key_hash=ApiToken.hash_key(key))
    audit_record(actor=None, action="api_token.create", object_type="api_token", object_id=token.pk,
                 detail={"prefix": token.prefix, "name": name, "staff_id": staff.pk, "username": username,
                         "chain_id": staff.chain_id, "os_user": _os_user()})
    return key


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else ""


@transaction.atomic
def api_tokens_revoke(*, tokens, actor, ip_address: str | None = None, detail: dict | None = None) -> int:
    """Revoke the tokens not yet revoked (an integration that leaked its key, a retired POS), one audit event each
    (api_token.revoke: whose token, its prefix and name, and `detail`): who cut off an integration is part of the
    record."""
    from django.utils import timezone

    now = timezone.now()
    revoked = list(tokens.filter(revoked_at__isnull=True).select_for_update().select_related("staff__user"))
    ApiToken.objects.filter(pk__in=[t.pk for t in revoked]).update(revoked_at=now)
    for token in revoked:
        audit_record(actor=actor, action="api_token.revoke", object_type="api_token", object_id=token.pk,
                     ip_address=ip_address, detail={"prefix": token.prefix, "name": token.name,
                                                    "staff_id": token.staff_id,
                                                    "username": token.staff.user.get_username(), **(detail or {})})
    return len(revoked)
