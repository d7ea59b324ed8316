"""Every message the code and templates mark for translation reads in Chinese: the staff workspace is Simplified
Chinese by default, and an English sentence left in it (an import error, a column guide's "yes") is a bug."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.translation import trans_real

pytestmark = pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext's xgettext is not installed")


def _po_entries(path: Path):
    """(context, msgid, is_plural) of each live entry of a .po file written by makemessages --no-wrap."""
    entry: dict = {}
    field = None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("#~"):
            continue
        if line.startswith(("msgctxt ", "msgid ", "msgid_plural ", "msgstr")):
            field, _, text = line.partition(" ")
            entry[field] = entry.get(field, "") + ast.literal_eval(text)
        elif line.startswith('"') and field:
            entry[field] += ast.literal_eval(line)
        elif not line.strip():
            if entry.get("msgid"):
                yield entry.get("msgctxt"), entry["msgid"], "msgid_plural" in entry
            entry, field = {}, None


def test_every_marked_message_has_a_chinese_translation(tmp_path):
    root = Path(settings.BASE_DIR)
    for name in ("src", "templates", "config", "locale"):
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # makemessages on a copy: it rewrites the catalogs it finds, and the copy's apps are the ones imported.
    subprocess.run([sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans", "--no-wrap", "--no-obsolete",
                    "--settings=config.settings.test", f"--pythonpath={tmp_path}:{tmp_path / 'src'}"],
                   cwd=tmp_path, check=True, capture_output=True)
    # What the running product looks messages up in: the project's and every app's compiled catalogs, merged.
    catalog = trans_real.translation("zh-hans")._catalog
    found, missing = 0, []
    for po in sorted(tmp_path.glob("**/zh_Hans/LC_MESSAGES/django.po")):
        for context, msgid, plural in _po_entries(po):
            found += 1
            key = f"{context}\x04{msgid}" if context else msgid
            if not catalog.get((key, 0) if plural else key):
                missing.append(f"{po.relative_to(tmp_path)}: {msgid!r}" + (f" (context {context!r})" if context else ""))
    assert found > 1000, f"makemessages found only {found} messages"
    assert not missing, "untranslated (add them to locale/zh_Hans/LC_MESSAGES/django.po and run msgfmt):\n" + "\n".join(
        missing)


def test_a_too_long_field_says_so_in_plain_chinese_not_djangos_variable_wording():
    from django import forms
    from django.utils import translation
    with translation.override("zh-hans"):
        try:
            forms.CharField(max_length=3).clean("abcdef")
        except forms.ValidationError as exc:
            assert exc.messages == ["最多 3 个字，现在有 6 个。"]
        else:
            raise AssertionError("not refused")
