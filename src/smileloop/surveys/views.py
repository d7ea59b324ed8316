"""Web pages: the patient's survey link (public, mobile, no login) and the staff NPS page.

The public page trusts nothing but the token: an unknown token is a plain 404 that says nothing about
which tokens exist; the page shows the clinic, the visit date, the doctor and the patient's masked name,
no other personal data. Its form still carries Django's CSRF token.
"""

import datetime as dt

from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from smileloop.clinics.enums import Perm
from smileloop.clinics.web import require_permission, staff_view
from smileloop.core.errors import ValidationFailed
from smileloop.core.member_pages import patient_language
from smileloop.core.scoping import Scope
from smileloop.customers.normalize import name_masked
from smileloop.customers.selectors import customer_visible, name_for
from smileloop.surveys import selectors, services
from smileloop.surveys.enums import NpsGroup, SurveyState
from smileloop.surveys.errors import SurveyAlreadyAnswered, SurveyExpired, SurveyNotFound
from smileloop.surveys.forms import NpsFilterForm, SurveyAnswerForm

TREND_MONTHS = 12
LATEST_ANSWERS = 20


# --- the patient's page --------------------------------------------------------------------------------

def _public(request, template: str, context: dict, *, language: str, status: int = 200):
    response = render(request, template, context, status=status)
    response["Content-Language"] = language
    # The token is in the URL: never hand it to another site. Not "no-referrer": under it browsers send
    # `Origin: null` with the form's POST, which Django's CSRF check refuses (403), so nobody could answer.
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _survey_context(survey) -> dict:
    return {"survey": survey, "patient_name": name_masked(survey.customer.name),
            "clinic_name": survey.clinic.name, "doctor_name": survey.doctor.name if survey.doctor else ""}


@never_cache
@require_http_methods(["GET", "POST"])
def survey_page(request, token: str):
    with patient_language(request) as language:
        now = timezone.now()
        try:
            if request.method == "GET":
                survey = services.survey_open(token=token, at=now)
            else:
                survey = selectors.survey_get_by_token(token)
        except SurveyNotFound:
            return _public(request, "member/404.html", {}, language=language, status=404)
        context = _survey_context(survey)
        state = survey.state_at(now)
        if state != SurveyState.OPEN:
            return _public(request, "surveys/public/closed.html", {**context, "state": state}, language=language,
                           status=200 if request.method == "GET" else 409)
        if request.method == "GET":
            return _public(request, "surveys/public/form.html", {**context, "form": SurveyAnswerForm()},
                           language=language)
        form = SurveyAnswerForm(request.POST)
        if form.is_valid():
            try:
                services.survey_answer(token=token, score=form.cleaned_data["score"], tags=form.cleaned_data["tags"],
                                       comment=form.cleaned_data["comment"], at=now)
            except (SurveyAlreadyAnswered, SurveyExpired):
                survey.refresh_from_db()
                return _public(request, "surveys/public/closed.html", {**context, "state": survey.state_at(now)},
                               language=language, status=409)
            except ValidationFailed as exc:
                for error in exc.errors:
                    form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                return redirect("surveys:thanks", token=survey.token)
        return _public(request, "surveys/public/form.html", {**context, "form": form}, language=language,
                       status=422)


@never_cache
@require_GET
def survey_thanks(request, token: str):
    with patient_language(request) as language:
        try:
            survey = selectors.survey_get_by_token(token)
        except SurveyNotFound:
            return _public(request, "member/404.html", {}, language=language, status=404)
        if survey.answered_at is None:
            return redirect("surveys:answer", token=survey.token)
        return _public(request, "surveys/public/thanks.html", _survey_context(survey), language=language)


# --- the staff NPS page --------------------------------------------------------------------------------

def _month_start(day: dt.date, months_back: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months_back
    return dt.date(index // 12, index % 12 + 1, 1)


def _trend(scope: Scope, *, clinic_id: int | None, today: dt.date) -> dict:
    """The last 12 months (missing months as gaps), for the chart's json_script block."""
    first = _month_start(today, TREND_MONTHS - 1)
    rows = {row.key: row for row in selectors.nps(scope, group_by=NpsGroup.MONTH, since=first, until=today,
                                                    clinic_id=clinic_id)}
    months = [_month_start(today, back) for back in range(TREND_MONTHS - 1, -1, -1)]
    return {
        "months": [m.strftime("%Y-%m") for m in months],
        "nps": [str(rows[m].nps) if m in rows else None for m in months],
        "responses": [rows[m].responses if m in rows else 0 for m in months],
        "labels": {"nps": _("NPS"), "responses": _("Responses")},
    }


def _task_url(task_id: int | None) -> str | None:
    if not task_id:
        return None
    try:
        return reverse("followups:task", args=[task_id])
    except NoReverseMatch:  # the follow-ups pages are not mounted: show the id only
        return None


def _latest_row(scope: Scope, survey) -> dict:
    """An answer as its reader may see it: a survey is read by the clinic of the visit, but the patient may belong
    to another clinic; such a patient is named masked (张*) and not linked (PIPL, docs/architecture.md)."""
    visible = customer_visible(scope, survey.customer)
    return {"survey": survey, "task_url": _task_url(survey.complaint_task_id),
            "name": name_for(scope, survey.customer),
            "customer_url": reverse("customers:detail", args=[survey.customer_id]) if visible else None}


@staff_view
@require_GET
def nps_page(request, scope: Scope):
    require_permission(scope, Perm.SURVEY_VIEW)
    today = timezone.localdate()
    form = NpsFilterForm(scope, request.GET or None)
    clinic_id, since = form.filters(today)
    window = {"since": since, "until": today, "clinic_id": clinic_id}
    latest = selectors.survey_latest_answers(scope, limit=LATEST_ANSWERS, **window)
    context = {
        "form": form,
        "totals": selectors.survey_totals(scope, **window),
        "by_clinic": selectors.nps(scope, group_by=NpsGroup.CLINIC, **window),
        "by_doctor": selectors.nps(scope, group_by=NpsGroup.DOCTOR, **window),
        "by_month": selectors.nps(scope, group_by=NpsGroup.MONTH, **window),
        "trend": _trend(scope, clinic_id=clinic_id, today=today),
        "latest": [_latest_row(scope, s) for s in latest],
        "since": since,
        "today": today,
    }
    template = "surveys/nps.html"
    if request.htmx and not request.htmx.boosted:
        template += "#results"
    return render(request, template, context)
