"""Forms of the segment pages: the name and description of a saved segment, and the choices the builder's
rows offer (the rows themselves are parsed and drawn by `builder`)."""

from functools import cached_property

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from smileloop.core.errors import ValidationFailed
from smileloop.core.scoping import Scope
from smileloop.segments.builder import Builder, Condition
from smileloop.segments.rules.fields import FIELDS, category_choices


class SegmentForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("object", "Name"), max_length=100)
    description = forms.CharField(label=gettext_lazy("Description"), max_length=500, required=False,
                                  widget=forms.Textarea(attrs={"rows": 2}))

    clinic = forms.ChoiceField(label=gettext_lazy("Whose segment"), required=False,
                               help_text=gettext_lazy("The whole chain's segment can be changed by chain roles "
                                                      "only; a clinic's by its clinic staff too."))

    def __init__(self, data=None, *, scope: Scope | None = None, **kwargs):
        super().__init__(data, **kwargs)
        from smileloop.clinics.models import Clinic

        clinics = Clinic.objects.filter(chain_id=scope.chain_id).order_by("id") if scope else Clinic.objects.none()
        if scope is not None and not scope.is_chain_wide:
            clinics = clinics.filter(pk__in=scope.clinic_ids)
        choices = [(str(c.pk), c.name) for c in clinics]
        if scope is None or scope.is_chain_wide:
            choices.insert(0, ("", _("The whole chain")))
        self.fields["clinic"].choices = choices
        # One clinic and no chain choice: nothing to choose, the segment is that clinic's.
        self.show_clinic = len(choices) > 1

    def clean_clinic(self) -> int | None:
        value = self.cleaned_data.get("clinic")
        return int(value) if value else None

    def add_domain_error(self, exc: ValidationFailed) -> None:
        for error in exc.errors:
            if error.field in self.fields:
                self.add_error(error.field, error.message)


# --- choices the rows offer (loaded once per page) -----------------------------------------------------


class BuilderChoices:
    """Clinics, tags and tiers of the chain, and the static choices, for the selects of every row."""

    def __init__(self, scope: Scope):
        self.scope = scope

    @cached_property
    def clinics(self) -> list[tuple[str, str]]:
        from smileloop.clinics.models import Clinic

        return [(str(c.id), c.name) for c in Clinic.objects.filter(chain_id=self.scope.chain_id).order_by("id")]

    @cached_property
    def tags(self) -> list[tuple[str, str]]:
        from smileloop.tagging.models import Tag

        return [(t.code, f"{t.group.name} · {t.name}") for t in
                Tag.objects.filter(chain_id=self.scope.chain_id).select_related("group")
                .order_by("group__ordering", "group_id", "name")]

    @cached_property
    def tiers(self) -> list[tuple[str, str]]:
        from smileloop.membership.models import Tier

        return [(str(t.id), f"{t.plan.name} · {t.name}") for t in
                Tier.objects.filter(plan__chain_id=self.scope.chain_id).select_related("plan")
                .order_by("plan__name", "rank")]

    @cached_property
    def categories(self) -> list[tuple[str, str]]:
        return [(v, str(label)) for v, label in category_choices()]

    def for_condition(self, cond: Condition) -> list[tuple[str, str]]:
        spec = cond.spec
        if spec is None:
            return []
        if spec.value_type == "clinic":
            return self.clinics
        if spec.value_type == "tag":
            return self.tags
        if spec.value_type == "tier":
            return self.tiers
        if spec.value_type == "bool":
            return [("true", _("yes")), ("false", _("no"))]
        if spec.value_type == "month":
            return [(str(m), str(m)) for m in range(1, 13)]
        if spec.choices:
            return [(str(v), str(label)) for v, label in spec.choices()]
        return []

    @cached_property
    def field_groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        groups: dict[str, list[tuple[str, str]]] = {}
        for spec in FIELDS.values():
            groups.setdefault(str(spec.group), []).append((spec.name, str(spec.label)))
        return list(groups.items())


def builder_prepare(builder: Builder, choices: BuilderChoices) -> Builder:
    """Give every row the options of its value select (the chain's clinics, tags, tiers are read once)."""
    for cond in builder.conditions():
        cond.options = choices.for_condition(cond)
    return builder
