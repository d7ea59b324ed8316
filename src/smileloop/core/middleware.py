"""Staff pages: a write that met a busy database gets a page that says so, not the generic error page. The API
answers in English whatever language the client's headers ask for. No browser or proxy keeps a copy of a page or an
API answer; a staff session ends after a while idle and after a working day."""

import time

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.db import OperationalError
from django.http import JsonResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.cache import add_never_cache_headers

from smileloop.core.api import error_body
from smileloop.core.error_pages import error_template, language_stated, reader_language
from smileloop.core.errors import BUSY_RETRY_AFTER_SECONDS, database_busy, database_busy_log


class DatabaseBusyMiddleware:
    """On SQLite a long import in the worker holds the one write lock; a front-desk save that waited past the busy
    timeout was a 500. It is a 503 now, telling the user nothing was saved and to try again (the transaction was
    rolled back: services write inside one)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError) or not database_busy(exception):
            return None
        database_busy_log(request, exception)
        with reader_language(request):
            response = language_stated(request, render(request, error_template(request, "503.html"),
                                                       {"retry_after": BUSY_RETRY_AFTER_SECONDS}, status=503))
        response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
        return response


class ApiEnglishMiddleware:
    """The API's messages are English (core.messages: what a machine client parses and logs). A service that words a
    message with gettext (the segment rule validator does, for its builder page) would otherwise answer a client
    whose Accept-Language is Chinese, or a server whose default language is, in Chinese. After LocaleMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(settings.API_PATH_PREFIX):
            return self.get_response(request)
        with translation.override("en"):
            request.LANGUAGE_CODE = "en"
            response = self.get_response(request)
        response.headers.setdefault("Content-Language", "en")
        return response


class NoStoreMiddleware:
    """Pages and API answers carry patients' data: `Cache-Control: no-store` (Django's never_cache headers) so that
    neither a shared front-desk PC's browser cache nor a proxy keeps a copy. A response that states its own caching
    keeps it: the one page that does is the empty new-customer form (customers.views._kept_for_back, `private,
    no-cache`, so that Back shows the same form with its one-time key). Static files never get here: WhiteNoise,
    above, answers them with their long caching."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response


# Session keys of SessionTimeoutMiddleware: when the user logged in, and their last request (Unix seconds).
SESSION_LOGIN_AT = "_smileloop_login_at"
SESSION_SEEN_AT = "_smileloop_seen_at"
SESSION_ENDED = "_smileloop_session_ended"
# The last-request stamp is rewritten at most this often: a session write a minute, not one per request.
SEEN_EVERY_SECONDS = 60


def session_login_stamp(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver (connected by clinics.apps): every login, through any form or force_login, starts the
    clocks that SessionTimeoutMiddleware reads."""
    now = int(time.time())
    request.session[SESSION_LOGIN_AT] = now
    request.session[SESSION_SEEN_AT] = now


class SessionTimeoutMiddleware:
    """Logs a staff session out after settings.SESSION_IDLE_MINUTES without a request, and SESSION_MAX_AGE_MINUTES
    after its login whatever its activity (front-desk PCs are shared: the next person must not find the last one's
    session open). A session without the stamps (made before this existed) is ended too. The request goes on
    anonymous, so the page asks for the login and comes back; the login page says why (SESSION_ENDED). After
    AuthenticationMiddleware; the API (bearer tokens, no session) is left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and not request.path.startswith(settings.API_PATH_PREFIX) and \
                session.get(SESSION_KEY) is not None:
            self._check(request, session)
        return self.get_response(request)

    @staticmethod
    def _check(request, session) -> None:
        now = int(time.time())
        login_at, seen_at = session.get(SESSION_LOGIN_AT), session.get(SESSION_SEEN_AT)
        if login_at is None or seen_at is None:
            ended = "expired"
        elif now - seen_at > settings.SESSION_IDLE_MINUTES * 60:
            ended = "idle"
        elif now - login_at > settings.SESSION_MAX_AGE_MINUTES * 60:
            ended = "expired"
        else:
            if now - seen_at >= SEEN_EVERY_SECONDS:
                session[SESSION_SEEN_AT] = now
            return
        logout(request)
        request.session[SESSION_ENDED] = ended


def _import_limit() -> int:
    return settings.SMILELOOP_IMPORT_MAX_BYTES + 1024 * 1024  # the file and the form around it


class RequestSizeLimitMiddleware:
    """A request whose body is larger than its path may take is refused (413) by its Content-Length, before anything
    reads it. Django parses a form for the CSRF check before any view runs and writes its files to disk as it goes: a
    2 GB post to any page filled the disk first, and the import page's own size check came only after the whole file
    was there. The import upload may carry SMILELOOP_IMPORT_MAX_BYTES (and 1 MiB of the form around it), every other
    request REQUEST_BODY_MAX_BYTES. (A body sent without a Content-Length is left to Django's own limits and, behind
    a proxy, the proxy's: see the README's production notes.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > min(settings.REQUEST_BODY_MAX_BYTES, _import_limit()):  # (no URL look-up for most requests)
            limit = self._limit(request)
            if length > limit:
                return self._refuse(request, limit)
        return self.get_response(request)

    @staticmethod
    def _limit(request) -> int:
        try:
            upload = reverse("imports:upload")
        except NoReverseMatch:  # a URLconf without the import (a test's)
            upload = None
        return _import_limit() if request.path_info == upload else settings.REQUEST_BODY_MAX_BYTES

    @staticmethod
    def _refuse(request, limit: int):
        if request.path_info.startswith(settings.API_PATH_PREFIX):
            message = f"The request body is larger than the {limit} bytes this endpoint accepts; nothing was read or written"
            return JsonResponse(error_body("too_large", message, [{"field": "body", "message": message}]), status=413)
        with reader_language(request):
            return language_stated(request, render(request, error_template(request, "413.html"),
                                                   {"limit": filesizeformat(limit)}, status=413))
