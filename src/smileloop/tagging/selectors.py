"""Reads over tags. The catalogue is per chain; anything about patients goes through the staff Scope."""

from dataclasses import dataclass, field

from django.db.models import Count, Prefetch, QuerySet

from smileloop.core.bounds import row_named
from smileloop.core.errors import NotFound
from smileloop.core.scoping import Scope
from smileloop.core.sql import select_models
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_queryset
from smileloop.tagging.enums import TagKind
from smileloop.tagging.models import CustomerTag, Tag, TagGroup


def tag_group_list(scope: Scope, *, active_only: bool = False) -> list[TagGroup]:
    """The chain's groups with their tags (two queries)."""
    tags = Tag.objects.filter(chain_id=scope.chain_id).order_by("name")
    if active_only:
        tags = tags.filter(is_active=True)
    return list(TagGroup.objects.filter(chain_id=scope.chain_id).order_by("ordering", "id")
                .prefetch_related(Prefetch("tags", queryset=tags)))


def tag_list(scope: Scope, *, active_only: bool = False) -> QuerySet[Tag]:
    qs = Tag.objects.filter(chain_id=scope.chain_id).select_related("group")
    return qs.filter(is_active=True) if active_only else qs


def tag_get(scope: Scope, tag) -> Tag:
    """By id or code, within the scope's chain; NotFound otherwise."""
    qs = tag_list(scope)
    text = str(tag).strip()
    found = _by_id_or_code(qs, tag, text)
    if found is None:
        raise NotFound(f"No tag {text!r}", field="tag")
    return found


def tag_group_get(scope: Scope, group) -> TagGroup:
    qs = TagGroup.objects.filter(chain_id=scope.chain_id)
    text = str(group).strip()
    found = _by_id_or_code(qs, group, text)
    if found is None:
        raise NotFound(f"No tag group {text!r}", field="group")
    return found


def _by_id_or_code(qs: QuerySet, value, text: str):
    """A number is an id first, a text a code first (core.bounds.row_named): a tag coded "618" (the June sale) was
    read as tag id 618, so the 360 page, which names the tag to take off by its code, could not take it off."""
    if "\x00" in text:  # no code holds a NUL, and PostgreSQL refuses one in a query (a 500, not "no such tag")
        return None
    return row_named(qs, value, ("code",), text=text.lower())


def tag_counts(scope: Scope) -> dict[int, int]:
    """Patients per tag that this scope may see: one GROUP BY query (index-only for chain roles)."""
    rows = CustomerTag.objects.filter(tag__chain_id=scope.chain_id)
    if scope.clinic_ids is not None:
        rows = rows.filter(customer__in=customer_queryset(scope))
    return dict(rows.order_by().values_list("tag_id").annotate(n=Count("customer_id")))


def customer_tags(scope: Scope, customer: Customer) -> list[CustomerTag]:
    """A patient's tags with their groups and setters (one query). The caller got `customer` from a scoped
    selector; it is re-checked here so a stray id can never leak tags."""
    if customer.chain_id != scope.chain_id:
        raise NotFound("Customer not found")
    return select_models(CustomerTag, "t0.customer_id = %s", [customer.pk],
                         related=["tag", "tag__group", "set_by"], tail="ORDER BY t2.ordering, t1.group_id, t1.name")


@dataclass
class TagsSection:
    """What the 360 page's tags section reads (`view.tags`)."""

    customer_id: int
    groups: list[tuple[object, list[CustomerTag]]] = field(default_factory=list)
    available: list[Tag] = field(default_factory=list)
    can_apply: bool = False


def tags_section(scope: Scope, customer: Customer) -> TagsSection:
    rows = customer_tags(scope, customer)
    grouped: dict[int, tuple[object, list[CustomerTag]]] = {}
    for row in rows:
        grouped.setdefault(row.tag.group_id, (row.tag.group, []))[1].append(row)
    can_apply = scope.can("tag.apply") and customer.erased_at is None  # an erased person gets no profile again
    available: list[Tag] = []
    if can_apply:
        have = {row.tag_id for row in rows}
        # Rule tags are computed by their rule; staff add manual and keyword tags by hand.
        available = [t for t in tag_list(scope, active_only=True).exclude(kind=TagKind.RULE)
                     .order_by("group__ordering", "group_id", "name") if t.pk not in have]
    return TagsSection(customer_id=customer.pk, groups=list(grouped.values()), available=available,
                       can_apply=can_apply)


def tag_customer_list(scope: Scope, tag: Tag) -> QuerySet[CustomerTag]:
    """The patients carrying `tag` that this scope may see, newest first, with who set it."""
    return (CustomerTag.objects.filter(tag=tag, customer__in=customer_queryset(scope))
            .select_related("customer__home_clinic", "set_by").order_by("-set_at", "-id"))
