"""Streaming CSV/XLSX reading and header recognition, shared by the customer and order imports.

A file yields its header row and then (row number, cells) pairs; the row number is what a spreadsheet
shows (header = 1, unless a title or blank rows stand above it: the header is the row among the first
HEADER_SEARCH_ROWS with the most recognised column names, and of a workbook the first sheet that has one).
Cells stay as the reader gives them (str, or int/float/datetime from XLSX) so the parsers can treat Excel
numbers and dates properly. Formulas are never evaluated: openpyxl is opened with data_only=False, so a
formula cell arrives as its text ("=1+1").

Exports from practice-management systems end (or break by clinic) with summary lines: 合计, 小计, 共 120 条,
制表人：…, 导出时间：…. A row whose first filled cell is such a marker is not data: it is set aside with its row
number (`Table.summary_rows`, reported) instead of becoming a person named "合计：2人" or an invalid order.
"""

import csv
import datetime as dt
import io
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path
from xml.etree.ElementTree import ParseError

from django.utils.translation import gettext as _

from smileloop.imports.errors import ImportFileError
from smileloop.imports.services.guards import encoding_detect, lines_bounded, ole_encrypted, zip_bomb_check

SUPPORTED_EXTENSIONS = (".csv", ".xlsx")
IGNORE = "ignore"
FALLBACK_SUFFIX = "_fallback"  # `mobile_fallback`: a second phone column, used where the phone cell is blank
HEADER_SEARCH_ROWS = 10  # a title, a date line or blank rows may stand above the header
# The first filled cell of a summary line: totals, a count of records, who made the sheet and when.
_SUMMARY = re.compile(
    r"(合计|合計|总计|總計|小计|小計|共计|共計|总数|總數|汇总|彙總)"
    r"|(grand total|subtotal|total)\s*([:：].*|\d.*)?$"  # whole-cell English only ('Sum', 'Total' may be names)
    r"|共\s*\d+\s*(条|條|人|行|位|名|笔|筆|项|項|个|個|单|單)"
    r"|(制表|製表|导出|導出|打印|统计|統計|填表|审核|審核)(人|时间|時間|日期)?\s*[:：]",
    re.IGNORECASE)
SUMMARY_MAX = 200  # characters of a summary line's first cell
SUMMARY_ROWS_KEPT = 1000  # summary lines listed (and kept in the stored report); further ones are set aside unlisted
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 .xls (and other old Office files)


# A note after a header saying whether the column must be filled, as templates of other systems write them:
# 姓名（必填）, 手机号(必填), 备注(选填), Name (required). NFKC has made full-width brackets half-width.
# (No leading \s*: tried at every position of a header, it made one of 20,000 inner spaces take 4 s; the spaces before
# the note are stripped after.)
_HEADER_NOTE = re.compile(r"[(\[【]\s*(必填|必填项|选填|选填项|非必填|可选|必选|可不填|required|optional)\s*[)\]】]\s*$",
                          re.IGNORECASE)


def header_key(text) -> str:
    """Headers match after NFKC (full-width → half-width), trimming, lower-casing and dropping a '*' marker and a
    trailing required/optional note ('姓名（必填）', '*手机号(必填)')."""
    text = unicodedata.normalize("NFKC", "" if text is None else str(text)).strip().strip("*").strip()
    text = _HEADER_NOTE.sub("", text).strip().strip("*").strip()
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
        # Excel keeps and shows 15 significant digits; the file may store the binary float's 17 (259.20000000000005)
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds").removesuffix(" 00:00:00")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def summary_label(cells) -> str | None:
    """The text of a summary line's first filled cell ('合计：2人', '共 120 条'), or None for a row of data."""
    for value in cells:
        text = cell_text(value)
        if text:  # a long first cell is data (and _SUMMARY is not linear in a long cell's length)
            return text if len(text) <= SUMMARY_MAX and _SUMMARY.match(unicodedata.normalize("NFKC", text)) else None
    return None


OVERFLOW = ("has {cells} cells, more than the header's {width}: a cell holding the delimiter (a comma) without quotes "
            "moved the cells after it; quote that cell, or save the file again from Excel")


def _column_letter(index: int) -> str:
    """0 → 'A', 26 → 'AA': the column as a spreadsheet names it."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class ColumnMap(dict):
    """{header_key: field}, remembering each column as the map named it (`given`: header_key → as written)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.given: dict[str, str] = {}


def column_map_clean(column_map: dict[str, str] | None, *, aliases: dict[str, str], fields: set[str]) -> ColumnMap:
    """{'列名': 'field'} → {header_key: field}. A field may be given by its name or any header alias. That each
    column is one of the file's is checked when the header is found (Table.map_columns)."""
    out = ColumnMap()
    for column, target in (column_map or {}).items():
        key = header_key(target)
        field = key.replace(" ", "_") if key.replace(" ", "_") in fields | {IGNORE} else aliases.get(key)
        if field is None:
            raise ImportFileError(
                _("Column map: unknown field “%(field)s” for “%(column)s” (known fields: %(known)s)")
                % {"field": target, "column": column, "known": ", ".join(sorted(fields))},
                code="unknown_field",
            )
        # Two columns mapped to one field: the second was ignored without a word, its values never read.
        other = next((out.given[k] for k, f in out.items() if f == field != IGNORE and k != header_key(column)), None)
        if other is not None:
            raise ImportFileError(
                _("Column map: “%(first)s” and “%(second)s” are both mapped to %(field)s; a field is read from one "
                  "column") % {"first": other, "second": column, "field": field}, code="duplicate_field")
        out[header_key(column)] = field
        out.given[header_key(column)] = column
    return out


class Table:
    """An open file: `headers`, `columns` (index → (field, header)), and `rows()` streaming data rows.

    `sources` are the file's sheets (one for a CSV) as (sheet title, iterator of (row number, cells) over the
    non-blank rows); `map_columns` picks the header row and the sheet. A CSV gives instead `choose(score)`, which
    decides the delimiter by the header (the line whose cells best match the known headers under each candidate)
    and returns its one source. `hidden` are a workbook's hidden sheets, only looked at to name them when not read."""

    def __init__(self, path: Path, sources: list[tuple[str | None, Iterator]], closer=None, name: str | None = None,
                 *, choose=None, hidden: list[tuple[str, Iterator]] = ()):
        self.path = path
        self.name = name or path.name
        self.headers: list[str] = []
        self.header_row = 1
        self.sheet: str | None = None
        self.sheets_skipped: list[str] = []  # a workbook's other sheets that hold something: not read
        self._sources = sources
        self._choose = choose
        self._hidden = list(hidden)
        self._rows: Iterator = iter(())
        self._closer = closer
        self.columns: dict[int, tuple[str, str]] = {}
        self.ignored: list[str] = []
        self.summary_rows: list[dict] = []  # {"row": n, "value": its first cell}: set aside, filled while read
        self.width: int | None = None  # of a CSV, its header's cells (see overflow_error)

    def map_columns(self, *, aliases: dict[str, str], fields: set[str], column_map: dict[str, str]) -> None:
        """Find the header (see the module doc) and assign a field to each of its columns; the first column wins
        when two name the same field. A column the map names that the header lacks is an error (it would silently
        do nothing). Of a workbook, the first sheet with a header is read; the other sheets that hold anything are
        named in `sheets_skipped` (one sheet is imported per file)."""

        def score(cells) -> int:
            return len(self._fields_of([cell_text(v) for v in cells], aliases, fields, column_map)[0])

        if self._choose is not None:
            self._sources = [(None, self._choose(score))]
        seen = False
        for position, (title, rows) in enumerate(self._sources):
            head = []
            for item in rows:
                seen = True
                head.append(item)
                if len(head) >= HEADER_SEARCH_ROWS:
                    break
            best, best_count = None, 0
            for at, (_number, cells) in enumerate(head):
                count = score(cells)
                if count > best_count:
                    best, best_count = at, count
            if best is None:
                if head and title is not None:
                    self.sheets_skipped.append(title)
                continue
            number, cells = head[best]
            self.headers = [cell_text(v) for v in cells]
            self.header_row, self.sheet = number, title
            self.columns, self.ignored = self._fields_of(self.headers, aliases, fields, column_map)
            if self._choose is not None:  # a CSV: its rows are as wide as its header (see overflow_error)
                self.width = len(cells)
            self._column_map_check(column_map)
            following = head[best + 1:] or [item for item in [next(rows, None)] if item is not None]
            if not following:
                raise ImportFileError(_("%(name)s has a header but no data rows") % {"name": self.name},
                                      code="no_rows")
            others = [*self._sources[position + 1:], *self._hidden]
            self.sheets_skipped += [other for other, other_rows in others if next(other_rows, None) is not None]
            self._rows = self._data(chain(following, rows))
            return
        for title, rows in self._hidden:  # hidden sheets are never read, but a reader deserves to know why
            if any(score(cells) for _number, cells in islice(rows, HEADER_SEARCH_ROWS)):
                raise ImportFileError(
                    _("The data of %(name)s is on the hidden sheet “%(sheet)s”, which is not read: unhide it in Excel "
                      "and import the file again") % {"name": self.name, "sheet": title}, code="hidden_sheet")
        if not seen:
            raise ImportFileError(_("%(name)s is empty") % {"name": self.name}, code="no_header")
        where = (_("any sheet of %(name)s") if len(self._sources) > 1 else "%(name)s") % {"name": self.name}
        raise ImportFileError(
            _("No recognisable header in the first %(rows)s rows of %(where)s (expected columns such as 姓名/name, "
              "手机号/phone)") % {"rows": HEADER_SEARCH_ROWS, "where": where}, code="no_header")

    def _column_map_check(self, column_map: dict[str, str]) -> None:
        keys = {header_key(header) for header in self.headers}
        missing = [key for key in column_map if key not in keys]
        if missing:
            given = getattr(column_map, "given", {})
            raise ImportFileError(
                _("Column map: %(name)s has no column “%(column)s” (its columns: %(headers)s)")
                % {"name": self.name, "column": "”, “".join(given.get(key, key) for key in missing),
                   "headers": ", ".join(h for h in self.headers if h.strip())},
                code="unknown_column")

    @staticmethod
    def _fields_of(headers: list[str], aliases, fields, column_map) -> tuple[dict[int, tuple[str, str]], list[str]]:
        """A field named by the column map belongs to its column, wherever that stands; otherwise the first column
        wins. A further column of a field that has a `<field>_fallback` (two phone columns: 手机 and 电话) becomes
        that fallback, if the map gives it to no other column; any further one is ignored."""
        keys = [header_key(header) for header in headers]
        reserved = {column_map[key] for key in keys if key in column_map}
        columns, ignored, taken = {}, [], set()
        for index, (header, key) in enumerate(zip(headers, keys, strict=True)):
            if not key:
                continue
            explicit = key in column_map
            field = column_map.get(key) or aliases.get(key)
            if field is None and key.replace(" ", "_") in fields:
                field = key.replace(" ", "_")
            if field is not None and field != IGNORE and (field in taken or (field in reserved and not explicit)):
                fallback = field + FALLBACK_SUFFIX
                field = (fallback if fallback in fields and fallback not in taken and fallback not in reserved
                         and not explicit else None)
            if field is None or field == IGNORE:
                ignored.append(str(header))
                continue
            taken.add(field)
            columns[index] = (field, str(header).strip())
        return columns, ignored

    def _data(self, rows: Iterator[tuple[int, list]]) -> Iterator[tuple[int, list]]:
        for number, cells in rows:
            label = summary_label(cells)
            if label is None:
                yield number, cells
            else:
                if len(self.summary_rows) < SUMMARY_ROWS_KEPT:  # a file of nothing else kept them all in memory
                    self.summary_rows.append({"row": number, "value": label[:200]})

    def overflow_error(self, cells: list) -> tuple[str, str, str] | None:
        """Of a CSV row with filled cells beyond the header's last column: (the first one's column letter, their text,
        the message). Such a row has a cell holding the delimiter without quotes (上海市,静安区 in an address): every
        cell after it moved a column right, and the last ones were dropped without a word. A workbook's cells do not
        move, and a column without a header there is one the sheet's owner added."""
        if self.width is None or len(cells) <= self.width:
            return None
        extra = [(index, text) for index, cell in enumerate(cells[self.width:], self.width) if (text := cell.strip())]
        if not extra:
            return None
        return (_column_letter(extra[0][0]), ", ".join(text for _i, text in extra),
                OVERFLOW.format(cells=len(cells), width=self.width))

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


def table_open(path, *, name: str | None = None) -> Table:
    """Open a CSV or XLSX file; raises ImportFileError with a message a person can act on. `name` is the file's
    name as its owner knows it (an upload is stored under another), for messages and the records an import writes."""
    path = Path(path)
    if not path.is_file():  # an upload by the name its owner knows, not the server's path to where it was kept
        raise ImportFileError(_("File not found: %(path)s") % {"path": name or path}, code="missing_file")
    name = name or path.name
    extension = path.suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise ImportFileError(
            _("Unsupported file type “%(ext)s”: save the sheet as .xlsx or .csv") % {"ext": path.suffix or path.name},
            code="unsupported_file")
    with path.open("rb") as handle:
        magic = handle.read(8)
    if magic.startswith(_OLE_MAGIC):
        if ole_encrypted(path):
            raise ImportFileError(_("%(name)s is protected by a password, so it cannot be read: open it in Excel, remove "
                                    "the password (File → Info → Protect Workbook) and save it again") % {"name": name},
                                  code="unsupported_file")
        raise ImportFileError(_("%(name)s is an old Excel 97-2003 (.xls) workbook: open it in Excel and save it as "
                                ".xlsx") % {"name": name}, code="unsupported_file")
    if extension == ".xlsx" or magic.startswith(_ZIP_MAGIC):  # an .xlsx saved under a .csv name is read as one
        return _xlsx_open(path, name)
    return _csv_open(path, name)


# The csv module refuses a cell over 131,072 characters with an error that ends the whole file, so one pasted-in
# essay would make a --skip-invalid import refuse every row. Cells up to 16 M characters are read, and a too-long
# value is then refused as its own row's error by the field it is in.
CSV_CELL_LIMIT = 1 << 24
csv.field_size_limit(max(csv.field_size_limit(), CSV_CELL_LIMIT))
_DELIMITERS = (",", "\t", ";", "|")  # in this order when two read the header equally well
_SEP_LINE = re.compile(r"sep=(.)\r?\n")  # Excel's first line naming the delimiter: 'sep=;'


def _csv_open(path: Path, name: str) -> Table:
    """The delimiter is the one under which a line among the first HEADER_SEARCH_ROWS reads as the best header
    (cells parsed quote-aware by the csv module; then the widest such line, then the order of _DELIMITERS), unless
    the file names it on an Excel 'sep=;' first line (not counted as a row, as Excel does not show it). Counting
    separators per line did not work: a tab file with a comma in an address, or a comma file with semicolons in its
    notes, was split at the wrong one and had no header."""
    encoding = encoding_detect(path, name)
    handle = path.open("r", encoding=encoding, newline="")
    sample = handle.read(1 << 16)
    handle.seek(0)
    if not sample.strip():
        handle.close()
        raise ImportFileError(_("%(name)s is empty") % {"name": name}, code="no_header")
    sep = _SEP_LINE.match(sample)
    if sep is not None:
        sample = sample[sep.end():]

    def head(delimiter: str) -> list[list[str]]:
        out = []
        try:
            for cells in csv.reader(io.StringIO(sample), delimiter=delimiter):
                if any(cell.strip() for cell in cells):
                    out.append(cells)
                    if len(out) >= HEADER_SEARCH_ROWS:
                        break
        except csv.Error:  # the sample ends inside a quoted cell, or the delimiter is not this file's
            pass
        return out

    def choose(score) -> Iterator:
        delimiter = sep[1] if sep is not None else ","
        if sep is None:
            best = None
            for candidate in _DELIMITERS:
                rank = max(((score(cells), len(cells)) for cells in head(candidate)), default=(0, 0))
                if best is None or rank > best:
                    best, delimiter = rank, candidate
        if sep is not None:
            handle.readline()
        # strict: a quote never closed is an error, not the rest of the file read into one cell (a note swallowing
        # every row after it, silently)
        return rows(csv.reader(lines_bounded(handle, delimiter, name, first=2 if sep else 1), delimiter=delimiter,
                               strict=True))

    def rows(reader) -> Iterator:
        # Count records, not physical lines: a quoted cell with a line break is still one spreadsheet row.
        number = 0
        try:
            for number, cells in enumerate(reader, start=1):  # noqa: B007 (number is used in the except)
                if any(cell.strip() for cell in cells):
                    yield number, cells
        except csv.Error as exc:
            row = {"row": number + 1, "name": name}
            if str(exc) == "unexpected end of data":
                raise ImportFileError(_("Row %(row)s of %(name)s opens a quote (\") that is never closed, so the rest "
                                        "of the file would be one cell: close the quote, or save the file again "
                                        "from Excel") % row, code="bad_file")
            if str(exc).endswith(" expected after '\"'"):
                raise ImportFileError(_("Row %(row)s of %(name)s has text after the closing quote (\") of a cell: a "
                                        "space before the next comma, a quote opened in that row and closed on a "
                                        "later one, or a quote inside a quoted cell not doubled (\"\"); correct the "
                                        "row, or save the file again from Excel") % row, code="bad_file")
            raise ImportFileError(_("Row %(row)s of %(name)s cannot be read: %(error)s") % {**row, "error": exc},
                                  code="bad_file")

    return Table(path, [], handle.close, name=name, choose=choose)


def _xlsx_open(path: Path, name: str) -> Table:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    handle = path.open("rb")  # a file object: openpyxl would refuse a workbook named .csv by its extension
    try:
        zip_bomb_check(handle, name)
    except ImportFileError:
        handle.close()
        raise
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, InvalidFileException, ParseError, zlib.error, EOFError,
            IndexError, TypeError) as exc:  # a part's XML that does not parse (styles, shared texts) was a traceback
        handle.close()
        raise ImportFileError(_("%(name)s is not a valid .xlsx workbook (%(error)s)") % {"name": name,
                                                                                        "error": exc},
                              code="bad_file")

    def close():
        workbook.close()
        handle.close()

    def rows(sheet):
        # The sheet's stated dimension is not trusted: Excel and other writers often claim a used range of up to
        # 1,048,576 rows × 16,384 columns, and openpyxl would pad every row to that width.
        sheet.reset_dimensions()
        number = 0
        try:
            for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):  # noqa: B007 (in the except)
                if any(v is not None and (not isinstance(v, str) or v.strip()) for v in cells):
                    yield number, cells
        except (ParseError, ValueError, TypeError, IndexError, KeyError, EOFError, OSError, zipfile.BadZipFile,
                zlib.error) as exc:
            # The sheet's XML is read as the rows are: broken XML, a cell of another type than it says ('abc' as a
            # number), a shared text that is not there. It was a traceback (a 500 on the page).
            raise ImportFileError(
                _("Row %(row)s of the sheet “%(sheet)s” of %(name)s cannot be read: the workbook is damaged (%(error)s); "
                  "open it in Excel and save it again") % {"row": number + 1, "sheet": sheet.title, "name": name,
                                                           "error": str(exc)[:200]}, code="bad_file")

    sheets = [s for s in workbook.worksheets if getattr(s, "sheet_state", "visible") == "visible"]
    hidden = [s for s in workbook.worksheets if s not in sheets]
    if not sheets:
        close()
        raise ImportFileError(_("%(name)s is empty") % {"name": name}, code="no_header")
    return Table(path, [(sheet.title, rows(sheet)) for sheet in sheets], close, name=name,
                 hidden=[(sheet.title, rows(sheet)) for sheet in hidden])
