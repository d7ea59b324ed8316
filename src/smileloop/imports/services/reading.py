"""Streaming CSV/XLSX reading and header recognition, shared by the customer and order imports.

A file yields its header row and then (row number, cells) pairs; the row number is what a spreadsheet
shows (header = 1). Cells stay as the reader gives them (str, or int/float/datetime from XLSX) so the
parsers can treat Excel numbers and dates properly. Formulas are never evaluated: openpyxl is opened
with data_only=False, so a formula cell arrives as its text ("=1+1").
"""

import codecs
import csv
import datetime as dt
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.utils.translation import gettext as _

from smileloop.imports.errors import ImportFileError

SUPPORTED_EXTENSIONS = (".csv", ".xlsx")
IGNORE = "ignore"


def header_key(text) -> str:
    """Headers match after NFKC (full-width → half-width), trimming, lower-casing and dropping a '*' marker."""
    text = unicodedata.normalize("NFKC", "" if text is None else str(text)).strip().strip("*").strip()
    return " ".join(text.lower().replace("_", " ").split())


def cell_text(value) -> str:
    """A cell as text: Excel's 13800138000.0 → '13800138000', dates as ISO, None → ''."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds").removesuffix(" 00:00:00")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def column_map_clean(column_map: dict[str, str] | None, *, aliases: dict[str, str], fields: set[str]) -> dict:
    """{'列名': 'field'} → {header_key: field}. A field may be given by its name or any header alias."""
    out = {}
    for column, target in (column_map or {}).items():
        key = header_key(target)
        field = key.replace(" ", "_") if key.replace(" ", "_") in fields | {IGNORE} else aliases.get(key)
        if field is None:
            raise ImportFileError(
                _("Column map: unknown field “%(field)s” for “%(column)s” (known fields: %(known)s)")
                % {"field": target, "column": column, "known": ", ".join(sorted(fields))},
                code="unknown_field",
            )
        out[header_key(column)] = field
    return out


class Table:
    """An open file: `headers`, `columns` (index → (field, header)), and `rows()` streaming data rows."""

    def __init__(self, path: Path, headers: list[str], rows: Iterator, closer=None):
        self.path = path
        self.name = path.name
        self.headers = headers
        self._rows = rows
        self._closer = closer
        self.columns: dict[int, tuple[str, str]] = {}
        self.ignored: list[str] = []

    def map_columns(self, *, aliases: dict[str, str], fields: set[str], column_map: dict[str, str]) -> None:
        """Assign a field to each header; the first column wins when two name the same field."""
        taken = set()
        for index, header in enumerate(self.headers):
            key = header_key(header)
            if not key:
                continue
            field = column_map.get(key) or aliases.get(key)
            if field is None and key.replace(" ", "_") in fields:
                field = key.replace(" ", "_")
            if field is None or field == IGNORE or field in taken:
                self.ignored.append(str(header))
                continue
            taken.add(field)
            self.columns[index] = (field, str(header).strip())
        if not self.columns:
            raise ImportFileError(
                _("No recognisable header in row 1 of %(name)s (expected columns such as 姓名/name, 手机号/phone)")
                % {"name": self.name}, code="no_header")

    def header_for(self, field: str) -> str | None:
        for name, header in self.columns.values():
            if name == field:
                return header
        return None

    def rows(self) -> Iterator[tuple[int, list]]:
        return self._rows

    def chunks(self, size: int) -> Iterator[list[tuple[int, list]]]:
        chunk = []
        for item in self._rows:
            chunk.append(item)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self) -> None:
        if self._closer:
            self._closer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def table_open(path) -> Table:
    """Open a CSV or XLSX file; raises ImportFileError with a message a person can act on."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(_("File not found: %(path)s") % {"path": path}, code="missing_file")
    extension = path.suffix.lower()
    if extension == ".csv":
        return _csv_open(path)
    if extension == ".xlsx":
        return _xlsx_open(path)
    raise ImportFileError(
        _("Unsupported file type “%(ext)s”: save the sheet as .xlsx or .csv") % {"ext": path.suffix or path.name},
        code="unsupported_file")


def _encoding_detect(path: Path) -> str:
    """UTF-8 (with or without BOM) if the whole file decodes as UTF-8, else GB18030 (a superset of GBK)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        try:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            pass
    decoder = codecs.getincrementaldecoder("gb18030")()
    with path.open("rb") as handle:
        try:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ImportFileError(_("%(name)s is neither UTF-8 nor GBK text; save it as CSV UTF-8 or .xlsx")
                                  % {"name": path.name}, code="bad_encoding")
    return "gb18030"


def _csv_open(path: Path) -> Table:
    encoding = _encoding_detect(path)
    handle = path.open("r", encoding=encoding, newline="")
    first = handle.readline()
    handle.seek(0)
    delimiter = "\t" if "\t" in first and "," not in first else ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        headers = next(reader)
    except StopIteration:
        handle.close()
        raise ImportFileError(_("%(name)s is empty") % {"name": path.name}, code="no_header")
    except csv.Error as exc:
        handle.close()
        raise ImportFileError(_("%(name)s is not a readable CSV file: %(error)s") % {"name": path.name, "error": exc},
                              code="bad_file")

    def rows():
        # Count records, not physical lines: a quoted cell with a line break is still one spreadsheet row.
        number = 1
        try:
            for number, cells in enumerate(reader, start=2):  # noqa: B007 (number is used in the except)
                if any(cell.strip() for cell in cells):
                    yield number, cells
        except csv.Error as exc:
            raise ImportFileError(_("Row %(row)s of %(name)s cannot be read: %(error)s")
                                  % {"row": number + 1, "name": path.name, "error": exc}, code="bad_file")

    return Table(path, headers, rows(), handle.close)


def _xlsx_open(path: Path) -> Table:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(_("%(name)s is not a valid .xlsx workbook (%(error)s)") % {"name": path.name,
                                                                                        "error": exc},
                              code="bad_file")
    sheet = workbook.worksheets[0]
    iterator = sheet.iter_rows(values_only=True)
    try:
        headers = [cell_text(v) for v in next(iterator)]
    except StopIteration:
        workbook.close()
        raise ImportFileError(_("%(name)s is empty") % {"name": path.name}, code="no_header")

    def rows():
        for number, cells in enumerate(iterator, start=2):
            if any(v is not None and (not isinstance(v, str) or v.strip()) for v in cells):
                yield number, list(cells)

    return Table(path, headers, rows(), workbook.close)
