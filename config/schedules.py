"""Every periodic job, listed once (issue 4 §1). settings.JOB_SCHEDULES points here.

Times are chain-local (Asia/Shanghai), at night, ordered so each job sees the work of the ones before
it: money expiries first, then tags → rule tags → lifecycle stages → follow-up tasks (which read tags,
segments and stages) → surveys. On the embedded SQLite queue the worker runs one job at a time, so a slow
job delays the next one instead of overlapping it; on Redis it has two threads (an import need not wait for a
nightly job), so a job running past the start of the next may overlap it: jobs are idempotent, and what the
first was still writing is seen by the next night's run. Paths are imported only when a job runs (smileloop.core.jobs): a missing
or broken app fails its own job, never the others. `smileloop run --list` prints this list;
`smileloop run NAME [--today YYYY-MM-DD]` runs one job now.

This is the composition root for jobs (like config/urls.py for pages): the one small adapter below
lives here, not in core, because core may not import the apps.
"""

import datetime as dt

from smileloop.core.jobs import Job


def ledger_lots_expire_all(*, as_of: dt.datetime | None = None) -> dict:
    """ledger.services.lots_expire for every chain (it works one chain at a time)."""
    from smileloop.clinics.models import Chain
    from smileloop.ledger.services import lots_expire

    chains = list(Chain.objects.order_by("id").values_list("id", flat=True))
    return {"lots_expired": sum(lots_expire(chain_id=chain_id, as_of=as_of) for chain_id in chains),
            "chains": len(chains)}


JOBS: list[Job] = [
    # --- money and memberships (issue 3) -------------------------------------------------------------
    Job("ledger.expire", "config.schedules.ledger_lots_expire_all", "10 1 * * *",
        "Expire point and stored-value bonus lots past their date (= `smileloop ledger expire`).",
        argument="as_of"),
    Job("loyalty.expire", "smileloop.loyalty.services.entitlements_expire", "20 1 * * *",
        "Expire package entitlements whose period ended (with ledger.expire = `smileloop loyalty expire`).",
        argument="as_of"),
    Job("giftcards.expire", "smileloop.giftcards.services.giftcards_expire", "30 1 * * *",
        "Void what is left on gift cards and vouchers past their expiry (= `smileloop giftcards expire`).",
        argument="as_of"),
    Job("membership.expire", "smileloop.membership.services.memberships_expire", "40 1 * * *",
        "Expire dated memberships past their end and record renewal reminders 30 and 7 days ahead.",
        argument="as_of"),
    # --- retention engine (issue 4) ------------------------------------------------------------------
    Job("tagging.keywords", "smileloop.tagging.tasks.keyword_tags_job", "0 2 * * *",
        "Keyword tags from the timeline's chats and calls (Aho-Corasick, thresholds over 30 days)."),
    Job("segments.rule_tags", "smileloop.segments.tasks.rule_tags_job", "10 2 * * *",
        "Recompute rule tags (e.g. high value: paid spend in 12 months ≥ X)."),
    Job("lifecycle.stages", "smileloop.lifecycle.tasks.stages_job", "20 2 * * *",
        "Move customers without a visit for N months to dormant, then to lost; leads who never came to lost."),
    # Nightly, then hourly in opening hours: a no-show or a low survey score becomes a task the same day.
    Job("followups.daily", "smileloop.followups.tasks.followups_job", "30 2,8-20 * * *",
        "Create the follow-up tasks due today for every playbook and close tasks whose goal happened."),
    Job("surveys.daily", "smileloop.surveys.tasks.surveys_job", "50 2 * * *",
        "Satisfaction surveys for completed visits and expiry of unanswered ones."),
    # --- housekeeping --------------------------------------------------------------------------------
    Job("core.idempotency_purge", "smileloop.core.tasks.idempotency_purge_job", "0 4 * * *",
        "Forget Idempotency-Key records older than IDEMPOTENCY_KEEP_DAYS (7 days)."),
    Job("imports.purge", "smileloop.imports.services.batches.batch_files_purge", "15 4 * * *",
        "Delete uploaded import files and their previews older than 30 days (they hold patients' personal data).",
        argument="none"),
    Job("core.statistics", "smileloop.core.tasks.statistics_job", "30 4 * * *",
        "SQLite only: refresh the query planner's statistics (complete ANALYZE); PostgreSQL's autovacuum does this.",
        argument="none"),
    # --- by hand only (no schedule) ------------------------------------------------------------------
    Job("lifecycle.derive", "smileloop.lifecycle.tasks.stages_derive_job", None,
        "Re-derive every customer's lifecycle stage from the facts (after an import or a back-fill)."),
]
