"""A chain's clinic codes are unique with case and full width folded (`clinic_unique_code_key` on Clinic.code_key),
in the admin and in the database: the import finds clinics by code so, and a "sh01" saved beside "SH01" sent every
row naming SH01 to whichever clinic was read last, without a word. Migration clinics.0009 re-codes the later of two
such clinics already saved instead of failing the deploy."""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.models import Clinic
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory
from smileloop.clinics.tests.test_clinic_names import _clinic_data
from smileloop.imports.services.common import ClinicLookup

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("code", ["sh01", "SH01", " SH01", "ＳＨ０１", "Sh01"])
def test_the_admin_refuses_a_code_another_clinic_of_the_chain_has_but_for_case_or_width(admin_client, chain, code):
    ClinicFactory(chain=chain, code="SH01", name="静安门诊")
    response = admin_client.post(reverse("admin:clinics_clinic_add"), _clinic_data(chain, code=code))
    assert response.status_code == 200  # the form again
    [error] = response.context["adminform"].form.errors["code"]
    assert error == ("Clinic “静安门诊” of this chain has the code “SH01”: codes are told apart without case or full "
                     "width (imports find clinics by them). Give this clinic a code of its own.")
    with translation.override("zh-hans"):
        assert translation.gettext(error.replace("静安门诊", "%(name)s").replace("SH01", "%(code)s")) == (
            "本连锁的门诊“%(name)s”已使用编码“%(code)s”：编码不区分大小写和全角半角（导入按编码查找门诊）。请为此门诊另设编码。")
    assert Clinic.objects.filter(chain=chain).count() == 1


def test_the_database_refuses_it_too_and_another_chain_may_use_the_code(chain):
    ClinicFactory(chain=chain, code="SH01", name="静安门诊")
    with pytest.raises(IntegrityError), transaction.atomic():
        ClinicFactory(chain=chain, code="sh01", name="新门诊")
    ClinicFactory(chain=ChainFactory(), code="sh01", name="新门诊")
    other = ClinicFactory(chain=chain, code="SH02", name="徐汇门诊")
    other.code = "ｓｈ01"
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save(update_fields=["code"])


def test_the_import_finds_the_one_clinic_by_its_code_in_any_case(chain):
    jingan = ClinicFactory(chain=chain, code="SH01", name="静安门诊")
    ClinicFactory(chain=chain, code="SH02", name="徐汇门诊")
    lookup = ClinicLookup(chain.id)
    assert {lookup.resolve(code) for code in ("SH01", "sh01", "ＳＨ０１")} == {jingan.id}


@pytest.mark.django_db(transaction=True)
def test_the_migration_recodes_the_later_of_two_codes_equal_but_for_case(capsys):
    executor = MigrationExecutor(connection)
    executor.migrate([("clinics", "0008_clinic_unique_name")])
    old = executor.loader.project_state([("clinics", "0008_clinic_unique_name")]).apps
    Chain, OldClinic = old.get_model("clinics", "Chain"), old.get_model("clinics", "Clinic")
    chain, other_chain = Chain.objects.create(name="笑齿"), Chain.objects.create(name="别家")
    first = OldClinic.objects.create(chain=chain, code="SH01", name="静安门诊", name_key="静安门诊", city="上海")
    second = OldClinic.objects.create(chain=chain, code="sh01", name="新门诊", name_key="新门诊", city="上海")
    third = OldClinic.objects.create(chain=chain, code="ＳＨ０１", name="三门诊", name_key="三门诊", city="上海")
    elsewhere = OldClinic.objects.create(chain=other_chain, code="sh01", name="别家门诊", name_key="别家门诊", city="上海")
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    finally:
        call_command("migrate", verbosity=0)
    codes = dict(Clinic.objects.values_list("id", "code"))
    assert codes == {first.id: "SH01", second.id: f"sh01-{second.id}", third.id: f"ＳＨ０１-{third.id}",
                     elsewhere.id: "sh01"}
    assert Clinic.objects.get(pk=second.id).code_key == f"sh01-{second.id}"
    assert f"re-coded from 'sh01' to 'sh01-{second.id}'" in capsys.readouterr().out
    with pytest.raises(IntegrityError), transaction.atomic():
        ClinicFactory(chain_id=chain.id, code="Sh01", name="又一门诊")
