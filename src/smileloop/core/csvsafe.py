"""CSV cells a spreadsheet will not run: every CSV the product writes passes user text through csv_safe; and the one
way those CSVs are streamed (csv_response)."""

import csv
import io
from collections.abc import Iterable

from django.http import StreamingHttpResponse


def csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a cell whose first character is = + - @, a tab or a carriage
    return, or whose first character after spaces is = + - @, is prefixed with ' (OWASP's list; spreadsheets trim
    leading spaces before they look for a formula)."""
    if text and (text[0] in "\t\r" or text.lstrip()[:1] in ("=", "+", "-", "@")):
        return "'" + text
    return text


def csv_response(header: list, rows: Iterable[list], filename: str, *, flush_every: int = 1) -> StreamingHttpResponse:
    """A streamed UTF-8 CSV download with a BOM (Excel then opens Chinese text as UTF-8): the header, then `rows`
    (lists of cells, user text already through csv_safe), sent every `flush_every` rows, so a large export never
    sits whole in memory."""

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow([str(column) for column in header])
        for i, row in enumerate(rows, 1):
            writer.writerow(row)
            if i % flush_every == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
