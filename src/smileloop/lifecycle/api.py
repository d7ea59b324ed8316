"""Lifecycle stages API (mounted at /api/lifecycle): the funnel, within the caller's scope. Read only: stages
change on events (customers.services.customer_stage_advance), never by a direct write."""

from decimal import Decimal
from typing import Annotated

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from smileloop.clinics.api import clinic_for_filter, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Clinic
from smileloop.core.api import ERROR_RESPONSES, ClinicRef, IsoDate, clinic_ref, render
from smileloop.customers.enums import Channel
from smileloop.lifecycle import selectors

router = Router(tags=["lifecycle"])


class StepOut(Schema):
    stage: str
    label: str
    current: int = Field(description="Customers in this stage now")
    reached: int | None = Field(description="Customers who reached at least this stage (progress stages)")
    rate: Decimal | None = Field(description="% of the step before who reached this one")


class RowOut(Schema):
    stage: str
    stage_reached: str
    clinic: ClinicRef | None = Field(description="The customers' home clinic, as every answer names a clinic; null "
                                                 "for customers without one")
    clinic_id: int | None = Field(description="The same clinic's id (kept for clients that read it)")
    source: str
    count: int


class FunnelOut(Schema):
    total: int
    stages: list[StepOut]
    rows: list[RowOut] = Field(description="Counts by current stage × highest stage reached × home clinic × source")


@router.get("/funnel", response={200: FunnelOut, **ERROR_RESPONSES},
            summary="Customers by lifecycle stage, clinic and source (with conversion between stages)")
def funnel_endpoint(
    request: HttpRequest,
    clinic: str | None = Query(None, description="Home clinic id or code"),
    source: Annotated[Channel | None, Query(description="Source channel (first touch)")] = None,
    since: Annotated[IsoDate | None, Query(description="Only customers created on or after this date")] = None,
):
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    clinic_id = clinic_for_filter(scope=scope, value=clinic).id if clinic else None
    result = selectors.funnel(scope, clinic_id=clinic_id, source=source, since=since)
    # the rows' home clinics in one look-up, not one query per row; a clinic outside the caller's own (a patient
    # they own as consultant) or closed is still named: its name is not patient data
    ids = {r.clinic_id for r in result.rows if r.clinic_id is not None}
    clinics = Clinic.objects.filter(chain_id=scope.chain_id).in_bulk(ids) if ids else {}
    rows = [{**vars(r), "clinic": clinic_ref(clinics.get(r.clinic_id))} for r in result.rows]
    return render(FunnelOut, {"total": result.total, "stages": [vars(s) for s in result.stages], "rows": rows})
