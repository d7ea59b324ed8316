"""Every named staff URL: 200 (or 405 for POST-only actions) for a chain admin, a login redirect when anonymous."""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.models import ImportBatch
from tests.urlwalk import named_urls

STAFF_NAMESPACES = ("customers", "imports")


def _named_staff_urls():
    """(namespaced name, route kwargs) for every named pattern in the staff namespaces."""
    return [(name, sorted(params)) for name, params in named_urls(STAFF_NAMESPACES)]


NAMED_URLS = _named_staff_urls()


@pytest.fixture
def customer(chain, clinic_a):
    return CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)


def _url(name, params, customer, batch_id=None):
    values = {"customer_id": customer.id, "pk": customer.id, "member_id": customer.id, "kind": "customers",
              "batch_id": batch_id or uuid.uuid4()}
    if any(p not in values for p in params):
        pytest.skip(f"{name} takes parameters this smoke test cannot fill: {params}")
    return reverse(name, kwargs={p: values[p] for p in params})


def test_the_staff_namespaces_have_pages():
    names = {name for name, _ in NAMED_URLS}
    assert {"customers:list", "customers:detail", "customers:create", "customers:edit",
            "customers:merge_candidates", "customers:merge"} <= names


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "params"), NAMED_URLS, ids=[n for n, _ in NAMED_URLS])
def test_named_staff_url_renders_for_a_chain_admin(client, chain_admin, customer, name, params):
    client.force_login(chain_admin.user)
    batch_id = None
    if "batch_id" in params:  # an import previewed by this admin: uploaded through the page, as staff do
        upload = SimpleUploadedFile("患者.csv", "姓名,手机号\n李四,13900139000\n王五,123\n".encode())
        assert client.post(reverse("imports:upload"), {"kind": "customers", "file": upload}).status_code == 302
        batch_id = ImportBatch.objects.get().id
    response = client.get(_url(name, params, customer, batch_id))
    if name == "imports:progress":  # an import that is not running: its page is the preview
        assert response.status_code == 302
        assert response["Location"] == reverse("imports:preview", kwargs={"batch_id": batch_id})
        return
    assert response.status_code in (200, 405), response.status_code
    if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
        assert b"</html>" in response.content
    elif response.status_code == 200:  # a download (the import template)
        assert response["Content-Disposition"].startswith("attachment")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "params"), NAMED_URLS, ids=[n for n, _ in NAMED_URLS])
def test_named_staff_url_redirects_anonymous_users_to_login(client, customer, name, params):
    response = client.get(_url(name, params, customer))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["login", "admin:index"])
def test_login_and_admin_pages_render(admin_client, url_name):
    assert admin_client.get(reverse(url_name)).status_code == 200


@pytest.mark.django_db
def test_language_switch_sets_chinese(client, chain_admin):
    client.force_login(chain_admin.user)
    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": reverse("customers:list")})
    assert response.status_code == 302
    page = client.get(reverse("customers:list"))
    assert '<html lang="zh-hans">' in page.text
    assert "<title>客户 · Smileloop</title>" in page.text  # the compiled catalogue is in the tree
    assert "退出登录" in page.text


@pytest.mark.django_db
def test_every_admin_changelist_and_change_page_renders(admin_client, chain_admin, customer, catalogue):
    from django.contrib import admin

    for model in admin.site._registry:
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert admin_client.get(changelist).status_code == 200, changelist
        obj = model._default_manager.first()
        if obj is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            assert admin_client.get(change).status_code == 200, change
