"""Argument types for our console commands: a bad value is a usage error that names the option and the value
(argparse prints it on one line and exits 2), never a traceback or a database error after something was written."""

import argparse

from smileloop.core.bounds import pk_from_text


def text_argument(max_length: int, *, blank: bool = True):
    """A one-line text option: at most `max_length` characters (the column's), no control characters (a NUL cannot
    even be sent to PostgreSQL) and, unless `blank`, not blank."""

    def parse(value: str) -> str:
        if not blank and not value.strip():
            raise argparse.ArgumentTypeError("is blank")
        if len(value) > max_length:
            raise argparse.ArgumentTypeError(f"is {len(value)} characters long; at most {max_length}")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise argparse.ArgumentTypeError(f"contains a control character: {value[:40]!r}")
        return value

    return parse


def chain_id_argument(text: str) -> int:
    """A --chain value: a database key."""
    value = pk_from_text(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be a chain id (a positive whole number), not {text[:40]!r}")
    return value
