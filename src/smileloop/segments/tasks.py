"""Periodic jobs of the segments app (scheduled in config/schedules.py by the jobs owner)."""

import datetime as dt
import logging

from django.utils import timezone

from smileloop.customers.services import customers_erasures_wait
from smileloop.segments.rules.validation import validate
from smileloop.segments.selectors import chain_scope, compile
from smileloop.tagging.enums import TagKind, TagSource
from smileloop.tagging.models import CustomerTag, Tag
from smileloop.tagging.services import rule_tag_sync

logger = logging.getLogger(__name__)


def rule_tags_job(*, today: dt.date | None = None) -> dict:
    """Recompute every active rule tag: compile its rule chain-wide and let tagging add the missing rows and
    remove the ones that no longer match (two statements per tag). Idempotent: a second run on the same
    data adds and removes nothing. A tag whose rule no longer validates is skipped and logged."""
    today = today or timezone.localdate()
    at = timezone.now()
    totals = {"tags": 0, "added": 0, "removed": 0, "invalid": 0}
    tags = list(Tag.objects.filter(kind=TagKind.RULE, is_active=True).order_by("chain_id", "id"))
    # Rules that test other tags run after those that do not, so one run settles a rule tag built on another.
    tags.sort(key=lambda t: (t.chain_id, _uses_tags(t.rule), t.id))
    for tag in tags:
        errors = validate(tag.rule) if isinstance(tag.rule, dict) else ["not a rule tree"]
        if errors:
            totals["invalid"] += 1
            logger.warning("rule tag %s (%s) skipped: invalid rule: %s", tag.pk, tag.code,
                           "; ".join(f"{e.field}: {e.message}" if hasattr(e, "field") else str(e) for e in errors))
            continue
        customers = compile(chain_scope(tag.chain_id), tag.rule, today=today).values("id")
        result = rule_tag_sync(tag=tag, customer_ids=customers, at=at)
        totals["tags"] += 1
        totals["added"] += result["added"] - _erased_meanwhile(tag, at=at)
        totals["removed"] += result["removed"]
    return totals


def rule_tags_after_merge(*, survivor, merged, actor=None) -> dict:
    """A merge's survivor (customers' merge-after hook, inside the merge): its rule tags re-checked at once against
    what the two records hold together, instead of at the next nightly run. The merged record's rule tags moved onto
    the survivor whether or not the survivor matches them ("never visited" onto a patient), and the two records'
    spend and visits together may reach a rule neither reached alone. Only the survivor's rows change."""
    return rule_tags_refresh(chain_id=survivor.chain_id, customer_ids=[survivor.pk])


def rule_tags_refresh(*, chain_id: int, customer_ids: list[int], today: dt.date | None = None) -> dict:
    """`rule_tags_job` for these customers of one chain only (one query per active rule tag, each limited to them):
    in the job's order, so a rule built on another rule tag sees it settled."""
    today = today or timezone.localdate()
    at = timezone.now()
    totals = {"tags": 0, "added": 0, "removed": 0}
    tags = sorted(Tag.objects.filter(chain_id=chain_id, kind=TagKind.RULE, is_active=True),
                  key=lambda t: (_uses_tags(t.rule), t.id))
    for tag in tags:
        if not isinstance(tag.rule, dict) or validate(tag.rule):
            continue  # the nightly job logs it
        customers = compile(chain_scope(chain_id), tag.rule, today=today).filter(pk__in=customer_ids).values("id")
        result = rule_tag_sync(tag=tag, customer_ids=customers, at=at, among=customer_ids)
        totals["tags"] += 1
        totals["added"] += result["added"]
        totals["removed"] += result["removed"]
    return totals


def _erased_meanwhile(tag: Tag, *, at) -> int:
    """Delete the rule rows this sync added for people erased while it ran: it read them before the erasure
    committed, after the erasure's tagging hook had removed their tags. Erasures in progress are waited for first
    (customers_erasures_wait; one that starts later waits and removes the tags itself): the DELETE sees them all."""
    added = CustomerTag.objects.filter(tag_id=tag.pk, source=TagSource.RULE, set_at=at)
    customers_erasures_wait(added.values("customer_id"))
    return added.filter(customer__erased_at__isnull=False).delete()[0]


def _uses_tags(node) -> bool:
    if isinstance(node, dict):
        return node.get("field") == "tag" or any(_uses_tags(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_tags(v) for v in node)
    return False
