"""Django merges the Chinese catalogs into one: the project's `locale/` wins over every app's, and an app listed
earlier in INSTALLED_APPS over a later one. A word two catalogs translate differently therefore shows the
winner's translation everywhere: the tag form's "Code" read 卡号/券码 (a gift card's number) and the segment
form's "Name" read 姓名 (a person's name). Words that need another translation in one place carry a context
(`pgettext`), and no (context, word) may be translated two ways."""

import gettext
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.utils import translation


def _catalogs() -> list[tuple[str, dict]]:
    """(where, catalog) in Django's order of precedence."""
    paths = [Path(p) / "zh_Hans" / "LC_MESSAGES" / "django.mo" for p in settings.LOCALE_PATHS]
    paths += [Path(app.path) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.mo" for app in apps.get_app_configs()
              if app.name.startswith("smileloop.")]
    out = []
    for path in paths:
        if path.exists():
            with path.open("rb") as handle:
                out.append((str(path.relative_to(settings.BASE_DIR)), gettext.GNUTranslations(handle)._catalog))
    return out


def test_no_word_is_translated_two_ways_across_the_catalogs():
    catalogs = _catalogs()
    assert len(catalogs) >= 6  # the project's and the apps' (a moved locale folder must not empty this test)
    first: dict[str, tuple[str, str]] = {}
    clashes = []
    for where, catalog in catalogs:
        for msgid, msgstr in catalog.items():
            if not msgid or not msgstr:
                continue  # the header
            if msgid in first and first[msgid][1] != msgstr:
                clashes.append(f"{msgid!r}: {first[msgid][0]} says {first[msgid][1]!r}, {where} says {msgstr!r}")
            first.setdefault(msgid, (where, msgstr))
    assert not clashes, "\n".join(clashes)


def test_things_are_named_and_coded_as_things_not_as_people_and_cards():
    from smileloop.segments.forms import SegmentForm
    from smileloop.segments.rules.fields import OPS
    from smileloop.surveys.enums import SurveyState
    from smileloop.tagging.enums import TagGroupKind
    from smileloop.tagging.forms import TagGroupForm

    with translation.override("zh-hans"):
        assert str(SegmentForm().fields["name"].label) == "名称"
        assert (str(TagGroupForm.base_fields["name"].label), str(TagGroupForm.base_fields["code"].label)) == (
            "名称", "编码")
        assert str(TagGroupKind.VALUE.label) == "价值"
        assert str(OPS["never"][1]) == "从未"
        assert str(SurveyState.OPEN.label) == "待填写"
        assert translation.gettext("Name") == "姓名"  # a person's name, in every customer table
