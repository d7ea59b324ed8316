"""The English workspace shows no Chinese of its own: a crawl of the demo chain's staff pages with English chosen (the
language switch's cookie, from a browser that asks for Chinese), as each role sees them — every named staff URL with
its parameters filled from the demo chain, the 360 page's htmx sections and card forms, forms and actions sent empty
or with nonsense (their errors, refusals and django.contrib.messages after the redirect), a few that succeed (their
messages), the customer and audit CSV exports, the password, login, 404 and survey pages — fails on any run of Chinese
characters that the product's code or templates put there, and on a page whose <html lang> is not "en".

The demo chain's data is Chinese (names, clinics, notes, plans, tags), so Chinese is allowed where it is data: what a
page shows is read whole (text, scripts and JSON such as chart labels, every attribute), and a run of Chinese
characters passes when it is data as `Data` says (a run some CharField, TextField or JSONField of the database holds,
the start of one, or several side by side). Everything else is the product's: labels, titles, choices, messages,
chart labels, dates (2026年12月6日) and amounts (288 元), which fail even beside data that holds 年 or 元 alone.
Deliberate exceptions, named: text marked `lang="zh…"` inside the page (the language switcher's 简体中文), the input
examples English help texts quote (test_translations.CHINESE_INPUT_EXAMPLES: "姓名/name", "是/否"), and on the import
pages the Chinese headers the import reads and the example values of its columns (imports.services.headers/template).

Blind spot, by construction: Chinese the product itself writes into the database (a household named "<head>家", the
default tag catalogue's and playbooks' names) counts as data here."""

import bisect
import re
import uuid
from html import unescape
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models
from django.urls import reverse
from django.utils import translation

from tests.test_translations import CHINESE_INPUT_EXAMPLES
from tests.urlwalk import named_urls

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
STAFF_NAMESPACES = ("customers", "imports", "membership", "loyalty", "checkout", "tagging", "segments", "lifecycle",
                    "followups", "surveys", "clinics")
# Runs of Chinese that English text quotes on purpose: the values and column headers staff type or files hold.
# Not 年, 月 and 日 (a date format's examples quote them): an English date never shows them, but on the import pages.
DATE_PARTS = frozenset("年月日")
EXAMPLES = frozenset(run for msgid in CHINESE_INPUT_EXAMPLES for run in _CJK.findall(msgid)) - DATE_PARTS


class _AllText(HTMLParser):
    """Every text node (scripts' and JSON's too: chart labels) and every attribute value, except inside an element
    marked as Chinese (`lang="zh…"`)."""

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chinese: list[bool] = []
        self.pieces: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        # a part of the page marked Chinese (not the page itself: <html lang> is checked on its own)
        marked = tag != "html" and (values.get("lang") or "").lower().startswith("zh")
        if not any(self.chinese) and not marked:
            self.pieces += [unescape(value) for name, value in attrs if value and name != "lang"]
        if tag not in self._VOID:
            self.chinese.append(marked)

    def handle_startendtag(self, tag, attrs):
        values = dict(attrs)
        if not any(self.chinese) and not (values.get("lang") or "").lower().startswith("zh"):
            self.pieces += [unescape(value) for name, value in attrs if value and name != "lang"]

    def handle_endtag(self, tag):
        if tag not in self._VOID and self.chinese:
            self.chinese.pop()

    def handle_data(self, data):
        if not any(self.chinese) and data.strip():
            # JSON (json.dumps' default) writes Chinese as \\uXXXX escapes
            self.pieces.append(re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), data))

    def handle_comment(self, data):
        self.handle_data(data)


class Data:
    """The runs of Chinese the database holds, and how to tell a page's run of them: a run is data when it is a run
    the database holds, or the start of one (cut short with "…"), or several such runs of two characters or more
    side by side (a follow-up script's "{name}您好" filled in: 沈国华您好). One character alone is data when the data
    holds it alone too ("899 元 / 年", "每年免费洁牙 1 次") or it starts a run (a name's initial in its avatar); that
    lets an English date or amount written in Chinese through on pages whose data holds 年 or 元 alone, which
    test_english_dates_and_money_read_english checks on its own."""

    def __init__(self, strings, allowed=frozenset()):
        runs = set()
        for value in strings:
            runs.update(_CJK.findall(value))
        self._blob = "\n".join([*strings, *CHINESE_INPUT_EXAMPLES])
        self.runs = frozenset(run for run in runs if len(run) >= 2) | allowed
        self.single = frozenset(run[0] for run in runs) | allowed
        self._sorted = sorted(self.runs)

    def _starts_one(self, text: str) -> bool:
        at = bisect.bisect_left(self._sorted, text)
        return at < len(self._sorted) and self._sorted[at].startswith(text)

    def explains(self, run: str) -> bool:
        if len(run) == 1:
            return run in self.single
        ends = {0}  # positions a concatenation of data runs reaches
        for start in range(len(run)):
            if start in ends:
                for end in range(start + 2, len(run) + 1):
                    if run[start:end] in self.runs or (end == len(run) and self._starts_one(run[start:])):
                        ends.add(end)
        return len(run) in ends

    def holds(self, text: str) -> bool:
        return text in self._blob

    @classmethod
    def from_database(cls, allowed=frozenset()) -> "Data":
        return cls(list(_database_strings()), allowed | EXAMPLES)


def _import_headers() -> frozenset:
    """The import page lists the headers the import reads, Chinese ones too, with an example of each column's value:
    what a file holds, allowed on the import pages only."""
    from smileloop.imports.services.headers import CUSTOMER_HEADERS, ORDER_HEADERS, PHONE_FALLBACK_ALIASES
    from smileloop.imports.services.template import CUSTOMER_COLUMNS, ORDER_COLUMNS

    words = [alias for headers in (CUSTOMER_HEADERS, ORDER_HEADERS) for aliases in headers.values()
             for alias in aliases] + PHONE_FALLBACK_ALIASES
    words += [example for columns in (CUSTOMER_COLUMNS, ORDER_COLUMNS) for _r, _t, example in columns.values()
              if example]
    return frozenset(run for word in words for run in _CJK.findall(word)) | DATE_PARTS


def _strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings_in(key)
            yield from _strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings_in(item)


def _database_strings():
    for model in apps.get_models():
        fields = [f.attname for f in model._meta.concrete_fields
                  if isinstance(f, models.CharField | models.TextField | models.JSONField)]
        if fields:
            for row in model._default_manager.values_list(*fields):
                for value in row:
                    yield from _strings_in(value)


# A date or an amount written the Chinese way (2026年12月6日, 12月6日, 288 元): on an English page only as data says it.
_CHINESE_NUMBER = re.compile(r"\d[\d,.]*\s*[年月日号元]")


def untranslated(html: str, data: Data) -> list[str]:
    """Each run of Chinese characters on the page that is neither data nor a deliberate exception, and each date or
    amount in Chinese notation that no data holds."""
    parser = _AllText()
    parser.feed(html)
    parser.close()
    runs = {run for piece in parser.pieces for run in _CJK.findall(piece) if not data.explains(run)}
    runs |= {found for piece in parser.pieces for found in _CHINESE_NUMBER.findall(piece) if not data.holds(found)}
    return sorted(runs)


def _in_context(html: str, runs: list[str]) -> list[str]:
    """Each run as the page shows it, with the text around it (for the failure's message)."""
    text = unescape(re.sub(r"\s+", " ", html))
    return [f"{run} ({text[max(0, m.start() - 30):m.end() + 30]!r})" if (m := re.search(
        rf"(?<![\u4e00-\u9fff]){re.escape(run)}(?![\u4e00-\u9fff])", text)) else run for run in runs]


def test_the_checker_finds_an_untranslated_label_but_not_a_patients_name():
    data = Data(["张三", "王五 复诊：种植牙术后一周，恢复良好", "笑齿口腔（演示）", "{name}您好", "女", "899 元 / 年"], EXAMPLES)
    page = ('<html lang="en"><head><title>Customers · Smileloop</title></head><body>'
            '<h1>张三</h1><p>王五 复诊：种植牙术后…</p><td>笑齿口腔</td>'  # a name, a note cut short, a clinic's name
            '<p>张三您好</p><td>女</td><i>王</i>'  # a script filled in, a value stored as it is shown, an initial
            '<button lang="zh-hans">简体中文</button><p>Columns such as 姓名/name</p>'
            '<button>保存</button><input placeholder="搜索客户"><script type="application/json">{"labels": ["\\u65b0\\u5ba2"]}'
            '</script><p>Visited 2026年12月6日</p><p>¥288.00 元</p><p>3 次</p></body></html>')
    assert untranslated(page, data) == sorted(["保存", "搜索客户", "新客", "月", "日", "次",  # 年 and 元 alone: data
                                               "2026年", "12月", "6日", "288.00 元"])  # but not as a date, an amount
    # data is whole runs (a cut-short one at the end), not any characters
    assert untranslated('<html lang="zh-hans"><p>保存</p></html>', data) == ["保存"]  # a Chinese page is read too
    assert untranslated("<p>张三丰</p><p>三</p><p>口腔张三</p><p>一周</p>", data) == ["一周", "三", "口腔张三", "张三丰"]


def _param_values():
    """A value for each path parameter of the staff URLs, from the demo chain (a missing record gives a 404 page,
    which is checked too)."""
    from smileloop.checkout.models import Settlement
    from smileloop.customers.models import Customer
    from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep
    from smileloop.giftcards.models import GiftCard
    from smileloop.loyalty.models import (
        EarnRule,
        Gift,
        Package,
        PackageEntitlement,
        PackagePurchase,
        Topup,
        TopupBonusRule,
    )
    from smileloop.membership.models import Benefit, FamilyBinding, Membership, MembershipPlan, Tier
    from smileloop.segments.models import Segment
    from smileloop.surveys.models import Survey
    from smileloop.tagging.models import Tag, TagGroup

    def first(model, field="id", **filters):
        return model.objects.filter(**filters).order_by("id").values_list(field, flat=True).first()

    binding = FamilyBinding.objects.order_by("id").first()
    member = first(Membership, "customer_id")
    purchase = PackagePurchase.objects.order_by("id").first()
    package = first(Package)
    step = PlaybookStep.objects.order_by("id").first()
    values = {
        "customer_id": member or first(Customer), "member_id": getattr(binding, "member_id", 0) or first(Customer),
        "benefit_id": first(Benefit), "purchase_id": getattr(purchase, "id", 0), "topup_id": first(Topup),
        "settlement_id": first(Settlement), "code": first(GiftCard, "code") or "NONE-NONE", "batch_id": uuid.uuid4(),
        "kind": "customers", "plan_id": first(MembershipPlan), "tier_id": first(Tier), "gift_id": first(Gift),
        "package_id": package, "entitlement_id": first(PackageEntitlement, package_id=package) or 0,
        "group_id": first(TagGroup), "tag_id": first(Tag), "segment_id": first(Segment), "task_id": first(FollowupTask),
        "playbook_id": getattr(step, "playbook_id", None) or first(Playbook), "step_id": getattr(step, "id", 0),
        "token": first(Survey, "token"),
    }
    by_name = {"loyalty:earn_rule_edit": {"rule_id": first(EarnRule)},
               "loyalty:bonus_rule_edit": {"rule_id": first(TopupBonusRule)}}
    if binding is not None:
        by_name["membership:unbind"] = {"customer_id": binding.holder.customer_id}
    if purchase is not None:
        by_name["loyalty:package_cancel"] = {"customer_id": purchase.holder_id}
    return values, by_name


def _staff_urls(forms) -> list[tuple[str, str]]:
    values, by_name = _param_values()
    urls = []
    for name, params in named_urls(STAFF_NAMESPACES):
        if name.endswith(":form"):
            urls += [(name, reverse(name, args=[values["customer_id"], form])) for form in forms[name.split(":")[0]]]
            continue
        given = values | by_name.get(name, {})
        urls.append((name, reverse(name, kwargs={p: given[p] if given[p] is not None else 0 for p in params})))
    return urls


def _crawl(client, urls, data, *, method="get", post=None, htmx=False, seen=None) -> dict[str, list[str]]:
    headers = {"HTTP_ACCEPT_LANGUAGE": "zh-hans,zh;q=0.9", **({"HTTP_HX_REQUEST": "true"} if htmx else {})}
    found = {}
    for url in urls:
        response = getattr(client, method)(url, post or {}, follow=method == "post", **headers)
        assert response.status_code < 500, (method, url, response.status_code)
        if seen is not None:
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
        kind = response.get("Content-Type", "")
        if getattr(response, "streaming", False) or not kind.startswith(("text/html", "application/json")):
            continue
        html = response.content.decode()
        runs = untranslated(html, data[url.startswith("/imports/")])
        if kind.startswith("text/html") and "<html" in html and '<html lang="en">' not in html:
            runs = [re.search(r"<html[^>]*>", html)[0], *runs]
        if runs:
            runs = _in_context(html, runs)
            found[f"{method.upper()}{' htmx' if htmx else ''} {url}"] = runs
    return found


@pytest.mark.django_db(transaction=False)
def test_the_demo_chains_pages_show_no_chinese_of_their_own_in_english_for_every_role(client):
    from smileloop.customers.models import Customer
    from smileloop.demo.services import demo_create
    from smileloop.loyalty.views import CARD_FORMS as LOYALTY_FORMS
    from smileloop.membership.views import CARD_FORMS as MEMBERSHIP_FORMS
    from smileloop.surveys.models import Survey

    # given the demo chain, loaded in Chinese as `make demo` does, and a staff member who chose English
    with translation.override("zh-hans"):
        demo_create(customers=60, progress=False)
    strings = list(_database_strings())
    # A follow-up script is what the patient is told, in Chinese whatever the reader's language: filled in for the
    # patient ("昨天", a relative called as "李国庆家属"), it is data too. Which tasks the demo makes depends on the day.
    from django.utils import timezone

    from smileloop.followups.models import FollowupTask
    from smileloop.followups.script import tasks_scripts_fill

    tasks = list(FollowupTask.objects.select_related("customer", "clinic", "doctor", "step"))
    tasks_scripts_fill(tasks, today=timezone.localdate())
    strings += [task.script_text for task in tasks] + ["家长", "家属"]
    data = (Data(strings, EXAMPLES), Data(strings, EXAMPLES | _import_headers()))  # elsewhere, on the import pages
    users = get_user_model().objects
    client.force_login(users.get(username="admin"))
    switched = client.post(reverse("set_language"), {"language": "en", "next": reverse("customers:list")},
                           HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert switched.status_code == 302 and client.cookies["django_language"].value == "en"

    urls = _staff_urls({"membership": MEMBERSHIP_FORMS, "loyalty": LOYALTY_FORMS})
    assert len(urls) >= 90
    customer = _param_values()[0]["customer_id"]
    detail = reverse("customers:detail", args=[customer])
    sections = [f"{detail}?section={name}&page=2" for name in ("timeline", "appointments", "orders", "procedures")]
    found = {}
    # when the admin reads every staff page, the 360 page's sections as htmx asks for them, and each role the pages
    # of its day (a page a role may not see gives the 403 page, checked too)
    seen = {}
    found |= _crawl(client, [url for _name, url in urls], data, seen=seen)
    found |= _crawl(client, sections, data, htmx=True)
    found |= _crawl(client, [url for name, url in urls if name.endswith(":form")], data, htmx=True)
    main = [url for name, url in urls if name.split(":")[1] in {
        "list", "inbox", "board", "playbooks", "funnel", "nps", "plans", "config", "new", "codes", "audit_log",
        "detail", "merge_candidates", "upload"}]
    for username in ("frontdesk", "doctor", "director", "memberops"):
        client.force_login(users.get(username=username))
        found |= {f"{username} {k}": v for k, v in _crawl(client, main, data).items()}
    # and does a day's work that says it is done in django.contrib.messages (a group, a tag, a call's outcome, a
    # patient marked lost), each message read after the redirect
    from smileloop.followups.models import FollowupTask
    from smileloop.tagging.models import TagGroup

    client.force_login(users.get(username="admin"))
    task = FollowupTask.objects.filter(status="open").order_by("id").first() or FollowupTask.objects.order_by("id")[0]
    done = [(reverse("tagging:group_create"), lambda: {"name": "Referrals", "code": "en-referrals", "kind": "basic",
                                                        "ordering": 0}),
            (reverse("tagging:tag_create"), lambda: {"group": TagGroup.objects.get(code="en-referrals").id,
                                                      "name": "Prefers mornings", "code": "en-mornings",
                                                      "kind": "manual", "colour": "#64748b",
                                                      "keyword_threshold": 2, "keyword_window_days": 30}),
            (reverse("followups:complete", args=[task.id]), lambda: {"outcome": "reached", "note": "Called back"}),
            (reverse("customers:mark_lost", args=[customer]), lambda: {"reason": "moved away"})]
    for url, post in done:
        response = client.post(url, post(), follow=True, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert 'class="message message-success"' in response.content.decode(), (url, response.status_code,
                                                                                re.findall(r'class="field-error[^<]*',
                                                                                           response.content.decode()))
        found |= _crawl(client, [response.redirect_chain[-1][0]], data) if response.redirect_chain else {}
        if runs := untranslated(response.content.decode(), data[0]):
            found[f"POST {url} (done)"] = runs
    # and exports customers and the audit log: the CSV's headers and labels (gender, stage, source, actions) in English
    for url in (reverse("customers:export"), reverse("clinics:audit_export")):
        response = client.post(url, {"reason": "Quarterly review"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200, (url, response.status_code)
        csv = b"".join(response.streaming_content).decode("utf-8-sig")
        assert len(csv.splitlines()) > 2 and re.search(r"^ID,Name,|,Action,", csv.splitlines()[0]), csv[:200]
        if runs := untranslated(csv, data[0]):
            found[f"POST {url} (CSV)"] = _in_context(csv, runs)
    # and sends forms and actions with nothing filled in or nonsense, as htmx and as a plain form (validation errors,
    # refusals in django.contrib.messages after the redirect); erasing and deleting are left to the end
    client.force_login(users.get(username="admin"))
    last = ("customers:erase", "segments:delete", "customers:merge")
    posts = [url for name, url in urls if not name.endswith(("export", "template", "errors_csv", "progress"))
             and name not in last] + [url for name, url in urls if name in last]
    nonsense = {"name": "", "amount": "-1x", "points": "abc", "phone": "12", "date": "2026-13-45", "value": "x",
                "text": "", "code": "a b", "price": "1.234", "tier": "0", "plan": "0", "score": "11"}
    refused = {}
    found |= _crawl(client, posts, data, method="post", post=nonsense, htmx=True, seen=refused)
    found |= _crawl(client, posts, data, method="post")
    # and changes their password wrongly, opens a page that does not exist
    found |= _crawl(client, [reverse("account_password"), "/no-such-page/"], data)
    found |= _crawl(client, [reverse("account_password")], data, method="post", post={"old_password": "wrong"})
    # and, logged out, fails to log in; and a patient whose phone is in English opens a survey link
    survey = Survey.objects.filter(answered_at__isnull=True).order_by("id").first()
    client.logout()
    client.cookies["django_language"] = "en"
    found |= _crawl(client, [reverse("login")], data)
    found |= _crawl(client, [reverse("login")], data, method="post", post={"username": "admin", "password": "wrong"})
    if survey:
        found |= _crawl(client, [reverse("surveys:answer", args=[survey.token])], data)
        found |= _crawl(client, [reverse("surveys:answer", args=[survey.token])], data, method="post",
                        post={"score": "11"})
    # and the same reader back in Chinese: the checker, with this chain's data, sees the product's Chinese (it does
    # not pass because the data holds every word the product writes)
    client.force_login(users.get(username="admin"))
    client.cookies["django_language"] = "zh-hans"
    with translation.override("zh-hans"):
        navigation = [str(translation.gettext(word)) for word in ("Log out", "Customers")]
    chinese = {}
    for url in (reverse("customers:list"), detail):
        page = client.get(url).content.decode()
        chinese[url] = (re.search(r"<html[^>]*>", page)[0], untranslated(page, data[0]))
    assert all(len(runs) >= 20 and set(navigation) <= set(runs) for _lang, runs in chinese.values()), (navigation,
                                                                                                    chinese)
    # then no page shows Chinese that is not the chain's data
    assert found == {}, "\n".join(f"{page}: {runs}" for page, runs in found.items())
    assert Customer.objects.exists() and len(data[0].runs) > 100  # the data was there to subtract
    assert seen.get(200, 0) >= 60 and refused.get(422, 0) + refused.get(400, 0) >= 20, (seen, refused)
