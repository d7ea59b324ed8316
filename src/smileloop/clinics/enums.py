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
    # A person's PIPL rights (art. 45, 47): give them a copy of their data and erase it (customers.privacy).
    CUSTOMER_PRIVACY = "customer.privacy"
    IMPORT = "data.import"
    VISIT_EDIT = "visit.edit"
    HEALTH_VIEW = "health.view"  # treatment plans, procedures
    HEALTH_EDIT = "health.edit"  # record treatment plans, their progress and procedures (clinical records)
    CONFIG = "config.manage"
    # Retention engine (issue 4)
    TAG_APPLY = "tag.apply"  # tag / untag patients by hand (one or a list selection)
    TAG_MANAGE = "tag.manage"  # edit tag groups, tags, rule and keyword definitions
    SEGMENT_VIEW = "segment.view"  # preview segments (counts and first rows, within scope)
    SEGMENT_MANAGE = "segment.manage"  # save and edit segments; see the generated SQL
    TASK_WORK = "task.work"  # work one's own follow-up tasks
    TASK_BOARD = "task.board"  # see the team board; reassign tasks within one's clinics
    PLAYBOOK_MANAGE = "playbook.manage"  # edit follow-up playbooks
    SURVEY_VIEW = "survey.view"  # see survey answers and NPS
    # Loyalty (issue 3): hand out value nobody paid for at the desk — a voucher of a campaign, a friends-and-family
    # card outside a member's benefit. Bounded by the campaign and the programme, but still free money: not every
    # desk role. (A benefit's card, a top-up's bonus and a gift for points follow their own rules.)
    VALUE_ISSUE = "value.issue"
    # Give money back on staff's own decision (cancel a service package and refund its bill): clinic directors and
    # chain admins; a desk role sells, but does not decide refunds.
    PAYMENT_REFUND = "payment.refund"
    # Set the chain up in the Django admin (clinics, staff, catalogue, programmes), scoped to the chain
    # (core.admin_scope). Its login gets is_staff from this (clinics.services.staff_admin_access_sync).
    ADMIN_SITE = "admin.site"


_BASE = {Perm.CUSTOMER_VIEW, Perm.TASK_WORK, Perm.TAG_APPLY}
_LEAD = {Perm.SEGMENT_VIEW, Perm.SEGMENT_MANAGE, Perm.TASK_BOARD, Perm.SURVEY_VIEW, Perm.VALUE_ISSUE,
         Perm.PAYMENT_REFUND}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.FRONT_DESK: frozenset(_BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.VISIT_EDIT}),
    Role.CONSULTANT: frozenset(_BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.HEALTH_VIEW, Perm.HEALTH_EDIT}),
    Role.DOCTOR: frozenset(_BASE | {Perm.HEALTH_VIEW, Perm.HEALTH_EDIT, Perm.VISIT_EDIT}),
    Role.ASSISTANT: frozenset(_BASE | {Perm.HEALTH_VIEW}),
    Role.CLINIC_DIRECTOR: frozenset(
        _BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.HEALTH_VIEW, Perm.HEALTH_EDIT, Perm.VISIT_EDIT,
                 Perm.CUSTOMER_MERGE, Perm.IMPORT, Perm.CUSTOMER_EXPORT, Perm.CUSTOMER_PRIVACY} | _LEAD
    ),
    # Member operations run the programmes: plans, tiers and benefits, points, top-up bonuses, gifts and packages
    # (Perm.CONFIG gates exactly those pages).
    Role.MEMBER_OPS: frozenset(_BASE | {Perm.CUSTOMER_EDIT, Perm.CUSTOMER_MERGE, Perm.IMPORT, Perm.SEGMENT_VIEW,
                                        Perm.SEGMENT_MANAGE, Perm.TAG_MANAGE, Perm.CONFIG, Perm.VALUE_ISSUE}),
    Role.MARKETING: frozenset(_BASE | {Perm.SEGMENT_VIEW, Perm.SEGMENT_MANAGE, Perm.TAG_MANAGE, Perm.SURVEY_VIEW}),
    Role.CHAIN_ADMIN: frozenset(
        _BASE | {Perm.CUSTOMER_EDIT, Perm.PHONE_VIEW, Perm.HEALTH_VIEW, Perm.HEALTH_EDIT, Perm.VISIT_EDIT,
                 Perm.CUSTOMER_MERGE, Perm.IMPORT, Perm.CUSTOMER_EXPORT, Perm.CUSTOMER_PRIVACY, Perm.CONFIG,
                 Perm.TAG_MANAGE, Perm.PLAYBOOK_MANAGE, Perm.ADMIN_SITE} | _LEAD
    ),
}

# Roles that see every clinic of the chain; all others see only their assigned clinics.
CHAIN_ROLES = frozenset({Role.MEMBER_OPS, Role.MARKETING, Role.CHAIN_ADMIN})

# What each permission lets a role do, in words: the 403 page names the one a refused page needs.
PERM_LABELS: dict[str, str] = {
    Perm.CUSTOMER_VIEW: _("see patients"),
    Perm.CUSTOMER_EDIT: _("register and edit patients"),
    Perm.PHONE_VIEW: _("reveal full phone numbers and identities"),
    Perm.CUSTOMER_MERGE: _("merge duplicate records"),
    Perm.CUSTOMER_EXPORT: _("export patient lists"),
    Perm.CUSTOMER_PRIVACY: _("patients' privacy requests and the audit log"),
    Perm.IMPORT: _("import data"),
    Perm.VISIT_EDIT: _("record appointments and visits"),
    Perm.HEALTH_VIEW: _("see treatment plans"),
    Perm.HEALTH_EDIT: _("record treatment plans and procedures"),
    Perm.CONFIG: _("configure programmes"),
    Perm.TAG_APPLY: _("tag patients"),
    Perm.TAG_MANAGE: _("manage tags"),
    Perm.SEGMENT_VIEW: _("preview segments"),
    Perm.SEGMENT_MANAGE: _("save segments"),
    Perm.TASK_WORK: _("work follow-up tasks"),
    Perm.TASK_BOARD: _("the team's task board"),
    Perm.PLAYBOOK_MANAGE: _("edit follow-up playbooks"),
    Perm.SURVEY_VIEW: _("see survey answers"),
    Perm.VALUE_ISSUE: _("hand out vouchers and cards"),
    Perm.PAYMENT_REFUND: _("refund payments"),
    Perm.ADMIN_SITE: _("set the chain up in the admin"),
}
