"""The segment builder: a plain HTML form (no JSON typing) serialised into a rule tree on the server.

Form layout (names in the POST body, in page order):
- `mode`: the top group, "all" or "any";
- a condition `c-<key>-field`, `-op`, `-value` (repeated for lists), `-value2` (the high end of a range),
  `-days`, `-clinic`, `-category`, `-negate`, `-group` (the key of its sub-group, or empty for the top);
- a sub-group `g-<key>-mode` ("all"/"any") and `g-<key>-negate`; its conditions follow it.

`builder_parse(data)` turns the body into (tree, builder) and `builder_from_rule(rule)` turns a saved tree
back into a builder, so an edit round-trips. What the form can show: a top group of conditions (each may be
negated) and sub-groups of conditions one level deep (each may be negated). Errors of the validator come
back by path and are attached to the condition or group they name.
"""

import re
import secrets
from dataclasses import dataclass
from dataclasses import field as _field

from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from smileloop.core.errors import FieldError, ValidationFailed
from smileloop.core.money import fen_to_yuan, yuan_to_fen
from smileloop.segments.rules.context import MAX_FEN
from smileloop.segments.rules.fields import FIELDS, LIST, NONE, OPS, PAIR, PARAMS, FieldSpec
from smileloop.segments.rules.validation import child_path, key_label

_CONDITION_KEY = re.compile(r"^c-([A-Za-z0-9]{1,16})-field$")
_GROUP_KEY = re.compile(r"^g-([A-Za-z0-9]{1,16})-mode$")
_SPLIT = re.compile(r"[,，、;；\n]+")
MODES = ("all", "any")


def new_key() -> str:
    return secrets.token_hex(4)


@dataclass
class Condition:
    """One row of the builder: the raw inputs as strings (what the page shows) and its errors."""

    key: str
    group: str = ""
    field: str = ""
    op: str = ""
    values: list[str] = _field(default_factory=list)  # the value (or values of a list, or low of a range)
    value2: str = ""  # the high end of a range
    params: dict[str, str] = _field(default_factory=dict)
    negate: bool = False
    errors: list[str] = _field(default_factory=list)
    path: str = ""
    options: list[tuple[str, str]] = _field(default_factory=list)  # for the value select (set by prepare)
    is_group = False

    @property
    def spec(self) -> FieldSpec | None:
        return FIELDS.get(self.field)

    @property
    def shape(self) -> str:
        return OPS[self.op][0] if self.op in OPS else NONE

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def value_text(self) -> str:
        """A list typed into one text box (community names), separated as the reader's language lists (_SPLIT reads
        either back)."""
        return pgettext("list separator", ", ").join(self.values)

    @property
    def ops(self) -> list[tuple[str, str]]:
        spec = self.spec
        return [(op, str(spec.op_label(op))) for op in spec.ops] if spec else []

    @property
    def param_list(self) -> list[tuple[str, object, str]]:
        spec = self.spec
        return [(name, PARAMS[name], self.params.get(name, "")) for name in (spec.params if spec else ())]

    @property
    def widget(self) -> str:
        """How the value is typed: none, select, multiselect, text, text_list, number or range."""
        spec = self.spec
        if spec is None or self.shape == NONE:
            return "none"
        kind = spec.value_type
        if self.shape == LIST:
            return "text_list" if kind == "text" else "multiselect"
        if kind in ("choice", "purpose", "month", "bool", "clinic", "tag", "tier"):
            return "select"
        if kind == "text":
            return "text"
        return "range" if self.shape == PAIR else "number"

    @property
    def step(self) -> str:
        kind = self.spec.value_type if self.spec else ""
        return {"fen": "0.01", "km": "0.1"}.get(kind, "1")

    def validator_message(self, message: str) -> str | None:
        """The validator's words for this row as the row says them. It names the operator by its code ("运算符“gte”
        需要一个值", "op 'any_of' needs a non-empty list of values", for the API); the row says what to do instead,
        and not at all when the row already says what is wrong with what was typed (an amount that is no number of
        yuan is also, to the validator, a missing value)."""
        spec = self.spec
        op = self.op if spec is None or self.op in spec.ops else spec.ops[0]
        args = {"op": op}
        missing = {_("op '%(op)s' needs a value") % args: (_("Choose a value.") if self.widget == "select"
                                                             else _("Enter a value.")),
                   _("op '%(op)s' needs a non-empty list of values") % args: (
                       _("Enter at least one value.") if self.widget == "text_list" else _("Choose at least one."))}
        if message in missing:
            return None if self.errors else missing[message]
        if self.shape == PAIR and not (self.value.strip() and self.value2.strip()) and message.startswith(
                f"{key_label('value')}["):  # "取值[0] 必须是…": an end of the range left empty
            return None if self.errors else _("Enter both ends of the range.")
        if message == _("op '%(op)s' needs low ≤ high") % args:
            return _("The first number must not be larger than the second.")
        if spec is not None and spec.value_type == "fen" and message.endswith(
                _("must be a whole number of fen (1 yuan = 100 fen), at least 0")):  # the row is typed in yuan
            return _("Enter an amount from 0 to %(max)s yuan.") % {"max": MAX_FEN // 100}
        return message

    @property
    def unit(self) -> str:
        spec = self.spec
        if spec is None:
            return ""
        if spec.value_type == "fen":
            return _("yuan")
        if spec.value_type == "km":
            return _("km")
        if spec.value_type == "days" or spec.name in ("last_visit_days", "last_contact_days"):
            return _("days")
        if spec.name == "age":
            return _("years")
        return ""


@dataclass
class Group:
    key: str
    mode: str = "all"
    negate: bool = False
    conditions: list[Condition] = _field(default_factory=list)
    errors: list[str] = _field(default_factory=list)
    path: str = ""
    is_group = True


@dataclass
class Builder:
    mode: str = "all"
    items: list = _field(default_factory=list)  # Condition | Group, in page order
    errors: list[str] = _field(default_factory=list)  # about the whole rule
    unsupported: bool = False  # a tree the form cannot show (deeper than one level of groups)

    def conditions(self):
        for item in self.items:
            if isinstance(item, Group):
                yield from item.conditions
            else:
                yield item

    def attach(self, errors: list[FieldError]) -> None:
        """Put each validator error on the condition or group its path names (the longest match)."""
        targets = []
        for item in self.items:
            targets.append((item.path, item))
            if isinstance(item, Group):
                targets += [(c.path, c) for c in item.conditions]
        for error in errors:
            path = error.field
            best = None
            for target_path, target in targets:
                if target_path and (path == target_path or path.startswith(target_path + ".")):
                    if best is None or len(target_path) > len(best[0]):
                        best = (target_path, target)
            if best is not None and not best[1].is_group:
                message = best[1].validator_message(error.message)
                if message is not None and message not in best[1].errors:
                    best[1].errors.append(message)
                continue
            (best[1].errors if best else self.errors).append(error.message)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors) or any(item.errors for item in self.items) or any(
            c.errors for c in self.conditions())


# --- form → tree --------------------------------------------------------------------------------------


def _int(text: str):
    text = (text or "").strip()
    try:
        return int(text)
    except ValueError:
        return text or None


def _number(text: str):
    text = (text or "").strip()
    try:
        number = float(text)
    except ValueError:
        return text or None
    return int(number) if number.is_integer() else number


def _fen(text: str, errors: list[str]):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return yuan_to_fen(text)
    except ValidationFailed:
        errors.append(_("enter an amount in yuan, e.g. 1000 or 99.50"))
        return None


def _scalar(spec: FieldSpec, text: str, errors: list[str]):
    kind = spec.value_type
    if kind in ("int", "days", "month", "clinic", "tier"):
        return _int(text)
    if kind == "km":
        return _number(text)
    if kind == "fen":
        return _fen(text, errors)
    if kind == "bool":
        return {"true": True, "false": False}.get((text or "").strip().lower(), text or None)
    text = (text or "").strip()
    return text or None


def condition_leaf(cond: Condition) -> dict | None:
    """The rule leaf of one row (None for a row with no field chosen). Input the form cannot even read
    (an amount that is not a number of yuan) is noted on the row; the validator judges the rest."""
    spec = cond.spec
    if spec is None:
        if cond.field:
            cond.errors.append(_("unknown field '%(name)s'") % {"name": cond.field})
        return None
    op = cond.op if cond.op in spec.ops else spec.ops[0]
    leaf: dict = {"field": spec.name, "op": op}
    shape = OPS[op][0]
    if shape == LIST:
        texts = [v for v in cond.values if v.strip()]
        if spec.value_type == "text":
            texts = [t for v in texts for t in _SPLIT.split(v) if t.strip()]
        leaf["value"] = [v for v in (_scalar(spec, t, cond.errors) for t in texts) if v is not None]
    elif shape == PAIR:
        leaf["value"] = [_scalar(spec, cond.value, cond.errors), _scalar(spec, cond.value2, cond.errors)]
    elif shape != NONE:
        value = _scalar(spec, cond.value, cond.errors)
        if value is not None:
            leaf["value"] = value
    for name in spec.params:
        raw = cond.params.get(name, "")
        leaf[name] = _int(raw) if PARAMS[name].kind in ("days", "clinic") else (raw.strip() or None)
    return {"not": leaf} if cond.negate else leaf


def _condition_from_data(data, key: str) -> Condition:
    def one(name: str) -> str:
        return str(data.get(f"c-{key}-{name}", "") or "")

    field_name = one("field")
    spec = FIELDS.get(field_name)
    if f"c-{key}-shown" in data and one("shown") != field_name:  # the field was just changed: start afresh
        return Condition(key=key, group=one("group"), field=field_name, op=spec.ops[0] if spec else "",
                         negate=one("negate") in ("on", "true", "1"))
    values = [str(v) for v in data.getlist(f"c-{key}-value")] if hasattr(data, "getlist") else [one("value")]
    cond = Condition(
        key=key, group=one("group"), field=field_name,
        op=one("op") if spec and one("op") in spec.ops else (spec.ops[0] if spec else ""),
        values=values, value2=one("value2"),
        params={name: one(name) for name in (spec.params if spec else ())},
        negate=one("negate") in ("on", "true", "1"))
    if spec and one("op") and one("op") not in spec.ops:  # as the modes: refused, not guessed ("not in" read as "in")
        cond.errors.append(_("Choose a comparison from the list."))
    return cond


def condition_from_data(data, key: str) -> Condition:
    """One row as the page sent it (the htmx endpoint that redraws a row when its field or op changes)."""
    return _condition_from_data(data, key)


def builder_parse(data) -> tuple[dict, Builder]:
    """The rule tree the page describes, and the builder (rows with their paths) to redraw the page."""
    builder = Builder(mode=data.get("mode") if data.get("mode") in MODES else "all")
    if data.get("mode") not in (None, *MODES):  # the page offers two; anything else is refused, not guessed
        builder.errors.append(_("Choose “all of” or “any of”."))
    groups: dict[str, Group] = {}
    for name in data:
        match = _GROUP_KEY.match(name)
        if match:
            key = match.group(1)
            if key not in groups:
                groups[key] = Group(key=key, mode=data.get(name) if data.get(name) in MODES else "all",
                                    negate=str(data.get(f"g-{key}-negate", "")) in ("on", "true", "1"))
                if data.get(name) not in MODES:
                    groups[key].errors.append(_("Choose “all of” or “any of”."))
                builder.items.append(groups[key])
            continue
        match = _CONDITION_KEY.match(name)
        if match:
            cond = _condition_from_data(data, match.group(1))
            group = groups.get(cond.group)
            if group is not None:
                group.conditions.append(cond)
            else:
                if cond.group:  # the page puts a group before its conditions: a forged one, refused, not moved up
                    cond.errors.append(_("This condition's group is not on the page: add the condition again."))
                cond.group = ""
                builder.items.append(cond)
    return builder_tree(builder), builder


def builder_tree(builder: Builder) -> dict:
    """Serialise the rows into the tree, recording each row's path (rows with no field are left out)."""
    top: list = []
    for item in builder.items:
        if isinstance(item, Group):
            children = []
            base = child_path("", builder.mode, len(top))
            item.path = child_path(base, "not") if item.negate else base
            for cond in item.conditions:
                leaf = condition_leaf(cond)
                if leaf is None:
                    continue
                cond.path = child_path(item.path, item.mode, len(children))
                children.append(leaf)
            if not children:
                continue
            node = {item.mode: children}
            top.append({"not": node} if item.negate else node)
        else:
            leaf = condition_leaf(item)
            if leaf is None:
                continue
            item.path = child_path("", builder.mode, len(top))
            top.append(leaf)
    return {builder.mode: top}


# --- tree → form --------------------------------------------------------------------------------------


def _texts(spec: FieldSpec, value) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if spec.value_type == "fen" and isinstance(item, int) and not isinstance(item, bool):
            out.append(fen_to_yuan(item).removesuffix(".00"))
        elif isinstance(item, bool):
            out.append("true" if item else "false")
        else:
            out.append(str(item))
    return out


def _condition_from_leaf(node: dict, *, group: str = "") -> Condition | None:
    negate = False
    if "not" in node and isinstance(node["not"], dict) and "field" in node["not"]:
        node, negate = node["not"], True
    if not isinstance(node.get("field"), str) or node["field"] not in FIELDS:  # a `?rule=` may hold any JSON
        return None
    spec = FIELDS[node["field"]]
    op = node.get("op") if isinstance(node.get("op"), str) else ""
    value = node.get("value")
    texts = _texts(spec, value)
    cond = Condition(key=new_key(), group=group, field=spec.name, op=op, negate=negate,
                     params={name: "" if node.get(name) is None else str(node.get(name)) for name in spec.params})
    if OPS.get(op, (NONE,))[0] == PAIR and len(texts) == 2:
        cond.values, cond.value2 = [texts[0]], texts[1]
    else:
        cond.values = texts
    return cond


def builder_from_rule(rule: dict | None) -> Builder:
    """A saved tree back into rows; `unsupported` if it is deeper than the form can show."""
    builder = Builder()
    if not rule:
        builder.items.append(Condition(key=new_key()))
        return builder
    if "field" in rule or "not" in rule:
        rule = {"all": [rule]}
    mode = "all" if "all" in rule else "any"
    builder.mode = mode
    nodes = rule.get(mode) or []
    if not isinstance(nodes, list):  # {"all": 5} from a `?rule=`: nothing the form can show
        builder.unsupported = True
        nodes = []
    for node in nodes:
        cond = _condition_from_leaf(node) if isinstance(node, dict) else None
        if cond is not None:
            builder.items.append(cond)
            continue
        negate = False
        inner = node
        if isinstance(node, dict) and "not" in node and isinstance(node["not"], dict):
            inner, negate = node["not"], True
        group_mode = next((m for m in MODES if isinstance(inner, dict) and m in inner), None)
        if group_mode is None or not isinstance(inner[group_mode], list):
            builder.unsupported = True
            continue
        group = Group(key=new_key(), mode=group_mode, negate=negate)
        for child in inner[group_mode]:
            cond = _condition_from_leaf(child, group=group.key) if isinstance(child, dict) else None
            if cond is None:
                builder.unsupported = True
                continue
            group.conditions.append(cond)
        builder.items.append(group)
    builder_tree(builder)  # fills in the paths, so errors of a saved rule land on their rows
    return builder
