"""Builders for the messy files the tests import (written into pytest's tmp_path)."""

import csv
from pathlib import Path

import openpyxl


def csv_write(path: Path, rows: list[list], *, encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def xlsx_write(path: Path, rows: list[list]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path
