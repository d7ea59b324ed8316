"""Validate a rule tree against the field registry, reporting every bad part by its path.

Paths read like the tree: `all[2].any[0]` is the first child of the third child of the root `all` group;
`all[1].not` is what a `not` wraps. A problem with the root itself is reported at `rule`. Messages name the
bad part and, where it helps, what would be right ("unknown field 'spendd'; did you mean
'spend_fen_days'?"), so the API and the builder form can show them next to the condition.

A clinic (the home clinic field's values, the clinic a distance is measured from) is named by its id (a JSON
integer) or, as every other endpoint accepts, by its code (a JSON string, "BJ01"). Codes are input only:
`clinic_codes_to_ids` turns them into ids before a rule is saved (segments, rule tags) or compiled, so a stored
rule names each clinic one way, by the key that never changes (a code may be edited in the admin, and a digit-only
code would read like an id), and the compiler, the describer and the nightly job read ids only.
"""

import difflib
import json
import math
import re

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from smileloop.core.errors import FieldError
from smileloop.segments.rules.context import MAX_DAYS
from smileloop.segments.rules.fields import FIELDS, LIST, NONE, OPS, PAIR, PARAMS, category_choices

MAX_DEPTH = 5  # groups inside groups, root included
MAX_NODES = 60  # groups and conditions in one rule
MAX_VALUES = 200  # items of one list value
MAX_TEXT = 100
CLINIC_CODE_MAX = 32  # clinics.Clinic.code
_TAG_CODE = re.compile(r"^[a-z0-9_-]{1,40}$")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's "\\ud800" decodes to one; UTF-8 cannot encode it
GROUP_KEYS = ("all", "any", "not")
# A group's key as the builder's mode select names it (全部/任一): the builder read "“all”至少需要一个条件".
GROUP_KEY_WORDS = {"all": pgettext_lazy("rule group key", "all"), "any": pgettext_lazy("rule group key", "any")}


def root_path(path: str) -> str:
    return path or "rule"


def child_path(path: str, key: str, index: int | None = None) -> str:
    step = key if index is None else f"{key}[{index}]"
    return f"{path}.{step}" if path else step


def _show(value) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_clinic(value) -> bool:
    """A clinic's id (an integer) or code (a string)."""
    if _is_int(value):
        return value > 0
    # NUL: PostgreSQL cannot compare it; a lone surrogate: the driver cannot encode it (both a 500 on the code lookup)
    return (isinstance(value, str) and bool(value.strip()) and len(value) <= CLINIC_CODE_MAX and "\x00" not in value
            and not _LONE_SURROGATE.search(value))


# The keys of a leaf, named in messages: the words of the reader's language on pages, the keys themselves in English.
_KEYS = {"value": pgettext_lazy("rule key", "value"), "days": pgettext_lazy("rule key", "days"),
         "clinic": pgettext_lazy("rule key", "clinic"), "category": pgettext_lazy("rule key", "category")}


def key_label(name: str) -> str:
    """A leaf key as messages name it (the reader's word on pages): the builder matches messages by it."""
    return str(_KEYS.get(name, name))


def _suggest(word: str, options) -> str:
    match = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return _("; did you mean '%(name)s'?") % {"name": match[0]} if match else ""


class _Validator:
    def __init__(self):
        self.errors: list[FieldError] = []
        self.nodes = 0
        self.too_big = False
        self.refs: list[tuple[str, str, object]] = []  # (kind, path, id or code) checked against the chain
        self.origins: list[tuple[str, object]] = []  # (path, clinic id) a distance is measured from

    def error(self, path: str, message: str, value=None) -> None:
        self.errors.append(FieldError(root_path(path), message, None if value is None else _show(value)))

    def node(self, node, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if not self.too_big:
                self.too_big = True
                self.error("", _("the rule has too many parts (at most %(n)d groups and conditions)") % {
                    "n": MAX_NODES})
            return
        if not isinstance(node, dict):
            self.error(path, _('must be a group {"all": [...]}, {"any": [...]}, {"not": {...}} or a condition '
                               '{"field": ..., "op": ..., "value": ...}'), node)
            return
        if "field" in node:
            self.leaf(node, path)
            return
        if depth > MAX_DEPTH:
            self.error(path, _("nested too deeply (at most %(n)d levels of groups)") % {"n": MAX_DEPTH})
            return
        keys = [k for k in GROUP_KEYS if k in node]
        extra = [k for k in node if k not in GROUP_KEYS]
        if len(keys) != 1 or extra:
            if extra:
                self.error(path, _("unknown key '%(key)s'%(hint)s") % {
                    "key": extra[0], "hint": _suggest(extra[0], (*GROUP_KEYS, "field"))}, node)
            else:
                self.error(path, _("a group has exactly one of the keys all, any, not"), node)
            return
        key = keys[0]
        if key == "not":
            self.node(node["not"], child_path(path, "not"), depth + 1)
            return
        children = node[key]
        if not isinstance(children, list):
            self.error(path, _("'%(key)s' must be a list of conditions") % {"key": key}, children)
            return
        if not children:
            self.error(path, _("'%(key)s' needs at least one condition") % {"key": GROUP_KEY_WORDS.get(key, key)})
            return
        for index, child in enumerate(children):
            self.node(child, child_path(path, key, index), depth + 1)

    def leaf(self, leaf: dict, path: str) -> None:
        name = leaf.get("field")
        spec = FIELDS.get(name) if isinstance(name, str) else None
        if spec is None:
            self.error(path, _("unknown field '%(name)s'%(hint)s") % {
                "name": name, "hint": _suggest(name, FIELDS)}, name)
            return
        allowed = {"field", "op", "value", *spec.params}
        for key in leaf:
            if key not in allowed:
                self.error(path, _("unknown key '%(key)s' for field '%(field)s'%(hint)s") % {
                    "key": key, "field": name, "hint": _suggest(key, allowed)}, key)
        op = leaf.get("op")
        if op not in spec.ops:
            if op is None:
                message = _("op is required for field '%(field)s'; use one of: %(ops)s")
            else:
                message = _("op '%(op)s' is not valid for field '%(field)s'; use one of: %(ops)s")
            self.error(path, message % {"op": op, "field": name, "ops": ", ".join(spec.ops)}, op)
        else:
            self.value(spec, op, leaf, path)
        for param in spec.params:
            self.param(PARAMS[param], leaf.get(param), path, present=param in leaf)

    def value(self, spec, op: str, leaf: dict, path: str) -> None:
        shape = OPS[op][0]
        value = leaf.get("value")
        if shape == NONE:
            if value is not None:
                self.error(path, _("op '%(op)s' takes no value") % {"op": op}, value)
            return
        if shape == PAIR:
            if not isinstance(value, list) or len(value) != 2:
                self.error(path, _("op '%(op)s' needs value [low, high]") % {"op": op}, value)
                return
            bad = [self.check(spec, item) for item in value]
            for index, problem in enumerate(bad):
                if problem:
                    self.error(path, f"{key_label('value')}[{index}] {problem}", value[index])
            if not any(bad) and value[0] > value[1]:
                self.error(path, _("op '%(op)s' needs low ≤ high") % {"op": op}, value)
            return
        if shape == LIST:
            if not isinstance(value, list) or not value:
                self.error(path, _("op '%(op)s' needs a non-empty list of values") % {"op": op}, value)
                return
            if len(value) > MAX_VALUES:
                self.error(path, _("at most %(n)d values") % {"n": MAX_VALUES}, len(value))
                return
            for index, item in enumerate(value):
                problem = self.check(spec, item)
                if problem:
                    self.error(path, f"{key_label('value')}[{index}] {problem}", item)
                else:
                    self.ref(spec.value_type, path, item)
            return
        if value is None:
            self.error(path, _("op '%(op)s' needs a value") % {"op": op})
            return
        problem = self.check(spec, value)
        if problem:
            self.error(path, f"{key_label('value')} {problem}", value)
        else:
            self.ref(spec.value_type, path, value)

    def ref(self, value_type: str, path: str, value) -> None:
        if value_type in ("clinic", "tag", "tier"):
            self.refs.append((value_type, path, value))

    def check(self, spec, value) -> str | None:
        """None if `value` fits the field's value type, else what is wrong (after the word 'value')."""
        kind = spec.value_type
        if kind in ("choice", "purpose"):
            codes = [str(code) for code, _label in spec.choices()]
            if value in codes:
                return None
            return _("must be one of: %(codes)s%(hint)s") % {
                "codes": ", ".join(codes), "hint": _suggest(value, codes) if isinstance(value, str) else ""}
        if kind in ("int", "days", "month", "fen"):
            low, high = int(spec.minimum or 0), int(spec.maximum)
            if _is_int(value) and low <= value <= high:
                return None
            if kind == "fen":
                return _("must be a whole number of fen (1 yuan = 100 fen), at least 0")
            return _("must be a whole number from %(low)d to %(high)d") % {"low": low, "high": high}
        if kind == "km":
            if _is_number(value) and spec.minimum <= value <= spec.maximum:
                return None
            return _("must be a number of km from %(low)s to %(high)s") % {"low": spec.minimum, "high": spec.maximum}
        if kind == "text":
            if isinstance(value, str) and "\x00" in value:  # PostgreSQL cannot hold it in a text: a 500 when compared
                return _("must not contain a NUL character")
            if isinstance(value, str) and _LONE_SURROGATE.search(value):  # the database driver cannot send it: a 500
                return _("must not contain a lone surrogate (\\ud800–\\udfff)")
            if isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT:
                return None
            return _("must be a text of 1 to %(n)d characters") % {"n": MAX_TEXT}
        if kind == "bool":
            return None if isinstance(value, bool) else _("must be true or false")
        if kind == "clinic":
            return None if _is_clinic(value) else _("must be a clinic id or code")
        if kind == "tier":
            return None if _is_int(value) and value > 0 else _("must be a %(what)s id") % {"what": kind}
        if kind == "tag":
            if isinstance(value, str) and _TAG_CODE.match(value):
                return None
            return _("must be a tag code (lower-case letters, digits, '-' or '_')")
        raise ValueError(kind)

    def param(self, param, value, path: str, *, present: bool) -> None:
        name = key_label(param.name)
        if param.kind == "days":
            if not (_is_int(value) and 1 <= value <= MAX_DAYS):
                self.error(path, _("%(name)s must be 1..%(max)d") % {"name": name, "max": MAX_DAYS},
                           value if present else None)
        elif param.kind == "clinic":
            if not _is_clinic(value):
                self.error(path, _("%(name)s must be a clinic id or code") % {"name": name},
                           value if present else None)
            else:
                self.refs.append(("clinic", path, value))
                self.origins.append((path, value))
        elif param.kind == "category":
            codes = [code for code, _label in category_choices()]
            if value not in codes:
                self.error(path, _("%(name)s must be one of: %(codes)s") % {"name": name, "codes": ", ".join(codes)},
                           value if present else None)

    def references(self, chain_id: int) -> None:
        """Ids and codes must name the chain's clinics, tags and tiers: one query per kind used (and one more for the
    coordinates of the clinics a distance is measured from)."""
        wanted: dict[str, set] = {"clinic": set(), "tag": set(), "tier": set()}
        for kind, _path, value in self.refs:
            wanted[kind].add(value)
        known = reference_names(chain_id, wanted)
        messages = {"clinic": _("unknown clinic id %(value)s"), "tag": _("unknown tag '%(value)s'"),
                    "tier": _("unknown membership tier id %(value)s")}
        for kind, path, value in self.refs:
            if value not in known[kind]:
                message = messages[kind]
                if kind == "clinic" and isinstance(value, str):
                    message = _("unknown clinic code '%(value)s'")
                self.error(path, message % {"value": value}, value)
        # A distance from a clinic without coordinates would match nobody (and its "not" everybody), silently.
        origins = [(path, value) for path, value in self.origins if value in known["clinic"]]
        if origins:
            from smileloop.clinics.models import Clinic

            located = {key for row in Clinic.objects.filter(_clinic_q({v for _p, v in origins}), chain_id=chain_id,
                                                            latitude__isnull=False, longitude__isnull=False)
                       .values_list("pk", "code") for key in row}
            for path, value in origins:
                if value not in located:
                    self.error(path, _("clinic %(name)s has no coordinates: set its latitude and longitude first")
                               % {"name": known["clinic"][value]}, value)


def validate(rule, *, chain_id: int | None = None) -> list[FieldError]:
    """Every problem of `rule`, by path; [] if it is valid. With `chain_id`, the clinics, tags and tiers it
    names must exist in that chain (up to three queries); without it, no query runs."""
    validator = _Validator()
    validator.node(rule, "", 1)
    if not validator.errors and chain_id is not None and validator.refs:
        validator.references(chain_id)
    return validator.errors


def reference_names(chain_id: int, wanted: dict[str, set]) -> dict[str, dict]:
    """{"clinic": {id: name}, "tag": {code: name}, "tier": {id: "plan · tier"}} for the values of `wanted` that name
    the chain's clinics, tags and tiers (values of the wrong type name nothing); one query per kind asked for."""
    from smileloop.clinics.models import Clinic
    from smileloop.membership.models import Tier
    from smileloop.tagging.models import Tag

    ids = {kind: [v for v in wanted.get(kind, ()) if _is_int(v) and 0 < v < 2**63] for kind in ("clinic", "tier")}
    codes = [v for v in wanted.get("tag", ()) if isinstance(v, str)]
    clinics = _clinic_q(wanted.get("clinic", ()))
    return {
        # by id and by code ({5: "静安门诊", "SH01": "静安门诊"}): a rule being edited may name a clinic either way
        "clinic": {key: name for pk, code, name in Clinic.objects.filter(clinics, chain_id=chain_id)
                   .values_list("pk", "code", "name") for key in (pk, code)} if clinics else {},
        "tag": dict(Tag.objects.filter(chain_id=chain_id, code__in=codes).values_list("code", "name")) if codes else {},
        "tier": {t.pk: f"{t.plan.name} · {t.name}" for t in Tier.objects.filter(
            plan__chain_id=chain_id, pk__in=ids["tier"]).select_related("plan")} if ids["tier"] else {},
    }


def _clinic_q(values) -> Q | None:
    """The clinics named by these ids and codes (None if no value could name one)."""
    ids = [v for v in values if _is_int(v) and 0 < v < 2**63]
    codes = [v for v in values if isinstance(v, str)]
    if not ids and not codes:
        return None
    return Q(pk__in=ids) | Q(code__in=codes)


def _clinic_codes(node, found: set[str]) -> None:
    if isinstance(node, dict):
        spec = FIELDS.get(node.get("field")) if isinstance(node.get("field"), str) else None
        if spec is not None:
            values = node.get("value")
            if spec.value_type == "clinic":
                found.update(v for v in (values if isinstance(values, list) else [values]) if isinstance(v, str))
            if "clinic" in spec.params and isinstance(node.get("clinic"), str):
                found.add(node["clinic"])
        for child in node.values():
            _clinic_codes(child, found)
    elif isinstance(node, list):
        for child in node:
            _clinic_codes(child, found)


def _with_ids(node, ids: dict[str, int]):
    if isinstance(node, list):
        return [_with_ids(child, ids) for child in node]
    if not isinstance(node, dict):
        return node
    spec = FIELDS.get(node.get("field")) if isinstance(node.get("field"), str) else None
    if spec is None:
        return {key: _with_ids(child, ids) for key, child in node.items()}
    leaf = dict(node)
    value = leaf.get("value")
    if spec.value_type == "clinic":
        leaf["value"] = ([ids.get(v, v) if isinstance(v, str) else v for v in value] if isinstance(value, list)
                         else ids.get(value, value) if isinstance(value, str) else value)
    if "clinic" in spec.params and isinstance(leaf.get("clinic"), str):
        leaf["clinic"] = ids.get(leaf["clinic"], leaf["clinic"])
    return leaf


def clinic_codes_to_ids(rule, *, chain_id: int):
    """`rule` with every clinic named by its code named by its id instead (a new tree; the same object when it
    names none by code, with no query; else one query). Call it on a rule `validate(chain_id=…)` accepted: a code
    it does not know is left as it is."""
    codes: set[str] = set()
    _clinic_codes(rule, codes)
    if not codes:
        return rule
    from smileloop.clinics.models import Clinic

    ids = dict(Clinic.objects.filter(chain_id=chain_id, code__in=codes).values_list("code", "pk"))
    return _with_ids(rule, ids)
