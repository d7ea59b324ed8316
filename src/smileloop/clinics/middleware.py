"""A member of staff whose password someone else chose (a chain admin's first or reset password,
Staff.password_change_required) opens no page but the password change until they choose their own: the admin who
typed the temporary password must not keep knowing a working one."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import NoReverseMatch, reverse

from smileloop.clinics.web import htmx_redirect, safe_next


class PasswordChangeRequiredMiddleware:
    """After AuthenticationMiddleware, SessionTimeoutMiddleware and HtmxMiddleware. Lets through the password change
    itself, logging out, the language switch and static files; the API is token-authenticated, not by session, and
    is left alone. Everything else goes to the password change, which comes back to the page asked for."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Who asks is looked at only for a request that carries a session and is not exempt: the API's (a token says
        # who) and anonymous visitors' (a patient's survey page) never load a user for this.
        if (settings.SESSION_COOKIE_NAME in request.COOKIES and not self._exempt(request.path)
                and request.user.is_authenticated):
            staff = getattr(request.user, "staff", None)
            if staff is not None and staff.password_change_required:
                return self._to_password_change(request)
        return self.get_response(request)

    _exempt_prefixes: tuple[str, ...] | None = None

    @classmethod
    def _exempt(cls, path: str) -> bool:
        fixed = tuple(prefix for prefix in (settings.API_PATH_PREFIX, settings.STATIC_URL) if prefix)
        if path.startswith(fixed):
            return True
        if cls._exempt_prefixes is None:  # resolved once; a URLconf without them (a test's, a benchmark's) has none
            try:
                cls._exempt_prefixes = (reverse("account_password"), reverse("logout"), reverse("set_language"))
            except NoReverseMatch:
                return False
        return path.startswith(cls._exempt_prefixes)

    @staticmethod
    def _to_password_change(request):
        target = reverse("account_password")
        if request.htmx:  # a fragment must not become the password page: the whole page goes there
            page = safe_next(request, request.headers.get("HX-Current-URL"), default="/")
            return htmx_redirect(request, redirect_to_login(page, target).url)
        page = request.get_full_path() if request.method == "GET" else "/"
        return redirect_to_login(page, target)
