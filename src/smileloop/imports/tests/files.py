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


def two_sheets_write(path: Path) -> Path:
    """A workbook of two sheets of people, 一月 (张三) and 二月 (李四): an import reads the first only."""
    workbook = openpyxl.Workbook()
    workbook.active.title = "一月"
    workbook.active.append(["姓名", "手机号"])
    workbook.active.append(["张三", "13800138000"])
    workbook.create_sheet("二月").append(["姓名", "手机号"])
    workbook["二月"].append(["李四", "13900139000"])
    workbook.save(path)
    return path
