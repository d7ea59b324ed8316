import datetime as dt

from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.selectors import clinic_list
from smileloop.core.filters import FilterForm
from smileloop.core.scoping import Scope
from smileloop.surveys.enums import COMMENT_MAX_LENGTH, SCORE_MAX, SCORE_MIN, SurveyTag


class CommentField(forms.CharField):
    """A textarea's text with its line breaks as browsers count them. A browser's `maxlength` counts a line break
    as one character but submits it as CR LF, so a comment the page accepted at 500 characters arrived longer and
    was refused; the comment is counted (and stored) with LF line breaks. A NUL character is refused in words a
    patient understands (Django's zh-hans text for it says "empty string")."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.validators.append(ProhibitNullCharactersValidator(message=_(
            "Your comment contains an invisible control character; please delete it and type the text again.")))

    def to_python(self, value):
        if isinstance(value, str):
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        return super().to_python(value)


class SurveyAnswerForm(forms.Form):
    """The patient's answer. Radios and checkboxes are styled as buttons in the template (no JS needed)."""

    score = forms.TypedChoiceField(
        label=_("How likely are you to recommend us to a friend or family member?"),
        choices=[(i, str(i)) for i in range(SCORE_MIN, SCORE_MAX + 1)], coerce=int, widget=forms.RadioSelect,
        error_messages={"required": _("Please choose a score from 0 to 10."),
                        "invalid_choice": _("Please choose a score from 0 to 10.")})
    tags = forms.MultipleChoiceField(
        label=_("What was your score about? (optional, choose any)"), choices=SurveyTag.choices, required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": _("Please choose from the listed topics only.")})
    comment = CommentField(
        label=_("Anything else you would like to tell us? (optional)"), required=False,
        max_length=COMMENT_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"max_length": _("Please keep your comment within %(limit_value)d characters "
                                        "(it has %(show_value)d).")})


PERIODS = [("30", _("Last 30 days")), ("90", _("Last 90 days")), ("365", _("Last 12 months")), ("all", _("All time"))]


class NpsFilterForm(FilterForm):
    clinic = forms.TypedChoiceField(label=_("Clinic"), required=False, coerce=int, empty_value=None)
    period = forms.ChoiceField(label=_("Period"), choices=PERIODS, required=False, initial="90")

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].choices = [("", _("All my clinics"))] + [(c.id, c.name) for c in clinic_list(scope)]

    def filters(self, today: dt.date) -> tuple[int | None, dt.date | None]:
        """(clinic id, since) from valid input; invalid or missing input falls back to all clinics, 90 days."""
        data = self.applied()
        clinic_id = data.get("clinic")
        period = data.get("period") or "90"
        since = None if period == "all" else today - dt.timedelta(days=int(period) - 1)
        return clinic_id, since
