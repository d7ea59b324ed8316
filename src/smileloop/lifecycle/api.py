"""Lifecycle stages API (mounted at /api/lifecycle): the funnel, within the caller's scope. Read only: stages
change on events (customers.services.customer_stage_advance), never by a direct write."""

from decimal import Decimal
from typing import Annotated

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from smileloop.clinics.api import clinic_for_filter, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import ERROR_RESPONSES, IsoDate, render
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
    clinic_id: int | None
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
    return render(FunnelOut, {"total": result.total, "stages": [vars(s) for s in result.stages],
                              "rows": [vars(r) for r in result.rows]})
