"""Security review regressions: ways around the guarded paths that the scope sweep and the form fuzzing could not see.

- The Django admin's own password change took a chain admin's current password without the login lockout and
  changed it without an audit row: one's own password is changed on /account/password/ only.
- A raw-id box of an admin form (a voucher campaign's service item) printed the name of whatever row its id named,
  another chain's included, when the form came back with an error.

And guards for what the review found sound, so that it stays so: hostile text in every stored text field is shown
escaped on every staff page and fragment, no GET writes anything, and no template or module opts out of escaping
outside the reviewed places."""

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.urls import reverse

from smileloop.clinics import services as clinic_services
from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import ChainFactory
from smileloop.core.models import AuditEvent
from smileloop.giftcards.models import VoucherCampaign
from smileloop.imports.models import ImportBatch
from smileloop.visits.tests.factories import ServiceItemFactory
from tests.test_scope_sweep import (
    STAFF_URLS,
    _changed,
    _clinic_world,
    _config,
    _snapshot,
    _staff_kwargs,
    _text,
)

pytestmark = pytest.mark.django_db
PASSWORD = "Smile-loop-2026!"
NEW_PASSWORD = "Another-smile-2027?"


@pytest.fixture
def hq(chain):
    """A chain admin made the way every chain admin is made (their login opens the admin)."""
    cache.clear()  # the lockout's counters
    return clinic_services.staff_create(chain=chain, username="hq_sec", name="总部安全", role=Role.CHAIN_ADMIN,
                                        password=PASSWORD)


# --- the admin's password change ------------------------------------------------------------------------------

def test_the_admins_password_change_leads_to_the_staff_password_change(client, hq):
    client.force_login(hq.user)
    response = client.get(reverse("admin:password_change"))
    assert response.status_code == 302
    assert response["Location"] == reverse("account_password") + "?next=/admin/"
    # the admin's "Change password" link is that URL
    assert f'href="{reverse("admin:password_change")}"' in client.get(reverse("admin:index")).content.decode()


def test_the_admins_password_form_changes_nothing_and_guesses_there_are_locked_out(client, hq, settings):
    client.force_login(hq.user)
    form = {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    assert client.post(reverse("admin:password_change"), form).status_code == 302
    hq.user.refresh_from_db()
    assert hq.user.check_password(PASSWORD)
    # the one password change there is: wrong current passwords lock it like wrong logins
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        client.post(reverse("account_password"), {**form, "old_password": f"guess-{n}"})
    response = client.post(reverse("account_password"), form)
    assert response.status_code == 422
    assert "Too many wrong passwords" in response.content.decode()
    hq.user.refresh_from_db()
    assert hq.user.check_password(PASSWORD)
    assert AuditEvent.objects.filter(action="login.lockout").exists()


# --- raw-id boxes in the admin ----------------------------------------------------------------------------------

def test_a_raw_id_box_never_names_another_chains_row(client, hq, chain):
    other_item = ServiceItemFactory(chain=ChainFactory(name="乙连锁"), code="B-SECRET", name="乙连锁秘密项目")
    own_item = ServiceItemFactory(chain=chain, code="A-CL1", name="甲洁牙")
    client.force_login(hq.user)
    form = {"code": "b-item", "name": "乙项目券", "value_kind": "whole_line", "price_paid_fen": 0,
            "face_value_fen": 0, "valid_days": 30, "is_active": "on"}
    # when: another chain's item id is typed into the raw-id box
    response = client.post(reverse("admin:giftcards_vouchercampaign_add"), {**form, "item": other_item.pk})
    # then: refused, and the page names neither the item nor its code
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["item"]
    body = response.content.decode()
    assert "乙连锁秘密项目" not in body and "B-SECRET" not in body
    assert not VoucherCampaign.objects.filter(code="b-item").exists()
    # one's own chain's item is still named beside the box (the form refused for another field)
    response = client.post(reverse("admin:giftcards_vouchercampaign_add"),
                           {**form, "item": own_item.pk, "valid_days": "many"})
    assert response.status_code == 200
    assert "甲洁牙" in response.content.decode()


# --- hostile text is shown as text everywhere -------------------------------------------------------------------

HOSTILE = '</script><img src=x onerror=alert(1)>{{7*7}}"\'&'
RAW_MARKUP = "<img src=x onerror"
TEXT_FIELDS = ("name", "brief", "comment", "text", "body", "note", "original_name", "title", "description", "reason",
               "label", "script", "detail", "summary", "community", "address")


def _hostile_everywhere() -> int:
    """Every stored text of the names above, in every Smileloop model, set to HOSTILE (cut to the column's length)."""
    changed = 0
    for model in apps.get_models():
        if not model.__module__.startswith("smileloop."):
            continue
        for field in model._meta.concrete_fields:
            if field.name in TEXT_FIELDS and isinstance(field, (models.CharField, models.TextField)) \
                    and not field.choices and (field.max_length or 500) >= len(HOSTILE):
                changed += model._base_manager.update(**{field.name: HOSTILE})
    return changed


def test_hostile_text_is_escaped_on_every_staff_page_and_no_get_writes(client, chain, catalogue, chain_admin,
                                                                        clinic_a, director_a):
    world = _clinic_world(_config(chain, catalogue, chain_admin), chain=chain, clinic=clinic_a, catalogue=catalogue,
                          director=director_a, name="患者", phone="+8613912345678", key="a")
    world.clinic_a, world.customer_a = clinic_a, world.customer
    client.force_login(chain_admin.user)
    # an import of the admin's own, whose rows carry the hostile text (the preview and its errors show file values)
    upload = SimpleUploadedFile("患者.csv", f"姓名,手机号\n{HOSTILE},13900139000\n{HOSTILE},=1+2\n".encode())
    assert client.post(reverse("imports:upload"), {"kind": "customers", "file": upload}).status_code == 302
    world.batch = ImportBatch.objects.get(uploaded_by=chain_admin)
    assert _hostile_everywhere() > 10
    before = _snapshot()
    shown_raw, shown_escaped = [], set()
    for url_name, params in STAFF_URLS:
        url = reverse(url_name, kwargs=_staff_kwargs(world, url_name, params))
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            assert response.status_code < 500, url
            body = _text(response) if response.status_code == 200 else ""
            if RAW_MARKUP in body:
                shown_raw.append(f"{url_name} {headers}")
            if "&lt;img src=x onerror" in body:
                shown_escaped.add(url_name)
    assert shown_raw == []
    # the sweep saw the text: the patient's pages, the lists, the configuration pages and the import show it
    assert {"customers:list", "customers:detail", "tagging:list", "segments:list", "imports:preview",
            "followups:task", "surveys:nps"} <= shown_escaped
    assert _changed(before, _snapshot()) == []
    # the file's values come back in the errors CSV as text a spreadsheet will not run
    errors_csv = _text(client.post(reverse("imports:errors_csv", args=[world.batch.id])))
    assert "'=1+2" in errors_csv and ",=1+2" not in errors_csv


# Reviewed: Django's own password help text (admin/clinics/staff/login_action.html), the admin's links
# (clinics/admin.py, format_html). Anything else that opts out of escaping needs the same review.
ESCAPING_OPT_OUTS = {"src/smileloop/clinics/templates/admin/clinics/staff/login_action.html": 1,
                     "src/smileloop/clinics/admin.py": 3}


def test_nothing_opts_out_of_escaping_beyond_the_reviewed_places():
    base = django_settings.BASE_DIR
    pattern = re.compile(r"\|safe\b|\|safeseq\b|autoescape\s+off|mark_safe|format_html|SafeString|__html__")
    found = {}
    for path in [*Path(base, "templates").rglob("*.html"), *Path(base, "src", "smileloop").rglob("*.html"),
                 *Path(base, "src", "smileloop").rglob("*.py"), *Path(base, "config").rglob("*.py")]:
        if "/tests/" in str(path):
            continue
        hits = len(pattern.findall(path.read_text()))
        if hits:
            found[str(path.relative_to(base))] = hits
    assert found == ESCAPING_OPT_OUTS
