"""Typed errors of the import app."""

from smileloop.core.errors import Conflict, DomainError


class ImportFileError(DomainError):
    """The file as a whole cannot be imported (missing, unsupported, unreadable, no header, bad map).

    Raised before any row is read or written; row-level problems go into ImportReport.errors instead.
    """

    code = "import_file"


class ImportConflict(Conflict):
    """The pool changed under the import (e.g. a phone was created concurrently); nothing was written."""

    code = "import_conflict"
