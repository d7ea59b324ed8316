from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    FRONT_DESK = "front_desk", _("Front desk")
    CONSULTANT = "consultant", _("Consultant")
    DOCTOR = "doctor", _("Doctor")
    ASSISTANT = "assistant", _("Assistant")
    CLINIC_DIRECTOR = "clinic_director", _("Clinic director")
    MEMBER_OPS = "member_ops", _("Member operations")
    MARKETING = "marketing", _("Marketing")
    CHAIN_ADMIN = "chain_admin", _("Chain admin")


class Perm:
    """Permission names. Roles carry permissions (ROLE_PERMISSIONS); code checks permissions, not roles."""

    CUSTOMER_VIEW = "customer.view"
    CUSTOMER_EDIT = "customer.edit"
    PHONE_VIEW = "customer.phone_view"  # may reveal full phone numbers (audited)
    CUSTOMER_MERGE = "customer.merge"
    CUSTOMER_EXPORT = "customer.export"
    IMPORT = "data.import"
    VISIT_EDIT = "visit.edit"
    HEALTH_VIEW = "health.view"  # treatment plans, procedures
    CONFIG = "config.manage"


_BASE = {Perm.CUSTOMER_VIEW}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.FRONT_DESK: frozenset(_BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.VISIT_EDIT}),
    Role.CONSULTANT: frozenset(_BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.HEALTH_VIEW}),
    Role.DOCTOR: frozenset(_BASE | {Perm.HEALTH_VIEW, Perm.VISIT_EDIT}),
    Role.ASSISTANT: frozenset(_BASE | {Perm.HEALTH_VIEW}),
    Role.CLINIC_DIRECTOR: frozenset(
        _BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.HEALTH_VIEW, Perm.VISIT_EDIT, Perm.CUSTOMER_MERGE,
                 Perm.IMPORT, Perm.CUSTOMER_EXPORT}
    ),
    Role.MEMBER_OPS: frozenset(_BASE | {Perm.CUSTOMER_EDIT, Perm.CUSTOMER_MERGE, Perm.IMPORT}),
    Role.MARKETING: frozenset(_BASE),
    Role.CHAIN_ADMIN: frozenset(
        _BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.HEALTH_VIEW, Perm.VISIT_EDIT, Perm.CUSTOMER_MERGE,
                 Perm.IMPORT, Perm.CUSTOMER_EXPORT, Perm.CONFIG}
    ),
}

# Roles that see every clinic of the chain; all others see only their assigned clinics.
CHAIN_ROLES = frozenset({Role.MEMBER_OPS, Role.MARKETING, Role.CHAIN_ADMIN})
