"""Ingestion and read API for customers (mounted at /api/customers by config/api.py).

Phones are masked in every response; GET /customers/{id}?reveal_phone=true&reason=… shows the full
number to roles with customer.phone_view and writes the audit row (customers.services.phone_reveal).
External identities but a PMS id are masked the same way (normalize.identity_mask), revealed by
`reveal_identities=true&reason=…` (customers.services.identities_reveal, audited).
Upsert and identity responses are always masked: they are stored for idempotent replay.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema
from pydantic.json_schema import SkipJsonSchema

from smileloop.clinics.api import clinic_for_filter, permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.clinics.web import client_ip
from smileloop.core.api import (
    ERROR_RESPONSES,
    Id,
    IdOrCode,
    InputSchema,
    Offset,
    local_time,
    referenced_by,
    render,
)
from smileloop.core.errors import Conflict, FieldError, ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response
from smileloop.core.scoping import Scope
from smileloop.customers.enums import ConsentPurpose, IdentityKind, Relation, Stage
from smileloop.customers.models import Customer
from smileloop.customers.normalize import channel_parse, identity_mask, phone_mask, phones_masked
from smileloop.customers.privacy import customer_erase
from smileloop.customers.selectors import consent_current, customer_get, customer_list, household_in_scope
from smileloop.customers.services import (
    customer_ingest,
    customer_mark_lost,
    household_head_set,
    household_member_remove,
    household_relative_add,
    identities_reveal,
    identity_add,
    phone_reveal,
)

router = Router(tags=["customers"])


# --- input ---------------------------------------------------------------------------------------------

class IdentityIn(InputSchema):
    kind: IdentityKind
    external_id: str = Field(min_length=1, max_length=128)
    app_id: str = Field("", max_length=64)


class MarkLostIn(InputSchema):
    reason: str = Field(description="Why the patient is lost: moved away, chose another clinic, asked not to be "
                                    "contacted … (required, at most 200 characters)")


class EraseIn(InputSchema):
    reason: str = Field(description="Why: the patient's request and its date (required, at most 200 characters; "
                                    "audited)")
    forfeit: bool = Field(False, description="The patient gives up the value the clinic still owes them (stored "
                                             "value, a gift card they hold); without it such a balance is a 409 "
                                             "`erase_obligations`")


class ConsentIn(InputSchema):
    purpose: ConsentPurpose
    granted: bool
    source: str = Field("api", min_length=1, max_length=64, description="Where the consent was given")
    evidence: str = Field("", max_length=255)


class FamilyIn(InputSchema):
    relative_id: Id = Field(description="The relative, a customer in your clinics")
    relation: Relation = Field(description="What the relative is to this customer (their parent, spouse, …); "
                                           "`head` is not a relation")


class FamilyHeadIn(InputSchema):
    relations: dict[str, str] = Field(
        default_factory=dict,
        description="Customer id → what that member is to the new head (parent, child, spouse, sibling, "
                    "grandparent, grandchild, other), for the members whose relation does not follow from what they "
                    "are to the head now; a relation given wins over one that follows. Members of your clinics only")


class CustomerUpsertIn(InputSchema):
    """Matched by normalised mobile, then by identity; fields left out keep their current value."""

    name: str
    mobile: str | None = Field(None, description="Any common format: 138 0013 8000, +86…, 0086…")
    gender: str | None = Field(None, description="M/F/U, 男/女, male/female")
    birthday: str | None = Field(None, description="1990-01-05, 1990/1/5, 1990年1月5日 or 19900105")
    address: str | None = None
    community: str | None = None
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    home_clinic: IdOrCode | None = Field(None, description="Clinic id or code")
    consultant: IdOrCode | None = Field(None, description="Staff id or username")
    # Not an input: the lifecycle stage is derived from events. Read (undocumented) only so that sending it
    # meets the service's 422 naming the field instead of being dropped silently.
    stage: SkipJsonSchema[Any] = None
    source: str | None = Field(None, description="Acquisition channel code or label (wechat_oa, 抖音, …)")
    campaign: str | None = None
    notes: str | None = None
    identities: list[IdentityIn] = []
    consents: list[ConsentIn] = []


# --- output --------------------------------------------------------------------------------------------

class ClinicRef(Schema):
    id: int
    code: str
    name: str


class StaffRef(Schema):
    id: int
    name: str


class IdentityOut(Schema):
    kind: str
    external_id: str = Field(description="Masked (oAbC****Yz01, 139****5678) but a PMS id, unless revealed")
    app_id: str


class ConsentOut(Schema):
    purpose: str
    granted: bool
    source: str
    evidence: str
    recorded_at: dt.datetime


class HouseholdMemberOut(Schema):
    customer_id: int | None = Field(description="None for a relative registered at a clinic outside your clinics "
                                                "(PIPL: not identified to you); the relation is kept")
    relation: str


class HouseholdOut(Schema):
    id: int
    name: str = Field(description="By default the head's name + 家; a head outside your clinics is masked: 王*家")
    head_id: int | None = Field(description="None for a head registered at a clinic outside your clinics")
    relation: str
    members: list[HouseholdMemberOut]


class CustomerCounts(Schema):
    appointments: int
    orders: int
    treatment_plans: int


class CustomerListItem(Schema):
    id: int
    name: str
    mobile: str = Field(description="Masked: 138****8000")
    gender: str
    birthday: dt.date | None
    stage: str
    source: str
    home_clinic: ClinicRef | None
    consultant: StaffRef | None
    last_visit_at: dt.datetime | None
    visit_count: int
    created_at: dt.datetime


class CustomerOut(CustomerListItem):
    mobile_revealed: bool = Field(description="True only after an audited reveal; then mobile is E.164")
    address: str
    community: str
    latitude: float | None
    longitude: float | None
    campaign: str
    notes: str
    first_visit_at: dt.datetime | None
    lifetime_spend_fen: int
    identities: list[IdentityOut]
    household: HouseholdOut | None
    consents: list[ConsentOut] = Field(description="Current state: the latest record per purpose")
    counts: CustomerCounts
    updated_at: dt.datetime


class StageOut(Schema):
    id: int
    stage: str
    stage_reached: str = Field(description="The highest progress stage reached: where a new booking, arrival "
                                           "or payment brings the patient back to")
    stage_changed_at: dt.datetime | None


class UpsertOut(Schema):
    created: bool
    customer: CustomerOut


class CustomerPage(Schema):
    count: int
    limit: int
    offset: int
    items: list[CustomerListItem]


# --- rendering -----------------------------------------------------------------------------------------


def _list_item(customer: Customer) -> dict:
    clinic, consultant = customer.home_clinic, customer.consultant
    return {
        "id": customer.id, "name": customer.name, "mobile": phone_mask(customer.mobile), "gender": customer.gender,
        "birthday": customer.birthday, "stage": customer.stage, "source": customer.first_touch_channel,
        "home_clinic": {"id": clinic.id, "code": clinic.code, "name": clinic.name} if clinic else None,
        "consultant": {"id": consultant.id, "name": consultant.name} if consultant else None,
        "last_visit_at": local_time(customer.last_visit_at), "visit_count": customer.visit_count,
        "created_at": local_time(customer.created_at),
    }


def _household(scope: Scope, customer: Customer) -> dict | None:
    """The customer's household as HouseholdOut, read through `scope`, or None."""
    found = household_in_scope(scope, customer)
    if found is None:
        return None
    own = next(m for m in found.members if m.customer_id == customer.pk)
    return {"id": found.household.id, "name": found.name, "head_id": found.head_id, "relation": own.relation,
            "members": [{"customer_id": found.member_id(m), "relation": m.relation} for m in found.members]}


def _identity_out(identity, *, phones: bool = False, others: bool = False) -> dict:
    """An identity as IdentityOut, masked as on the 360 page (normalize.identity_mask: a PMS id in full) unless this
    is an audited reveal: `phones` (reveal_phone) for phone identities, `others` (reveal_identities) for the rest."""
    full = phones if identity.kind == IdentityKind.PHONE else others
    return {"kind": identity.kind, "app_id": identity.app_id,
            "external_id": identity.external_id if full else identity_mask(identity.kind, identity.external_id)}


def _detail(scope: Scope, customer: Customer, *, full_mobile: str | None = None, full_identities: bool = False,
            created: bool = False, linked: bool = True) -> dict:
    """The full customer, read through `scope`: relatives outside it have no id in the household and a head
    outside it is masked in its name (`household_in_scope`). `created`: the person was inserted by this very
    request, so no household, appointment, order or plan can point at it yet (those reads are skipped, the answer
    is the same); `linked=False` additionally says the request attached no identity or consent to it."""
    data = _list_item(customer)
    household = None if created else _household(scope, customer)
    reads = not (created and not linked)
    data.update({
        "mobile": full_mobile if full_mobile is not None else data["mobile"],
        "mobile_revealed": full_mobile is not None,
        "address": customer.address, "community": customer.community,
        "latitude": customer.latitude, "longitude": customer.longitude,
        "campaign": customer.first_touch_campaign,
        # numbers typed into the notes (a relative's, one the import could not link) are masked as on the 360 page
        # for a role that may not see phones, unless this is the audited reveal
        "notes": customer.notes if full_mobile is not None or scope.can(Perm.PHONE_VIEW)
        else phones_masked(customer.notes),
        "first_visit_at": local_time(customer.first_visit_at), "lifetime_spend_fen": customer.lifetime_spend_fen,
        # a phone identity is a phone number: masked as the mobile is, unless this is the audited reveal; the
        # others (openid, unionid, …) masked for every token, unless revealed (reveal_identities, audited too)
        "identities": [_identity_out(i, phones=full_mobile is not None, others=full_identities)
                       for i in customer.identities.order_by("id")] if reads else [],
        "household": household,
        "consents": [{"purpose": c.purpose, "granted": c.granted, "source": c.source, "evidence": c.evidence,
                      "recorded_at": local_time(c.recorded_at)}
                     for purpose, c in sorted(consent_current(customer).items())] if reads else [],
        "counts": {"appointments": 0, "orders": 0, "treatment_plans": 0} if created else {
            "appointments": customer.appointments.count(), "orders": customer.orders.count(),
            "treatment_plans": customer.treatment_plans.count()},
        "updated_at": local_time(customer.updated_at),
    })
    return data


# --- endpoints -----------------------------------------------------------------------------------------

@router.post("/upsert", response={200: UpsertOut, 201: UpsertOut, **ERROR_RESPONSES},
             summary="Create or update a customer by phone or identity")
def customer_upsert_endpoint(request: HttpRequest, payload: CustomerUpsertIn, response: HttpResponse,
                             idempotency_key: IdempotencyKeyHeader = None):
    """201 when a new person was created, 200 when an existing one matched (and was updated).
    A phone or identity of a person outside your clinics is a 409 `out_of_scope`."""
    scope = request_scope(request)
    data = payload.model_dump(exclude={"identities", "consents"}, exclude_unset=True)

    def write():
        customer, created = customer_ingest(
            scope=scope, data=data, identities=[i.model_dump() for i in payload.identities],
            consents=[c.model_dump() for c in payload.consents], actor=request.staff, source="api")
        detail = _detail(scope, customer, created=created, linked=bool(payload.identities or payload.consents))
        return (201 if created else 200), render(UpsertOut, {"created": created, "customer": detail})

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="customers.upsert", run=write)


@router.get("", response={200: CustomerPage, **ERROR_RESPONSES}, summary="List and search customers")
def customer_list_endpoint(
    request: HttpRequest,
    q: str = Query("", description="Name, pinyin initials or full pinyin, phone, or its last 4 digits"),
    clinic: str | None = Query(None, description="Home clinic id or code"),
    stage: Stage | None = None,
    source: str | None = Query(None, description="Acquisition channel"),
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
):
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    clinic_id = clinic_for_filter(scope=scope, value=clinic).id if clinic else None
    channel = ""
    if source:
        try:
            channel = channel_parse(source)
        except ValueError as exc:
            raise ValidationFailed([FieldError("source", str(exc), source)])
    qs = customer_list(scope, q=q, clinic_id=clinic_id, stage=stage or "", source=channel)
    return {"count": qs.count(), "limit": limit, "offset": offset,
            "items": [_list_item(c) for c in qs[offset:offset + limit]]}


@router.get("/{int:customer_id}", response={200: CustomerOut, **ERROR_RESPONSES}, summary="One customer")
def customer_get_endpoint(request: HttpRequest, customer_id: Id, reveal_phone: bool = False,
                          reveal_identities: bool = False,
                          reason: str = Query("", description="Why the full phone or identities are needed "
                                                              "(audited)")):
    """With `reveal_phone=true&reason=…` and the customer.phone_view permission the full phone is returned
    and an audit-log row is written; otherwise the phone is masked. External identities (WeChat openid / unionid,
    WeCom external_userid, Douyin id) are masked as well (oAbC****Yz01; a PMS id is shown in full) unless
    `reveal_identities=true&reason=…`, by the same permission, with an audit row of its own. In the household,
    relatives registered at
    clinics outside yours keep their relation but have a null `customer_id` (and a head outside them a null
    `head_id`, masked in the household's name: 王*家)."""
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    customer = customer_get(scope, customer_id)
    full = None
    if reveal_phone:
        full = phone_reveal(scope=scope, customer=customer, reason=reason, ip_address=client_ip(request))
    if reveal_identities:
        identities_reveal(scope=scope, customer=customer, reason=reason, ip_address=client_ip(request))
    return _detail(scope, customer, full_mobile=full, full_identities=reveal_identities)


@router.post("/{int:customer_id}/identities", response={201: IdentityOut, **ERROR_RESPONSES},
             summary="Attach an external identity")
def identity_add_endpoint(request: HttpRequest, customer_id: Id, payload: IdentityIn, response: HttpResponse,
                          idempotency_key: IdempotencyKeyHeader = None):
    """Idempotent for the same person (201 either way); an identity of another person is a 409."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        customer = customer_get(scope, customer_id)
        identity = identity_add(customer=customer, kind=payload.kind, external_id=payload.external_id,
                                app_id=payload.app_id, source="api")
        return 201, render(IdentityOut, _identity_out(identity))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="customers.identity_add", run=write)


@router.post("/{int:customer_id}/family", response={201: HouseholdOut, **ERROR_RESPONSES},
             summary="Link a relative into the family")
def family_add_endpoint(request: HttpRequest, customer_id: Id, payload: FamilyIn, response: HttpResponse,
                        idempotency_key: IdempotencyKeyHeader = None):
    """`relation` is what the relative is to this customer, whoever heads the household: whichever of the two has
    a household takes the other in, with the relation to its head that follows (the sister of the head's son is
    the head's child); when neither has one, a parent or grandparent heads the new household, else this customer.
    Answers this customer's household (`relation` there is to the head). A relation that does not follow for
    certain (a child's grandmother may be the head's mother or mother-in-law) is a 422 on `relation`; two people
    in households already are a 409 (`household_same`, `household_conflict`); a relative outside your clinics is
    a 404."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        customer = customer_get(scope, customer_id)
        with referenced_by("body.relative_id"):
            relative = customer_get(scope, payload.relative_id)
        try:
            household_relative_add(customer=customer, relative=relative, relation=payload.relation,
                                   actor=request.staff)
        except (Conflict, ValidationFailed) as exc:  # the service names the relative `relative`; here it is an id
            for error in getattr(exc, "errors", []):
                error.field = "relative_id" if error.field == "relative" else error.field
            exc.field = "relative_id" if exc.field == "relative" else exc.field
            raise
        return 201, render(HouseholdOut, _household(scope, customer))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="customers.family_add", run=write)


class FamilyLeaveOut(Schema):
    household_id: int = Field(description="The household the customer left")
    dissolved: bool = Field(description="True when one person was left, so the household is gone")


@router.post("/{int:customer_id}/family/leave", response={200: FamilyLeaveOut, **ERROR_RESPONSES},
             summary="Take the customer out of their family")
def family_leave_endpoint(request: HttpRequest, customer_id: Id, response: HttpResponse,
                          idempotency_key: IdempotencyKeyHeader = None):
    """A link made by mistake, or a family that parted. A household left with one person is dissolved. The head of
    three or more is a 409 `household_head` (make another member head first: POST …/family/head); a customer in no
    household is a 409 `no_household`."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        customer = customer_get(scope, customer_id)
        household = household_in_scope(scope, customer)
        dissolved = household_member_remove(member=customer, actor=request.staff)
        return 200, render(FamilyLeaveOut, {"household_id": household.household.id if household else 0,
                                            "dissolved": dissolved})

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="customers.family_leave", run=write)


@router.post("/{int:customer_id}/family/head", response={200: HouseholdOut, **ERROR_RESPONSES},
             summary="Make the customer head of their family")
def family_head_endpoint(request: HttpRequest, customer_id: Id, payload: FamilyHeadIn, response: HttpResponse,
                         idempotency_key: IdempotencyKeyHeader = None):
    """The head moved away or died, or was picked wrongly. Every relation is stored to the head, so each member's is
    derived again: the old head's is the inverse of this customer's (this customer was their child: the old head is
    now this customer's `parent`), the others' where it follows for certain (the head's spouse is the head's
    child's parent); the rest are given in `relations`, else a 422 naming `body.relations.<id>` for each (a relative
    outside your clinics as `body.relations`: ask a colleague who sees them), nothing written. Answers the household
    (`relation` is `head`). This customer already the head: nothing changes, 200. In no household: 409
    `no_household`; an erased record: 409 `erased`; outside your clinics: 404."""
    scope = request_scope(request)
    given = payload.relations

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        customer = customer_get(scope, customer_id)
        shown = household_in_scope(scope, customer)
        visible = {m.customer_id for m in shown.visible} if shown is not None else set()
        relations, problems = {}, []
        for key, relation in given.items():
            if not (key.isascii() and key.isdigit()) or int(key) not in visible or int(key) == customer.pk:
                # an id outside your clinics reads as one not in the family (PIPL: not confirmed to you)
                problems.append(FieldError(f"relations.{key}", "is not another member of this family in your clinics",
                                           key[:100]))
            else:
                relations[int(key)] = relation
        if problems:
            raise ValidationFailed(problems)
        try:
            household_head_set(new_head=customer, relations=relations, actor=request.staff)
        except ValidationFailed as exc:
            errors = [e for e in exc.errors if e.field.partition(".")[2].isdigit()
                      and int(e.field.partition(".")[2]) in visible]
            if len(errors) < len(exc.errors):
                errors.append(FieldError("relations", "a relative registered at a clinic outside your clinics would "
                                                      "need their relation to the new head given: ask a colleague "
                                                      "who sees them, or a chain administrator"))
            raise ValidationFailed(errors) from None
        return 200, render(HouseholdOut, _household(scope, customer))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="customers.family_head", run=write)


@router.post("/{int:customer_id}/lost", response={200: StageOut, **ERROR_RESPONSES},
             summary="Mark a patient lost (with a reason)")
def customer_mark_lost_endpoint(request: HttpRequest, customer_id: Id, payload: MarkLostIn, response: HttpResponse,
                                idempotency_key: IdempotencyKeyHeader = None):
    """The one stage staff set by hand (every other stage is derived from events): writes the timeline event
    "marked lost by <you>: <reason>". A blank reason is a 422; a patient already lost is a 409 `already_lost`;
    one outside your clinics is a 404."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        customer = customer_get(scope, customer_id)
        customer = customer_mark_lost(scope=scope, customer=customer, reason=payload.reason, actor=request.staff)
        return 200, render(StageOut, {"id": customer.id, "stage": customer.stage,
                                      "stage_reached": customer.stage_reached,
                                      "stage_changed_at": local_time(customer.stage_changed_at)})

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="customers.mark_lost", run=write)


class ErasedOut(Schema):
    id: int
    name: str = Field(description="The anonymous record's name, 已注销客户 #<id>")
    erased_at: dt.datetime


@router.post("/{int:customer_id}/erase", response={200: ErasedOut, **ERROR_RESPONSES},
             summary="Erase a patient's personal information (PIPL art. 47)")
def customer_erase_endpoint(request: HttpRequest, customer_id: Id, payload: EraseIn, response: HttpResponse,
                            idempotency_key: IdempotencyKeyHeader = None):
    """The person's name, phone, identities, address, birthday, notes, timeline texts, family links, tags and
    marketing consents go; their bills, plans, procedures and balances stay as an anonymous record
    (customers.privacy.customer_erase). Needs `customer.privacy` (directors, chain admins): else a 403; outside your
    clinics a 404; a blank reason a 422; value the clinic still owes them a 409 `erase_obligations` unless
    `forfeit`. Erasing an erased record answers the same record again (200)."""
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_PRIVACY)
        customer = customer_get(scope, customer_id)
        customer = customer_erase(scope=scope, customer=customer, actor=request.staff, reason=payload.reason,
                                  forfeit=payload.forfeit, ip_address=client_ip(request))
        return 200, render(ErasedOut, {"id": customer.id, "name": customer.name,
                                       "erased_at": local_time(customer.erased_at)})

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="customers.erase", run=write)

