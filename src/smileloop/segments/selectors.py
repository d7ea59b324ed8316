"""Reads over segments: validate and compile rule trees, count and preview them within a staff member's
scope, show their SQL, and list saved segments. Other apps (follow-ups, later campaigns) call
`segment_customers` and `compile`."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Chain, Clinic
from smileloop.core.dates import age_on
from smileloop.core.errors import NotFound, PermissionDenied
from smileloop.core.scoping import Scope
from smileloop.customers.models import Customer
from smileloop.customers.normalize import phone_mask
from smileloop.segments.models import Segment
from smileloop.segments.rules.compiler import compile
from smileloop.segments.rules.fields import FIELDS
from smileloop.segments.rules.validation import clinic_codes_to_ids, validate

__all__ = ["chain_scope", "compile", "validate", "segment_count", "segment_preview", "segment_sql",
           "segment_list", "segment_get", "segments_testing_tag", "segment_customers", "fields_describe", "PreviewRow", "Preview"]


def chain_scope(chain: Chain | int) -> Scope:
    """A system scope over a whole chain (jobs, the follow-up engine): every clinic, no staff member."""
    chain_id = chain if isinstance(chain, int) else chain.pk
    return Scope(user_id=None, staff_id=None, chain_id=chain_id, clinic_ids=None,
                 permissions=frozenset({Perm.SEGMENT_VIEW}), role="system")


def segment_count(scope: Scope, rule: dict, *, today: dt.date | None = None) -> int:
    """One COUNT query (and one to read the ids of clinics the rule names by code, if any)."""
    return compile(scope, clinic_codes_to_ids(rule, chain_id=scope.chain_id), today=today).count()


@dataclass(frozen=True)
class PreviewRow:
    id: int
    name: str
    mobile: str  # masked
    gender: str
    age: int | None
    home_clinic: str
    stage: str
    last_visit_at: dt.datetime | None
    visit_count: int
    lifetime_spend_fen: int
    clinic: Clinic | None = None  # the home clinic's row (read with the customers: no query per row)


@dataclass(frozen=True)
class Preview:
    count: int
    rows: list[PreviewRow]


def segment_preview(scope: Scope, rule: dict, *, limit: int = 20, today: dt.date | None = None) -> Preview:
    """The count and the newest `limit` customers (two queries), phones masked."""
    today = today or timezone.localdate()
    qs = compile(scope, clinic_codes_to_ids(rule, chain_id=scope.chain_id), today=today)
    count = qs.count()
    rows = []
    if count:
        for c in qs.select_related("home_clinic").order_by("-id")[: max(0, min(limit, 100))]:
            rows.append(PreviewRow(
                id=c.id, name=c.name, mobile=phone_mask(c.mobile), gender=c.get_gender_display(),
                age=age_on(c.birthday, today) if c.birthday else None,
                home_clinic=c.home_clinic.name if c.home_clinic else "", stage=c.get_stage_display(),
                last_visit_at=c.last_visit_at, visit_count=c.visit_count, lifetime_spend_fen=c.lifetime_spend_fen,
                clinic=c.home_clinic))
    return Preview(count=count, rows=rows)


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return f"'{value.isoformat()}'"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    return "'" + str(value).replace("'", "''") + "'"


def segment_sql(scope: Scope, rule: dict, *, today: dt.date | None = None) -> dict:
    """The statement that selects the segment's customers: {"sql", "params", "text"} where `text` has the
    parameters written in (for reading only). Needs SEGMENT_MANAGE: it exposes the schema."""
    if not scope.can(Perm.SEGMENT_MANAGE):
        raise PermissionDenied("Your role may not see the generated SQL")
    qs = compile(scope, clinic_codes_to_ids(rule, chain_id=scope.chain_id), today=today).order_by().values("id")
    sql, params = qs.query.sql_with_params()
    text = sql
    try:
        text = sql % tuple(_literal(p) for p in params)
    except (TypeError, ValueError):
        pass
    return {"sql": sql, "params": list(params), "text": text}


def segment_list(scope: Scope) -> QuerySet[Segment]:
    """The live segments the scope uses: the chain's and, for clinic staff, their clinics' (chain roles see every
    clinic's too). Who is in any of them is cut to the scope when counted."""
    segments = Segment.objects.filter(chain_id=scope.chain_id, is_active=True).select_related("updated_by", "clinic")
    if not scope.is_chain_wide:
        segments = segments.filter(Q(clinic__isnull=True) | Q(clinic_id__in=scope.clinic_ids))
    return segments


def segments_testing_tag(*, chain_id: int, code: str) -> list[str]:
    """Names of the chain's live segments whose rules test the tag with this code. Rules name tags by code, so
    tagging asks this (through its rule registry) before letting a tag's code change. A chain keeps tens of
    segments, so reading their trees is cheaper than a JSON query each database spells differently."""
    from smileloop.tagging.rules import rule_uses_tag

    rules = Segment.objects.filter(chain_id=chain_id, is_active=True).values_list("name", "rule")
    return [name for name, rule in rules if rule_uses_tag(rule, code)]


def segment_get(scope: Scope, segment_id) -> Segment:
    try:
        segment_id = int(segment_id)
    except (TypeError, ValueError):
        raise NotFound("Segment not found")
    segment = segment_list(scope).filter(pk=segment_id).first()
    if segment is None:
        raise NotFound("Segment not found")
    return segment


def segment_customers(scope_or_chain: Scope | Chain | int, segment: Segment, *,
                      today: dt.date | None = None) -> QuerySet[Customer]:
    """The segment's customers on `today` as a lazy queryset: within a staff member's scope, or chain-wide
    for a Chain (jobs, the follow-up engine). One statement when evaluated."""
    scope = scope_or_chain if isinstance(scope_or_chain, Scope) else chain_scope(scope_or_chain)
    if segment.chain_id != scope.chain_id:
        raise NotFound("Segment not found")
    return compile(scope, segment.rule, today=today)


def _chain_choices(scope: Scope) -> dict[str, list[dict]]:
    """The chain's clinics, tags and tiers as choices (three queries)."""
    from smileloop.clinics.models import Clinic
    from smileloop.membership.models import Tier
    from smileloop.tagging.models import Tag

    return {
        "clinic": [{"value": str(c.id), "label": c.name} for c in Clinic.objects.filter(chain_id=scope.chain_id)
                   .order_by("id")],
        "tag": [{"value": t.code, "label": f"{t.group.name} · {t.name}"} for t in
                Tag.objects.filter(chain_id=scope.chain_id).select_related("group").order_by("group__ordering", "name")],
        "tier": [{"value": str(t.id), "label": f"{t.plan.name} · {t.name}"} for t in
                 Tier.objects.filter(plan__chain_id=scope.chain_id).select_related("plan").order_by("plan__name", "rank")],
    }


def fields_describe(scope: Scope | None = None) -> list[dict]:
    """The registry as plain data (GET /api/segments/fields). With a scope, fields whose values are the
    chain's clinics, tags or tiers list them as choices (ids as strings; send them as numbers)."""
    from smileloop.segments.rules.fields import OPS, PARAMS, category_choices

    chain = _chain_choices(scope) if scope is not None else {}
    out = []
    for spec in FIELDS.values():
        params = []
        for name in spec.params:
            param = PARAMS[name]
            entry = {"name": name, "label": str(param.label), "type": param.kind}
            if param.kind == "category":
                entry["choices"] = [{"value": v, "label": str(label)} for v, label in category_choices()]
            if param.kind == "days":
                entry.update(minimum=1, maximum=3650)
            if param.kind == "clinic":
                entry["choices"] = chain.get("clinic", [])
            params.append(entry)
        out.append({
            "name": spec.name, "label": str(spec.label), "group": str(spec.group), "help": str(spec.help),
            "value_type": spec.value_type,
            "ops": [{"op": op, "label": str(spec.op_label(op)), "value": OPS[op][0]} for op in spec.ops],
            "params": params,
            "choices": ([{"value": str(v), "label": str(label)} for v, label in spec.choices()] if spec.choices
                        else chain.get(spec.value_type, [])),
            "minimum": spec.minimum, "maximum": spec.maximum,
        })
    return out
