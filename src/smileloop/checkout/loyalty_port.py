"""The loyalty functions checkout calls (points, wallet, entitlements), by the names loyalty publishes.

Loyalty is being written alongside checkout; each function is looked up in `smileloop.loyalty.services`
or `smileloop.loyalty.selectors` when first called, so checkout works (without points, wallet and
entitlements) while one is missing. Once loyalty is complete these become plain imports.
"""

from importlib import import_module

from smileloop.core.errors import DomainError

_FOUND: dict = {}


class LoyaltyUnavailable(DomainError):
    code = "loyalty_unavailable"
    status = 422


def _module(name: str):
    try:
        return import_module(name)
    except (ImportError, RuntimeError):  # RuntimeError: loyalty's models while it is not in INSTALLED_APPS
        return None


def find(name: str):
    if name in _FOUND:
        return _FOUND[name]
    for module_name in ("smileloop.loyalty.services", "smileloop.loyalty.selectors", "smileloop.loyalty.services.points",
                        "smileloop.loyalty.services.wallet", "smileloop.loyalty.services.packages"):
        module = _module(module_name)
        fn = getattr(module, name, None) if module else None
        if fn is not None:
            _FOUND[name] = fn
            return fn
    return None


def call(name: str, **kwargs):
    fn = find(name)
    if fn is None:
        raise LoyaltyUnavailable(f"loyalty.{name} is not available yet", field=name)
    return fn(**kwargs)


def available(name: str) -> bool:
    return find(name) is not None
