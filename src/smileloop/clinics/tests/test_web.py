"""staff_login_required: an htmx request after the session ended navigates the whole page to the login."""

import uuid

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_a_page_without_a_session_redirects_to_the_login_and_back(client):
    response = client.get("/followups/?mine=1")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/followups/%3Fmine%3D1"


@pytest.mark.parametrize("url", ["/followups/tasks/7/complete/", "/customers/12/"])
def test_an_htmx_request_without_a_session_sends_the_whole_page_to_the_login_and_back(client, url):
    response = client.post(url, {"outcome": "reached"}, headers={
        "HX-Request": "true", "HX-Current-URL": "http://testserver/followups/?mine=1"})
    # a 204 htmx swaps nothing into the fragment; HX-Redirect navigates the page
    assert response.status_code == 204 and response.content == b""
    assert response["HX-Redirect"] == "/login/?next=http%3A//testserver/followups/%3Fmine%3D1"


def test_the_import_pages_progress_poll_without_a_session_goes_to_the_login_too(client):
    url = reverse("imports:progress", args=[uuid.uuid4()])
    response = client.get(url, headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/imports/"})
    assert (response.status_code, response["HX-Redirect"]) == (204, "/login/?next=http%3A//testserver/imports/")


@pytest.mark.parametrize("current", ["https://evil.example/phish", "javascript:alert(1)", ""])
def test_a_foreign_or_missing_current_page_comes_back_to_the_start_page(client, current):
    response = client.get("/followups/", headers={"HX-Request": "true", "HX-Current-URL": current})
    assert response["HX-Redirect"] == "/login/?next=/"


def test_a_logged_in_htmx_request_is_served(client, front_desk_a):
    client.force_login(front_desk_a.user)
    response = client.get("/followups/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/"})
    assert response.status_code == 200 and "HX-Redirect" not in response
