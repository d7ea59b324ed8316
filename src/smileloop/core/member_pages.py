"""Pages patients open from a link on their phone (survey invitations, later the member center): which paths they
are and the language they read. Staff pages follow the browser's language; a patient's page is in Simplified Chinese
unless the patient chose another language with the page's switcher."""

from contextlib import contextmanager

from django.conf import settings
from django.utils import translation

PATIENT_LANGUAGE = "zh-hans"


def patient_page(request) -> bool:
    """Whether the request is for a page a patient opens (settings.PATIENT_PATH_PREFIXES), not a staff page."""
    return request.path_info.startswith(tuple(settings.PATIENT_PATH_PREFIXES))


@contextmanager
def patient_language(request):
    """Patients read Simplified Chinese unless they chose a language with the switcher (its cookie)."""
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    language = chosen if chosen in dict(settings.LANGUAGES) else PATIENT_LANGUAGE
    with translation.override(language):
        yield language
