"""The ranges every integer input must fit: database keys are signed 64-bit, and amounts are bounded far below
that so that sums and products of them (lines × quantities, running totals) never overflow a bigint."""

import datetime as dt
import unicodedata
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.core.errors import FieldError

BIGINT_MAX = 2**63 - 1
# 10 billion yuan: above any bill, top-up or fee, and 50 lines × 10 000 units of it still fit in a bigint.
MAX_FEN = 10**12
MAX_QUANTITY = 10_000  # units of one bill line (the orders API, an imported order): see MAX_FEN
MAX_BILL_LINES = 50  # lines of one bill (checkout, the orders API, an imported order): their sum fits in a bigint
# steps of one treatment plan: a full-mouth rehabilitation is well under it; 3,000 steps took 8 s in one request
MAX_PLAN_STEPS = 200
MAX_BILL_PAYMENTS = 20  # payments of one bill through the orders API: a split bill, not 10,000 rows for one order
MAX_POINTS = 10**12
# Paging past a billion rows is a client bug, and offset + limit must stay a bigint.
MAX_OFFSET = 10**9

# A name, script or keyword staff type is refused with an invisible control character in it (a NUL, a bell, an
# escape …): a hand-made request stored them, and such text goes into timeline entries, audit reasons and pickers.
CONTROL_CHARACTERS = gettext_noop("must not contain control characters")


def has_control(text: str, *, allowed: str = "") -> bool:
    """Whether `text` holds a control character other than those in `allowed` (e.g. "\t\r\n" for a multi-line text)."""
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


# --- when recorded facts (orders, visits, refunds, plans, procedures) may have happened ------------------------
# Earlier than the chain's computer records is a typo (1924 for 2024) or a placeholder; later than now is one too,
# give or take a POS clock that runs ahead. Appointments still to come may be booked up to a few years ahead.
EARLIEST_RECORD_DATE = dt.date(1980, 1, 1)
CLOCK_SKEW = dt.timedelta(days=1)
BOOKING_HORIZON = dt.timedelta(days=3 * 366)


def record_time_errors(field: str, value: dt.datetime | dt.date | None, *, ahead: dt.timedelta = CLOCK_SKEW
                       ) -> list[FieldError]:
    """A field error when a fact's time (an aware datetime, or a local date) is before EARLIEST_RECORD_DATE or
    more than `ahead` after now."""
    if value is None:
        return []
    is_day = not isinstance(value, dt.datetime)
    day = value if is_day else timezone.localdate(value)
    if day < EARLIEST_RECORD_DATE:
        return [FieldError(field, f"is before {EARLIEST_RECORD_DATE:%Y-%m-%d}", str(value))]
    latest = timezone.now() + ahead
    if (day > timezone.localdate(latest)) if is_day else (value > latest):
        message = "is in the future" if ahead <= CLOCK_SKEW else f"is more than {ahead.days // 365} years ahead"
        return [FieldError(field, message, str(value))]
    return []


def pk_from_text(text: str) -> int | None:
    """'42' → 42; None for anything that cannot be a primary key (not digits, 0, ≥ 2**63): comparing such a
    number with a key column fails on SQLite ('Python int too large to convert to SQLite INTEGER')."""
    text = str(text).strip()
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= BIGINT_MAX else None


def row_named(qs, value, fields: tuple[str, ...], *, text: str | None = None):
    """The row of `qs` that an input names, or None: a JSON number is an id first, a text is its `fields` in turn
    (a code, a username, a name) first and an id last. A chain numbering its clinics has clinic code "10" beside
    clinic id 10: read the other way, an order or a patient went to another clinic. `text`: the value already
    normalised by the caller (else stripped). One small query per try, stopping at the first row found."""
    text = str(value).strip() if text is None else text
    pk = pk_from_text(text)  # digits past a bigint (or "²") are no key: looked up by the fields only
    lookups = [{field: text} for field in fields]
    if pk is not None:
        by_id = isinstance(value, int) and not isinstance(value, bool)
        lookups.insert(0 if by_id else len(lookups), {"pk": pk})
    for lookup in lookups:
        if row := qs.filter(**lookup).first():
            return row
    return None


# --- bounds of configuration fields (loyalty, membership) ----------------------------------------------------
# A model field carries its range as validators (`within`); the services read them back (`range_errors`) to refuse
# a value by its field's name before the database's CHECK constraint would, and the forms set min/max from them.


def within(bounds: tuple) -> list:
    return [MinValueValidator(bounds[0]), MaxValueValidator(bounds[1])]


def field_bounds(field: models.Field) -> tuple | None:
    """(lowest, highest) value a model field's validators accept (its own and the database's range), or None when
    it has no such bound."""
    lows = [v.limit_value for v in field.validators if isinstance(v, MinValueValidator)]
    highs = [v.limit_value for v in field.validators if isinstance(v, MaxValueValidator)]
    return (max(lows), min(highs)) if lows and highs else None


def range_errors(model: type[models.Model], data: dict, names: list[str]) -> list[FieldError]:
    """A field error (stable English, naming the field) for each number in `data` outside its field's bounds.
    Values of another type are left to the other checks."""
    errors = []
    for name in names:
        value = data.get(name)
        bounds = field_bounds(model._meta.get_field(name))
        if bounds is None or isinstance(value, bool) or not isinstance(value, int | Decimal):
            continue
        low, high = bounds
        if not low <= value <= high:
            whole = isinstance(low, int) and isinstance(high, int)
            message = f"must be a whole number between {low} and {high}" if whole else f"must be between {low} and {high}"
            errors.append(FieldError(name, message, str(value)))
    return errors


def bounded_formfield(field: models.Field, **kwargs):
    """A model field's form field (a ModelForm's `formfield_callback`), with the field's bounds as the form's
    min/max, so a page refuses them beside the field as the service would."""
    bounds = field_bounds(field) if isinstance(field, models.IntegerField | models.DecimalField) else None
    if bounds is not None:
        kwargs = {"min_value": bounds[0], "max_value": bounds[1], **kwargs}
    return field.formfield(**kwargs)
