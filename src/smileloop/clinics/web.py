"""Helpers every staff page uses: the login + scope decorator, permission checks, htmx redirects."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect

from smileloop.clinics.selectors import scope_for_user
from smileloop.core import errors
from smileloop.core.scoping import Scope


def staff_view(view):
    """Login required; passes the staff member's Scope; domain PermissionDenied → 403 and NotFound → 404."""

    @login_required
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


def htmx_redirect(request, url: str) -> HttpResponse:
    """A POST's redirect: HX-Redirect for htmx (a full navigation), 303 otherwise."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url, permanent=False)
