"""Error pages in the reader's own layout. A patient who opened a survey link on a phone has no login and no use for
the staff navigation or its "back to customers" link; they get the member layout, in their language, with words
meant for them. Django's handlers take one template each, so these pick the template by the request's path."""

from contextlib import nullcontext

from django.conf import settings
from django.http import JsonResponse
from django.utils import translation
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure

from smileloop.core.api import error_body
from smileloop.core.member_pages import patient_language, patient_page


def error_template(request, name: str) -> str:
    """The template for error page `name` ("404.html", …): the patients' version under member/ on their pages."""
    return f"member/{name}" if patient_page(request) else name


def reader_language(request):
    """The language a patient's page is in (see member_pages); staff pages keep the one LocaleMiddleware chose."""
    return patient_language(request) if patient_page(request) else nullcontext()


def language_stated(request, response):
    """Call inside reader_language: a patient's page names the language it is in (Content-Language). LocaleMiddleware
    would otherwise name the one the phone asked for (English), while the page is in Chinese."""
    if patient_page(request):
        response["Content-Language"] = translation.get_language()
    return response


def _api_request(request) -> bool:
    return request.path_info.startswith(settings.API_PATH_PREFIX)


def _api_error(code: str, message: str, status: int) -> JsonResponse:
    """An error under /api/ that no endpoint answered (a path no route has, a fault outside a view) in the API's one
    error shape (core.api.error_body), not an HTML page a client cannot parse."""
    return JsonResponse(error_body(code, message), status=status)


def bad_request(request, exception):
    """A request Django would not read (a form with more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS, a bad Host):
    the reader's layout and language, not Django's bare English "Bad Request (400)". Rendered without a request
    context, as Django's own."""
    if _api_request(request):
        return _api_error("bad_request", "The request could not be read; nothing was written", 400)
    with reader_language(request):
        return language_stated(request, defaults.bad_request(request, exception,
                                                             template_name=error_template(request, "400.html")))


def page_not_found(request, exception):
    if _api_request(request):
        return _api_error("not_found", f"No API operation at {request.path}: see {settings.API_PATH_PREFIX}"
                                       "openapi.json for the paths (ids are whole numbers)", 404)
    with reader_language(request):
        return language_stated(request, defaults.page_not_found(request, exception,
                                                                template_name=error_template(request, "404.html")))


def server_error(request):
    if _api_request(request):
        return _api_error("server_error", "An internal error stopped this request; it was logged.", 500)
    # Rendered without a request context, as Django's own: nothing in these templates may query the database.
    with reader_language(request):
        return language_stated(request, defaults.server_error(request,
                                                              template_name=error_template(request, "500.html")))


def csrf_failure(request, reason=""):
    """A patient's survey form left open until its CSRF cookie went: say their answers were not saved and to reload,
    not that they "logged out in another tab"."""
    with reader_language(request):
        return language_stated(request, django_csrf_failure(request, reason,
                                                            template_name=error_template(request, "403_csrf.html")))
