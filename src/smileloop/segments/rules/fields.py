"""The one registry of segment fields.

Each field declares its operators, its value type, its parameters (days, clinic, category), a translatable
label, a per-row cost, and how a leaf compiles to a Django `Q` over `customers.Customer` (the functions in
`leaves`). The validator, the compiler, the builder form and `GET /api/segments/fields` all read this
registry, so a field is added in one place.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from smileloop.customers.enums import Channel, ConsentPurpose, Gender
from smileloop.customers.models import Customer
from smileloop.segments.rules import leaves
from smileloop.segments.rules.context import MAX_DAYS, MAX_FEN, Ctx
from smileloop.visits.enums import Category

# --- operators ------------------------------------------------------------------------------------------

SINGLE, LIST, PAIR, NONE = "single", "list", "pair", "none"

OPS: dict[str, tuple[str, object]] = {
    # op: (value shape, label)
    "eq": (SINGLE, _("is")),
    "ne": (SINGLE, _("is not")),
    "in": (LIST, _("is one of")),
    "not_in": (LIST, _("is none of")),
    "gte": (SINGLE, _("at least")),
    "lte": (SINGLE, _("at most")),
    "between": (PAIR, _("between")),
    "contains": (SINGLE, _("contains")),
    "any_of": (LIST, _("has any of")),
    "all_of": (LIST, _("has all of")),
    "none_of": (LIST, _("has none of")),
    "older_than": (SINGLE, _("more than N days ago")),
    "within": (SINGLE, _("within the last N days")),
    "never": (NONE, pgettext_lazy("segment operator", "never")),
    "is": (SINGLE, _("is")),
    "granted": (SINGLE, _("granted for")),
    "not_granted": (SINGLE, _("not granted for")),
    "next_month": (NONE, _("is next month")),
    "this_month": (NONE, _("is this month")),
    "any": (NONE, _("any tier")),
    "none": (NONE, _("no active membership")),
}


def op_shape(op: str) -> str:
    return OPS[op][0]


# --- parameters -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    label: object
    kind: str  # "days" (1..3650), "clinic" (id, or code on input: stored as id), "category" (a service category)


PARAMS = {
    "days": Param("days", _("in the last N days"), "days"),
    "clinic": Param("clinic", _("from clinic"), "clinic"),
    "category": Param("category", _("category"), "category"),
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: object
    group: object
    ops: tuple[str, ...]
    value_type: str  # choice, int, fen, km, text, bool, days, month, clinic, tag, tier, purpose
    compile: Callable[[dict, Ctx, bool], Q]  # (leaf, ctx, negated) → Q already negated when asked
    params: tuple[str, ...] = ()
    choices: Callable[[], list[tuple[str, object]]] | None = None
    minimum: float | None = None
    maximum: float | None = None
    help: object = ""
    op_labels: dict = field(default_factory=dict)
    cost: int = 0  # 0 a column of the row, 1 arithmetic, 2 an index probe per row, 3 an aggregate per row

    def op_label(self, op: str):
        return self.op_labels.get(op) or OPS[op][1]


def _stage_choices():
    return list(Customer._meta.get_field("stage").choices)


# --- the registry ---------------------------------------------------------------------------------------

_NUMERIC = ("gte", "lte", "between")
_PROFILE, _VISITS, _VALUE, _ENGAGEMENT = _("Profile"), _("Visits and treatment"), _("Spend and membership"), _(
    "Engagement")

FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in [
    FieldSpec("stage", _("Lifecycle stage"), _PROFILE, ("eq", "ne", "in", "not_in"), "choice",
              leaves.column("stage"), choices=_stage_choices),
    FieldSpec("clinic", _("Home clinic"), _PROFILE, ("in", "not_in"), "clinic", leaves.column("home_clinic_id"),
              help=_("Customers without a home clinic are never 'in' a clinic.")),
    FieldSpec("source", _("Source channel (first touch)"), _PROFILE, ("eq", "ne", "in", "not_in"), "choice",
              leaves.column("first_touch_channel"), choices=lambda: list(Channel.choices)),
    FieldSpec("age", _("Age"), _PROFILE, _NUMERIC, "int", leaves.plain(leaves.age), minimum=0, maximum=150,
              help=_("From the birthday; customers without a birthday never match.")),
    FieldSpec("gender", _("Gender"), _PROFILE, ("eq", "ne", "in"), "choice", leaves.column("gender"),
              choices=lambda: list(Gender.choices)),
    FieldSpec("community", _("Community"), _PROFILE, ("eq", "in", "contains"), "text",
              leaves.plain(leaves.community)),
    FieldSpec("distance_km", _("Distance from a clinic (km)"), _PROFILE, ("lte", "gte"), "km",
              leaves.plain(leaves.distance), params=("clinic",), minimum=0.1, maximum=1000, cost=1,
              help=_("Straight-line distance from the customer's address; customers without coordinates never "
                     "match.")),
    FieldSpec("birthday_month", _("Birthday month"), _PROFILE, ("next_month", "this_month", "eq"), "month",
              leaves.plain(leaves.birthday_month), minimum=1, maximum=12, cost=1),
    FieldSpec("tag", _("Tags"), _ENGAGEMENT, ("any_of", "all_of", "none_of"), "tag", leaves.tags,
              cost=2),
    FieldSpec("consent", _("Marketing consent"), _ENGAGEMENT, ("granted", "not_granted"), "purpose",
              leaves.plain(leaves.consent), choices=lambda: list(ConsentPurpose.choices), cost=2,
              help=_("The latest consent recorded for the purpose; never recorded = not granted.")),
    FieldSpec("last_contact_days", _("Last staff contact (call, chat, SMS)"), _ENGAGEMENT,
              ("older_than", "within", "never"), "days", leaves.plain(leaves.last_contact), minimum=1,
              maximum=MAX_DAYS, op_labels={"older_than": _("not in the last N days")}, cost=2,
              help=_("'Not in the last N days' includes customers never contacted.")),
    FieldSpec("membership_tier", _("Membership tier"), _VALUE, ("any", "in", "not_in", "none"), "tier",
              leaves.membership, cost=2,
              help=_("Active memberships only (not expired, not cancelled).")),
    FieldSpec("spend_fen_days", _("Paid spend in the last N days"), _VALUE, _NUMERIC, "fen",
              leaves.aggregate_leaf(leaves.orders, "spend", prefilter=leaves.lifetime_at_least), params=("days",),
              minimum=0, maximum=MAX_FEN, cost=3, help=_("Orders net of refunds, in fen (1 yuan = 100 fen).")),
    FieldSpec("lifetime_spend_fen", _("Lifetime spend"), _VALUE, _NUMERIC, "fen",
              leaves.column("lifetime_spend_fen"), minimum=0, maximum=MAX_FEN),
    FieldSpec("visits_days", _("Visits in the last N days"), _VISITS, _NUMERIC, "int",
              leaves.aggregate_leaf(leaves.visits, "count", counts_rows=True), params=("days",), minimum=0,
              maximum=100_000, cost=3),
    FieldSpec("visit_count", _("Visits in total"), _VISITS, _NUMERIC, "int", leaves.column("visit_count"),
              minimum=0, maximum=100_000),
    FieldSpec("last_visit_days", _("Last visit"), _VISITS, ("older_than", "within", "never"), "days",
              leaves.plain(leaves.days_since("last_visit_at")), minimum=1, maximum=MAX_DAYS,
              help=_("'More than N days ago' needs at least one visit.")),
    FieldSpec("unfinished_plan", _("Unfinished treatment plan"), _VISITS, ("is",), "bool",
              leaves.unfinished_plan, cost=2, help=_("A plan in progress with steps still to do.")),
    FieldSpec("procedure_days", _("Procedure done N days ago"), _VISITS, ("eq", "between", "within"), "days",
              leaves.procedure, params=("category",), minimum=0, maximum=MAX_DAYS, cost=2,
              op_labels={"eq": _("exactly N days ago"), "between": _("between N and M days ago")}),
]}


def category_choices() -> list[tuple[str, object]]:
    """Choices of the "category" parameter."""
    return list(Category.choices)
