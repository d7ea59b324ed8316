"""A person's erasure (customers.privacy) reaches the import batches, which keep rows of uploaded files for up to 30
days (`batch_files_purge`): the stored reports (preview rows, errors, warnings) and the files still waiting.

What can be matched reliably, and so what is scrubbed:
- a preview row whose phone (mobile, or a merged row's `kept` phone) is one of the person's numbers, whose PMS id is
  theirs, or (customers, phone-less) whose name and birthday are both theirs: its values are removed, its outcome
  becomes `erased`, and the errors and warnings of that row number are removed with it;
- any other error or warning whose value or message holds one of their numbers or identity values (a relative's
  number in someone else's row, a fallback number): those are replaced by "***", and the person's name in it by
  the anonymous one; so is their name in an error or warning that holds it while no other live patient of the
  chain bears it ("differs from the name of the person with this phone (张三丰)").
Not matched: beyond the first 20 rows (the preview), an error that quotes only a name another live patient also
bears, or only a date: a name alone is not the person (two 张三 are two people), so it stays until the purge.

A batch's file name that holds one of their numbers or identity values, or a name of theirs no other live patient
bears, is scrubbed the same way.

The files: a written batch's file is deleted when it is imported. A file still waiting (previewed, rejected, failed
after its check) that holds one of the person's numbers (its digits, with or without spaces or dashes, in the CSV's
bytes or the workbook's XML) or identity values of 6 characters or more (a PMS id, an openid) is withdrawn: deleted after the erasure commits, its batch `failed` with the reason,
so that nobody confirms it and imports the erased person again as a new patient. The spreadsheet is not
rewritten (the uploader removes the row and uploads it again). Files are read by content, in their encoding, with
full-width digits folded, as the import reads them. A file holding the person by name only is not found,
and a batch being checked or imported at that moment is left to its job (a limit: its run may import the person
again, as a new record, as any later upload of their row would)."""

import codecs
import json
import re
import unicodedata
import zipfile
from contextlib import nullcontext

from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import translation
from django.utils.translation import gettext as _

from smileloop.customers.models import Customer
from smileloop.customers.privacy import ERASED_NAME, ErasedPerson, erased_person
from smileloop.imports.enums import BatchStatus
from smileloop.imports.models import ImportBatch
from smileloop.imports.services.batches import batch_path

ERASED_OUTCOME = "erased"
ERASED_VALUE = "***"
# Batches whose file may still be confirmed: their file is withdrawn when it holds the person.
_PENDING = (BatchStatus.PREVIEWED, BatchStatus.REJECTED, BatchStatus.FAILED)
_ZIP_MAGIC = b"PK\x03\x04"


def _number_pattern(phones, external_ids=()) -> re.Pattern | None:
    """The national digits of each number (13800138000; a landline's without its trunk 0), each digit allowed a
    space or dash before the next, not inside a longer run of digits; and each identity value of 6 characters or more
    (a PMS id, an openid) not inside a longer word: a phone-less row naming them by PMS id brought them back too."""
    parts = []
    for e164 in phones:
        digits = e164[3:] if e164.startswith("+86") else e164.lstrip("+")
        if len(digits) >= 7:
            parts.append(r"[ \-]?".join(re.escape(d) for d in digits))
    words = [re.escape(unicodedata.normalize("NFKC", value)) for value in external_ids if len(value) >= 6]
    if not parts and not words:
        return None
    alternatives = []
    if parts:
        alternatives.append(rb"(?<![0-9])(?:" + b"|".join(p.encode() for p in parts) + rb")(?![0-9])")
    if words:
        alternatives.append(rb"(?<![0-9A-Za-z])(?:" + b"|".join(w.encode() for w in words) + rb")(?![0-9A-Za-z])")
    return re.compile(b"|".join(alternatives))


def _file_holds(path, pattern: re.Pattern) -> bool:
    """Whether the file holds one of the numbers, read as the import reads it: a workbook by its content (an .xlsx
    saved under a .csv name is one), text in its encoding (UTF-16 "Unicode text" has a NUL between digits), full-width
    digits as ASCII ones (the import normalises １３８… too)."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic == _ZIP_MAGIC:
            with zipfile.ZipFile(path) as workbook:
                return any(pattern.search(_normal(workbook.read(name), "utf-8")) for name in workbook.namelist()
                           if name.endswith(".xml"))
        data = path.read_bytes()
        if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return pattern.search(_normal(data, "utf-16")) is not None
        return pattern.search(_normal(data, "utf-8")) is not None or pattern.search(_normal(data, "gb18030")) is not None
    except (OSError, zipfile.BadZipFile, KeyError):
        return False  # gone, or no file the import could read either


def _normal(data: bytes, encoding: str) -> bytes:
    """The bytes as UTF-8 with full-width digits and dashes folded to ASCII (NFKC): what the number pattern reads.
    ASCII bytes, whatever the file's encoding, are unchanged; a byte the encoding cannot read is replaced."""
    return unicodedata.normalize("NFKC", data.decode(encoding, errors="replace")).encode("utf-8")


def _row_is_theirs(entry: dict, person: ErasedPerson, kind: str) -> bool:
    values, kept = entry.get("values") or {}, entry.get("kept") or {}
    if values.get("mobile") in person.phones or kept.get("mobile") in person.phones:
        return True
    if values.get("pms_id") and values["pms_id"] in person.external_ids:
        return True
    return (kind == "customers" and not values.get("mobile") and values.get("name") in person.names.values()
            and person.birthday is not None and values.get("birthday") == person.birthday.isoformat())


def _text_scrub(text: str, forms: list[str]) -> tuple[str, bool]:
    found = False
    for form in forms:
        if form in text:
            text, found = text.replace(form, ERASED_VALUE), True
    return text, found


def _names_replace(text: str, person: ErasedPerson) -> str:
    for pk, name in person.names.items():
        if len(name or "") > 1:  # a one-character name would be found in any text
            text = text.replace(name, ERASED_NAME % {"id": pk})
    return text


def _report_scrub(report: dict, kind: str, person: ErasedPerson, forms: list[str], own_names: set[str]) -> int:
    """Scrub the report in place; how many rows and entries of the person it changed. `own_names`: their names that
    no other live patient of the chain bears (a warning "the person with this phone (张三丰)" names them)."""
    changed = 0
    rows = set()
    preview = []
    for entry in report.get("preview", []):
        if entry.get("outcome") != ERASED_OUTCOME and _row_is_theirs(entry, person, kind):
            rows.add(entry["row"])
            entry = {"row": entry["row"], "values": {}, "outcome": ERASED_OUTCOME}
        else:  # another person's row may hold their number (a relative's, kept in the notes)
            for part in ("values", "kept"):
                cells = entry.get(part) or {}
                scrubbed = {k: _text_scrub(v, forms)[0] if isinstance(v, str) else v for k, v in cells.items()}
                if scrubbed != cells:
                    entry = {**entry, part: scrubbed}
                    changed += 1
        preview.append(entry)
    if "preview" in report:
        report["preview"] = preview
    changed += len(rows)
    for key in ("errors", "warnings"):
        entries = report.get(key) or []
        kept = []
        for entry in entries:
            if entry.get("row") in rows:
                changed += 1
                continue  # the person's own row: its errors go with it (the counts stay)
            value, in_value = _text_scrub(str(entry.get("value", "")), forms)
            message, in_message = _text_scrub(str(entry.get("message", "")), forms)
            if in_value or in_message:
                entry = {**entry, "value": _names_replace(value, person), "message": _names_replace(message, person)}
                changed += 1
            elif any(name in text for name in own_names for text in (value, message)):
                entry = {**entry, "value": _names_replace(value, person), "message": _names_replace(message, person)}
                changed += 1
            kept.append(entry)
        if key in report:
            report[key] = kept
    return changed


def imports_erase_hook(*, customer: Customer, actor=None) -> dict:
    """customers.privacy erase hook: scrub the person from the chain's stored import reports, and withdraw the files
    still waiting that hold one of their numbers (see the module's docstring for what is matched and what is not)."""
    person = erased_person(customer)
    forms = person.forms
    search = Q()
    for value in [*forms, *(n for n in person.names.values() if len(n or "") > 1)]:
        search |= Q(text__contains=value) | Q(text__contains=json.dumps(value)[1:-1])
    shared = set(Customer.objects.filter(chain_id=customer.chain_id, name__in=list(person.names.values()),
                                         merged_into__isnull=True, erased_at__isnull=True)
                 .exclude(pk__in=person.people).values_list("name", flat=True))
    own_names = {n for n in person.names.values() if len(n or "") > 1 and n not in shared}
    scrubbed = 0
    if search:
        candidates = (ImportBatch.objects.filter(chain_id=customer.chain_id)
                      .annotate(text=Cast("report", TextField())).filter(search).only("id", "kind", "report"))
        for batch in candidates:
            report = batch.report if isinstance(batch.report, dict) else {}
            if _report_scrub(report, batch.kind, person, forms, own_names):
                ImportBatch.objects.filter(pk=batch.pk).update(report=report)
                scrubbed += 1
    renamed = 0  # a file named after the person ("张三丰补录.xlsx", "13800138000.csv"): its name, as the reports
    by_name = Q()
    for value in [*forms, *own_names]:
        by_name |= Q(original_name__contains=value)
    if by_name:
        named = ImportBatch.objects.filter(chain_id=customer.chain_id).filter(by_name).only("id", "original_name")
        for batch in named:
            name = _names_replace(_text_scrub(batch.original_name, forms)[0], person)[:255]
            ImportBatch.objects.filter(pk=batch.pk).update(original_name=name)
            renamed += 1
    withdrawn = 0
    pattern = _number_pattern(person.phones, person.external_ids)
    if pattern is not None:
        for batch in ImportBatch.objects.filter(chain_id=customer.chain_id, status__in=_PENDING):
            path = batch_path(batch)
            if not _file_holds(path, pattern):
                continue
            with translation.override(batch.language) if batch.language else nullcontext():  # the uploader's
                reason = _("A patient in this file has had their personal information erased, so the file was "
                           "deleted: remove them from the spreadsheet and upload it again.")
            ImportBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.FAILED, error=reason)
            transaction.on_commit(lambda path=path: path.unlink(missing_ok=True))
            withdrawn += 1
    return {"import_reports": scrubbed, "import_file_names": renamed, "import_files_withdrawn": withdrawn}
