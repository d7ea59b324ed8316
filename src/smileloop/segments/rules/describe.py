"""A rule tree in words, for pages that list rules (the tag list): "年龄 至少 60 岁 且 最近就诊 超过 365 天前".

Built from the field registry's own labels, so a field reads the same here as in the builder: the value goes
where the label says N (and M), money is shown in yuan, choices by their label, and clinics, tags and tiers by
their names (one query per kind for all the rules described together). An unknown field or a malformed part is
shown as its JSON rather than hidden: the describer is for reading, the validator is for refusing.
"""

import json
import re

from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from smileloop.core.money import fen_to_yuan
from smileloop.segments.rules.fields import FIELDS, NONE, OPS, PAIR, PARAMS, FieldSpec, category_choices
from smileloop.segments.rules.validation import reference_names

_N = re.compile(r"(?<![A-Za-z])N(?![A-Za-z])")
_M = re.compile(r"(?<![A-Za-z])M(?![A-Za-z])")
# "Procedure done N days ago" names its value in the label; once the operator says "exactly 7 days ago",
# the label without its N reads right ("做过的治疗 恰好 7 天前").
_N_AGO = re.compile(r"\s*(?<![A-Za-z])N(?![A-Za-z])\s*(天前|days ago)\s*")


def _walk_refs(node, refs: dict[str, set]) -> None:
    if isinstance(node, dict):
        spec = FIELDS.get(node.get("field")) if isinstance(node.get("field"), str) else None
        if spec is not None:
            values = node.get("value")
            for value in values if isinstance(values, list) else [values]:
                if spec.value_type in refs and isinstance(value, (int, str)):
                    refs[spec.value_type].add(value)
            if isinstance(node.get("clinic"), (int, str)):
                refs["clinic"].add(node["clinic"])
        for child in node.values():
            _walk_refs(child, refs)
    elif isinstance(node, list):
        for child in node:
            _walk_refs(child, refs)


def rules_describe(rules: list, *, chain_id: int) -> list[str]:
    """Each rule tree in words, in the active language."""
    refs: dict[str, set] = {"clinic": set(), "tag": set(), "tier": set()}
    _walk_refs(rules, refs)
    names = reference_names(chain_id, refs)
    return [_node(rule, names, top=True) if rule else "" for rule in rules]


def rule_describe(rule, *, chain_id: int) -> str:
    return rules_describe([rule], chain_id=chain_id)[0]


def _node(node, names, *, top: bool = False) -> str:
    if not isinstance(node, dict):
        return json.dumps(node, ensure_ascii=False)
    if "field" in node:
        return _leaf(node, names)
    if set(node) == {"not"}:
        return _("not (%(rule)s)") % {"rule": _node(node["not"], names, top=True)}
    if len(node) == 1 and next(iter(node)) in ("all", "any") and isinstance(next(iter(node.values())), list):
        key, children = next(iter(node.items()))
        joiner = _(" and ") if key == "all" else _(" or ")
        text = joiner.join(_node(child, names) for child in children)
        return text if top or len(children) < 2 else f"({text})"
    return json.dumps(node, ensure_ascii=False)


def _value_text(spec: FieldSpec, value, names) -> str:
    if isinstance(value, list):
        return pgettext("list separator", ", ").join(_value_text(spec, item, names) for item in value)
    if spec.value_type == "fen" and isinstance(value, int) and not isinstance(value, bool):
        whole, _dot, cents = fen_to_yuan(value).partition(".")
        return f"{int(whole):,}" + ("" if cents == "00" else f".{cents}")
    if spec.value_type in ("clinic", "tag", "tier"):
        return str(names[spec.value_type].get(value, value))
    if spec.choices is not None:
        return str(dict((str(code), label) for code, label in spec.choices()).get(str(value), value))
    return str(value)


def _unit(spec: FieldSpec) -> str:
    if spec.value_type == "fen":
        return _("yuan")
    if spec.value_type == "km":
        return _("km")
    if spec.value_type == "days":
        return _("days")
    if spec.name == "age":
        return _("years")
    return ""


def _leaf(leaf: dict, names) -> str:
    spec = FIELDS.get(leaf.get("field"))
    op = leaf.get("op")
    if spec is None or op not in OPS:
        return json.dumps(leaf, ensure_ascii=False)
    label = str(spec.label)
    value = leaf.get("value")
    if spec.value_type == "bool":
        return label if value is True else _("not (%(rule)s)") % {"rule": label}
    days = leaf.get("days")
    if days is not None and _N.search(label):
        label = _N.sub(str(days), label)
        days = None
    op_text = str(spec.op_label(op))
    shape = OPS[op][0]
    if shape == NONE:
        text = f"{_N_AGO.sub('', label)} {op_text}" if _N.search(label) else f"{label} {op_text}"
    elif _N.search(op_text):
        # The value goes into the operator's words: "超过 365 天前", "N 到 M 天前" → "7 到 30 天前".
        low, high = (value if shape == PAIR and isinstance(value, list) and len(value) == 2 else (value, None))
        op_text = _N.sub(_value_text(spec, low, names), op_text)
        if high is not None:
            op_text = _M.sub(_value_text(spec, high, names), op_text)
        text = f"{_N_AGO.sub('', label)} {op_text}"
    else:
        unit = _unit(spec)
        if shape == PAIR and isinstance(value, list) and len(value) == 2:
            shown = f"{_value_text(spec, value[0], names)}–{_value_text(spec, value[1], names)}"
        else:
            shown = _value_text(spec, value, names)
        text = f"{label} {op_text} {shown}{(' ' + unit) if unit else ''}"
    extras = []
    if days is not None:
        days_label = str(PARAMS["days"].label)
        extras.append(_N.sub(str(days), days_label) if _N.search(days_label) else f"{days_label} {days} {_('days')}")
    if leaf.get("clinic") is not None:
        extras.append(f"{PARAMS['clinic'].label} {names['clinic'].get(leaf['clinic'], leaf['clinic'])}")
    if leaf.get("category"):
        category = dict(category_choices()).get(leaf["category"], leaf["category"])
        extras.append(f"{PARAMS['category'].label} {category}")
    return f"{text} ({', '.join(extras)})" if extras else text
