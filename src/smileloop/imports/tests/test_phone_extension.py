"""A switchboard line with the patient's extension in the phone column itself ('0755-86001234 转 8001'): imported
as a shared line (it names its holder only under the same name), the cell kept in the notes, extension and all.
It was refused as "not a phone number", which stopped the whole file."""

from smileloop.customers.models import Customer
from smileloop.imports.services import customers_import
from smileloop.imports.tests.files import csv_write


def test_a_line_with_an_extension_in_the_phone_column_is_a_shared_line_noted_with_its_extension(tmp_path, chain):
    # given: two colleagues behind one switchboard, the first listed twice in other spellings
    path = csv_write(tmp_path / "patients.csv", [
        ["姓名", "手机", "备注"],
        ["周一", "0755-86001234 转 8001", "VIP"],
        ["吴二", "0755-86001234转8002", ""],
        ["周一", "（0755）86001234-8001", ""],
        ["郑三", "010-6552 1234 分机 12", ""],
    ])
    # when
    report = customers_import(path=path, chain=chain)
    # then: nothing refused; the first holder has the line; her colleague is imported without it (counted), the
    # repeated row merged into her by the same name
    assert (report.errors, report.created, report.merged, report.fallback_shared) == ([], 3, 1, 1)
    assert report.as_dict()["fallback_shared"] == 1  # reported without a fallback column too
    people = {c.name: c for c in Customer.objects.filter(chain=chain)}
    assert (people["周一"].mobile, people["周一"].notes) == ("+8675586001234", "VIP；手机：0755-86001234 转 8001")
    assert (people["吴二"].mobile, people["吴二"].notes) == (None, "手机：0755-86001234转8002")
    assert (people["郑三"].mobile, people["郑三"].notes) == ("+861065521234", "手机：010-6552 1234 分机 12")


def test_digits_that_are_no_line_even_without_their_tail_are_still_refused(tmp_path, chain):
    path = csv_write(tmp_path / "patients.csv", [["姓名", "手机"], ["周一", "12345 转 8001"]])
    report = customers_import(path=path, chain=chain)
    assert [(e["row"], e["column"], e["message"]) for e in report.errors] == [(2, "手机", "is not a phone number")]
    assert not Customer.objects.filter(chain=chain).exists()
