"""Audit-log writes. Every reveal of unmasked personal data, export and merge calls audit_record."""

from smileloop.core.models import AuditEvent


def audit_record(*, actor, action: str, object_type: str, object_id="", reason: str = "",
                 detail: dict | None = None, ip_address: str | None = None) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        reason=reason[:500],
        detail=detail or {},
        ip_address=ip_address,
    )
