"""Display filters for staff pages: masked phones and money in yuan (stored as integer fen)."""

from django import template

from smileloop.clinics.enums import ROLE_PERMISSIONS, Perm
from smileloop.clinics.selectors import active_staff_of
from smileloop.core.money import yuan_grouped
from smileloop.customers.enums import InteractionKind
from smileloop.customers.normalize import (
    identity_mask,
    phone_display,
    phone_likes_masked,
    phone_mask,
    phones_masked,
)
from smileloop.customers.timeline import timeline_text

register = template.Library()


@register.filter
def masked_phone(e164: str | None) -> str:
    """+8613800138000 → 138****8000."""
    return phone_mask(e164)


@register.filter
def identity_masked(identity) -> str:
    """An external identity as every role sees it until an audited reveal: oAbC****Yz01, 139****5678; a PMS id in
    full (normalize.identity_mask)."""
    return identity_mask(identity.kind, identity.external_id)


@register.filter(is_safe=True)
def phones_for(text, request) -> str:
    """Free text that may hold someone's number (a patient's notes, timeline texts, import cells), as the reader
    may see it: `{{ customer.notes|phones_for:request }}`. Chinese mobiles in it are masked (138****8000) unless the
    reader's role may see phones (Perm.PHONE_VIEW), as the phone fields are; no request or no staff profile masks
    (fail closed). Display only, the stored text is unchanged. Safe in, safe out: only digits become '*'."""
    if not text:
        return text
    return text if may_see_phones(request) else phones_masked(text)


@register.filter(is_safe=True)
def phone_likes_for(text, request) -> str:
    """phones_for, with numbers that are nearly a mobile masked too (an import's rejected phone cells)."""
    if not text:
        return text
    return text if may_see_phones(request) else phone_likes_masked(text)


def may_see_phones(request) -> bool:
    """The role's permissions only (as the navigation reads them): the staff profile is the login's, already
    loaded by the view, so this costs no query."""
    staff = active_staff_of(getattr(request, "user", None))
    return staff is not None and Perm.PHONE_VIEW in ROLE_PERMISSIONS.get(staff.role, frozenset())


@register.filter
def interaction_text(interaction) -> str:
    """What the system wrote (stage changes, visits, follow-up outcomes, surveys, imports, merges) in the reader's
    language; what people wrote as written (customers.timeline). A call, chat, SMS or note is what a person wrote
    unless a service wrote it, which it says in `data` (a follow-up outcome, a family member added): a note
    "visit completed" stays as typed."""
    if interaction.kind in WRITTEN_BY_PEOPLE and not interaction.data:
        return interaction.text
    return timeline_text(interaction.text)


@register.filter
def sentence(text: str) -> str:
    """A sentence the system stored in English (customers.timeline), in the reader's language; other text as is."""
    return timeline_text(text)


WRITTEN_BY_PEOPLE = {InteractionKind.CALL, InteractionKind.CHAT, InteractionKind.SMS, InteractionKind.NOTE}


@register.filter
def full_phone(e164: str | None) -> str:
    return phone_display(e164)


@register.filter
def yuan(fen: int | None) -> str:
    """1234550 → '12,345.50' (no currency sign; templates add ¥)."""
    return yuan_grouped(fen)


@register.filter
def refunds_grouped(refunds) -> list[dict]:
    """A bill's refunds as staff made them: the rows one refund wrote, one per payment method (a checkout refund, or
    an orders-API refund naming no method on a bill paid several ways), in one pill with their total, each method's
    part named. Rows of one refund are consecutive and share their time and reason."""
    groups: list[dict] = []
    for refund in refunds:
        last = groups[-1] if groups else None
        if last is not None and (last["at"], last["reason"]) == (refund.refunded_at, refund.reason):
            last["parts"].append((refund.get_method_display(), refund.amount_fen))
            last["total"] += refund.amount_fen
        else:
            groups.append({"at": refund.refunded_at, "reason": refund.reason, "total": refund.amount_fen,
                           "parts": [(refund.get_method_display(), refund.amount_fen)]})
    return groups


@register.filter
def money(fen: int | None) -> str:
    """A signed amount with its currency sign, as the order and bill pages write it: 500000 → '¥5,000.00',
    -2222 → '−¥22.22' (a minus sign before the ¥, never '-22.22' or '¥-22.22')."""
    if fen is None:
        return ""
    return f"{'−' if fen < 0 else ''}¥{yuan_grouped(abs(int(fen)))}"


@register.filter
def percent(bp: int | None) -> str:
    """Basis points as a percentage: 1000 → '10%', 1250 → '12.5%' (never '1000/10000')."""
    if bp is None:
        return ""
    return f"{int(bp) / 100:g}%"


@register.filter
def grouped(n: int | None) -> str:
    """A count with thousands separators, as amounts have them: 5014 → '5,014' (a chain of a million patients read
    '共 1000000 位客户')."""
    if n is None:
        return ""
    return f"{int(n):,}"
