"""Two clinics of one chain never share a name: the import's 所属门诊 column, the lists' filters and the reports tell
clinics apart by it. The admin refuses a name another clinic of the chain has (case, spaces and full-width letters
folded), and the database too (test_clinic_name_constraint.py)."""

import pytest
from django.urls import reverse

from smileloop.clinics import services as clinic_services
from smileloop.clinics.enums import Role
from smileloop.clinics.models import Clinic, clinic_name_key
from smileloop.clinics.tests.factories import ClinicFactory
from smileloop.customers.models import Customer
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write

pytestmark = pytest.mark.django_db


def _clinic_data(chain, **changes) -> dict:
    data = {"chain": chain.pk, "code": "SH09", "name": "徐汇门诊", "city": "上海", "address": "", "latitude": "",
            "longitude": "", "opening_hours": "{}", "phone": "", "is_active": "on"}
    return {**data, **changes}


def _name_errors(response) -> list[str]:
    assert response.status_code == 200, response.status_code  # the form again, not a redirect after a save
    return response.context["adminform"].form.errors.get("name", [])


@pytest.mark.parametrize("name", ["静安门诊", " 静安 门诊 ", "Jing'an Clinic", "JING'AN  CLINIC", "ＪＩＮＧ'ＡＮ CLINIC"])
def test_a_new_clinic_named_as_another_of_the_chain_is_refused_and_nothing_is_written(admin_client, chain, name):
    ClinicFactory(chain=chain, code="SH01", name="静安门诊")
    ClinicFactory(chain=chain, code="SH02", name="Jing'an Clinic")
    errors = _name_errors(admin_client.post(reverse("admin:clinics_clinic_add"), _clinic_data(chain, name=name)))
    assert len(errors) == 1 and errors[0].startswith("Another clinic of this chain is called “"), errors
    assert not Clinic.objects.filter(code="SH09").exists()


def test_the_same_name_in_another_chain_and_a_name_of_its_own_are_kept(admin_client, chain):
    ClinicFactory(code="X01", name="静安门诊")  # another chain's
    response = admin_client.post(reverse("admin:clinics_clinic_add"), _clinic_data(chain, name="静安门诊"))
    assert response.status_code == 302
    response = admin_client.post(reverse("admin:clinics_clinic_add"), _clinic_data(chain, code="SH10", name="静安北门诊"))
    assert response.status_code == 302
    assert sorted(Clinic.objects.filter(chain=chain).values_list("name", flat=True)) == ["静安北门诊", "静安门诊"]


def test_a_chain_admin_whose_chain_is_not_posted_is_refused_the_same_name(client, chain, clinic_a):
    hq = clinic_services.staff_create(chain=chain, username="hq_names", name="总部", role=Role.CHAIN_ADMIN,
                                      password="Smile-loop-2026!")
    client.force_login(hq.user)
    data = _clinic_data(chain, name=clinic_a.name)
    del data["chain"]  # not offered: the chain admin's own is used
    errors = _name_errors(client.post(reverse("admin:clinics_clinic_add"), data))
    assert len(errors) == 1 and "静安门诊" in errors[0]
    assert Clinic.objects.filter(chain=chain).count() == 1


def test_renaming_on_the_change_page_keeps_its_own_name_and_refuses_another_clinics(admin_client, clinic_a, clinic_b):
    change = reverse("admin:clinics_clinic_change", args=[clinic_b.pk])
    # saving it under its own name (spaces added) is no clash with itself
    assert admin_client.post(change, _clinic_data(clinic_b.chain, code="SH02", name="浦东门诊 ")).status_code == 302
    errors = _name_errors(admin_client.post(change, _clinic_data(clinic_b.chain, code="SH02", name="静安门诊")))
    assert len(errors) == 1 and "“静安门诊”" in errors[0]
    chinese = admin_client.post(change, _clinic_data(clinic_b.chain, code="SH02", name="静安门诊"),
                                HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "本连锁已有门诊名为“静安门诊”：导入、列表和报表按名称区分门诊。" in chinese.content.decode()
    clinic_b.refresh_from_db()
    assert clinic_b.name == "浦东门诊"


def test_the_name_key_folds_what_people_type_differently():
    assert clinic_name_key(" 静安 门诊 ") == clinic_name_key("静安门诊")
    assert clinic_name_key("ＳＨ Clinic") == clinic_name_key("sh clinic")
    assert clinic_name_key("静安门诊") != clinic_name_key("静安北门诊")


# Two clinics of a chain can no longer share a name (the database's clinic_unique_name, 0007 de-duplicated the
# names shared before: test_clinic_name_constraint.py), so the import's "is the name of several clinics" refusal has no
# state left to test: it stays as a guard.


def test_a_name_that_is_also_another_clinics_code_is_that_clinic(tmp_path, chain):
    # a code beats a name, as the import always read them
    by_code = ClinicFactory(chain=chain, code="总院", name="浦西门诊")
    ClinicFactory(chain=chain, code="SH05", name="总院")
    path = csv_write(tmp_path / "c.csv", [["姓名", "手机号", "门诊"], ["张一", "13800138001", "总院"]])
    report = customers_import(path=path, chain=chain, skip_invalid=True).as_dict()
    assert report["errors"] == []
    assert Customer.objects.get().home_clinic_id == by_code.pk
