"""The Chinese workspace shows no English: a crawl of the demo chain's pages in zh-hans, as each role sees them
(lists, filters, the 360 page and its htmx sections, follow-up tasks, forms refused with their errors, the patient's
survey pages, error pages), fails on any run of English words that is not a name, a code or data.

What a page shows is read as staff see it: text and the attributes read aloud or shown on hover (title, placeholder,
aria-label, alt), without scripts, styles, codes (`.mono`, `<code>`) and what people typed (form values, textareas).
A word is English when it has two or more Latin letters and no digit; the allowlist holds the product's name, the
abbreviations Chinese staff use as they are (NPS, CBCT, …) and the identifiers that have no Chinese name (openid).
A new page that forgets `{% translate %}` or a catalogue entry fails here with the phrase and the page that shows it."""

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import translation

# Words that stay as they are on the Chinese pages.
ALLOWED = {
    "Smileloop", "English",  # the product, and the language switcher naming English in English
    "NPS", "SQL", "API", "CSV", "XLSX", "xlsx", "csv", "Excel", "UTF", "GBK", "SMS", "PMS", "HIS", "FDI", "CBCT",
    "KOC", "TD", "QR", "ID", "VIP",
    "JSON", "openid", "unionid",  # the rule format; WeChat's identifiers (微信 openid)
    "zs", "zhangsan",  # the search box's pinyin examples (拼音（zs / zhangsan）)
    "referral",  # an example of an earn rule's code, which is ASCII (系统使用的固定名称，如 referral。)
}
_SKIP_TAGS = {"script", "style", "code", "pre", "svg", "textarea"}
_SHOWN_ATTRS = ("title", "placeholder", "aria-label", "alt")
_WORD = re.compile(r"[A-Za-z]{2,}")


class _ShownText(HTMLParser):
    """The text a reader sees, one piece per text node or shown attribute."""

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hidden: list[bool] = []  # per open element: whether its text is not the page's words
        self.pieces: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        skip = tag in _SKIP_TAGS or "mono" in (values.get("class") or "").split()
        if not any(self.hidden):
            self.pieces += [values[name] for name in _SHOWN_ATTRS
                            if values.get(name) and not values[name].lstrip().startswith(("{", "["))]
        if tag not in self._VOID:
            self.hidden.append(skip)

    def handle_endtag(self, tag):
        if tag not in self._VOID and self.hidden:
            self.hidden.pop()

    def handle_data(self, data):
        if not any(self.hidden) and data.strip():
            self.pieces.append(data.strip())


def english_phrases(html: str, data: frozenset = frozenset()) -> list[str]:
    """Each shown piece of text that holds an English word neither the allowlist nor `data` (words the crawled
    records hold, such as login names) knows."""
    parser = _ShownText()
    parser.feed(html)
    found = []
    for piece in parser.pieces:
        text = re.sub(r"https?://\S+", " ", piece)  # links
        while re.search(r"\{[^{}]*\}", text):  # a script's {variables}, a JSON example in a help text
            text = re.sub(r"\{[^{}]*\}", " ", text)
        # codes and identifiers, in ASCII only (a Chinese sentence holds no spaces to end a token at):
        text = re.sub(r"[A-Z0-9]{4}(?:-[A-Z0-9]{4})+", " ", text)  # a gift card's or voucher's code (FGKY-NHGN-GUZW)
        text = re.sub(r"[A-Za-z0-9_\-]{16,}", " ", text)  # an identifier (a WeChat openid)
        text = re.sub(r"[A-Za-z0-9_.@+\-/:]*[0-9_][A-Za-z0-9_.@+\-/:]*", " ", text)  # ids, phones, dates, snake_case
        if any(word not in ALLOWED and word not in data for word in _WORD.findall(text)):
            found.append(piece)
    return found


def test_the_checker_finds_english_but_not_codes_names_or_data():
    assert english_phrases('<p>客户</p><p title="Save changes">保存</p><span class="mono">big-whale</span>'
                           '<td>CL01 · 超声波洁牙</td><p>微信 openid</p><script>var a = "hello";</script>'
                           '<p>{name}您好，http://x.example/s/Ab12/</p><p>团购券 FGKY-NHGN-GUZW</p><textarea>{"all": []}</textarea>'
                           '<p>距上次就诊已14天，high_value</p><p>阶段 已治疗 → 会员：2026年enrolled in 金卡</p>') \
        == ["Save changes", "阶段 已治疗 → 会员：2026年enrolled in 金卡"]
    assert english_phrases("<p>No customers yet</p><button>保存 Draft</button>") == ["No customers yet", "保存 Draft"]


def _crawl(client, urls, *, method="get", data=None, htmx=False, words=frozenset()) -> dict[str, list[str]]:
    headers = {"HTTP_ACCEPT_LANGUAGE": "zh-hans", **({"HTTP_HX_REQUEST": "true"} if htmx else {})}
    found = {}
    for url in urls:
        response = getattr(client, method)(url, data or {}, **headers)
        assert response.status_code < 500, (url, response.status_code)
        if "html" in response.get("Content-Type", "") and not getattr(response, "streaming", False):
            phrases = english_phrases(response.content.decode(), words)
            if phrases:
                found[f"{method.upper()} {url}"] = sorted(set(phrases))
    return found


@pytest.mark.django_db(transaction=False)
def test_the_demo_chains_pages_are_all_chinese_for_every_role(client):
    from smileloop.checkout.models import Settlement
    from smileloop.customers.models import Customer, Interaction
    from smileloop.demo.services import demo_create
    from smileloop.followups.models import FollowupTask, Playbook
    from smileloop.membership.models import MembershipPlan
    from smileloop.segments.models import Segment
    from smileloop.surveys.models import Survey
    from smileloop.tagging.models import Tag

    # given the demo chain (its members, tasks, surveys and bills), small, loaded as `make demo` does: in Chinese (its
    # staff are named after their role's label, "演示前台")
    with translation.override("zh-hans"):
        demo_create(customers=60, progress=False)
    users = get_user_model().objects
    logins = frozenset(users.values_list("username", flat=True))  # shown beside a staff member's name
    member = Interaction.objects.filter(text__contains="→ member").values_list("customer_id", flat=True).first()
    customers = [*Customer.objects.order_by("-visit_count").values_list("id", flat=True)[:3],
                 *([member] if member else []), Customer.objects.order_by("id").values_list("id", flat=True).first()]
    tasks = {}
    for task in FollowupTask.objects.order_by("id"):
        tasks.setdefault(task.anchor_key.split(":")[0], task.id)  # one task of each kind of trigger
    staff_pages = [
        reverse("customers:list"), reverse("customers:list") + "?q=没有这个人", reverse("customers:create"),
        reverse("customers:merge_candidates"), reverse("followups:inbox"), reverse("followups:board"),
        reverse("followups:playbooks"), reverse("segments:list"), reverse("segments:create"), reverse("tagging:list"),
        reverse("tagging:tag_create"), reverse("tagging:bulk"), reverse("lifecycle:funnel"), reverse("surveys:nps"),
        reverse("membership:plans"), reverse("loyalty:config"), reverse("checkout:new"), reverse("checkout:codes"),
        reverse("clinics:audit_log"), reverse("account_password"), "/no-such-page/",
        *[reverse("customers:detail", args=[pk]) for pk in customers],
        *[reverse("customers:edit", args=[pk]) for pk in customers[:1]],
        *[reverse("followups:task", args=[pk]) for pk in tasks.values()],
        *[reverse("followups:playbook_edit", args=[pk]) for pk in Playbook.objects.values_list("id", flat=True)[:3]],
        *[reverse("segments:edit", args=[pk]) for pk in Segment.objects.values_list("id", flat=True)[:2]],
        *[reverse("tagging:tag_customers", args=[pk]) for pk in Tag.objects.values_list("id", flat=True)[:2]],
        *[reverse("membership:plan_edit", args=[pk]) for pk in MembershipPlan.objects.values_list("id", flat=True)[:2]],
        *[reverse("checkout:receipt", args=[pk]) for pk in Settlement.objects.values_list("id", flat=True)[:2]],
    ]
    sections = [reverse("customers:detail", args=[customers[0]]) + f"?section={name}&page=2"
                for name in ("timeline", "appointments", "orders", "procedures")]
    refused = [reverse("customers:create"), reverse("customers:note_add", args=[customers[0]]),
               reverse("segments:create"), reverse("tagging:tag_create"), reverse("membership:plan_create"),
               reverse("loyalty:earn_rule_create"), reverse("followups:playbook_new"), reverse("checkout:new"),
               reverse("account_password")]
    found = {}
    # when each role reads the pages (a role a page refuses gets the 403 page, which is checked too)
    for username in ("admin", "frontdesk", "doctor", "director", "memberops"):
        client.force_login(users.get(username=username))
        found |= {f"{username} {k}": v for k, v in _crawl(client, staff_pages, words=logins).items()}
    client.force_login(users.get(username="admin"))
    found |= _crawl(client, sections, htmx=True, words=logins)
    found |= _crawl(client, refused, method="post", words=logins)
    found |= _crawl(client, refused, method="post", htmx=True, words=logins)
    # and a patient opens their survey link and sends it without a score
    client.logout()
    survey = Survey.objects.filter(answered_at__isnull=True).order_by("id").first()
    answered = Survey.objects.filter(answered_at__isnull=False).order_by("id").first()
    patient = [reverse("login"), reverse("surveys:answer", args=["no-such-link"]),
               *([reverse("surveys:answer", args=[survey.token])] if survey else []),
               *([reverse("surveys:thanks", args=[answered.token])] if answered else [])]
    found |= {f"patient {k}": v for k, v in _crawl(client, patient).items()}
    if survey:
        found |= _crawl(client, [reverse("surveys:answer", args=[survey.token])], method="post")
    # then no page shows an English phrase
    assert found == {}, "\n".join(f"{page}: {phrases}" for page, phrases in found.items())
    assert len(tasks) >= 4 and member is not None  # the crawl saw the kinds of tasks and a member's stage change
