"""Tags API (mounted at /api/tags): the catalogue, creating tags, a customer's tags, tagging one customer or a
list. Token auth, scope (a customer outside it is 404), permissions, Idempotency-Key on every write."""

import datetime as dt

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Router, Schema

from smileloop.clinics.api import permission_require, request_scope
from smileloop.clinics.enums import Perm
from smileloop.core.api import ERROR_RESPONSES, BigInt, Id, InputSchema, render
from smileloop.core.idempotency import IdempotencyKeyHeader, idempotent_response
from smileloop.customers.selectors import customer_get
from smileloop.tagging import selectors, services
from smileloop.tagging.enums import TagSource

router = Router(tags=["tags"])


class TagOut(Schema):
    id: int
    code: str
    name: str
    group: str = Field(description="The group's code")
    kind: str = Field(description="manual | rule | keyword")
    colour: str
    description: str
    is_active: bool
    rule: dict | None = None
    keywords: list[str] = []
    keyword_threshold: int
    keyword_window_days: int
    keyword_kinds: list[str] = []


class GroupOut(Schema):
    id: int
    code: str
    name: str
    kind: str
    tags: list[TagOut]


class TagIn(InputSchema):
    group: str = Field(min_length=1, max_length=40, description="The group's code")
    code: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=60)
    kind: str = Field("manual", description="manual | rule | keyword")
    colour: str = "#64748b"
    description: str = Field("", max_length=255)
    rule: dict | None = Field(None, description="Rule tags: a segment rule tree, e.g. "
                                                "{\"all\": [{\"field\": \"spend_fen_days\", \"op\": \"gte\", "
                                                "\"value\": 1000000, \"days\": 365}]}")
    keywords: list[str] = Field([], description="Keyword tags: the words to look for in chats and calls")
    keyword_threshold: BigInt = 2
    keyword_window_days: BigInt = 30
    keyword_kinds: list[str] = ["chat", "call"]
    is_active: bool = True


class CustomerTagOut(Schema):
    tag: str
    name: str
    group: str
    source: str = Field(description="manual | rule | keyword | api | import | system")
    set_by_id: int | None = None
    set_by: str | None = None
    set_at: dt.datetime
    evidence: dict


class CustomerTagsOut(Schema):
    customer_id: int
    tags: list[CustomerTagOut]


class ApplyIn(InputSchema):
    tag: str = Field(min_length=1, max_length=40, description="The tag's code")


class BulkIn(InputSchema):
    tag: str = Field(min_length=1, max_length=40, description="The tag's code")
    customer_ids: list[Id] = Field(min_length=1, max_length=10_000)
    action: str = Field("apply", pattern="^(apply|remove)$")


class BulkOut(Schema):
    tag: str
    action: str
    changed: int


def _tag(tag) -> dict:
    return {"id": tag.id, "code": tag.code, "name": tag.name, "group": tag.group.code, "kind": tag.kind,
            "colour": tag.colour, "description": tag.description, "is_active": tag.is_active, "rule": tag.rule,
            "keywords": tag.keywords, "keyword_threshold": tag.keyword_threshold,
            "keyword_window_days": tag.keyword_window_days, "keyword_kinds": tag.keyword_kinds}


def _customer_tags(scope, customer) -> dict:
    return {"customer_id": customer.id, "tags": [
        {"tag": row.tag.code, "name": row.tag.name, "group": row.tag.group.code, "source": row.source,
         "set_by_id": row.set_by_id, "set_by": row.set_by.name if row.set_by else None,
         "set_at": timezone.localtime(row.set_at),  # local time with its offset, as every other endpoint
         "evidence": row.evidence} for row in selectors.customer_tags(scope, customer)]}


@router.get("", response={200: list[GroupOut], **ERROR_RESPONSES}, summary="Tag groups with their tags")
def groups_endpoint(request: HttpRequest):
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    return [{"id": g.id, "code": g.code, "name": g.name, "kind": g.kind,
             "tags": [_tag(t) for t in g.tags.all()]} for g in selectors.tag_group_list(scope)]


@router.post("", response={201: TagOut, **ERROR_RESPONSES}, summary="Create a tag")
def tag_create_endpoint(request: HttpRequest, payload: TagIn, response: HttpResponse,
                        idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.TAG_MANAGE)
        tag = services.tag_create(chain=scope.chain_id, data=payload.dict())
        return 201, render(TagOut, _tag(tag))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="tags.create", run=write)


@router.get("/customers/{int:customer_id}", response={200: CustomerTagsOut, **ERROR_RESPONSES},
            summary="A customer's tags, with who or what set them")
def customer_tags_endpoint(request: HttpRequest, customer_id: Id):
    scope = request_scope(request)
    permission_require(scope, Perm.CUSTOMER_VIEW)
    return _customer_tags(scope, customer_get(scope, customer_id))


@router.post("/customers/{int:customer_id}", response={200: CustomerTagsOut, **ERROR_RESPONSES},
             summary="Put a tag on a customer (no change if it is already there)")
def customer_tag_apply_endpoint(request: HttpRequest, customer_id: Id, payload: ApplyIn, response: HttpResponse,
                                idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.TAG_APPLY)
        customer = customer_get(scope, customer_id)
        tag = selectors.tag_get(scope, payload.tag)
        services.tag_apply(customer=customer, tag=tag, actor=request.staff, source=TagSource.API)
        return 200, render(CustomerTagsOut, _customer_tags(scope, customer))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="tags.apply", run=write)


@router.delete("/customers/{int:customer_id}/{tag}", response={200: CustomerTagsOut, **ERROR_RESPONSES},
               summary="Take a tag off a customer")
def customer_tag_remove_endpoint(request: HttpRequest, customer_id: Id, tag: str, response: HttpResponse,
                                 idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.TAG_APPLY)
        customer = customer_get(scope, customer_id)
        services.tag_remove(customer=customer, tag=selectors.tag_get(scope, tag), actor=request.staff)
        return 200, render(CustomerTagsOut, _customer_tags(scope, customer))

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="tags.remove", run=write)


@router.post("/bulk", response={200: BulkOut, **ERROR_RESPONSES},
             summary="Tag or untag a list of customers (all or nothing)")
def bulk_endpoint(request: HttpRequest, payload: BulkIn, response: HttpResponse,
                  idempotency_key: IdempotencyKeyHeader = None):
    scope = request_scope(request)

    def write():
        permission_require(scope, Perm.TAG_APPLY)
        tag = selectors.tag_get(scope, payload.tag)
        if payload.action == "remove":
            changed = services.tags_bulk_remove(scope=scope, customer_ids=payload.customer_ids, tag=tag,
                                                actor=request.staff)
        else:
            changed = services.tags_bulk_apply(scope=scope, customer_ids=payload.customer_ids, tag=tag,
                                               actor=request.staff, source=TagSource.API)
        return 200, render(BulkOut, {"tag": tag.code, "action": payload.action, "changed": changed})

    return idempotent_response(request, response, user_id=scope.user_id, key=idempotency_key,
                               operation="tags.bulk", run=write)
