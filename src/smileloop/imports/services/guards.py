"""What a file must not be, checked before or while it is read (reading.py): a password-protected workbook, text of
no encoding we read or UTF-8 with a damaged byte, a line of more cells than a sheet has, a zip bomb. Each is refused
with an ImportFileError naming the file and, where there is one, the line; none may cost more than a pass over the
file's bytes."""

import codecs
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.utils.translation import gettext as _

from smileloop.imports.errors import ImportFileError

_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the stream of an OLE container holding an .xlsx


def ole_encrypted(path: Path) -> bool:
    """Whether an OLE container (the format of .xls) is a password-protected workbook: Excel encrypts an .xlsx into
    such a container, with a stream named EncryptedPackage (MS-OFFCRYPTO). Read only to name the refusal."""
    tail = b""
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            if _ENCRYPTED_PACKAGE in tail + block:
                return True
            tail = block[-len(_ENCRYPTED_PACKAGE):]
    return False


def encoding_detect(path: Path, name: str) -> str:
    """UTF-16 with its BOM (Excel's "Unicode text"), UTF-8 (with or without BOM) if the whole file decodes as
    UTF-8, else GB18030 (a superset of GBK). A NUL byte is in no text of those (but UTF-16): the file is refused as
    what it probably is, rather than as an unknown encoding."""
    with path.open("rb") as handle:
        start = handle.read(2)
    if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        read = multibyte = 0  # bytes read before the block; of them, bytes beyond the first of a character
        with path.open("rb") as handle:
            try:
                while block := handle.read(1 << 20):
                    if b"\0" in block:
                        raise ImportFileError(
                            _("%(name)s contains NUL bytes, which no CSV text has: it is probably not a CSV file (a "
                              "workbook or another file renamed), or UTF-16 text without its byte order mark; save "
                              "it as CSV UTF-8 or .xlsx") % {"name": name}, code="bad_encoding")
                    pending = len(decoder.getstate()[0])
                    multibyte += len(block) - len(decoder.decode(block))
                    read += len(block)
                pending = len(decoder.getstate()[0])
                decoder.decode(b"", final=True)
                return "utf-8-sig" if encoding == "utf-8" else encoding
            except UnicodeDecodeError as exc:
                if encoding == "utf-8":
                    utf8_damage_check(path, name, exc, offset=read - pending, multibyte=multibyte)
                continue
    raise ImportFileError(_("%(name)s is neither UTF-8 nor GBK text; save it as CSV UTF-8 or .xlsx")
                          % {"name": name}, code="bad_encoding")


UTF8_EVIDENCE = 8  # bytes of multi-byte characters (3 Chinese ones) read as UTF-8 before a byte that is not


def utf8_damage_check(path: Path, name: str, exc: UnicodeDecodeError, *, offset: int, multibyte: int) -> None:
    """A file that read as UTF-8 Chinese text up to a byte that is not UTF-8 is UTF-8 with a damaged character (a
    byte of Latin-1 or GBK pasted in), not GBK: refused naming that line. GBK text breaks as UTF-8 at its first or
    second character. Read as GB18030, which decodes most byte pairs, such a file gave every name garbled (张明 as
    寮犳槑) without an error, or a header of nonsense."""
    before = exc.object[:exc.start]
    if multibyte + len(before) - len(before.decode("utf-8")) < UTF8_EVIDENCE:
        return
    at = offset + exc.start  # the bad byte's offset in the file
    lines = returns = 0
    with path.open("rb") as handle:
        while at > 0 and (block := handle.read(min(at, 1 << 20))):
            lines, returns, at = lines + block.count(b"\n"), returns + block.count(b"\r"), at - len(block)
    raise ImportFileError(
        _("%(name)s is UTF-8 text, but line %(line)s holds bytes that are not (a damaged character, or text pasted "
          "from another encoding): correct that line, or save the file again as CSV UTF-8")
        % {"name": name, "line": (lines or returns) + 1}, code="bad_encoding")


MAX_CELLS = 16_384  # cells of a row: Excel's columns


def lines_bounded(handle, delimiter: str, name: str, *, first: int) -> Iterator[str]:
    """The file's lines, refusing one with more than MAX_CELLS delimiters before the csv module makes a list of its
    cells: 100 MB of commas on one line made 100 million empty cells (2.6 GiB, a minute) out of one upload."""
    for number, line in enumerate(handle, start=first):
        if line.count(delimiter) >= MAX_CELLS:
            raise ImportFileError(_("Line %(line)s of %(name)s has more than %(max)s cells, the most a row of a sheet "
                                    "has: it is no sheet's row; save the sheet again as CSV UTF-8 or .xlsx")
                                  % {"line": number, "name": name, "max": MAX_CELLS}, code="bad_file")
        yield line


# A workbook is a zip of XML parts. A part inflating to far more than real rows do (a 200,000-row, 12-column sheet is
# 135 MiB unzipped, 8.5 times its zipped size) is a "zip bomb": a few hundred KiB that would take minutes and
# gigabytes to read (one cell of 400 MiB held 1.4 GiB). zipfile never inflates a part beyond the size its directory
# states, so the stated sizes are checked before anything is read.
XLSX_MAX_BYTES = 1 << 30  # all parts, unzipped: about 1.5 million such rows, beyond Excel's 1,048,576
XLSX_MAX_RATIO = 100  # unzipped / zipped, of a part over XLSX_RATIO_FROM
XLSX_RATIO_FROM = 16 << 20


def zip_bomb_check(handle, name: str) -> None:
    try:
        entries = zipfile.ZipFile(handle).infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip: openpyxl says so
    finally:
        handle.seek(0)
    total = sum(entry.file_size for entry in entries)
    ratio = max((entry.file_size / max(entry.compress_size, 1) for entry in entries
                 if entry.file_size > XLSX_RATIO_FROM), default=0)
    if total > XLSX_MAX_BYTES or ratio > XLSX_MAX_RATIO:
        raise ImportFileError(
            _("%(name)s would unzip to %(size)s MiB, far more than rows of a sheet take: it is not an ordinary workbook "
              "(a “zip bomb”?) and is not read; save the sheet again from Excel as .xlsx or .csv")
            % {"name": name, "size": total >> 20}, code="bad_file")
