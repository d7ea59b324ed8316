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


# Chinese in an English msgid is shown as it is on the English page. Only examples of what staff type or what a
# file contains (Chinese values and column headers the parsers accept) may be Chinese there.
CHINESE_INPUT_EXAMPLES = {
    "is not yes/no (use 是/否, Y/N or 1/0)",
    "is not a date (use 1990-01-05, 1990/1/5, 1990年1月5日 or 19900105)",
    "is not a gender (use 男/女, M/F or male/female)",
    "%(name)s has no name column (姓名/name)",
    "is not a payment method (现金/微信/支付宝/银行卡/医保/储值 or cash/wechat_pay/…)",
    "No recognisable header in the first %(rows)s rows of %(where)s (expected columns such as 姓名/name, "
    "手机号/phone)",
    "Upload an Excel (.xlsx) or CSV file (UTF-8 or GBK). Columns are recognised by their header, in Chinese or "
    "English (姓名/name, 手机号/phone, 性别/gender, 出生日期/birthday, 门诊/clinic, 来源/source, …). You will see a "
    "preview and every problem before anything is written.",
    "Keyword tags: words separated by commas or new lines, e.g. 种植, 种牙.",
    # the import templates' column help (imports.services.template): values and headers the import reads
    "A second phone column (电话 beside 手机): fills a blank phone; a different number is kept as the person's second "
    "number",
    "是/否: agreed to marketing by WeChat",
    "是/否: agreed to marketing by WeCom",
    "是/否: agreed to marketing by phone call",
    "A second phone column (电话 beside 手机): the bill goes by it where the phone is blank",
    "The person's name; a lead known only by title may be 王女士",
    "Any common format (138 0013 8000, +86…); several numbers 138…/139…; words beside a number say whose it is: "
    "13800138000(妈妈) links a child to the mother",
    "男/女, M/F or male/female; 保密 for not given",
    "1990-01-05, 1990/1/5, 1990年1月5日, 19900105 or an Excel date",
    "The channel they came through: 抖音, 美团, 转介绍, 微信, 小红书, 自然到店, …",
    "是/否: agreed to personal data processing",
    "是/否: agreed to health data processing (separate from marketing)",
    "是/否: agreed to marketing by SMS",
    "The patient's phone, or a relative's with the words: 13800138000(妈妈) and the name column",
    "2024-01-05, 2024-01-05 14:30, 2024/1/5, 2024年1月5日 14:30 or an Excel date",
    "微信, 支付宝, 现金, 银行卡, 医保, 储值卡, …",
    "What the guardian is to the patient (母亲, 爷爷, 母子, …); a parent when blank",
}


def test_english_source_strings_carry_no_chinese_words_but_input_examples():
    import re

    chinese = re.compile(r"[\u4e00-\u9fff]")
    found = sorted({msgid for _where, catalog in _catalogs() for msgid in catalog
                    if isinstance(msgid, str) and chinese.search(msgid)} - CHINESE_INPUT_EXAMPLES)
    assert found == []  # e.g. the tier discount read "88折 (12% off)" and a segment field "Community (小区)" in English


def test_the_admin_names_every_app_in_the_readers_language():
    # The admin's index and breadcrumbs name each app by its AppConfig.verbose_name: a plain string stayed English
    # on the Chinese admin ("Clinics and staff", "Loyalty", "Membership" above Chinese field names).
    import re

    from django.contrib import admin

    chinese = re.compile(r"[\u4e00-\u9fff]")
    in_admin = {model._meta.app_label for model in admin.site._registry}
    # checkout and segments: their apps.py is another engineer's reserved file while this test was written
    waiting = {"checkout", "segments"}
    with translation.override("zh-hans"):
        english = sorted(f"{app.label}: {app.verbose_name}" for app in apps.get_app_configs()
                         if app.name.startswith("smileloop.") and app.label in in_admin - waiting
                         and not chinese.search(str(app.verbose_name)))
    assert len(in_admin) >= 10 and english == []


def test_one_chinese_word_for_each_concept():
    # A treatment plan is 治疗计划 (the 360 page said 治疗方案, the timeline and segments 治疗计划) and a membership plan
    # is 会员方案 (its page) — its refusals said 会员计划, 本计划, 付费计划. A visit is 到店 (到店次数, 最近到店): the funnel
    # page also said 未到诊 and 从未到诊 beside 从未到店. A segment is 分群 (the navigation and list said 人群分组, the
    # builder, the playbooks and the admin 分群). An order is 订单 (the admin, the import's columns and problems): the
    # 360 page and the import page said 消费记录, the merge page 消费. The insurance a bill is paid with is the
    # national medical insurance, 医保 (the import's help and the values it reads: 医保, 医保卡), which the payment
    # method's label called 保险; private insurance, should it appear, is 商业保险.
    import re

    mixed = sorted(f"{msgid!r}: {msgstr!r}" for _where, catalog in _catalogs() for msgid, msgstr in catalog.items()
                   if msgid and isinstance(msgstr, str)
                   and ("治疗方案" in msgstr or "到诊" in msgstr or "人群分组" in msgstr
                        or "计划" in msgstr.replace("治疗计划", "").replace("计划中", "")
                        or "消费记录" in msgstr
                        or (isinstance(msgid, str) and re.search(r"\borders\b", msgid, re.IGNORECASE)
                            and "订单" not in msgstr)
                        or "保险" in msgstr.replace("商业保险", "")))
    assert mixed == []
    with translation.override("zh-hans"):
        assert (translation.gettext("Orders"), translation.gettext("Insurance")) == ("订单", "医保")


def test_amount_and_code_fields_refuse_in_plain_chinese():
    # Django's own catalogue said "确认小数不超过 2 位." (a half-width period) on every amount in yuan and asked for a
    # valid “字段” on every code.
    from django import forms

    class Amount(forms.Form):
        yuan = forms.DecimalField(max_digits=10, decimal_places=2)
        code = forms.SlugField()

    with translation.override("zh-hans"):
        assert Amount({"yuan": "1.234", "code": "a b"}).errors == {
            "yuan": ["最多 2 位小数。"], "code": ["只能包含英文字母、数字、下划线（_）或连字符（-）。"]}
        assert Amount({"yuan": "123456789012", "code": "ok"}).errors == {"yuan": ["最多 10 位数字。"]}


def test_import_problems_name_amounts_as_money():
    # the orders import's line checks quoted a bare "（288.00）" where every page writes ¥288.00
    from smileloop.imports.messages import message_display

    with translation.override("zh-hans"):
        assert message_display("must be between 0 and the line's list total (288.00)") == \
            "必须在 0 到该行原价合计（¥288.00）之间"


def test_the_admin_names_every_model_in_the_readers_language(admin_client):
    # The admin names each model by its Meta.verbose_name(_plural): without one Django makes it from the class name,
    # in English on the Chinese admin too ("Api tokens", "Earn rules", "Topup refunds" beside Chinese field names).
    import re

    from django.contrib import admin
    from django.urls import reverse

    models = set()
    for model, model_admin in admin.site._registry.items():
        if not model._meta.app_config.name.startswith("django."):
            models |= {model, *(inline.model for inline in model_admin.inlines)}  # an inline's heading too
    untranslated = []
    for model in models:
        for option in ("verbose_name", "verbose_name_plural"):
            with translation.override("en"):
                english = str(getattr(model._meta, option))
            with translation.override("zh-hans"):
                chinese = str(getattr(model._meta, option))
            if english == chinese:
                untranslated.append(f"{model._meta.label}.{option}: {english!r}")
    assert len(models) >= 50 and sorted(untranslated) == []

    page = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    shown = re.findall(r'<th scope="row" id="[^"]+">\s*(?:<a [^>]*>)?\s*([^<]+?)\s*<', page)
    chinese = re.compile(r"[\u4e00-\u9fff]")
    assert len(shown) >= 40 and [name for name in shown if not chinese.search(name)] == []
