"""Satisfaction surveys API (mounted at /api/surveys) for staff systems: list and read surveys (scoped to
the caller's clinics), NPS, mark links sent, and answer on the patient's behalf (a mini-program backend or
a satisfaction call). Token auth; every write needs an Idempotency-Key; one error shape."""

import datetime as dt
from typing import Annotated

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from smileloop.clinics.api import clinic_for_filter, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import ERROR_RESPONSES, BigInt, Id, InputSchema, IsoDate, Offset, local_time, render
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response
from smileloop.core.scoping import Scope
from smileloop.customers.selectors import customer_visible
from smileloop.surveys import selectors, services
from smileloop.surveys.enums import COMMENT_MAX_LENGTH, NpsGroup
from smileloop.surveys.errors import SurveyNotFound

router = Router(tags=["surveys"])


class Ref(Schema):
    id: int
    name: str


class ClinicRef(Ref):
    code: str


class SurveyOut(Schema):
    id: int
    clinic: ClinicRef
    customer_id: int | None = Field(description="Null when the patient belongs to a clinic outside yours")
    appointment_id: int | None
    order_id: int | None
    doctor: Ref | None
    visit_date: dt.date
    url: str = Field(description="The patient's link (path); send it by SMS or WeChat")
    state: str = Field(description="open, answered or expired")
    created_at: dt.datetime
    sent_at: dt.datetime | None
    expires_at: dt.datetime
    opened_at: dt.datetime | None
    answered_at: dt.datetime | None
    score: int | None
    tags: list[str]
    comment: str
    complaint_task_id: int | None


class SurveyPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[SurveyOut]


class NpsRowOut(Schema):
    key: str | None = Field(description="Clinic id, doctor id or month (YYYY-MM)")
    label: str
    responses: int
    promoters: int
    passives: int
    detractors: int
    average: str = Field(description="Average score, one decimal")
    nps: str = Field(description="% promoters − % detractors, one decimal, rounded half away from zero")


class NpsOut(Schema):
    group_by: str
    rows: list[NpsRowOut]


class AnswerIn(InputSchema):
    score: BigInt = Field(description="0–10")
    tags: list[str] = Field(default_factory=list, description="waiting_time, doctor_explanation, pain, price, environment")
    comment: str = Field("", description=f"At most {COMMENT_MAX_LENGTH} characters")



def _out(scope: Scope, survey) -> dict:
    """A survey as the caller may see it: it is read by the clinic of the visit, its patient's id only when the
    patient is in the caller's scope too (customers.selectors.customer_visible)."""
    clinic, doctor = survey.clinic, survey.doctor
    return {
        "id": survey.id, "clinic": {"id": clinic.id, "code": clinic.code, "name": clinic.name},
        "customer_id": survey.customer_id if customer_visible(scope, survey.customer) else None,
        "appointment_id": survey.appointment_id, "order_id": survey.order_id,
        "doctor": {"id": doctor.id, "name": doctor.name} if doctor else None, "visit_date": survey.visit_date,
        "url": reverse("surveys:answer", kwargs={"token": survey.token}), "state": survey.state_at(timezone.now()),
        "created_at": local_time(survey.created_at), "sent_at": local_time(survey.sent_at),
        "expires_at": local_time(survey.expires_at), "opened_at": local_time(survey.opened_at),
        "answered_at": local_time(survey.answered_at), "score": survey.score,
        "tags": survey.tags, "comment": survey.comment, "complaint_task_id": survey.complaint_task_id,
    }


def _clinic_id(scope: Scope, clinic: str | None) -> int | None:
    return clinic_for_filter(scope=scope, value=clinic).id if clinic else None


@router.get("", response={200: SurveyPage, **ERROR_RESPONSES}, summary="List surveys (newest visits first)")
def survey_list_endpoint(
    request: HttpRequest,
    clinic: str | None = Query(None, description="Clinic id or code"),
    answered: bool | None = Query(None, description="true: answered only; false: not answered"),
    since: Annotated[IsoDate | None, Query(description="Visit date from (inclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
):
    scope = request_scope(request)
    permission_require(scope, Perm.SURVEY_VIEW)
    qs = selectors.survey_list(scope, clinic_id=_clinic_id(scope, clinic), answered=answered, since=since)
    return {"count": qs.count(), "limit": limit, "offset": offset,
            "items": [_out(scope, s) for s in qs[offset:offset + limit]]}


@router.get("/nps", response={200: NpsOut, **ERROR_RESPONSES}, summary="NPS by clinic, doctor or month")
def nps_endpoint(
    request: HttpRequest,
    group_by: NpsGroup = NpsGroup.CLINIC,
    since: Annotated[IsoDate | None, Query(description="Visit date from (inclusive)")] = None,
    until: Annotated[IsoDate | None, Query(description="Visit date to (inclusive); on or after since")] = None,
    clinic: str | None = Query(None, description="Clinic id or code"),
):
    scope = request_scope(request)
    permission_require(scope, Perm.SURVEY_VIEW)
    if since and until and until < since:  # swapped dates answered an empty report, as if no one had answered
        raise ValidationFailed([FieldError("until", "must be on or after since", str(until))])
    rows = selectors.nps(scope, group_by=group_by, since=since, until=until, clinic_id=_clinic_id(scope, clinic))
    return {"group_by": group_by, "rows": [
        {"key": row.label if group_by == NpsGroup.MONTH else (str(row.key) if row.key is not None else None),
         "label": row.label, "responses": row.responses, "promoters": row.promoters, "passives": row.passives,
         "detractors": row.detractors, "average": str(row.average), "nps": str(row.nps)} for row in rows]}


@router.get("/{int:survey_id}", response={200: SurveyOut, **ERROR_RESPONSES}, summary="One survey")
def survey_get_endpoint(request: HttpRequest, survey_id: Id):
    scope = request_scope(request)
    permission_require(scope, Perm.SURVEY_VIEW)
    return _out(scope, selectors.survey_get(scope, survey_id))


@router.post("/{int:survey_id}/sent", response={200: SurveyOut, **ERROR_RESPONSES},
             summary="Record that the link was sent to the patient",
             description="Needs survey.view and customer.edit. An expired link that was never sent is a 409 "
                         "`survey_expired` (it can no longer be answered); a second send changes nothing.")
def survey_sent_endpoint(request: HttpRequest, survey_id: Id, response: HttpResponse,
                         idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        # The answer comes back in the response: recording a send is for roles that may read answers, too.
        permission_require(scope, Perm.SURVEY_VIEW)
        permission_require(scope, Perm.CUSTOMER_EDIT)
        survey = selectors.survey_get(scope, survey_id)
        services.survey_mark_sent(survey=survey)
        return 200, render(SurveyOut, _out(scope, selectors.survey_get(scope, survey_id)))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="surveys.sent", run=write)


@router.post("/answer/{token}", response={200: SurveyOut, **ERROR_RESPONSES},
             summary="Answer a survey on the patient's behalf")
def survey_answer_endpoint(request: HttpRequest, token: str, payload: AnswerIn, response: HttpResponse,
                           idempotency_key: IdempotencyKeyHeader = None):
    """For a mini-program backend or a staff satisfaction call; patients use the web link. Answered before →
    409 `survey_already_answered`; expired → 409 `survey_expired`; a survey outside your clinics → 404."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        survey = selectors.survey_get_by_token(token)
        if survey.chain_id != scope.chain_id or not scope.allows_clinic(survey.clinic_id):
            raise SurveyNotFound("Survey not found")
        survey = services.survey_answer(token=token, score=payload.score, tags=payload.tags,
                                        comment=payload.comment, actor=request.staff)
        return 200, render(SurveyOut, _out(scope, selectors.survey_get(scope, survey.id)))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="surveys.answer", run=write)
