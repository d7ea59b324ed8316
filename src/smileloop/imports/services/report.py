"""What an import did (or would do): counts, and every invalid row with its spreadsheet row number."""

from dataclasses import dataclass, field

from smileloop.imports.services.reading import FALLBACK_SUFFIX

MAX_ERRORS = 100_000  # beyond this only the counts grow, so a broken million-row file stays in bounded memory
PREVIEW_ROWS = 20


@dataclass
class ImportReport:
    """Invariant: rows == created + merged + skipped.

    customers: created = new people, merged = rows that went into a person already in the pool or
    earlier in the file, skipped = invalid rows.
    orders: created = new orders, merged = further lines of an order begun on an earlier row,
    skipped = invalid rows, rows of an invalid order and rows of orders imported before (`duplicates`).
    """

    kind: str = "customers"
    rows: int = 0
    created: int = 0
    merged: int = 0
    skipped: int = 0
    written: bool = False
    errors: list[dict] = field(default_factory=list)
    error_count: int = 0
    duplicates: int = 0
    columns: dict[str, str] = field(default_factory=dict)  # header as in the file → field
    ignored_columns: list[str] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)  # first PREVIEW_ROWS rows, normalised
    # A fallback column (电话 beside 手机) → the field it stands in for; then rows whose blank phone took the
    # fallback's number, second numbers kept as phone identities (customers only), second numbers not kept as
    # someone else's already, and fallback cells without a number ('无', '-') skipped.
    fallback_columns: dict[str, str] = field(default_factory=dict)
    fallback_used: int = 0
    fallback_kept: int = 0
    fallback_not_kept: int = 0
    fallback_skipped: int = 0
    # a fallback number, or a line with an extension, that is someone else's (another name): row imported without it
    fallback_shared: int = 0
    # Further numbers in phone cells ('138…/139…'): kept as phone identities, or someone else's already (customers)
    more_numbers_kept: int = 0
    more_numbers_not_kept: int = 0
    relative_numbers: int = 0  # phone cells holding a relative's number ('…(妈妈)'): kept in the notes, not as phone
    # Of those, rows whose person joined the household of the relative the number belongs to (in the pool or the
    # file), and rows where the number is known but no household link follows (see households_link)
    households_linked: int = 0
    households_not_linked: int = 0
    # Summary lines of the export (合计, 共 120 条, 制表人：…) set aside, not counted in `rows`: [{"row", "value"}]
    summary_rows: list[dict] = field(default_factory=list)
    # Of a workbook: the sheet read, and its other sheets holding anything, not read (one sheet per file)
    sheet: str | None = None
    sheets_skipped: list[str] = field(default_factory=list)
    # What a valid row does that its reader may not expect, by row like errors (a name that is not the name of the
    # person the row's phone merges it into): [{"row", "column", "value", "message"}]
    warnings: list[dict] = field(default_factory=list)
    warning_count: int = 0

    @classmethod
    def for_columns(cls, kind: str, table) -> "ImportReport":
        """A report naming the file's columns: `columns` maps each header to its field, `fallback_columns` each
        fallback column to the field it stands in for."""
        columns, fallbacks = {}, {}
        for name, header in table.columns.values():
            if name.endswith(FALLBACK_SUFFIX):
                fallbacks[header] = name.removesuffix(FALLBACK_SUFFIX)
            else:
                columns[header] = name
        return cls(kind=kind, columns=columns, fallback_columns=fallbacks, ignored_columns=table.ignored,
                   summary_rows=table.summary_rows,  # the table's own list: filled as the file is read
                   sheet=table.sheet, sheets_skipped=list(table.sheets_skipped))

    def error_add(self, *, row: int, column: str, value, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"row": row, "column": column, "value": "" if value is None else str(value)[:200],
                                "message": str(message)})

    def warning_add(self, *, row: int, column: str, value, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_ERRORS:
            self.warnings.append({"row": row, "column": column, "value": "" if value is None else str(value)[:200],
                                  "message": str(message)})

    def as_dict(self) -> dict:
        """Errors by row number (a row's own errors in the order found): a chunk finds errors of parsing before
        errors of matching, which the reader should not have to sort out."""
        out = {"rows": self.rows, "created": self.created, "merged": self.merged, "skipped": self.skipped,
               "written": self.written, "errors": sorted(self.errors, key=lambda e: e["row"])}
        if self.fallback_columns:  # only then: a file with one phone column reports as it always did
            out.update(fallback_columns=self.fallback_columns, fallback_used=self.fallback_used,
                       fallback_kept=self.fallback_kept, fallback_not_kept=self.fallback_not_kept,
                       fallback_skipped=self.fallback_skipped, fallback_shared=self.fallback_shared)
        elif self.fallback_shared:  # lines with an extension in the phone column itself, someone else's
            out["fallback_shared"] = self.fallback_shared
        if self.more_numbers_kept or self.more_numbers_not_kept:
            out.update(more_numbers_kept=self.more_numbers_kept, more_numbers_not_kept=self.more_numbers_not_kept)
        if self.relative_numbers:
            out["relative_numbers"] = self.relative_numbers
        if self.households_linked or self.households_not_linked:
            out.update(households_linked=self.households_linked, households_not_linked=self.households_not_linked)
        if self.summary_rows:
            out["summary_rows"] = list(self.summary_rows)
        if self.sheets_skipped:  # a workbook with other sheets that hold something: which one was read
            out.update(sheet=self.sheet, sheets_skipped=list(self.sheets_skipped))
        if self.warnings:
            out["warnings"] = sorted(self.warnings, key=lambda w: w["row"])
        return out

    def as_stored(self) -> dict:
        """Everything the staff page shows: the report plus columns and preview rows."""
        return {**self.as_dict(), "kind": self.kind, "error_count": self.error_count,
                "warning_count": self.warning_count,
                "duplicates": self.duplicates, "columns": self.columns, "ignored_columns": self.ignored_columns,
                "preview": sorted(self.preview, key=lambda p: p["row"])}
