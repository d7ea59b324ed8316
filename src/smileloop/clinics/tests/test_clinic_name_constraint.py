"""A chain's clinic names are unique in the database too (`clinic_unique_name` on Clinic.name_key: case, spaces and
full width folded), not only in the admin's form: a script, a seed or two admins saving at once cannot make two
静安门诊. Migration clinics.0007 tells apart the clinics that already share a name (the oldest keeps it, the others get
their code appended) instead of failing the deploy."""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from smileloop.clinics.models import Clinic
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["静安门诊", "静安 门诊", "ＪＩＮＧ'ＡＮ CLINIC", "jing'an clinic"])
def test_the_database_refuses_a_second_clinic_of_the_chain_with_a_folded_equal_name(chain, name):
    # given
    ClinicFactory(chain=chain, code="SH01", name="静安门诊")
    ClinicFactory(chain=chain, code="SH02", name="Jing'an Clinic")
    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        ClinicFactory(chain=chain, code="SH09", name=name)
    assert Clinic.objects.filter(chain=chain).count() == 2


def test_a_rename_by_update_fields_is_checked_too(chain):
    ClinicFactory(chain=chain, code="SH01", name="静安门诊")
    other = ClinicFactory(chain=chain, code="SH02", name="徐汇门诊")
    other.name = "静安门诊 "
    with pytest.raises(IntegrityError), transaction.atomic():
        other.save(update_fields=["name"])
    other.refresh_from_db()
    assert (other.name, other.name_key) == ("徐汇门诊", "徐汇门诊")


def test_another_chain_may_use_the_name(chain):
    ClinicFactory(chain=chain, code="SH01", name="静安门诊")
    ClinicFactory(chain=ChainFactory(), code="SH01", name="静安门诊")
    assert Clinic.objects.filter(name="静安门诊").count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_migration_renames_the_later_of_two_clinics_that_share_a_name_and_keeps_the_rest(capsys):
    # given the database before the constraint, with clinics made before the admin refused a name twice
    executor = MigrationExecutor(connection)
    executor.migrate([("clinics", "0006_verbose_names")])
    old = executor.loader.project_state([("clinics", "0006_verbose_names")]).apps
    Chain, OldClinic = old.get_model("clinics", "Chain"), old.get_model("clinics", "Clinic")
    chain, other_chain = Chain.objects.create(name="笑齿"), Chain.objects.create(name="别家")
    first = OldClinic.objects.create(chain=chain, code="SH01", name="静安门诊", city="上海")
    second = OldClinic.objects.create(chain=chain, code="SH02", name="静安 门诊", city="上海")
    taken = OldClinic.objects.create(chain=chain, code="SH03", name="静安门诊 (SH04)", city="上海")
    third = OldClinic.objects.create(chain=chain, code="SH04", name="静安门诊", city="上海")
    wide = OldClinic.objects.create(chain=chain, code="SH05", name="ＪＩＮＧＡＮ门诊", city="上海")
    narrow = OldClinic.objects.create(chain=chain, code="SH06", name="jingan门诊", city="上海")
    elsewhere = OldClinic.objects.create(chain=other_chain, code="SH01", name="静安门诊", city="上海")
    # when
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    finally:
        call_command("migrate", verbosity=0)  # the schema the other tests expect, whatever happened
    # then the oldest keeps its name; the others get their code, or code and id where that name is taken
    names = dict(Clinic.objects.values_list("id", "name"))
    assert names == {first.id: "静安门诊", second.id: "静安 门诊 (SH02)", taken.id: "静安门诊 (SH04)",
                     third.id: f"静安门诊 (SH04-{third.id})", wide.id: "ＪＩＮＧＡＮ门诊", narrow.id: "jingan门诊 (SH06)",
                     elsewhere.id: "静安门诊"}
    assert Clinic.objects.get(pk=first.id).name_key == "静安门诊"
    assert "renamed from '静安 门诊' to '静安 门诊 (SH02)'" in capsys.readouterr().out
    # and the constraint holds from now on
    with pytest.raises(IntegrityError), transaction.atomic():
        ClinicFactory(chain_id=chain.id, code="SH09", name="静安门诊")
