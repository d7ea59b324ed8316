"""Gift-card and voucher API (mounted at /api/giftcards): look a code up, issue a friend card, register the
holder, issue a voucher. Token auth, scope, permissions, Idempotency-Key on writes, one error shape."""

import datetime as dt

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Router, Schema

from smileloop.clinics.api import permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import ERROR_RESPONSES, Id, InputSchema, local_time, referenced_by, render
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response, service_key
from smileloop.core.scoping import Scope
from smileloop.customers.selectors import customer_get
from smileloop.giftcards import selectors, services

router = Router(tags=["giftcards"])


class HistoryOut(Schema):
    at: dt.datetime
    what: str
    amount_fen: int | None
    detail: str


class LookupOut(Schema):
    kind: str
    code: str
    name: str
    status: str
    balance_fen: int
    face_value_fen: int
    issued_at: dt.datetime
    expires_at: dt.datetime | None
    giver_id: int | None = None
    holder_id: int | None = None
    excluded_categories: list[str] = []
    exclude_special_price: bool = False
    history: list[HistoryOut]


class FriendCardIn(InputSchema):
    member_id: Id
    programme: str = Field(min_length=1, max_length=40, description="Programme code")
    trigger: str = Field("staff decision", max_length=100)


class HolderIn(InputSchema):
    customer_id: Id


class VoucherIn(InputSchema):
    campaign: str = Field(min_length=1, max_length=40, description="Campaign code")
    customer_id: Id | None = None


def _person_id(person) -> int | None:
    return person.id if person is not None else None


def _card(scope: Scope, card, found: selectors.CodeLookup | None = None) -> dict:
    """The card as `scope` sees it: the giver and holder ids only of patients in the scope (`code_lookup`)."""
    found = found or selectors.code_lookup(scope, card.code)
    return {"kind": "gift_card", "code": card.code, "name": card.programme.name, "status": card.status,
            "balance_fen": found.balance_fen, "face_value_fen": card.face_value_fen,
            "issued_at": local_time(card.issued_at), "expires_at": local_time(card.expires_at), "giver_id": _person_id(found.giver),
            "holder_id": _person_id(found.holder), "excluded_categories": card.excluded_categories,
            "exclude_special_price": card.exclude_special_price,
            "history": [{**vars(r), "at": local_time(r.at)} for r in found.history]}


def _voucher(scope: Scope, voucher, found: selectors.CodeLookup | None = None) -> dict:
    found = found or selectors.code_lookup(scope, voucher.code)
    return {"kind": "voucher", "code": voucher.code, "name": voucher.campaign.name, "status": voucher.status,
            "balance_fen": found.balance_fen, "face_value_fen": voucher.value_fen, "issued_at": local_time(voucher.issued_at),
            "expires_at": local_time(voucher.expires_at), "holder_id": _person_id(found.holder),
            "history": [{**vars(r), "at": local_time(r.at)} for r in found.history]}


def lookup(scope: Scope, code: str) -> dict:
    found = selectors.code_lookup(scope, code)
    return _card(scope, found.card, found) if found.card is not None else _voucher(scope, found.voucher, found)


@router.get("/codes/{code}", response={200: LookupOut, **ERROR_RESPONSES}, summary="Look a gift card or voucher up by code")
def lookup_endpoint(request: HttpRequest, code: str):
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    return lookup(scope, code)


@router.post("/friend-cards", response={201: LookupOut, **ERROR_RESPONSES}, summary="Issue a friends-and-family card")
def friend_card_endpoint(request: HttpRequest, payload: FriendCardIn, response: HttpResponse,
                         idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        permission_require(scope, Perm.VALUE_ISSUE)
        with referenced_by("body.member_id"):
            member = customer_get(scope, payload.member_id)
        programme = selectors.programme_list(scope).filter(code=payload.programme).first()
        if programme is None:
            raise ValidationFailed([FieldError("programme", "is not an active programme", payload.programme)])
        card = services.friend_card_issue(member=member, programme=programme, trigger=payload.trigger,
                                          key=service_key(scope.user_id, idempotency_key), actor=request.staff)
        return 201, render(LookupOut, _card(scope, card))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="giftcards.friend_card", run=write)


@router.post("/codes/{code}/holder", response={200: LookupOut, **ERROR_RESPONSES},
             summary="Register the holder (keeps the card valid)")
def holder_endpoint(request: HttpRequest, code: str, payload: HolderIn, response: HttpResponse,
                    idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        with referenced_by("body.customer_id"):
            customer = customer_get(scope, payload.customer_id)
        card = selectors.giftcard_get_by_code(chain_id=scope.chain_id, code=code)
        card = services.giftcard_holder_register(card=card, customer=customer, actor=request.staff,
                                                 as_of=timezone.now())
        return 200, render(LookupOut, _card(scope, card))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="giftcards.holder", run=write)


@router.post("/vouchers", response={201: LookupOut, **ERROR_RESPONSES}, summary="Issue a voucher")
def voucher_endpoint(request: HttpRequest, payload: VoucherIn, response: HttpResponse,
                     idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.CUSTOMER_EDIT)
        permission_require(scope, Perm.VALUE_ISSUE)
        customer = None
        if payload.customer_id:
            with referenced_by("body.customer_id"):
                customer = customer_get(scope, payload.customer_id)
        campaign = selectors.campaign_list(scope).filter(code=payload.campaign).first()
        if campaign is None:
            raise ValidationFailed([FieldError("campaign", "is not an active campaign", payload.campaign)])
        voucher = services.voucher_issue(campaign=campaign, customer=customer,
                                         key=service_key(scope.user_id, idempotency_key), actor=request.staff)
        return 201, render(LookupOut, _voucher(scope, voucher))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="giftcards.voucher", run=write)
