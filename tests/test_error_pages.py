"""Error pages a user meets are the workspace's own, in the reader's language: a server error and an expired form
(CSRF failure) say that nothing was saved and what to do, instead of Django's technical pages."""

import pytest
from django.conf import settings
from django.test import Client
from django.urls import path, reverse
from django.utils import translation

from config.urls import handler404, handler500  # noqa: F401 (a test URLconf is the root: it names the handlers)
from config.urls import urlpatterns as project_urlpatterns
from smileloop.customers.models import Customer

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", _boom), path("api/boom-outside-the-api/", _boom), *project_urlpatterns]


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


# --- a patient's page (a survey link opened on a phone): the member layout and words for a patient -------------

def _busy(request):
    """Raises what Django raises when SQLite's write lock is held by another connection: a real SQLITE_BUSY."""
    import sqlite3
    import tempfile

    from django.db import OperationalError

    with tempfile.TemporaryDirectory() as folder:
        holder = sqlite3.connect(f"{folder}/db", timeout=0, isolation_level=None)
        waiter = sqlite3.connect(f"{folder}/db", timeout=0, isolation_level=None)
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        try:
            waiter.execute("INSERT INTO t VALUES (1)")
        except sqlite3.OperationalError as exc:
            raise OperationalError(str(exc)) from exc
        finally:
            holder.close()
            waiter.close()
    raise AssertionError("the second writer was not refused")


urlpatterns = [path("surveys/s/boom/", _boom), path("surveys/s/busy/", _busy), path("busy/", _busy), *urlpatterns]


def _member_page(html):
    return 'class="member"' in html and "mainnav" not in html and "Back to customers" not in html


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("language, words", [
    (None, ["抱歉，系统出了点问题。", "您的回答没有保存"]),   # a patient's page is in Chinese whatever the browser says
    ("en", ["Sorry, something went wrong on our side.", "Your answers were not saved."]),   # unless chosen
])
def test_a_server_error_on_a_patients_page_is_in_the_member_layout(language, words):
    client = Client(raise_request_exception=False, HTTP_ACCEPT_LANGUAGE="en")
    if language:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get("/surveys/s/boom/")
    assert response.status_code == 500
    html = response.content.decode()
    assert _member_page(html) and all(w in html for w in words), html[:800]
    assert "a bug" not in html and "刚才要保存的内容没有保存" not in html


@pytest.mark.urls(__name__)
def test_a_busy_database_on_a_patients_page_is_a_503_in_the_member_layout():
    response = Client().get("/surveys/s/busy/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert _member_page(response.text) and "系统繁忙。" in response.text and "5 秒后再提交一次" in response.text


@pytest.mark.urls(__name__)
def test_a_busy_database_on_a_staff_page_keeps_the_workspace_page(front_desk_a):
    client = Client()
    client.force_login(front_desk_a.user)
    response = client.get("/busy/")
    assert response.status_code == 503
    assert "mainnav" in response.text and 'data-testid="database-busy"' in response.text


@pytest.mark.parametrize("url, member", [
    ("/surveys/s/AAAAAAAAAAAA/extra/", True),   # no such patient page: the patient's 404
    ("/customers/no-such-page/", False),        # a staff URL: the workspace's 404
])
def test_a_missing_page_is_in_the_readers_layout(url, member):
    response = Client().get(url)
    assert response.status_code == 404
    assert _member_page(response.text) is member
    assert ("该链接无效。" in response.text) is member


def test_a_fault_behind_the_api_is_a_json_500_and_its_write_is_rolled_back(front_desk_a, monkeypatch, caplog):
    # given an upsert whose service fails after the idempotency key was claimed
    from smileloop.clinics.services import token_create
    from smileloop.core.models import IdempotencyRecord
    from smileloop.customers import api as customers_api

    def failing(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(customers_api, "customer_ingest", failing)
    token = token_create(username=front_desk_a.user.username)
    client = Client(raise_request_exception=False)
    # when
    response = client.post("/api/customers/upsert", {"name": "张三", "mobile": "13800138000"},
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-1"})
    # then the client gets the API's JSON shape, not an HTML page, and the key is free for the retry
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "server_error"
    assert "same Idempotency-Key" in response.json()["message"]
    assert not IdempotencyRecord.objects.exists() and not Customer.objects.exists()
    assert "Internal Server Error: /api/customers/upsert" in caplog.text  # logged as Django logs a 500


def test_a_body_over_the_upload_limit_is_still_a_400_in_the_apis_shape(front_desk_a, settings):
    from smileloop.clinics.services import token_create

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    token = token_create(username=front_desk_a.user.username)
    response = Client(raise_request_exception=False).post(
        "/api/customers/upsert", {"name": "张" * 2000, "mobile": "13800138000"}, content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-big"})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert not Customer.objects.exists()


@pytest.mark.urls(__name__)
def test_a_fault_under_api_that_no_endpoint_caught_is_a_json_500_in_the_apis_error_shape():
    # when: a fault outside ninja's handlers (a view or middleware of its own) under /api/
    response = Client(raise_request_exception=False).get("/api/boom-outside-the-api/")
    # then
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"code": "server_error", "errors": [],
                               "message": "An internal error stopped this request; it was logged."}


def test_a_post_larger_than_a_page_takes_is_refused_unread_in_the_readers_language(front_desk_a, settings):
    # given a limit of 2,000 bytes for every page but the import's upload
    settings.REQUEST_BODY_MAX_BYTES = 2000
    client = Client(raise_request_exception=False)
    client.force_login(front_desk_a.user)
    # when a form of 5,000 bytes is posted to the new-customer page, as a Chinese reader
    response = client.post(reverse("customers:create"), {"name": "张三", "mobile": "13800138000", "notes": "备" * 1600},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then a 413 page in Chinese, and nothing saved
    assert response.status_code == 413
    assert "内容过大" in response.text and "（2.0\xa0KB）" in response.text
    assert not Customer.objects.exists()
    # and a small post still reaches the page
    assert client.post(reverse("customers:create"), {"name": ""}).status_code != 413


def test_an_api_body_over_the_limit_is_a_json_413_before_it_is_read(front_desk_a, settings):
    from smileloop.clinics.services import token_create

    settings.REQUEST_BODY_MAX_BYTES = 2000
    token = token_create(username=front_desk_a.user.username)
    response = Client(raise_request_exception=False).post(
        "/api/customers/upsert", {"name": "张" * 2000, "mobile": "13800138000"}, content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-huge"})
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert not Customer.objects.exists()


def test_an_import_upload_over_its_limit_is_refused_before_the_file_reaches_the_disk(director_a, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from smileloop.imports.models import ImportBatch

    # given an import limit of 1,000 bytes (the page takes that and 1 MiB of form) and an empty upload folder
    settings.SMILELOOP_IMPORT_MAX_BYTES = 1000
    settings.SMILELOOP_IMPORT_DIR = str(tmp_path)
    client = Client(raise_request_exception=False)
    client.force_login(director_a.user)
    big = SimpleUploadedFile("患者.csv", b"name,phone\n" + b"x" * (2 * 1024 * 1024), content_type="text/csv")
    # when a 2 MiB file is uploaded
    response = client.post(reverse("imports:upload"), {"kind": "customers", "file": big})
    # then 413, no batch, nothing kept
    assert response.status_code == 413
    assert not ImportBatch.objects.exists() and list(tmp_path.iterdir()) == []
    # while a file under the page's limit still reaches the form (which names its own 1,000-byte limit)
    small = SimpleUploadedFile("患者.csv", b"name,phone\n" + b"x" * 5000, content_type="text/csv")
    answer = client.post(reverse("imports:upload"), {"kind": "customers", "file": small})
    assert answer.status_code == 400 and "1000" in answer.text.replace(",", "").replace("\u00a0", "")


@pytest.mark.parametrize("url, member, words", [
    ("/customers/new/", False, ["请求无法读取", "因此没有保存任何内容"]),
    ("/surveys/s/AbCdEf123456/", True, ["抱歉，提交的内容无法读取。", "您的回答没有保存"]),
])
def test_a_form_django_will_not_read_is_a_400_in_the_readers_layout_and_language(front_desk_a, url, member, words):
    # given a POST with more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS (no page has a thousand), read first by the
    # CSRF check as in production
    client = Client(raise_request_exception=False, enforce_csrf_checks=True)
    client.force_login(front_desk_a.user)
    client.cookies[settings.CSRF_COOKIE_NAME] = "a" * 32  # a form's cookie: the check then reads the body's token
    fields = {f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    before = Customer.objects.count()
    # when
    response = client.post(url, fields, HTTP_ACCEPT_LANGUAGE="en" if member else "zh-hans")
    # then: the staff workspace or the patients' layout, in Chinese (a patient's page is Chinese whatever the phone
    # asks), not Django's bare "Bad Request (400)"; nothing written
    html = response.content.decode()
    assert response.status_code == 400
    assert all(w in html for w in words), html[:800]
    assert _member_page(html) is member and "Bad Request" not in html
    assert Customer.objects.count() == before


@pytest.mark.parametrize("url", ["/api/customers", "/customers/"])
def test_a_request_for_a_host_the_site_does_not_serve_is_a_400_in_the_readers_shape(url):
    # when a request names a Host outside ALLOWED_HOSTS (a misrouted proxy, a forged header)
    response = Client(raise_request_exception=False).get(url, HTTP_HOST="evil.example", HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then: the API answers in its error shape, a page in the workspace's layout
    assert response.status_code == 400
    if url.startswith("/api/"):
        assert response.json()["code"] == "bad_request"
    else:
        html = response.content.decode()
        assert "请求无法读取" in html and "mainnav" in html and "Bad Request" not in html
