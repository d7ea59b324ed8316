"""The staff funnel page (/lifecycle/): customers by lifecycle stage, filtered by clinic, source and period."""

from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Clinic
from smileloop.clinics.web import require_permission, staff_view
from smileloop.core.scoping import Scope
from smileloop.customers.enums import STAGE_PROGRESS
from smileloop.lifecycle import selectors
from smileloop.lifecycle.forms import FunnelFilterForm


def _chart(result: selectors.Funnel) -> dict:
    """The funnel chart's data (json_script): customers who reached at least each progress stage."""
    steps = [s for s in result.stages if s.stage in STAGE_PROGRESS]
    return {"steps": [{"name": s.label, "value": s.reached} for s in steps],
            "labels": {"title": _("Reached at least this stage"), "customers": _("customers")}}


def _clinic_table(scope: Scope, result: selectors.Funnel) -> list[dict]:
    names = dict(Clinic.objects.filter(chain_id=scope.chain_id, id__in=[k for k in result.by_clinic if k])
                 .values_list("id", "name"))
    order = [s.stage for s in result.stages]
    rows = [{"name": names.get(clinic_id) or _("No home clinic"), "counts": [stages.get(s, 0) for s in order],
             "total": sum(stages.values())} for clinic_id, stages in result.by_clinic.items()]
    return sorted(rows, key=lambda r: -r["total"])


@staff_view
@require_GET
def funnel_page(request, scope: Scope):
    require_permission(scope, Perm.CUSTOMER_VIEW)
    form = FunnelFilterForm(scope, request.GET or None)
    filters = form.filters(timezone.localdate())
    if filters["clinic_id"] is not None and not scope.allows_clinic(filters["clinic_id"]):
        filters["clinic_id"] = None  # the form only offers the scope's clinics
    result = selectors.funnel(scope, **filters)
    context = {"form": form, "funnel": result, "chart": _chart(result), "clinics": _clinic_table(scope, result),
               "settings": selectors.settings_get(scope)}
    template = "lifecycle/funnel.html"
    if request.htmx and not request.htmx.boosted:
        template += "#results"
    return render(request, template, context)
