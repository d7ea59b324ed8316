"""Audit-log writes. Every reveal of unmasked personal data, export and merge calls audit_record.

`STAFF_ACTIONS` names every action a staff member's row can carry, as the audit log page (clinics.audit_views)
offers them; `SYSTEM_ACTIONS` are written without an actor (the login lockout) and so never shown there. A test
(clinics/tests/test_audit_log.py) fails when an `action="…"` in the code is in neither list."""

from django.utils.translation import gettext_lazy as _

from smileloop.core.models import AuditEvent

STAFF_ACTIONS = {
    "phone.reveal": _("Phone number revealed"),
    "identity.reveal": _("External identities revealed"),  # customers.services.identities_reveal (openid, …)
    "customer.export": _("Customer list exported"),
    "customer.data_export": _("Patient's data copy"),
    "customer.merge": _("Records merged"),
    "customer.erase": _("Personal information erased"),
    "import.customers": _("Customers imported"),
    "import.orders": _("Orders imported"),
    "import.errors_export": _("Import errors downloaded"),  # imports.views.errors_csv: the rejected rows' cells
    "tag.bulk_apply": _("Patients tagged in bulk"),
    "tag.bulk_remove": _("Patients untagged in bulk"),
    "followup.take_over": _("Follow-up task taken over"),
    "followup.reassign": _("Follow-up task reassigned"),
    "audit.export": _("Audit log exported"),
    "staff.password_set": _("Staff password set"),  # clinics.services: a chain admin manages a staff login
    "staff.password_change": _("Own password changed"),  # clinics.services: staff change their own
    "staff.create": _("Staff member added"),  # clinics.services.staff_access_audit: who granted which role
    "staff.access_change": _("Staff role or clinics changed"),
    "staff.deactivate": _("Staff login deactivated"),
    "staff.reactivate": _("Staff login reactivated"),
    "api_token.revoke": _("API token revoked"),  # clinics.services.api_tokens_revoke
}
SYSTEM_ACTIONS = {"login.lockout", "login.unlock", "api_token.lockout", "api_token.create"}  # create: by the CLI
# Actions on many patients at once: their detail's "customer_ids" lists them all (the audit log page finds the event
# by any of them).
PATIENT_LIST_ACTIONS = ("tag.bulk_apply", "tag.bulk_remove")

# Labels of the codes an event's detail counts in a nested object ({"kinds": {"wechat_openid": 1}}), by detail key,
# registered by the app that writes them (its AppConfig.ready): the audit log shows them in the reader's language.
DETAIL_CODE_LABELS: dict[str, dict] = {}


def audit_detail_codes_register(key: str, labels: dict) -> None:
    DETAIL_CODE_LABELS[key] = labels


def audit_record(*, actor, action: str, object_type: str, object_id="", reason: str = "",
                 detail: dict | None = None, ip_address: str | None = None, clinic_id: int | None = None) -> AuditEvent:
    """Append an audit event. `clinic_id`: the clinic whose patient it is about (their home clinic), so that its
    director sees it whoever acted; kept only with an actor (the audit log page lists staff's events: a system
    event's clinic would be a row it must filter out, and that filter costs the page its index)."""
    actor = actor if getattr(actor, "pk", None) else None
    return AuditEvent.objects.create(
        clinic_id=clinic_id if actor is not None else None,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        reason=reason[:500],
        detail=detail or {},
        ip_address=ip_address,
    )
