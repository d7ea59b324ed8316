"""Demo surveys for the demo chain: one per completed visit of the last year (the NPS page's monthly trend covers 12
months), about 35% answered with a
realistic score mix (mostly 9–10, some 7–8, a few ≤ 6 with comments that open complaint tasks).

Set-based: one read of the visits, chunked inserts of surveys and timeline rows; only the few detractors go
through the complaint service one by one. Deterministic for a (chain, today) pair and idempotent: a second
load finds every visit surveyed and adds nothing.
"""

import datetime as dt
import random

from django.utils import timezone

from smileloop.clinics.models import Chain
from smileloop.customers.enums import InteractionKind
from smileloop.customers.models import Interaction
from smileloop.followups.enums import Outcome
from smileloop.followups.models import FollowupTask
from smileloop.followups.services import followup_complete
from smileloop.surveys import selectors, services
from smileloop.surveys.enums import DETRACTOR_MAX, SurveyTag
from smileloop.surveys.models import Survey

DAYS = 365
ANSWER_RATE = 0.35
OPENED_ONLY_RATE = 0.15
RECENT_COMPLAINT_DAYS = 3  # older complaints are shown as already handled by the director

PROMOTER_COMMENTS = ["医生讲解得很耐心，很放心", "环境干净，前台很热情", "一点都不疼，下次还来", "预约很准时，不用等",
                     "孩子一点都不害怕，谢谢医生", ""]
PASSIVE_COMMENTS = ["整体不错，就是等了一会儿", "价格稍微有点高", "停车不太方便", ""]
DETRACTOR_COMMENTS = ["等待时间太长了", "价格比说好的贵，没有提前说明", "补牙的时候有点疼，医生没怎么解释",
                      "约好的时间等了四十分钟", "收费项目不清楚"]
PROMOTER_TAGS = [SurveyTag.DOCTOR_EXPLANATION, SurveyTag.ENVIRONMENT]
OTHER_TAGS = [SurveyTag.WAITING_TIME, SurveyTag.PRICE, SurveyTag.PAIN, SurveyTag.DOCTOR_EXPLANATION]


def _score(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.70:
        return 10 if rng.random() < 0.6 else 9
    if r < 0.95:
        return rng.choice([7, 8, 8])
    return rng.choice([2, 3, 4, 5, 5, 6, 6, 6])


def _answer(rng: random.Random, score: int) -> tuple[list[str], str]:
    if score >= 9:
        tags, comment = rng.sample(PROMOTER_TAGS, rng.choice([0, 1, 1, 2])), rng.choice(PROMOTER_COMMENTS)
    elif score >= 7:
        tags, comment = rng.sample(OTHER_TAGS[:2], rng.choice([0, 1])), rng.choice(PASSIVE_COMMENTS)
    else:
        tags, comment = rng.sample(OTHER_TAGS[:3], rng.choice([1, 1, 2])), rng.choice(DETRACTOR_COMMENTS)
    return [t.value for t in SurveyTag if t in tags], comment


def _opened_at(rng: random.Random, sent_at: dt.datetime) -> dt.datetime:
    """When a patient opens the 09:00 text: most within hours, some that evening, a few the next day, awake
    (an answer at 04:00 would not look like a patient)."""
    r = rng.random()
    if r < 0.6:
        return sent_at + dt.timedelta(minutes=rng.randint(5, 180))
    day = sent_at.date() + dt.timedelta(days=0 if r < 0.9 else 1)
    start, end = (19 * 60, 22 * 60 + 30) if r < 0.9 else (8 * 60, 22 * 60)
    return dt.datetime.combine(day, dt.time(0), tzinfo=sent_at.tzinfo) + dt.timedelta(minutes=rng.randint(start, end))


def demo_load(*, chain: Chain, today: dt.date) -> dict:
    tz = selectors.chain_tz(chain)
    # 10:00 on the demo's day, but never later than now: a demo loaded at 07:00 has no texts sent at 09:00 yet
    moment = min(dt.datetime.combine(today, dt.time(10), tzinfo=tz), timezone.now())
    rng = random.Random(f"surveys:{chain.name}:{today.isoformat()}")
    rows = selectors.visits_without_survey(chain=chain, since=today - dt.timedelta(days=DAYS),
                                           until=today - dt.timedelta(days=1))
    expiry = dt.timedelta(days=selectors.survey_expiry_days(chain_id=chain.id))

    def created_at(row):  # the daily job runs the morning after the visit and the SMS goes out at once
        return min(dt.datetime.combine(row.visit_date + dt.timedelta(days=1), dt.time(9), tzinfo=tz), moment)

    surveys = services.survey_rows_build(chain=chain, rows=rows, created_at=created_at, expiry=expiry)
    for survey in surveys:
        survey.sent_at = survey.created_at
        r = rng.random()
        latest = min(moment, survey.expires_at) - dt.timedelta(minutes=1)
        answered_at = _opened_at(rng, survey.created_at)
        if r < ANSWER_RATE and answered_at < latest:
            survey.score = _score(rng)
            survey.tags, survey.comment = _answer(rng, survey.score)
            survey.answered_at, survey.opened_at = answered_at, answered_at - dt.timedelta(minutes=rng.randint(1, 4))
        elif r < ANSWER_RATE + OPENED_ONLY_RATE and answered_at < latest:
            survey.opened_at = answered_at
    created = services.surveys_insert(surveys)

    answered = list(Survey.objects.filter(token__in=[s.token for s in surveys], answered_at__isnull=False)
                    .select_related("customer", "clinic", "doctor").order_by("answered_at", "id"))
    Interaction.objects.bulk_create(
        [Interaction(customer_id=s.customer_id, kind=InteractionKind.FORM, text=services.survey_answer_texts(s)[0],
                     clinic_id=s.clinic_id, occurred_at=s.answered_at,
                     data={"survey_id": s.id, "score": s.score, "tags": s.tags, "via": "link"})
         for s in answered], batch_size=1000)
    complaints = handled = 0
    for survey in answered:
        if survey.score > DETRACTOR_MAX:
            continue
        task_id = services.survey_complaint_open(survey=survey, brief=services.survey_answer_texts(survey)[1],
                                                 at=survey.answered_at)
        Survey.objects.filter(pk=survey.pk).update(complaint_task_id=task_id)
        complaints += 1
        if survey.answered_at < moment - dt.timedelta(days=RECENT_COMPLAINT_DAYS):
            task = FollowupTask.objects.select_related("assignee").get(pk=task_id)
            followup_complete(task=task, outcome=Outcome.REACHED, actor=task.assignee,
                              note="已致电致歉并说明情况，患者表示理解")
            handled += 1
    return {"surveys": created, "answered": len(answered), "complaints": complaints, "complaints_handled": handled}
