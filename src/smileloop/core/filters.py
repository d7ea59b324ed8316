"""Report filter forms (NPS, team board, funnel): what the page shows is what it applied.

A report reads its filters from the query string. A missing value (a link with other parameters, `?page=2`) or an
invalid one (an old bookmark, a clinic no longer in scope) falls back to the field's initial value on its own,
without discarding the other filters, and the form is redrawn with the value applied: a select left on a bound
but missing value showed its first option ("last 30 days") over figures of the default 90."""

from django import forms


class FilterForm(forms.Form):
    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            data = data.copy()
            for name, field in self.base_fields.items():
                if not data.get(name) and field.initial is not None:
                    data[name] = str(field.initial)
        super().__init__(data, *args, **kwargs)

    def applied(self) -> dict:
        """The valid filters (an empty dict for an unbound form): every invalid one is reset to its initial value
        in the form's data, so the form shows what was applied."""
        if not self.is_bound:
            return {}
        if not self.is_valid():
            data = self.data.copy()
            for name in self.errors:
                if name in self.fields:
                    initial = self.fields[name].initial
                    data[name] = "" if initial is None else str(initial)
            self.data = data
            self._errors = None
            self.is_valid()
        return self.cleaned_data
