"""The app server serves its own static files (WhiteNoise), so gunicorn alone is a working site: `make demo` has
no reverse proxy in front, and DEBUG is off there as in production."""

from django.test import Client


def test_static_files_come_from_the_app_with_debug_off(settings):
    assert settings.DEBUG is False
    client = Client()
    script = client.get("/static/js/staff.js")
    assert script.status_code == 200
    assert script["Content-Type"].startswith(("text/javascript", "application/javascript"))
    assert b"htmx:responseError" in b"".join(script.streaming_content)
    vendored = client.get("/static/vendor/htmx/htmx.min.js")
    assert vendored.status_code == 200 and int(vendored["Content-Length"]) > 10_000
    assert client.get("/static/js/no-such-file.js").status_code == 404
