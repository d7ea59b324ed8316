"""Staff pages: a write that met a busy database gets a page that says so, not the generic error page. The API
answers in English whatever language the client's headers ask for."""

from django.conf import settings
from django.db import OperationalError
from django.shortcuts import render
from django.utils import translation

from smileloop.core.error_pages import error_template, reader_language
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
            response = render(request, error_template(request, "503.html"), {"retry_after": BUSY_RETRY_AFTER_SECONDS},
                              status=503)
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
