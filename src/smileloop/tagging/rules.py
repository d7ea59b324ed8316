"""The rule of a rule tag is a segment rule tree, and the segments app (a higher layer) owns that language: it
registers here, at start-up, how a tree is checked and put into words. Tagging asks through these two calls so
that a tag form or API request with an unknown field is refused with the validator's message and path instead
of being saved and then skipped by the nightly job, and the tag list reads "年龄 至多 12 岁" instead of JSON.
Without the segments app installed, a rule is only required to be an object and is shown as JSON."""

import json
from collections.abc import Callable

from smileloop.core.errors import FieldError

_support: dict[str, Callable] = {}


def rule_support_register(*, check: Callable[..., list[FieldError]], describe: Callable[..., str],
                          users: Callable[..., list[str]] | None = None,
                          normalise: Callable[..., dict] | None = None) -> None:
    """`check(rule, chain_id=…)` → every problem as FieldError (paths under "rule"); `describe(rules, chain_id=…)`
    → each rule as a sentence in the active language (all at once, so names are looked up once);
    `users(chain_id=…, code=…)` → the names of saved segments whose rules test the tag with that code (its code
    may then not change: those rules name tags by code); `normalise(rule, chain_id=…)` → a checked rule as it is
    stored (a clinic named by code named by its id)."""
    _support["check"], _support["describe"] = check, describe
    if users is not None:
        _support["users"] = users
    if normalise is not None:
        _support["normalise"] = normalise


def rule_users(*, chain_id: int, code: str) -> list[str]:
    """Names of the saved segments (registered by the segments app) whose rules test this tag code."""
    users = _support.get("users")
    return sorted(users(chain_id=chain_id, code=code)) if users else []


def rule_uses_tag(node, code: str) -> bool:
    """Whether a rule tree tests the tag with this code anywhere."""
    if isinstance(node, dict):
        if node.get("field") == "tag":
            values = node.get("value")
            return code in (values if isinstance(values, list) else [values])
        return any(rule_uses_tag(v, code) for v in node.values())
    if isinstance(node, list):
        return any(rule_uses_tag(v, code) for v in node)
    return False


def rule_check(rule: dict, *, chain_id: int, code: str) -> list[FieldError]:
    """Every problem of a rule tag's rule. A rule that tests its own tag is refused: each nightly run would
    flip the patients it sets."""
    check = _support.get("check")
    errors = check(rule, chain_id=chain_id) if check else []
    if not errors and code and rule_uses_tag(rule, code):
        errors.append(FieldError("rule", "must not test the tag it sets", code))
    return errors


def rule_normalise(rule: dict, *, chain_id: int) -> dict:
    """A rule `rule_check` accepted, as it is stored (see `rule_support_register`)."""
    normalise = _support.get("normalise")
    return normalise(rule, chain_id=chain_id) if normalise else rule


def rules_describe(rules: list, *, chain_id: int) -> list[str]:
    describe = _support.get("describe")
    if describe:
        return describe(rules, chain_id=chain_id)
    return [json.dumps(rule, ensure_ascii=False) if rule else "" for rule in rules]
