import datetime as dt

from django import forms
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.selectors import clinic_list
from smileloop.core.filters import FilterForm
from smileloop.core.scoping import Scope
from smileloop.customers.enums import Channel

PERIODS = [("all", _("All customers")), ("30", _("New in the last 30 days")), ("90", _("New in the last 90 days")),
           ("365", _("New in the last 12 months"))]


class FunnelFilterForm(FilterForm):
    clinic = forms.TypedChoiceField(label=_("Clinic"), required=False, coerce=int, empty_value=None)
    source = forms.ChoiceField(label=_("Source"), required=False, choices=[("", _("All sources")), *Channel.choices])
    period = forms.ChoiceField(label=_("Customers"), required=False, choices=PERIODS, initial="all")

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].choices = [("", _("All my clinics"))] + [(c.id, c.name) for c in clinic_list(scope)]

    def filters(self, today: dt.date) -> dict:
        """clinic_id, source and since from valid input; anything invalid falls back to everything in scope."""
        data = self.applied()
        period = data.get("period") or "all"
        return {"clinic_id": data.get("clinic"), "source": data.get("source") or None,
                "since": None if period == "all" else today - dt.timedelta(days=int(period) - 1)}
