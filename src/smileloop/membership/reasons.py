"""Membership event reasons, readable in the reader's language.

An event keeps its reason twice: `reason`, an English sentence fixed at write time (the audit trail and the
API, as before), and `data["msg"]` = {"key", "args", "suffixes"}, from which the staff pages render the same
sentence through the translation catalogue ("升级为家庭会员：累计消费 30,120.00 ≥ 30,000.00，2026-03-02"). Arguments
are stored already formatted (yuan with two decimals, ISO dates, names as they were then), so a later rename of a
tier does not rewrite history. Events written before `msg` existed show their stored `reason`."""

import re

from django.utils import translation
from django.utils.translation import gettext, gettext_noop, ngettext

from smileloop.core.messages import Sentences

MESSAGES = {
    "enrolled_fee": gettext_noop("enrolled in %(plan)s · %(tier)s: fee %(fee)s paid on %(day)s"),
    "enrolled_figure": gettext_noop("enrolled in %(tier)s: %(measure)s %(figure)s ≥ %(threshold)s on %(day)s"),
    "renewed": gettext_noop("renewed until %(until)s: fee %(fee)s paid on %(day)s"),
    "upgraded_by_staff": gettext_noop("upgraded to %(tier)s: %(why)s on %(day)s"),
    "downgraded_by_staff": gettext_noop("downgraded to %(tier)s: %(why)s on %(day)s"),
    "cancelled": gettext_noop("cancelled on %(day)s: %(why)s"),
    "upgraded_figure": gettext_noop("upgraded to %(tier)s: %(measure)s %(figure)s ≥ %(threshold)s on %(day)s"),
    "downgraded_figure": gettext_noop("downgraded to %(tier)s: %(measure)s %(figure)s < %(threshold)s on %(day)s"),
    "ended_figure": gettext_noop("ended: %(measure)s %(figure)s < %(threshold)s of %(tier)s on %(day)s"),
    "replaced": gettext_noop("cancelled on %(day)s: replaced by %(plan)s · %(tier)s"),
    "expired": gettext_noop("expired on %(day)s: %(tier)s was valid until %(until)s and not renewed"),
    "merged": gettext_noop("merged into #%(into)s: customer #%(merged)s was merged into #%(survivor)s"),
}
SUFFIXES = {
    "replaces": gettext_noop(" (replaces membership #%(replaces)s)"),
    "valid_until": gettext_noop(", valid until %(until)s"),
    "lifetime": gettext_noop(", lifetime"),
}
MEASURES = {"spend_based": gettext_noop("cumulative spend"), "stored_value": gettext_noop("cumulative top-up")}
STAFF_DECISION = gettext_noop("staff decision")
# An enrolment's reason is also the cause of the patient's stage change to member, which the 360 page's timeline
# shows through customers.timeline (registered in apps.py): without these it read "阶段 已治疗 → 会员：enrolled in 金卡:
# cumulative top-up 10,000.00 ≥ …". The stored cause is the English sentence without the validity suffix
# (enrolment._create); the measure is spelt out, as a template's arguments cannot hold the spaces of "cumulative
# top-up" (they match the shortest text). Each line must equal MESSAGES["enrolled_figure"] with that measure.
STAGE_CAUSES = (
    MESSAGES["enrolled_fee"],
    MESSAGES["renewed"],  # membership_renew: a renewal brings a dormant or lost member back
    gettext_noop("enrolled in %(tier)s: cumulative spend %(figure)s ≥ %(threshold)s on %(day)s"),
    gettext_noop("enrolled in %(tier)s: cumulative top-up %(figure)s ≥ %(threshold)s on %(day)s"),
)


def message(key: str, **args) -> dict:
    """A reason to store in `data["msg"]`; `args` formatted already (strings or numbers)."""
    if key not in MESSAGES:
        raise KeyError(f"unknown membership reason {key!r}")
    return {"key": key, "args": args, "suffixes": []}


def with_suffix(msg: dict, key: str, **args) -> dict:
    if key not in SUFFIXES:
        raise KeyError(f"unknown membership reason suffix {key!r}")
    return {**msg, "args": {**msg["args"], **args}, "suffixes": [*msg["suffixes"], key]}


def _render(msg: dict, translate) -> str:
    args = dict(msg.get("args") or {})
    if "measure" in args:
        args["measure"] = translate(MEASURES.get(args["measure"], args["measure"]))
    if "why" in args and not args["why"]:
        args["why"] = translate(STAFF_DECISION)
    text = translate(MESSAGES[msg["key"]]) % args
    for suffix in msg.get("suffixes") or []:
        text += translate(SUFFIXES[suffix]) % args
    return text


def english(msg: dict) -> str:
    """The sentence stored in `reason` (no translation)."""
    return _render(msg, str)


def reason_display(event) -> str:
    """The event's reason in the active language (its stored English sentence for events without `msg`)."""
    msg = (event.data or {}).get("msg")
    if not isinstance(msg, dict) or msg.get("key") not in MESSAGES:
        return event.reason
    try:
        return _render(msg, gettext)
    except (KeyError, TypeError, ValueError):  # a malformed stored message must not break the page
        return event.reason


# --- why a hidden benefit was revealed (BenefitReveal.detail) --------------------------------------------------
# Stored as an English sentence from these templates (staff may also type their own detail, kept as typed); the
# member card shows it through `reveal_detail_display`.

REVEAL_STAFF_BY = gettext_noop("staff decision by %(name)s on %(day)s")
REVEAL_STAFF = gettext_noop("staff decision on %(day)s")
REVEAL_PLAN_HALF = gettext_noop("treatment plan %(plan)s half done (%(done)s of %(total)s steps) on %(day)s")
REVEAL_PLAN_FINISHED = gettext_noop("treatment plan %(plan)s finished (%(done)s of %(total)s steps) on %(day)s")
REVEAL_BIRTHDAY = gettext_noop("birthday month (%(month)s)")

_REVEALS = Sentences()
_REVEALS.register(REVEAL_STAFF_BY, REVEAL_STAFF, REVEAL_PLAN_HALF, REVEAL_PLAN_FINISHED, REVEAL_BIRTHDAY)

# The Nth-visit sentence counts visits, so it has a singular and a plural (ngettext): "(1 visit)", "(6 visits)".
# Stored in English by the count; shown by reading the count back (details stored as "(1 visits)" before this
# read correctly too).
_NTH_VISIT = re.compile(r"^visit no\. (?P<n>\d+) reached \((?P<visits>\d+) visits?\) on (?P<day>.+)$", re.DOTALL)


def _nth_visit(*, n, visits, day) -> str:
    return ngettext("visit no. %(n)s reached (%(visits)s visit) on %(day)s",
                    "visit no. %(n)s reached (%(visits)s visits) on %(day)s", int(visits)) % {
        "n": n, "visits": visits, "day": day}


def reveal_nth_visit(*, n: int, visits: int, day: str) -> str:
    """The English detail to store for a benefit revealed at the Nth visit."""
    with translation.override("en"):
        return _nth_visit(n=n, visits=visits, day=day)


def reveal_detail_display(detail: str) -> str:
    found = _NTH_VISIT.match(detail or "")
    if found:
        return _nth_visit(**found.groupdict())
    return _REVEALS.display(detail)
