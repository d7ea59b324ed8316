"""Segments API (mounted at /api/segments): validate and preview rule trees, describe the field registry, and
keep saved segments. Token auth, scope, permissions, Idempotency-Key on writes, one error shape.

A rule tree is JSON: {"all": [...]}, {"any": [...]}, {"not": {...}} and conditions
{"field": "spend_fen_days", "op": "gte", "value": 100000, "days": 365}; `GET /fields` lists the fields, their
operators, value types and parameters. A clinic in a rule (the `clinic` field's values, a distance's `clinic`)
is its id or, as elsewhere, its code ("SH01"); a saved segment stores ids. Errors name the bad part by its path in
the tree ("all[2].any[0]"); in a 422 body the path is prefixed with the request part ("body.rule.all[2].any[0]").
Answers name a clinic as every answer does ({id, code, name}: a segment's owner, a preview row's home clinic).
"""

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema

from smileloop.clinics.api import clinic_for_write, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import (
    ERROR_RESPONSES,
    ClinicRef,
    FieldErrorOut,
    Id,
    IdOrCode,
    InputSchema,
    IsoDate,
    clinic_ref,
    render,
)
from smileloop.core.errors import ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response
from smileloop.segments import selectors, services
from smileloop.segments.services import rule_errors, under

router = Router(tags=["segments"])

RULE_DOC = 'A rule tree, e.g. {"all": [{"field": "tag", "op": "any_of", "value": ["implant"]}]}'


class RuleIn(InputSchema):
    rule: Any = Field(..., description=RULE_DOC)


class ValidateOut(Schema):
    ok: bool
    errors: list[FieldErrorOut]


class PreviewIn(InputSchema):
    rule: Any = Field(..., description=RULE_DOC)
    limit: int = Field(20, ge=0, le=100, description="How many of the newest customers to return")
    today: IsoDate | None = Field(None, description="Evaluate the rule as on this day (default: today)")


class PreviewRowOut(Schema):
    id: int
    name: str
    mobile: str = Field(description="Masked")
    gender: str
    age: int | None
    clinic: ClinicRef | None = Field(description="The customer's home clinic, as every answer names a clinic; null "
                                                 "for a customer without one")
    home_clinic: str = Field(description="The same clinic's name, empty without one (kept for clients that read it)")
    stage: str
    last_visit_at: dt.datetime | None
    visit_count: int
    lifetime_spend_fen: int


class PreviewOut(Schema):
    count: int
    rows: list[PreviewRowOut]


class SqlOut(Schema):
    sql: str
    params: list[Any]
    text: str


class ChoiceOut(Schema):
    value: str
    label: str


class OpOut(Schema):
    op: str
    label: str
    value: str = Field(description="The value's shape: single, list, pair ([low, high]) or none")


class ParamOut(Schema):
    name: str
    label: str
    type: str
    minimum: int | None = None
    maximum: int | None = None
    choices: list[ChoiceOut] = []


class FieldOut(Schema):
    name: str
    label: str
    group: str
    help: str
    value_type: str
    ops: list[OpOut]
    params: list[ParamOut]
    choices: list[ChoiceOut]
    minimum: float | None
    maximum: float | None


class SegmentIn(InputSchema):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=500, description='Omitted: "" on create, kept on change')
    rule: Any = Field(..., description=RULE_DOC)
    clinic: IdOrCode | None = Field(None, description="The clinic (id or code) whose segment it is; null: the whole "
                                                      "chain's (chain roles only). Omitted: on create, the chain's for "
                                                      "chain roles and the one clinic of clinic staff; on change, kept.")


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    rule: Any
    clinic: ClinicRef | None = Field(description="The clinic whose segment it is, as every answer names a clinic; "
                                                 "null for the whole chain's")
    clinic_id: int | None = Field(description="The same clinic's id (kept for clients that read it)")
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by_id: int | None
    updated_by_id: int | None


class CountOut(Schema):
    id: int
    count: int


def _checked(scope, rule) -> None:
    errors = rule_errors(rule, chain_id=scope.chain_id)
    if errors:
        raise ValidationFailed(errors)


@router.post("/validate", response={200: ValidateOut, **ERROR_RESPONSES}, summary="Validate a rule tree")
def validate_endpoint(request: HttpRequest, payload: RuleIn):
    """200 either way: `ok` and the errors by their path in the rule ("all[2].any[0]")."""
    scope = request_scope(request)
    permission_require(scope, Perm.SEGMENT_VIEW)
    errors = selectors.validate(payload.rule, chain_id=scope.chain_id)
    return {"ok": not errors, "errors": [e.as_dict() for e in errors]}


@router.post("/preview", response={200: PreviewOut, **ERROR_RESPONSES},
             summary="Count a rule tree's customers and show the first ones (phones masked)")
def preview_endpoint(request: HttpRequest, payload: PreviewIn):
    scope = request_scope(request)
    permission_require(scope, Perm.SEGMENT_VIEW)
    _checked(scope, payload.rule)
    preview = selectors.segment_preview(scope, payload.rule, limit=payload.limit, today=payload.today)
    return {"count": preview.count, "rows": [{**vars(row), "clinic": clinic_ref(row.clinic)} for row in preview.rows]}


@router.post("/sql", response={200: SqlOut, **ERROR_RESPONSES}, summary="The SQL a rule tree compiles to")
def sql_endpoint(request: HttpRequest, payload: PreviewIn):
    scope = request_scope(request)
    permission_require(scope, Perm.SEGMENT_MANAGE)
    _checked(scope, payload.rule)
    return selectors.segment_sql(scope, payload.rule, today=payload.today)


@router.get("/fields", response={200: list[FieldOut], **ERROR_RESPONSES}, summary="The fields a rule can use")
def fields_endpoint(request: HttpRequest):
    scope = request_scope(request)
    permission_require(scope, Perm.SEGMENT_VIEW)
    return selectors.fields_describe(scope)


@router.get("", response={200: list[SegmentOut], **ERROR_RESPONSES}, summary="Saved segments")
def list_endpoint(request: HttpRequest):
    scope = request_scope(request)
    permission_require(scope, Perm.SEGMENT_VIEW)
    return list(selectors.segment_list(scope))


def _owner(scope, payload: SegmentIn):
    """The clinic the body names (as every body names one: id or code, within the caller's clinics), or None."""
    if payload.clinic in (None, ""):
        return None
    return clinic_for_write(scope=scope, value=payload.clinic)


@router.post("", response={201: SegmentOut, **ERROR_RESPONSES}, summary="Save a segment")
def create_endpoint(request: HttpRequest, payload: SegmentIn, response: HttpResponse,
                    idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.SEGMENT_MANAGE)
        segment = services.segment_create(chain=scope.chain_id, name=payload.name, description=payload.description,
                                          rule=payload.rule, actor=request.staff, scope=scope,
                                          clinic=_owner(scope, payload))
        return 201, render(SegmentOut, segment)

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="segments.create", run=write)


@router.get("/{int:segment_id}", response={200: SegmentOut, **ERROR_RESPONSES}, summary="A saved segment")
def get_endpoint(request: HttpRequest, segment_id: Id):
    scope = request_scope(request)
    permission_require(scope, Perm.SEGMENT_VIEW)
    return selectors.segment_get(scope, segment_id)


@router.put("/{int:segment_id}", response={200: SegmentOut, **ERROR_RESPONSES}, summary="Change a segment")
def update_endpoint(request: HttpRequest, segment_id: Id, payload: SegmentIn, response: HttpResponse,
                    idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.SEGMENT_MANAGE)
        segment = selectors.segment_get(scope, segment_id)
        clinic = _owner(scope, payload) if "clinic" in payload.model_fields_set else services.KEEP
        # an omitted description is kept, as an omitted clinic is (it was wiped: a rename lost it)
        description = payload.description if "description" in payload.model_fields_set else None
        segment = services.segment_update(segment=segment, name=payload.name, description=description,
                                          rule=payload.rule, actor=request.staff, scope=scope, clinic=clinic)
        return 200, render(SegmentOut, segment)

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="segments.update", run=write)


@router.delete("/{int:segment_id}", response={200: SegmentOut, **ERROR_RESPONSES}, summary="Delete a segment")
def delete_endpoint(request: HttpRequest, segment_id: Id, response: HttpResponse,
                    idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.SEGMENT_MANAGE)
        segment = services.segment_delete(segment=selectors.segment_get(scope, segment_id), actor=request.staff,
                                          scope=scope)
        return 200, render(SegmentOut, segment)

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="segments.delete", run=write)


@router.get("/{int:segment_id}/count", response={200: CountOut, **ERROR_RESPONSES},
            summary="How many customers are in a saved segment now (within your scope)")
def count_endpoint(request: HttpRequest, segment_id: Id):
    scope = request_scope(request)
    permission_require(scope, Perm.SEGMENT_VIEW)
    segment = selectors.segment_get(scope, segment_id)
    try:
        count = selectors.segment_customers(scope, segment).count()
    except ValidationFailed as exc:
        raise ValidationFailed(under(exc.errors))
    return {"id": segment.id, "count": count}
