"""Staff pages: a write that met a busy database gets a page that says so, not the generic error page."""

from django.db import OperationalError
from django.shortcuts import render

from smileloop.core.error_pages import error_template, reader_language
from smileloop.core.errors import BUSY_RETRY_AFTER_SECONDS, database_busy


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
        with reader_language(request):
            response = render(request, error_template(request, "503.html"), {"retry_after": BUSY_RETRY_AFTER_SECONDS},
                              status=503)
        response["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
        return response
