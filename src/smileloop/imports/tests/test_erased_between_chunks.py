"""A file written one transaction per chunk (`skip_invalid`, as the background job writes a large one) names a person
in an earlier chunk and again in a later one; the person is erased (PIPL) in between. The later row must not write
onto the erased record (an identity, a consent, filled fields), nor make the person again as a new patient from a
file uploaded before the erasure: it is refused, saying why, without quoting the number.

Before, the import found them through its in-memory look-up of the file's earlier rows (`known`) and merged the row
into the erased record: a PMS id and a consent were stored for an anonymous record, the preview kept their name and
phone."""

import pytest
from django.utils import translation

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.enums import Stage
from smileloop.customers.models import Consent, Customer, Identity
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import customer_merge
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.timeline import timeline_text
from smileloop.imports.services import customers as import_customers
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write

pytestmark = pytest.mark.django_db

HEADER = ["姓名", "手机号", "地址", "病历号", "短信营销同意"]


def _run(tmp_path, chain, clinic_a, monkeypatch, between):
    """Import a file of one row a chunk, each chunk its own transaction; `between()` after the first chunk."""
    monkeypatch.setattr(import_customers, "CHUNK_ROWS", 1)
    path = csv_write(tmp_path / "c.csv", [HEADER, ["张三", "13800138000", "", "", ""],
                                          ["李四", "13900139000", "", "", ""],
                                          ["张三", "13800138000", "静安区1号", "P00012345", "是"]])
    chunks = []

    def progress(rows):
        chunks.append(rows)
        if len(chunks) == 1:
            between()

    return customers_import(path=path, chain=chain, skip_invalid=True, progress=progress, default_clinic=clinic_a)


def test_a_person_erased_after_an_earlier_chunk_is_not_written_to_by_a_later_one(
        tmp_path, chain, clinic_a, director_a, monkeypatch):
    # given a file naming 张三 in its first and third rows, each row a chunk of its own; 张三 erased after the first
    def erase():
        person = Customer.objects.get(mobile="+8613800138000")
        customer_erase(scope=scope_for_staff(director_a), customer=person, actor=director_a, reason="本人书面申请")

    # when it is imported
    report = _run(tmp_path, chain, clinic_a, monkeypatch, erase)

    # then the third row is refused, saying why, the number not quoted
    erased = Customer.objects.get(erased_at__isnull=False)
    assert (report.created, report.merged, report.skipped) == (2, 0, 1)
    assert [(e["row"], e["column"], e["value"], e["message"]) for e in report.errors] == [
        (4, "手机号", "***", import_customers.PERSON_ERASED)]
    # and nothing of it reached the erased record, nor made a new one
    assert not Identity.objects.filter(customer=erased).exists()
    assert not Consent.objects.filter(customer=erased, granted=True).exists()
    assert erased.address == ""
    assert Customer.objects.count() == 2
    # and the preview does not keep the erased person's row
    assert report.preview[0] == {"row": 2, "values": {}, "outcome": "erased"}
    assert "13800138000" not in str(report.as_stored()) and "张三" not in str(report.preview)


def test_a_person_merged_away_after_an_earlier_chunk_is_written_to_the_record_kept_by_a_later_one(
        tmp_path, chain, clinic_a, admin_scope, chain_admin, monkeypatch):
    # given 张三 merged into a record of the pool after the first chunk (the same person: a merge keeps them)
    kept = CustomerFactory(chain=chain, name="张三", mobile="+8613700137000", home_clinic=clinic_a, stage=Stage.LEAD)

    def merge():
        customer_merge(scope=admin_scope, survivor=kept, merged=Customer.objects.get(mobile="+8613800138000"),
                       actor=chain_admin)

    # when it is imported
    report = _run(tmp_path, chain, clinic_a, monkeypatch, merge)

    # then the third row goes into the record kept, counted as merged, and says so
    assert (report.created, report.merged, report.skipped) == (2, 1, 0)
    assert report.errors == []
    assert [(w["row"], w["message"]) for w in report.warnings] == [(4, import_customers.PERSON_MERGED_INTO)]
    tombstone = Customer.objects.get(merged_into__isnull=False)
    kept.refresh_from_db()
    assert kept.address == "静安区1号"
    assert Identity.objects.filter(customer=kept, kind="pms", external_id="P00012345").exists()
    assert Consent.objects.filter(customer=kept, purpose="marketing_sms", granted=True).exists()
    # and the tombstone is given nothing
    assert not Identity.objects.filter(customer=tombstone, kind="pms").exists()
    assert tombstone.address == ""
    assert Customer.objects.count() == 3  # nobody made again from the file
    # and the record kept's timeline notes it, in the reader's language
    note = kept.interactions.get(data__row=4)
    assert note.text == (f"row 4 of c.csv was for #{tombstone.id}, merged into this record during the import: "
                         "imported here")
    with translation.override("zh-hans"):
        assert timeline_text(note.text) == f"c.csv 第 4 行原属 #{tombstone.id}，该档案在导入期间已合并到本档案：已导入本档案"


def test_a_person_merged_twice_after_an_earlier_chunk_is_followed_to_the_last_record_kept(
        tmp_path, chain, clinic_a, admin_scope, chain_admin, monkeypatch):
    # given 张三 merged into one record, and that one into another, after the first chunk
    middle = CustomerFactory(chain=chain, name="张三", mobile="+8613700137000", home_clinic=clinic_a)
    last = CustomerFactory(chain=chain, name="张三", mobile="+8613600136000", home_clinic=clinic_a)

    def merge():
        customer_merge(scope=admin_scope, survivor=middle, merged=Customer.objects.get(mobile="+8613800138000"),
                       actor=chain_admin)
        customer_merge(scope=admin_scope, survivor=last, merged=middle, actor=chain_admin)

    # when it is imported
    report = _run(tmp_path, chain, clinic_a, monkeypatch, merge)

    # then the third row goes into the last record kept
    assert (report.created, report.merged, report.skipped) == (2, 1, 0)
    last.refresh_from_db()
    assert last.address == "静安区1号"
    assert Identity.objects.filter(customer=last, kind="pms", external_id="P00012345").exists()


def test_a_person_merged_into_a_record_erased_meanwhile_is_still_refused(
        tmp_path, chain, clinic_a, admin_scope, chain_admin, director_a, monkeypatch):
    # given 张三 merged into a record after the first chunk, and that record erased
    kept = CustomerFactory(chain=chain, name="张三", mobile="+8613700137000", home_clinic=clinic_a)

    def merge_then_erase():
        customer_merge(scope=admin_scope, survivor=kept, merged=Customer.objects.get(mobile="+8613800138000"),
                       actor=chain_admin)
        customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=kept.pk),
                       actor=director_a, reason="本人书面申请")

    # when it is imported
    report = _run(tmp_path, chain, clinic_a, monkeypatch, merge_then_erase)

    # then the third row is refused as an erased person's, and nothing reached either record
    assert (report.created, report.merged, report.skipped) == (2, 0, 1)
    assert [(e["row"], e["value"], e["message"]) for e in report.errors] == [(4, "***", import_customers.PERSON_ERASED)]
    assert not Identity.objects.filter(kind="pms").exists()
    assert Customer.objects.get(pk=kept.pk).address == ""
