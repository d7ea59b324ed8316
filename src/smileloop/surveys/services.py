"""Writes: create the day's surveys (set-based, idempotent), open a link, answer it (once, before it
expires), mark links sent. A score ≤ 6 opens a complaint task for the clinic director."""

import datetime as dt
import secrets
import string
from collections.abc import Callable, Iterable

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_noop

from smileloop.clinics.models import Chain, Staff
from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.customers.enums import InteractionKind
from smileloop.customers.services import customers_lock, interaction_add
from smileloop.customers.timeline import FIELD_SEPARATOR, list_join, timeline_format
from smileloop.followups.services import complaint_task_open
from smileloop.surveys import selectors
from smileloop.surveys.enums import (
    COMMENT_MAX_LENGTH,
    DETRACTOR_MAX,
    SCORE_MAX,
    SCORE_MIN,
    SurveyState,
    SurveyTag,
)
from smileloop.surveys.errors import SurveyAlreadyAnswered, SurveyExpired
from smileloop.surveys.models import Survey

TOKEN_ALPHABET = string.ascii_letters + string.digits  # base62: URL-safe, no escaping, easy to read aloud
TOKEN_LENGTH = 12  # 62^12 ≈ 3.2·10^21 ≈ 71 bits: guessing one live link is hopeless without rate limiting
CATCH_UP_DAYS = 7  # a missed daily run is caught up for a week of visits; older visits get no survey
BATCH_SIZE = 1000
COMPLAINT_DUE = dt.timedelta(hours=24)


def token_new() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


# --- creation ------------------------------------------------------------------------------------------

def surveys_insert(surveys: Iterable[Survey]) -> int:
    """Insert in chunks, skipping visits that already have a survey (the unique appointment key makes a
    concurrent or repeated run harmless). Returns how many rows this call inserted."""
    created, chunk = 0, []
    for survey in surveys:
        chunk.append(survey)
        if len(chunk) >= BATCH_SIZE:
            created += _insert_chunk(chunk)
            chunk = []
    if chunk:
        created += _insert_chunk(chunk)
    return created


def _insert_chunk(chunk: list[Survey]) -> int:
    Survey.objects.bulk_create(chunk, ignore_conflicts=True)
    # The tokens are fresh and random: the rows carrying them are exactly the ones this call inserted.
    return Survey.objects.filter(token__in=[s.token for s in chunk]).count()


def survey_rows_build(*, chain: Chain, rows: list[selectors.VisitRow],
                      created_at: Callable[[selectors.VisitRow], dt.datetime], expiry: dt.timedelta,
                      **fields) -> list[Survey]:
    """Unsaved surveys for visit rows, each with a fresh token; `fields` are extra values for every row."""
    out = []
    for row in rows:
        at = created_at(row)
        out.append(Survey(chain_id=chain.id, clinic_id=row.clinic_id, customer_id=row.customer_id,
                          appointment_id=row.appointment_id, order_id=row.order_id, doctor_id=row.doctor_id,
                          visit_date=row.visit_date, token=token_new(), created_at=at, expires_at=at + expiry,
                          **fields))
    return out


def surveys_create_for_visits(*, chain: Chain, today: dt.date, at: dt.datetime | None = None) -> dict:
    """One survey per completed visit of yesterday (and of the catch-up window before it). Idempotent:
    a second run inserts nothing. Reads the visits in one query and inserts in chunks; tokens are made in
    Python only for the new rows (a day's visits, never the whole patient pool)."""
    at = at or timezone.now()
    since, until = today - dt.timedelta(days=CATCH_UP_DAYS), today - dt.timedelta(days=1)
    rows = selectors.visits_without_survey(chain=chain, since=since, until=until)
    expiry = dt.timedelta(days=selectors.survey_expiry_days(chain_id=chain.id))
    created = surveys_insert(survey_rows_build(chain=chain, rows=rows, created_at=lambda row: at, expiry=expiry))
    return {"visits": len(rows), "created": created}


def surveys_mark_sent(*, survey_ids: Iterable[int], at: dt.datetime | None = None) -> int:
    """Record that links went out (SMS, WeChat, a staff call). Only the first send counts, and only of a link
    that can still be answered: an expired link sent late would count as sent and unanswered, lowering the
    response rate for nothing the patient could do. One UPDATE."""
    at = at or timezone.now()
    return Survey.objects.filter(pk__in=list(survey_ids), sent_at__isnull=True, expires_at__gt=at).update(sent_at=at)


def survey_mark_sent(*, survey: Survey, at: dt.datetime | None = None) -> Survey:
    """One link sent (the API's POST …/sent). An expired link never sent → SurveyExpired and nothing changes; a
    link already sent or answered is left as it is (a second send is not news)."""
    at = at or timezone.now()
    if survey.sent_at is None and survey.state_at(at) == SurveyState.EXPIRED:
        raise SurveyExpired("This survey link has expired; it can no longer be sent")
    surveys_mark_sent(survey_ids=[survey.id], at=at)
    return survey


# --- the patient's side --------------------------------------------------------------------------------

def survey_open(*, token: str, at: dt.datetime | None = None) -> Survey:
    """The survey behind a link, marking it opened (and so sent) on the first view of an open survey.
    An answered or expired survey is returned unchanged."""
    at = at or timezone.now()
    survey = selectors.survey_get_by_token(token)
    if survey.opened_at is None and survey.state_at(at) == SurveyState.OPEN:
        marked = Survey.objects.filter(pk=survey.pk, opened_at__isnull=True).update(
            opened_at=at, sent_at=Coalesce(F("sent_at"), at))
        if marked:
            survey.opened_at, survey.sent_at = at, survey.sent_at or at
    return survey


def survey_answer_clean(*, score, tags, comment) -> tuple[int, list[str], str]:
    """Validate an answer: score 0–10 (required), tags from SurveyTag only, comment ≤ 500 characters (line breaks
    as LF, one character each, as the page's textarea counts them)."""
    errors = []
    if isinstance(score, bool) or score is None or score == "":
        errors.append(FieldError("score", "is required (0–10)"))
        score = None
    else:
        # Plain ASCII digits only, as the page and the API take them: int() alone also reads "１０" and "1_0".
        text = str(score).strip()
        if not (isinstance(score, int) or (text.isascii() and text.isdigit())):
            errors.append(FieldError("score", "must be a whole number from 0 to 10", text[:20]))
            score = None
        else:
            score = int(text)
            if not SCORE_MIN <= score <= SCORE_MAX:
                errors.append(FieldError("score", "must be from 0 to 10", str(score)))
    tags = [] if tags is None else tags
    if isinstance(tags, str) or not isinstance(tags, (list, tuple)):
        errors.append(FieldError("tags", "must be a list of tags"))
        tags = []
    unknown = [t for t in tags if t not in SurveyTag.values]
    if unknown:
        errors.append(FieldError("tags", f"unknown tag(s); choose from {', '.join(SurveyTag.values)}",
                                 ", ".join(str(t) for t in unknown)[:100]))
    clean_tags = [t for t in SurveyTag.values if t in tags]  # canonical order, no duplicates
    comment = "" if comment is None else comment
    if not isinstance(comment, str):
        errors.append(FieldError("comment", "must be text"))
        comment = ""
    comment = comment.replace("\r\n", "\n").replace("\r", "\n").strip()  # a line break is one character
    if "\x00" in comment:  # PostgreSQL cannot store it in a text column: a 500 instead of this message
        errors.append(FieldError("comment", "must not contain the NUL character (\\u0000)"))
    if len(comment) > COMMENT_MAX_LENGTH:
        errors.append(FieldError("comment", f"must be at most {COMMENT_MAX_LENGTH} characters "
                                            f"(it has {len(comment)})"))
    if errors:
        raise ValidationFailed(errors)
    return score, clean_tags, comment


def _state_check(survey: Survey, at: dt.datetime) -> None:
    state = survey.state_at(at)
    if state == SurveyState.ANSWERED:
        raise SurveyAlreadyAnswered("This survey has already been answered")
    if state == SurveyState.EXPIRED:
        raise SurveyExpired("This survey link has expired")


@transaction.atomic
def survey_answer(*, token: str, score, tags, comment: str = "", at: dt.datetime | None = None,
                  actor: Staff | None = None) -> Survey:
    """Record the patient's answer once. Answered or expired → a typed error and nothing changes; two
    simultaneous answers → exactly one wins (a conditional UPDATE … WHERE answered_at IS NULL, which the
    loser re-evaluates after the winner commits). Writes a timeline entry; a score ≤ 6 opens a complaint
    task for the clinic director due within 24 hours (idempotent on the survey)."""
    at = at or timezone.now()
    survey = selectors.survey_get_by_token(token)
    _state_check(survey, at)
    score, tags, comment = survey_answer_clean(score=score, tags=tags, comment=comment)
    # The patient's row before the survey's, the order an erasure takes them in (it locks the person, then its hook
    # expires their open links): the other order deadlocked with it. An erasure that committed meanwhile expired
    # this link, which the conditional UPDATE below then sees.
    customers_lock(survey.customer_id)
    won = Survey.objects.filter(pk=survey.pk, answered_at__isnull=True, expires_at__gt=at).update(
        score=score, tags=tags, comment=comment, answered_at=at,
        opened_at=Coalesce(F("opened_at"), at), sent_at=Coalesce(F("sent_at"), at))
    if not won:
        survey.refresh_from_db()
        _state_check(survey, at)
        raise SurveyAlreadyAnswered("This survey has already been answered")  # pragma: no cover (defensive)
    survey.refresh_from_db(fields=["score", "tags", "comment", "answered_at", "opened_at", "sent_at"])
    text, brief = survey_answer_texts(survey)
    interaction_add(customer=survey.customer, kind=InteractionKind.FORM, text=text, author=actor,
                    clinic=survey.clinic, occurred_at=at,
                    data={"survey_id": survey.id, "score": score, "tags": tags, "via": "api" if actor else "link"})
    if score <= DETRACTOR_MAX:
        survey.complaint_task_id = survey_complaint_open(survey=survey, brief=brief, at=at)
        Survey.objects.filter(pk=survey.pk).update(complaint_task_id=survey.complaint_task_id)
    return survey


def survey_complaint_open(*, survey: Survey, brief: str, at: dt.datetime) -> int:
    """Open (or find) the complaint task for a detractor's answer; its id."""
    task = complaint_task_open(
        customer=survey.customer, clinic=survey.clinic, brief=brief, anchor_key=f"survey:{survey.id}",
        due_at=at + COMPLAINT_DUE,
        context={"survey_id": survey.id, "score": survey.score, "tags": survey.tags, "comment": survey.comment,
                 "visit_date": survey.visit_date.isoformat(), "doctor": survey.doctor.name if survey.doctor else "",
                 "appointment_id": survey.appointment_id})
    return task.id


# The answer on the timeline: stored in English, shown in the reader's language (customers.timeline; registered in
# apps.py), the tags as their codes.
ANSWER = gettext_noop("satisfaction survey: %(score)s/10")
ANSWER_TAGS = gettext_noop("satisfaction survey: %(score)s/10 · about: %(tags)s")
ANSWER_COMMENT = gettext_noop("satisfaction survey: %(score)s/10 · “%(comment)s”")
ANSWER_TAGS_COMMENT = gettext_noop("satisfaction survey: %(score)s/10 · about: %(tags)s · “%(comment)s”")
ANSWER_TEMPLATES = (ANSWER_TAGS_COMMENT, ANSWER_TAGS, ANSWER_COMMENT, ANSWER)
LOW_SCORE = gettext_noop("Low score after the visit of %(date)s (doctor %(doctor)s). %(answer)s")


def survey_tags_label(stored: str) -> str:
    """"price, pain" → "价格、疼痛感受"."""
    return list_join(SurveyTag(code).label for code in stored.split(FIELD_SEPARATOR))


def survey_answer_texts(survey: Survey) -> tuple[str, str]:
    """The timeline entry (see ANSWER) and the complaint task's brief (LOW_SCORE), both stored in English."""
    template = ((ANSWER_TAGS_COMMENT if survey.comment else ANSWER_TAGS) if survey.tags
                else ANSWER_COMMENT if survey.comment else ANSWER)
    text = timeline_format(template, score=survey.score, tags=FIELD_SEPARATOR.join(survey.tags),
                           comment=survey.comment)
    brief = timeline_format(LOW_SCORE, date=survey.visit_date.isoformat(),
                            doctor=survey.doctor.name if survey.doctor else "—", answer=text)
    return text, brief


def surveys_erase_hook(*, customer, actor: Staff | None = None) -> dict:
    """Before a person's personal information is erased (customers.privacy): their free-text comments are blanked
    and their unanswered links expire now (a link is their credential). Scores and tags stay for the clinic's NPS."""
    now = timezone.now()
    surveys = Survey.objects.filter(customer=customer)
    blanked = surveys.exclude(comment="").update(comment="")
    expired = surveys.filter(answered_at__isnull=True, expires_at__gt=now).update(expires_at=now)
    return {"survey_comments": blanked, "surveys_expired": expired}
