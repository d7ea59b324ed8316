"""Error pages a user meets are the workspace's own, in the reader's language: a server error and an expired form
(CSRF failure) say that nothing was saved and what to do, instead of Django's technical pages."""

import pytest
from django.conf import settings
from django.test import Client
from django.urls import path, reverse
from django.utils import translation

from config.urls import urlpatterns as project_urlpatterns
from smileloop.customers.models import Customer

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", _boom), *project_urlpatterns]


@pytest.fixture(autouse=True)
def _site_language():
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("language, words", [
    ("zh-hans", ["出错了", "刚才要保存的内容没有保存"]),
    ("en", ["Something went wrong", "What you were saving was not saved"]),
])
def test_a_server_error_is_the_workspace_page_in_the_readers_language(front_desk_a, language, words):
    client = Client(raise_request_exception=False)
    client.force_login(front_desk_a.user)
    response = client.get("/boom/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 500
    html = response.content.decode()
    assert all(w in html for w in words), html[:500]
    assert "a bug" not in html and "Traceback" not in html


@pytest.mark.parametrize("language, words", [
    ("zh-hans", ["表单已过期", "没有保存任何内容"]),
    ("en", ["This form has expired", "Nothing was saved"]),
])
def test_an_expired_form_says_nothing_was_saved_and_what_to_do(front_desk_a, language, words):
    # given a form posted without its CSRF token (the page was open across a log-in in another tab)
    client = Client(enforce_csrf_checks=True)
    client.force_login(front_desk_a.user)
    # when
    response = client.post(reverse("customers:create"), {"name": "张三"}, HTTP_ACCEPT_LANGUAGE=language)
    # then
    assert response.status_code == 403
    html = response.content.decode()
    assert all(w in html for w in words)
    assert "CSRF verification failed" not in html and "CSRF验证失败" not in html
    assert not Customer.objects.exists()
