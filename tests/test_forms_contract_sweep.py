"""A contract sweep of every staff page's form POST: hostile input never gives a 5xx, a refused write changes no row
of any table, a form shown again names what is wrong, and garbage that must be refused (impossible dates, money as a
fraction of a fen, negative money, NUL) is never written.

The URLs are Django's own (every named pattern of the staff namespaces, tests/urlwalk.py), so a new page is swept
without being listed here. The API (tests/test_api_contract_fuzz.py) and the Django admin are swept elsewhere; the
patient's public survey page is a form of the surveys namespace and is swept here. The objects in the paths are the
scope sweep's world (tests/test_scope_sweep.py); the caller is a chain admin (an import: its uploader), so a refusal
is the input's doing, not a 403/404 of who asks.

For each URL the form that posts to it is read from its own GET page (or, for an action without a page, from the
page that holds its form): its inputs and their default values, required fields filled with a plausible value. That
form is then broken one field at a time (missing, blank, 10,000 characters, letters, 2026-02-30, negative and
fractional money, NUL and control characters, full-width digits), sent empty, sent with unknown fields and sent
without its CSRF token (403); last, the form as the page offers it must be accepted, so the sweep is not measuring
refusals of who asks."""

import html
import re
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests import test_scope_sweep as sweep
from tests.api_contract_fuzz_helpers import changed, snapshot
from tests.urlwalk import named_urls

config, director_b, world = sweep.config, sweep.director_b, sweep.world

pytestmark = pytest.mark.django_db

STAFF_URLS = named_urls(sweep.STAFF_NAMESPACES + ("clinics",))
MAX_CASES = 40  # per URL (the fields beyond are still sent in the valid and empty posts)
TOO_LONG = "长" * 10_000
_WRITE_SQL = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
# django_session is not a project table; a login refreshes it
# (not the layout's hidden `message-error request-error` box, on every full page for a failed htmx request)
_ERROR_MARKUP = re.compile(r'class="(field-error|form-errors|errornote|message message-error)( seg-error)?"'
                           r'|aria-invalid="true"')

# Pages that hold the forms of actions without a page of their own, tried in this order.
HOSTS = [
    lambda w: reverse("customers:list"),
    lambda w: reverse("customers:detail", kwargs={"customer_id": w.customer.id}),
    lambda w: reverse("followups:task", kwargs={"task_id": w.task.id}),
    lambda w: reverse("followups:inbox") + "?mine=false",
    lambda w: reverse("followups:playbook_edit", kwargs={"playbook_id": w.playbook.id}),
    lambda w: reverse("followups:playbooks"),
    lambda w: reverse("loyalty:config"),
    lambda w: reverse("loyalty:package_edit", kwargs={"package_id": w.package.id}),
    lambda w: reverse("membership:plans"),
    lambda w: reverse("membership:plan_edit", kwargs={"plan_id": w.plan.id}),
    lambda w: reverse("membership:tier_edit", kwargs={"tier_id": w.tier.id}),
    lambda w: reverse("tagging:list"),
    lambda w: reverse("segments:list"),
    lambda w: reverse("segments:edit", kwargs={"segment_id": w.segment.id}),
    lambda w: reverse("checkout:receipt", kwargs={"settlement_id": w.settlement.id}),
    lambda w: reverse("checkout:codes") + f"?code={w.card.code}",
    lambda w: reverse("customers:merge_candidates"),
    *[lambda w, n=n: reverse("loyalty:form", kwargs={"customer_id": w.customer.id, "name": n})
      for n in ("topup", "award", "gift", "package")],
    *[lambda w, n=n: reverse("membership:form", kwargs={"customer_id": w.customer.id, "name": n})
      for n in ("enrol", "renew", "tier", "cancel", "bind")],
    lambda w: reverse("imports:preview", kwargs={"batch_id": w.batch.id}),
]

# The fields a URL's form must name but whose page cannot default them (a plausible value of the world).
FILL = {
    "customers:create": lambda w: {"name": "契约测试", "mobile": "13600000009"},
    "customers:family_add": lambda w: {"member": w.customer_a.id, "relative": w.customer_a.id},
    "checkout:holder_register": lambda w: {"code": w.card.code, "customer": w.customer_a.id},
    "customers:erase": lambda w: {"erase-confirm": w.customer.mobile_tail},
    "followups:reassign": lambda w: {"assignee": w.director_b.id},
    "loyalty:entitlement_create": lambda w: {"item_code": "CL01"},
    # the page leaves both amounts to be typed; a bonus above its top-up is refused (a typo like 充100送1000)
    "loyalty:bonus_rule_create": lambda w: {"min_topup_yuan": "777", "bonus_yuan": "77"},
    "loyalty:award": lambda w: {"note": "契约测试"},
    # the world's card has its spouse bound already (a card has one): bind a sibling
    "membership:bind": lambda w: {"member": w.customer_a.id, "relation": "sibling", "consent_source": "paper",
                                  "consent_evidence": "F-1"},
    "membership:tier": lambda w: {"reason": "契约测试"},
    "membership:plan_create": lambda w: {"fee_yuan": "100", "duration_months": "12"},
    "membership:tier_create": lambda w: {"rank": "9", "min_spend_yuan": "50000"},  # above the world's tier (rank 1)
    "tagging:bulk": lambda w: {"customers": str(w.customer.id), "tag": w.tag.id},
}

# The page's own form that the world's objects make a business refusal (shown with its message), with the reason;
# the sweep still sends every hostile case to them.
REFUSED_BY_THE_WORLD = {
    "customers:erase": "the world's patient holds a service package in force: erasure asks to refund it first",
    "imports:confirm": "the world's import was never parsed: nothing to confirm (409)",
    "imports:upload": "the form takes a file (tests/test_urls_smoke.py uploads one)",
    "loyalty:award": "the world's earn rule is not one staff award by hand",
    "loyalty:earn_rule_create": "the world's spend rule earns on every line already: a second one would never apply",
    "loyalty:gift": "the world's patient has no points to exchange",
    "loyalty:package": "the world's package has no catalogue item to bill a sale as",
    "membership:enrol": "the world's patient is a member already",
    "membership:renew": "the world's membership is for life: nothing to renew",
    "membership:tier": "the world's plan has one tier: no other to change to",
    "segments:create": "a rule is built by the page's script, condition by condition",
    "segments:edit": "a rule is built by the page's script, condition by condition",
}
# A refusal that records why on purpose: the table it may write.
REFUSAL_RECORDS = {
    "imports:confirm": ("imports.importbatch", "a batch whose file is gone is marked failed for good, then refused "
                                               "(imports.services.batches.batch_confirm); the world's has no file"),
}
# Refusals whose answer does not say why (a 422 that renders the card without the form): bugs left open, reported.
SILENT_REFUSALS: dict[str, str] = {}


# --- reading a page's forms ----------------------------------------------------------------------------------------

class _Forms(HTMLParser):
    """Every <form> (and every element with hx-post) of a page: where it posts, its controls, and which are required."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self.form: dict | None = None
        self.select: dict | None = None
        self.textarea: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            target = a.get("hx-post") or a.get("action") or ""
            method = "post" if a.get("hx-post") else (a.get("method") or "get").lower()
            self.form = {"action": target, "method": method, "controls": [], "enctype": a.get("enctype", "")}
            self.forms.append(self.form)
            return
        if self.form is None or "name" not in a:
            return
        control = {"tag": tag, "name": a["name"], "type": (a.get("type") or "text").lower(),
                   "value": a.get("value"), "checked": "checked" in a, "required": "required" in a,
                   "maxlength": a.get("maxlength"), "min": a.get("min"), "options": [], "disabled": "disabled" in a,
                   "multiple": "multiple" in a}
        if tag == "input":
            self.form["controls"].append(control)
        elif tag == "select":
            self.select = control
            self.form["controls"].append(control)
        elif tag == "textarea":
            control["type"] = "textarea"
            control["value"] = ""
            self.textarea = control
            self.form["controls"].append(control)
        elif tag == "button" and a.get("value") is not None:
            control["type"] = "submit"
            self.form["controls"].append(control)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea["value"] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None


def _parse(text: str) -> list[dict]:
    parser = _Forms()
    # options are read here (the parser above sees them as tags without a name)
    original = parser.handle_starttag

    def start(tag, attrs):
        if tag == "option" and parser.select is not None:
            a = dict(attrs)
            parser.select["options"].append((a.get("value", ""), "selected" in a, "disabled" in a))
            return
        original(tag, attrs)

    parser.handle_starttag = start
    parser.feed(text)
    return parser.forms


def _path_of(action: str, page: str) -> str:
    action = html.unescape(action)
    return urlsplit(action).path or urlsplit(page).path


def _form_for(client, w, url: str, hosts: list[str] | None = None) -> dict | None:
    """The form that posts to `url`, from its own page or a host page."""
    path = urlsplit(url).path
    pages = [url] + (hosts if hosts is not None else [host(w) for host in HOSTS])
    for page in pages:
        response = client.get(page)
        if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
            continue
        for form in _parse(response.content.decode()):
            if form["method"] == "post" and _path_of(form["action"], page) == path:
                return form
    return None


def _plausible(control: dict) -> str:
    name, kind = control["name"], control["type"]
    if kind == "number" or any(k in name for k in ("amount", "price", "fen", "points", "quantity", "score")):
        return control["min"] if control["min"] not in (None, "", "0") else "1"
    if kind == "date" or name.endswith(("_on", "date")):
        return "2026-03-01"
    if kind == "datetime-local" or name.endswith("_at"):
        return "2026-03-01T10:00"
    if name.endswith("code"):
        return "qa-contract"
    if kind == "tel" or "mobile" in name or "phone" in name:
        return "13600000008"
    if kind == "email":
        return "qa@example.com"
    return "契约测试"


def _valid_data(form: dict, fill: dict) -> tuple[dict, dict]:
    """(data as the page would send it, the text-like controls by name)."""
    data: dict[str, list[str]] = {}
    fields = {}
    radios_seen = set()
    for c in form["controls"]:
        name, kind = c["name"], c["type"]
        if c["disabled"] or kind in ("submit", "button", "reset", "file", "image"):
            continue
        if kind == "checkbox":
            if c["checked"] or c["required"]:
                data.setdefault(name, []).append(c["value"] or "on")
            continue
        if kind == "radio":
            if c["checked"]:
                data[name] = [c["value"] or "on"]
            elif name not in radios_seen and c["required"]:
                data.setdefault(name, [c["value"] or "on"])
            radios_seen.add(name)
            continue
        if c["tag"] == "select":
            chosen = [v for v, sel, dis in c["options"] if sel]
            enabled = [v for v, _, dis in c["options"] if not dis]
            if not chosen and not c["multiple"]:
                chosen = enabled[:1]
            if c["required"] and chosen in ([], [""]):
                chosen = [v for v in enabled if v][:1]
            if chosen:
                data[name] = chosen
            fields[name] = c
            continue
        value = (c["value"] or "").removeprefix("\n")  # a browser drops the newline that opens a <textarea>
        if not value and c["required"]:
            value = _plausible(c)
        data.setdefault(name, []).append(value)
        if kind != "hidden" or name != "csrfmiddlewaretoken":
            fields[name] = c
    for name, value in fill.items():
        data[name] = [str(value)]
    fields.pop("csrfmiddlewaretoken", None)
    return data, fields


# --- hostile values -------------------------------------------------------------------------------------------------

def _money(name: str) -> bool:
    return any(k in name for k in ("amount", "price", "fen", "yuan", "fee", "value", "balance"))


def _numeric(c: dict) -> bool:
    return c["type"] == "number" or _money(c["name"])


def _dated(c: dict) -> bool:
    return c["type"] in ("date", "datetime-local") or c["name"].endswith(("_on", "_at", "date", "until"))


def _cases(fields: dict) -> list[tuple[str, str, object, bool]]:
    """(label, field, value or None for 'missing', must_refuse) for each field of the form."""
    out = []
    for name, c in fields.items():
        if c["type"] == "hidden" and name in ("next", "key"):
            continue
        boolean = c["type"] in ("checkbox", "radio")
        out.append(("missing", name, None, False))
        out.append(("blank", name, "", False))
        out.append(("10,000 characters", name, TOO_LONG, bool(c["maxlength"]) or _numeric(c) or _dated(c)))
        out.append(("NUL", name, "a\x00b", not boolean))
        out.append(("control characters", name, "a\x01\x1b\x7fb", _numeric(c) or _dated(c)))
        if _numeric(c) or c["tag"] == "select":
            out.append(("letters", name, "abc", _numeric(c)))
            out.append(("full-width digits", name, "１２３", False))
        if _numeric(c):
            out.append(("negative", name, "-100", _money(name)))
            out.append(("a fraction of a fen", name, "12.345", _money(name)))
        if _dated(c):
            out.append(("February 30th", name, "2026-02-30" + ("T10:00" if c["type"] == "datetime-local" else ""),
                        True))
    return out


# --- the caller -----------------------------------------------------------------------------------------------------

class Poster:
    """A logged-in client that tells whether its last POST changed any row (tables compared only after a request
    that ran a write statement). Each POST is undone after it (a savepoint rolled back)."""

    def __init__(self, user, *, csrf: bool = False, may_write: str = ""):
        self.client = Client(enforce_csrf_checks=csrf, raise_request_exception=False)
        self.may_write = may_write
        self.client.force_login(user)
        self.state = snapshot()
        self.changes: list[str] = []

    def post(self, url: str, data: dict, **extra):
        """Each POST in a savepoint rolled back after it, so every case starts from the same rows."""
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                response = self.client.post(url, data, **extra)
            writes = [q for q in queries.captured_queries if q["sql"] is None or (
                _WRITE_SQL.match(q["sql"]) and "django_session" not in q["sql"])]
            self.changes = [c for c in changed(self.state, snapshot()) if not c.startswith(f"{self.may_write}:")] \
                if writes else []
            transaction.set_rollback(True)
        return response


def _shows_error(response) -> bool:
    """The error markup of the templates (includes/field.html, form_errors.html, the layout's messages), or an
    answer that is a message alone (a plain text for htmx to show)."""
    text = _content(response).decode(errors="replace")
    if response.status_code >= 400 and text.strip() and "<" not in text:
        return True
    return bool(_ERROR_MARKUP.search(text))


def _content(response) -> bytes:
    """The body (a download is streamed)."""
    if response.streaming:
        response._content_read = b"".join(response.streaming_content)
        response.streaming_content = [response._content_read]
        return response._content_read
    return response.content


def _errors(response) -> list[str]:
    text = _content(response).decode(errors="replace")
    return re.findall(r'class="field-error"[^>]*>([^<]*)<', text)[:3]


def _refused(response) -> bool:
    return response.status_code >= 400 or (response.status_code == 200 and _shows_error(response))


def _url(w, url_name: str, params: list[str]) -> str:
    return reverse(url_name, kwargs=sweep._staff_kwargs(w, url_name, params)) if params else reverse(url_name)


def _actor(w, url_name: str, chain_admin):
    return w.director_b if url_name.startswith("imports:") else chain_admin


# --- the sweep ------------------------------------------------------------------------------------------------------

def test_the_sweep_walks_every_staff_namespace():
    names = {n for n, _ in STAFF_URLS}
    assert {"customers:create", "loyalty:topup", "checkout:refund", "surveys:answer"} <= names
    assert not any(n.startswith("admin:") for n in names)


@pytest.mark.parametrize(("url_name", "params"), STAFF_URLS, ids=[n for n, _ in STAFF_URLS])
def test_every_staff_form_post_refuses_garbage_without_a_5xx_or_a_partial_write(world, chain_admin, url_name,
                                                                                  params):
    _sweep(world, url_name, _url(world, url_name, params), _actor(world, url_name, chain_admin))


# A front desk of clinic A on their own patient: the forms they use every day (their scope is one clinic).
FRONT_DESK_URLS = ["customers:edit", "customers:note_add", "customers:mark_lost", "loyalty:topup"]


@pytest.mark.parametrize("url_name", FRONT_DESK_URLS)
def test_a_front_desk_form_post_refuses_garbage_without_a_5xx_or_a_partial_write(world, front_desk_a, url_name):
    _sweep(world, url_name, reverse(url_name, kwargs={"customer_id": world.customer_a.id}), front_desk_a,
           hosts=[reverse("customers:detail", kwargs={"customer_id": world.customer_a.id}),
                  reverse("loyalty:form", kwargs={"customer_id": world.customer_a.id, "name": "topup"})])


def _sweep(world, url_name: str, url: str, actor, hosts: list[str] | None = None):
    started = time.monotonic()
    poster = Poster(actor.user, may_write=REFUSAL_RECORDS.get(url_name, ("",))[0])
    failures = []

    empty = poster.post(url, {})
    if empty.status_code == 405:
        pytest.skip(f"{url_name} takes no POST")
    if empty.status_code >= 500:
        failures.append(f"empty body: {empty.status_code}")
    if _refused(empty) and poster.changes:
        failures.append(f"empty body: refused ({empty.status_code}) but changed {poster.changes}")
    form = _form_for(poster.client, world, url, hosts)
    if form is None:
        # an action without a form on any page (a confirmation posted by a script): only the empty post is checked
        assert failures == [], f"{url_name} ({url})"
        pytest.skip(f"{url_name}: no page holds a form that posts here")
    data, fields = _valid_data(form, FILL.get(url_name, lambda w: {})(world))

    # the same form without its CSRF token: refused by Django's middleware before any view code
    guarded = Poster(actor.user, csrf=True)
    no_token = {k: v for k, v in data.items() if k != "csrfmiddlewaretoken"}
    response = guarded.post(url, no_token)
    if response.status_code != 403 or guarded.changes:
        failures.append(f"without a CSRF token: {response.status_code}, changed {guarded.changes}")

    for label, name, value, must_refuse in _cases(fields)[:MAX_CASES]:
        body = {k: v for k, v in data.items() if k != name}
        if value is not None:
            body[name] = value
        response = poster.post(url, body)
        what = f"{name} {label}"
        if response.status_code >= 500:
            failures.append(f"{what}: {response.status_code}")
            continue
        if _refused(response) and poster.changes:
            failures.append(f"{what}: refused ({response.status_code}) but changed {poster.changes}")
        if must_refuse and poster.changes:
            failures.append(f"{what}: accepted and written ({response.status_code}): {poster.changes}")
        shown_again = response.status_code in (200, 422) or b"<form" in _content(response)
        if response.status_code in (200, 400, 422) and shown_again and not poster.changes and must_refuse \
                and url_name not in SILENT_REFUSALS \
                and response.get("Content-Type", "").startswith("text/html") and not _shows_error(response):
            failures.append(f"{what}: {response.status_code} with no error shown")

    response = poster.post(url, {**data, "unknown_field": "x", "chain": "999", "id": "999"}, headers={})
    if response.status_code >= 500:
        failures.append(f"unknown fields: {response.status_code}")

    # last: the form as its page offers it (filled where required) is taken
    response = poster.post(url, data)
    if response.status_code >= 500 or response.status_code in (403, 404, 405) or (
            _refused(response) and url_name not in REFUSED_BY_THE_WORLD):
        failures.append(f"the page's own form {data}: refused ({response.status_code}) "
                        f"{_errors(response)}")
    elapsed = time.monotonic() - started
    assert failures == [], f"{url_name} ({url}) in {elapsed:.1f}s, form fields {sorted(fields)}"
