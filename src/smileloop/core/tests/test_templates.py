"""Template source checks that Django itself does not make: a `{# … #}` comment must fit on one line, or the
lexer leaves it as text and every page that includes the template shows the comment to its users."""

from pathlib import Path

import pytest
from django.conf import settings
from django.template.base import Lexer, TokenType
from django.template.utils import get_app_template_dirs


def _our_templates() -> list[Path]:
    dirs = [Path(d) for engine in settings.TEMPLATES for d in engine.get("DIRS", [])]
    dirs += [Path(d) for d in get_app_template_dirs("templates") if "smileloop" in str(d)]
    return sorted(p for d in dirs for p in d.rglob("*.html"))


def _comment_leaks(source: str) -> list[int]:
    """Line numbers of text tokens that hold a comment opener, i.e. comments the lexer did not recognise."""
    return [token.lineno for token in Lexer(source).tokenize()
            if token.token_type == TokenType.TEXT and "{#" in token.contents]


def test_the_check_catches_a_multi_line_comment():
    assert _comment_leaks("<p>{# one line #}</p>") == []
    assert _comment_leaks("<p>\n{# first line\n   second line #}</p>") == [1]
    assert _comment_leaks("{% comment %}\nmany\nlines\n{% endcomment %}") == []


def test_templates_exist_to_check():
    names = {p.name for p in _our_templates()}
    assert {"subform.html", "customer_detail.html", "staff.html"} <= names


@pytest.mark.parametrize("path", _our_templates(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_template_shows_a_comment_as_text(path):
    assert _comment_leaks(path.read_text(encoding="utf-8")) == [], (
        f"{path}: a {{# … #}} comment spans lines; use {{% comment %}} … {{% endcomment %}}")
