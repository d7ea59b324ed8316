"""Staff-page forms for the tag catalogue and for tagging patients. They parse input; the services stay the
authority (their per-field errors are mapped back with `add_domain_errors`, messages translated here)."""

import json
import re

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, pgettext_lazy

from smileloop.core.bounds import pk_from_text
from smileloop.core.errors import ValidationFailed
from smileloop.core.messages import message_display
from smileloop.core.scoping import Scope
from smileloop.tagging.enums import TagGroupKind, TagKind
from smileloop.tagging.models import Tag, TagGroup

# Service messages (English, stable) → translated form messages.
SERVICE_MESSAGES = {
    "must be 1–40 lower-case letters, digits, '-' or '_'": _("Use 1–40 lower-case letters, digits, '-' or '_'."),
    "is already used by another tag group": _("Another tag group already uses this code."),
    "is already used by another tag": _("Another tag already uses this code."),
    "is already used by another tag in this group": _("Another tag in this group already has this name."),
    "is required (at most 60 characters)": _("Required, at most 60 characters."),
    "is required for a rule tag": _("A rule tag needs a rule."),
    "at least one keyword is required for a keyword tag": _("A keyword tag needs at least one keyword."),
    "each keyword must be at most 40 characters": _("Each keyword may have at most 40 characters."),
    "must be a whole number of at least 1": _("Enter a whole number of at least 1."),
    "must be a whole number of days of at least 1": _("Enter a number of days of at least 1."),
    "must be a colour like #2563eb": _("Enter a colour like #2563eb."),
    "is not a tag group of this chain": _("Choose a tag group."),
    "must be a rule tree object such as {\"all\": [...]}": _("The rule must be an object such as {\"all\": [...]}."),
    "must not test the tag it sets": _("A rule may not test the tag it sets."),
}


_PATTERNS = [(re.compile(r"^is tested by the rules of (?P<names>.+); change those rules first$"),
              gettext_noop("is tested by the rules of %(names)s; change those rules first")),
             (re.compile(r"^is tested by the segments (?P<names>.+); change those segments first$"),
              gettext_noop("is tested by the segments %(names)s; change those segments first"))]


_JSON_ERROR = re.compile(r"^is not valid JSON \((?P<problem>.+), line (?P<line>\d+)\)$")
_JSON_PROBLEMS = {
    "Expecting value": _("a value is missing"),
    "Expecting property name enclosed in double quotes": _("names need straight double quotes"),
    "Expecting ',' delimiter": _("a comma is missing"),
    "Expecting ':' delimiter": _("a colon is missing"),
    "Extra data": _("there is text after the end of the rule"),
    "Unterminated string starting at": _("a quotation mark is not closed"),
}


def tag_error_text(message) -> str:
    """A tagging service message in the reader's language (forms here, and the segment builder's "save as a rule
    tag", which shows the same refusals)."""
    message = str(message)
    found = _JSON_ERROR.match(message)
    if found:  # the parser's words are English ("Expecting ',' delimiter"): its line, and the usual slips in words
        problem = _JSON_PROBLEMS.get(found["problem"])
        if problem:
            return _("This is not valid JSON (line %(line)s: %(problem)s).") % {"line": found["line"],
                                                                                "problem": problem}
        return _("This is not valid JSON (line %(line)s).") % {"line": found["line"]}
    if message.startswith("is not valid JSON"):
        return _("This is not valid JSON: %(detail)s") % {"detail": message.removeprefix("is not valid JSON ")}
    return str(SERVICE_MESSAGES.get(message) or message_display(message, patterns=_PATTERNS))


class DomainErrorsMixin:
    def add_domain_errors(self, exc: ValidationFailed) -> None:
        for error in exc.errors:
            field = error.field
            text = tag_error_text(error.message)
            if field.startswith("rule."):  # a part of the rule tree, by its path: "all[0]: unknown field …"
                field, text = "rule", f"{field.removeprefix('rule.')}: {text}"
            self.add_error(field if field in self.fields else None, text)


class TagGroupForm(DomainErrorsMixin, forms.Form):
    name = forms.CharField(label=pgettext_lazy("object", "Name"), max_length=60)
    code = forms.SlugField(label=pgettext_lazy("identifier", "Code"), max_length=40, help_text=_("Short identifier used by the API and rules."))
    kind = forms.ChoiceField(label=_("Dimension"), choices=TagGroupKind.choices)
    ordering = forms.IntegerField(label=_("Order"), min_value=0, max_value=32767, initial=0)

    @classmethod
    def for_group(cls, group: TagGroup | None, data=None):
        initial = {"name": group.name, "code": group.code, "kind": group.kind, "ordering": group.ordering} if group else {}
        return cls(data, initial=initial)


class TagForm(DomainErrorsMixin, forms.Form):
    group = forms.ModelChoiceField(label=_("Group"), queryset=TagGroup.objects.none())
    name = forms.CharField(label=pgettext_lazy("object", "Name"), max_length=60)
    code = forms.SlugField(label=pgettext_lazy("identifier", "Code"), max_length=40, help_text=_("Short identifier used by the API and rules."))
    kind = forms.ChoiceField(label=_("How it is set"), choices=TagKind.choices)
    colour = forms.CharField(label=_("Colour"), max_length=7, initial="#64748b",
                             widget=forms.TextInput(attrs={"type": "color"}))
    description = forms.CharField(label=_("Description"), max_length=255, required=False)
    keywords = forms.CharField(label=_("Keywords"), required=False, widget=forms.Textarea(attrs={"rows": 2}),
                               help_text=_("Keyword tags: words separated by commas or new lines, e.g. 种植, 种牙."))
    keyword_threshold = forms.IntegerField(label=_("Times said"), min_value=1, initial=2,
                                           help_text=_("Keyword tags: how many mentions set the tag."))
    keyword_window_days = forms.IntegerField(label=_("Within days"), min_value=1, initial=30,
                                             help_text=_("Keyword tags: the mentions must fall within this many "
                                                         "days."))
    keyword_kinds = forms.MultipleChoiceField(
        label=_("Scanned messages"), required=False, initial=["chat", "call"], widget=forms.CheckboxSelectMultiple,
        choices=[("chat", _("Chat")), ("call", _("Call")), ("sms", _("SMS")), ("note", _("Note"))])
    rule = forms.CharField(label=_("Rule (JSON)"), required=False,
                           widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
                           help_text=_("Rule tags: a segment rule tree, e.g. "
                                       "{\"all\": [{\"field\": \"spend_fen_days\", \"op\": \"gte\", "
                                       "\"value\": 1000000, \"days\": 365}]}."))
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(self, scope: Scope, *args, tag: Tag | None = None, **kwargs):
        if tag is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "group": tag.group_id, "name": tag.name, "code": tag.code, "kind": tag.kind, "colour": tag.colour,
                "description": tag.description, "keywords": ", ".join(tag.keywords or []),
                "keyword_threshold": tag.keyword_threshold, "keyword_window_days": tag.keyword_window_days,
                "keyword_kinds": tag.keyword_kinds, "is_active": tag.is_active,
                "rule": json.dumps(tag.rule, ensure_ascii=False, indent=2) if tag.rule else ""}
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = TagGroup.objects.filter(chain_id=scope.chain_id).order_by("ordering", "id")

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        data["keyword_kinds"] = data.get("keyword_kinds") or ["chat", "call"]
        return data


class TagApplyForm(forms.Form):
    """Add one tag on the 360 page (the choices are the active manual and keyword tags the patient lacks)."""

    tag = forms.ModelChoiceField(label=_("Tag"), queryset=Tag.objects.none())

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tag"].queryset = Tag.objects.filter(chain_id=scope.chain_id, is_active=True)

    def clean_tag(self):
        # A rule tag is its rule's to set: a row set by hand would outlive the rule (the nightly sync never removes
        # a tag set another way), so it is refused by name rather than as an unknown choice.
        tag = self.cleaned_data["tag"]
        if tag.kind == TagKind.RULE:
            raise forms.ValidationError(_("%(name)s is set by its rule every night; it cannot be added by hand.")
                                        % {"name": tag.name})
        return tag


class BulkTagForm(forms.Form):
    customer_ids = forms.Field(required=False, widget=forms.MultipleHiddenInput)
    tag = forms.ModelChoiceField(label=_("Tag"), queryset=Tag.objects.none())
    action = forms.ChoiceField(label=_("Action"), choices=[("apply", _("Add tag")), ("remove", _("Remove tag"))],
                               initial="apply")

    def __init__(self, scope: Scope, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tag"].queryset = Tag.objects.filter(chain_id=scope.chain_id, is_active=True).exclude(
            kind=TagKind.RULE)

    def clean_customer_ids(self):
        raw = self.cleaned_data.get("customer_ids") or []
        # Only what can be a customer's key: a number past the key column's range failed the query (a 500).
        ids = [pk_from_text(v) for v in (raw if isinstance(raw, list | tuple) else [raw])]
        if None in ids:
            raise forms.ValidationError(_("Select customers from the list."))
        if not ids:
            raise forms.ValidationError(_("Select at least one customer."))
        return ids
