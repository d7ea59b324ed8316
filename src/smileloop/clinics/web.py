"""Helpers every staff page uses: the login + scope decorator, permission checks, htmx redirects, the client's
address."""

import ipaddress
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

from smileloop.clinics.selectors import scope_for_user
from smileloop.core import errors
from smileloop.core.scoping import Scope


def staff_login_required(view):
    """Django's login_required, except for an htmx request (a fragment, a poll, a form posted in place) after the
    session ended: login_required's redirect would be followed by the browser and the login page swapped into the
    fragment. It gets a full navigation to the login page instead, which comes back to the page the user was on
    (HX-Current-URL), not to the fragment's URL."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            page = safe_next(request, request.headers.get("HX-Current-URL"), default="/")
            login = redirect_to_login(page, resolve_url(settings.LOGIN_URL))
            return htmx_redirect(request, login.url)
        return redirect_to_login(request.get_full_path(), resolve_url(settings.LOGIN_URL))

    return wrapper


def staff_view(view):
    """Login required; passes the staff member's Scope; domain PermissionDenied → 403 and NotFound → 404."""

    @staff_login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, scope_for_user(request.user), *args, **kwargs)
        except errors.PermissionDenied as exc:
            raise PermissionDenied(str(exc))
        except errors.NotFound as exc:
            raise Http404(str(exc))

    return wrapper


def require_permission(scope: Scope, permission: str) -> None:
    if not scope.can(permission):
        raise errors.PermissionDenied(f"missing permission {permission}")


def safe_next(request, *candidates: str | None, default: str) -> str:
    """The first candidate that is a page of this site: a path ("/customers/?q=zs") or an absolute URL on this
    host (htmx's HX-Current-URL). Anything else (another site, "javascript:", text that is no URL) gives way to
    `default`, so a forged `next` can neither send staff elsewhere nor be taken for a view name."""
    for candidate in candidates:
        candidate = (candidate or "").strip()
        if not candidate or not url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                                                require_https=request.is_secure()):
            continue
        if candidate.startswith("/") or candidate.lower().startswith(("http://", "https://")):
            return candidate
    return default


def htmx_redirect(request, url: str) -> HttpResponse:
    """A POST's redirect: HX-Redirect for htmx (a full navigation), 303 otherwise."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url, permanent=False)


def client_ip(request) -> str | None:
    """The address of the client: REMOTE_ADDR, or behind settings.TRUSTED_PROXY_COUNT proxies the address the outermost
    of them saw, counted from the right of X-Forwarded-For (each proxy appends what it saw; whatever a client wrote
    there itself stands further left and is ignored). None when there is no valid address to name."""
    proxies = settings.TRUSTED_PROXY_COUNT
    candidate = request.META.get("REMOTE_ADDR", "")
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
