"""Contract tests of the staff POST actions the forms sweep (tests/test_forms_contract_sweep.py) cannot reach: no page
of its world holds a <form> posting to them, because htmx or a script posts them (hx-post, hx-vals, a button's
formaction), or their form is shown only in a state the sweep's world lacks (a group of duplicates, a household, a
hidden benefit, a chosen trigger, a patient's bill).

For each action, the body is the one the real page sends (read from the page where one holds it), and:
1. that body is accepted and does what it should (asserted in the database);
2. each field broken (missing, blank, letters, 10,000 characters, NUL, negative, fractional, an id of nothing or of
   clinic B's object for a clinic-A-only caller) never gives a 5xx; a refusal changes no row of any table (the
   sweep's Poster compares them) and says why (an error in the fragment, a 4xx with text, or a message);
3. the same valid body posted twice does not double its effect;
4. without its CSRF token it is refused (403) before any view code;
5. a role without the action's permission gets a 403 (or 404) and changes nothing.

The objects are the scope sweep's world (tests/test_scope_sweep.py): clinic B's patient and the chain's
configuration; clinic A's patient (`customer_a`) is the one the clinic-A callers act on."""

import re

import pytest
from django.contrib.messages import ERROR, get_messages
from django.test import Client
from django.urls import reverse

from smileloop.checkout.models import Settlement
from smileloop.clinics.enums import Role
from smileloop.clinics.tests.factories import ChainFactory, StaffFactory
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer, HouseholdMember
from smileloop.customers.services import household_member_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import Playbook, PlaybookStep
from smileloop.followups.services import CREATABLE_TRIGGERS, playbooks_install_defaults
from smileloop.membership.models import BenefitReveal
from smileloop.membership.tests.factories import BenefitFactory, MembershipFactory
from smileloop.surveys.models import Survey
from smileloop.surveys.tests.factories import SurveyFactory
from smileloop.tagging.enums import TagKind
from smileloop.tagging.models import CustomerTag, Tag
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory, TagGroupFactory
from tests import test_forms_contract_sweep as forms_sweep
from tests import test_scope_sweep as sweep

config, director_b, world, no_clinic = sweep.config, sweep.director_b, sweep.world, sweep.no_clinic
Poster = forms_sweep.Poster

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
TOO_LONG = forms_sweep.TOO_LONG
NOTHING = str(sweep.MISSING_ID)

# Hostile values per kind of field: (label, value or None for "missing", must it be refused?).
_ID = [("missing", None), ("blank", ""), ("letters", "abc"), ("10,000 characters", TOO_LONG), ("NUL", "1\x00"),
       ("negative", "-1"), ("fraction", "1.5"), ("huge number", "9" * 30), ("an id of nothing", NOTHING)]
KINDS = {
    # an object's id: every broken value names nothing the caller may act on
    "id": [(label, value, True) for label, value in _ID],
    # text the action needs (a reason): missing, blank, NUL or beyond its length is refused
    "text": [("missing", None, True), ("blank", "   ", True), ("10,000 characters", TOO_LONG, True),
             ("NUL", "a\x00b", True), ("control characters", "a\x01\x1bb", False), ("letters", "abc", False)],
    # optional text: may be left out, but NUL or beyond its length is refused
    "optional text": [("missing", None, False), ("blank", "", False), ("10,000 characters", TOO_LONG, True),
                      ("NUL", "a\x00b", True)],
    # optional text without a length (a description): only NUL is refused
    "long text": [("missing", None, False), ("blank", "", False), ("10,000 characters", TOO_LONG, False),
                  ("NUL", "a\x00b", True)],
    # a field the action reads but may default (a tab, a mode): anything goes, never a 5xx nor a partial write
    "free": [(label, value, False) for label, value in _ID + [("NUL text", "a\x00b")]],
}


def _client(user=None, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf, raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def _error_messages(response) -> list[str]:
    """The error messages this request queued (not those an earlier refusal left unread in the session)."""
    return [str(m) for m in getattr(get_messages(response.wsgi_request), "_queued_messages", [])
            if m.level >= ERROR]


def _says_why(response) -> bool:
    """A refusal that says why: an error in the page or fragment, a 4xx with text, a queued error message, or a
    403/404/405 (whose status is the answer; its page or text names it)."""
    return (response.status_code in (403, 404, 405) or forms_sweep._shows_error(response)
            or bool(_error_messages(response)))


def _refused(response) -> bool:
    return response.status_code >= 400 or forms_sweep._shows_error(response) or bool(_error_messages(response))


def _hostile(user, url: str, valid: dict, fields: dict[str, str], *, headers: dict | None = None,
             expect: dict | None = None) -> list[str]:
    """Each field of `valid` broken in turn (KINDS[fields[name]]); the failures found. `expect` overrides the
    must-refuse flag of a (field, label)."""
    poster = Poster(user) if user is not None else _AnonymousPoster()
    failures = []
    for name, kind in fields.items():
        for label, value, must_refuse in KINDS[kind]:
            must_refuse = (expect or {}).get((name, label), must_refuse)
            body = {k: v for k, v in valid.items() if k != name}
            if value is not None:
                body[name] = value
            response = poster.post(url, body, headers=headers or {})
            what = f"{name} {label}"
            if response.status_code >= 500:
                failures.append(f"{what}: {response.status_code}")
                continue
            refused = _refused(response)
            if refused and poster.changes:
                failures.append(f"{what}: refused ({response.status_code}) but changed {poster.changes}")
            if must_refuse and (not refused or poster.changes):
                failures.append(f"{what}: accepted ({response.status_code}), changed {poster.changes}")
            if refused and not _says_why(response):
                failures.append(f"{what}: refused ({response.status_code}) without saying why")
    return failures


class _AnonymousPoster(Poster):
    """The Poster for a public page (the patient's survey link): no login."""

    def __init__(self):
        self.client = Client(raise_request_exception=False)
        self.may_write = ""
        self.state = forms_sweep.snapshot()
        self.changes = []


def _refused_quietly(user, url: str, body: dict, *, headers: dict | None = None, statuses=(403, 404)) -> None:
    """One post that must be refused with one of `statuses` and change no row."""
    poster = Poster(user) if user is not None else _AnonymousPoster()
    response = poster.post(url, body, headers=headers or {})
    assert response.status_code in statuses, (url, response.status_code, response.content[:300])
    assert poster.changes == []


def _without_csrf(user, url: str, body: dict, *, headers: dict | None = None) -> None:
    poster = Poster(user, csrf=True) if user is not None else _AnonymousPoster()
    if user is None:
        poster.client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    response = poster.post(url, body, headers=headers or {})
    assert response.status_code == 403, (url, response.status_code)
    assert poster.changes == []


def _page_form(client, page: str, *, action: str | None = None, testid: str | None = None,
               fill: dict | None = None) -> dict:
    """The body a browser sends for the form of `page` posting to `action` (or the one marked data-testid)."""
    response = client.get(page)
    assert response.status_code == 200, (page, response.status_code)
    text = response.content.decode()
    forms = forms_sweep._parse(text)
    if testid is not None:
        index = text[:text.index(f'data-testid="{testid}"')].count("<form")
        form = forms[index - 1]
    else:
        form = next(f for f in forms if forms_sweep._path_of(f["action"], page) == action)
    data, _fields = forms_sweep._valid_data(form, fill or {})
    data.pop("csrfmiddlewaretoken", None)
    return {k: (v if len(v) > 1 else v[0]) for k, v in data.items()}


def _staff(chain, role, clinics, username):
    return StaffFactory(chain=chain, role=role, name=username, clinics=clinics, user__username=username)


# --- customers:merge ------------------------------------------------------------------------------------------------

@pytest.fixture
def duplicates(chain, clinic_a):
    """Two records of clinic A's one person (same name, same phone tail): a group of the duplicates page."""
    first = CustomerFactory(chain=chain, name="重复张三", home_clinic=clinic_a, mobile="+8613611112222",
                            mobile_tail="2222")
    second = CustomerFactory(chain=chain, name="重复张三", home_clinic=clinic_a, mobile="+8613633332222",
                             mobile_tail="2222")
    return first, second


def test_merge_takes_the_duplicates_pages_form_once(world, director_a, duplicates):
    first, second = duplicates
    client = _client(director_a.user)
    url = reverse("customers:merge")
    body = _page_form(client, reverse("customers:merge_candidates") + f"?customers={first.id},{second.id}", action=url,
                      fill={"survivor": first.id, "reason": "同一人，前台重复登记"})
    assert body["customers"] == f"{first.id},{second.id}"
    response = client.post(url, body)
    assert response.status_code == 302, response.content[:500]
    second.refresh_from_db()
    assert second.merged_into_id == first.id

    poster = Poster(director_a.user)  # replay: the tombstone is merged once, and the form sent again leads to the kept
    again = poster.post(url, body)   # record, saying the group was merged already
    assert (again.status_code, again.url) == (302, reverse("customers:detail", args=[first.id]))
    assert poster.changes == []
    queued = [str(m) for m in getattr(get_messages(again.wsgi_request), "_queued_messages", [])]
    assert _error_messages(again) == [] and any("already merged" in m for m in queued), queued


def test_merge_refuses_broken_fields_and_clinic_b_records(world, director_a, duplicates):
    first, second = duplicates
    url = reverse("customers:merge")
    valid = {"customers": f"{first.id},{second.id}", "tab": "phone", "survivor": str(first.id), "reason": "同一人"}
    failures = _hostile(director_a.user, url, valid, {"customers": "id", "survivor": "id", "reason": "text",
                                                      "tab": "free"},
                        expect={("customers", "negative"): True})
    # clinic B's patient named in the group, or kept: a 404 as for nobody, nothing merged
    for body in ({**valid, "customers": f"{first.id},{world.customer.id}"},
                 {**valid, "customers": f"{world.customer.id},{second.id}", "survivor": str(world.customer.id)},
                 {**valid, "customers": f"{first.id},{second.id},{world.member.id}"}):
        poster = Poster(director_a.user)
        response = poster.post(url, body)
        if response.status_code != 404 or poster.changes:
            failures.append(f"clinic B in {body['customers']}: {response.status_code}, changed {poster.changes}")
    assert not failures, "\n".join(failures)


def test_merge_needs_its_token_and_the_merge_permission(world, director_a, front_desk_a, duplicates):
    first, second = duplicates
    body = {"customers": f"{first.id},{second.id}", "tab": "phone", "survivor": first.id, "reason": "同一人"}
    _without_csrf(director_a.user, reverse("customers:merge"), body)
    _refused_quietly(front_desk_a.user, reverse("customers:merge"), body, statuses=(403,))
    assert Customer.objects.filter(merged_into__isnull=False).count() == 0


# --- customers:family_remove ----------------------------------------------------------------------------------------

@pytest.fixture
def household(chain, clinic_a, world):
    """Clinic A's patient heads a household with one relative (of clinic A)."""
    relative = CustomerFactory(chain=chain, name="家属甲", home_clinic=clinic_a)
    household_member_add(head=world.customer_a, member=relative, relation="spouse")
    return relative


def test_family_remove_takes_the_relative_out_once(world, director_a, household):
    client = _client(director_a.user)
    page = client.get(reverse("customers:detail", kwargs={"customer_id": world.customer_a.id}))
    url = reverse("customers:family_remove", kwargs={"customer_id": world.customer_a.id, "member_id": household.id})
    assert f'hx-post="{url}"' in page.content.decode()
    response = client.post(url, {}, headers=HX)
    assert response.status_code == 200
    assert not HouseholdMember.objects.filter(customer=household).exists()
    assert not HouseholdMember.objects.filter(customer=world.customer_a).exists()  # one person is no family

    poster = Poster(director_a.user)
    again = poster.post(url, {}, headers=HX)
    assert again.status_code == 404 and poster.changes == []


def test_family_remove_refuses_the_head_of_three_and_others_families(world, chain, clinic_a, director_a, household):
    third = CustomerFactory(chain=chain, name="家属乙", home_clinic=clinic_a)
    household_member_add(head=world.customer_a, member=third, relation="child")
    url = reverse("customers:family_remove", kwargs={"customer_id": world.customer_a.id,
                                                     "member_id": world.customer_a.id})
    poster = Poster(director_a.user)
    response = poster.post(url, {}, headers=HX)
    assert response.status_code == 422 and poster.changes == []
    assert 'data-testid="family-error"' in response.content.decode()

    # clinic B's relative in clinic A's family, clinic B's patient, nobody, and a stray body: 404, nothing removed
    household_member_add(head=world.customer_a, member=world.member, relation="parent")
    kwargs = [{"customer_id": world.customer_a.id, "member_id": world.member.id},
              {"customer_id": world.customer.id, "member_id": world.customer.id},
              {"customer_id": world.customer_a.id, "member_id": sweep.MISSING_ID},
              {"customer_id": sweep.MISSING_ID, "member_id": household.id}]
    for kw in kwargs:
        _refused_quietly(director_a.user, reverse("customers:family_remove", kwargs=kw),
                         {"member": household.id, "x": TOO_LONG}, headers=HX, statuses=(404,))


def test_family_remove_needs_its_token_and_the_edit_permission(world, chain, clinic_a, director_a, household):
    url = reverse("customers:family_remove", kwargs={"customer_id": world.customer_a.id, "member_id": household.id})
    _without_csrf(director_a.user, url, {}, headers=HX)
    assistant = _staff(chain, Role.ASSISTANT, [clinic_a], "assistant_a")
    _refused_quietly(assistant.user, url, {}, headers=HX, statuses=(403,))
    assert HouseholdMember.objects.filter(customer=household).exists()


# --- membership:reveal ----------------------------------------------------------------------------------------------

@pytest.fixture
def hidden_benefit(world):
    """Clinic A's patient is a member of the world's tier, which has a hidden benefit."""
    MembershipFactory(customer=world.customer_a, tier=world.tier)
    return BenefitFactory(tier=world.tier, name="隐藏权益", is_hidden=True)


def test_reveal_reveals_the_hidden_benefit_once(world, director_a, hidden_benefit):
    client = _client(director_a.user)
    url = reverse("membership:reveal", kwargs={"customer_id": world.customer_a.id, "benefit_id": hidden_benefit.id})
    page = client.get(reverse("customers:detail", kwargs={"customer_id": world.customer_a.id}))
    assert f'hx-post="{url}"' in page.content.decode()
    response = client.post(url, {}, headers=HX)
    assert response.status_code == 200
    reveal = BenefitReveal.objects.get(benefit=hidden_benefit)
    assert reveal.trigger == "staff_decision" and reveal.actor_id == director_a.id
    assert client.post(url, {}, headers=HX).status_code == 200  # replay: the first reveal stands
    assert BenefitReveal.objects.filter(benefit=hidden_benefit).count() == 1


def test_reveal_refuses_a_broken_detail_and_what_cannot_be_revealed(world, director_a, hidden_benefit):
    url = reverse("membership:reveal", kwargs={"customer_id": world.customer_a.id, "benefit_id": hidden_benefit.id})
    failures = _hostile(director_a.user, url, {"detail": "患者生日"}, {"detail": "optional text"}, headers=HX)
    # a visible benefit; a patient who is no member: the card again (422) with the reason on top
    for kw in ({"customer_id": world.customer_a.id, "benefit_id": world.benefit.id},
               {"customer_id": CustomerFactory(chain=world.tier.plan.chain, home_clinic=world.clinic_a).id,
                "benefit_id": hidden_benefit.id}):
        poster = Poster(director_a.user)
        response = poster.post(reverse("membership:reveal", kwargs=kw), {}, headers=HX)
        if response.status_code != 422 or poster.changes or 'data-testid="member-card-error"' not in \
                response.content.decode():
            failures.append(f"{kw}: {response.status_code}, changed {poster.changes}")
    assert not failures, "\n".join(failures)
    # clinic B's member, a benefit of nothing: 404
    for kw in ({"customer_id": world.customer.id, "benefit_id": hidden_benefit.id},
               {"customer_id": world.customer_a.id, "benefit_id": sweep.MISSING_ID}):
        _refused_quietly(director_a.user, reverse("membership:reveal", kwargs=kw), {}, headers=HX, statuses=(404,))


def test_reveal_needs_its_token_and_the_edit_permission(world, chain, clinic_a, director_a, hidden_benefit):
    url = reverse("membership:reveal", kwargs={"customer_id": world.customer_a.id, "benefit_id": hidden_benefit.id})
    _without_csrf(director_a.user, url, {}, headers=HX)
    doctor = _staff(chain, Role.DOCTOR, [clinic_a], "doctor_a")
    _refused_quietly(doctor.user, url, {}, headers=HX, statuses=(403,))
    assert not BenefitReveal.objects.filter(benefit=hidden_benefit).exists()


# --- checkout:new ---------------------------------------------------------------------------------------------------

def _bill(client, world, catalogue) -> dict:
    """The bill page's form for clinic A's patient with one cleaning, priced as htmx prices it, then the body its
    "Pay" button sends."""
    page = reverse("checkout:new") + f"?customer={world.customer_a.id}"
    body = _page_form(client, page, action=reverse("checkout:new"))
    items = body["item"] if isinstance(body["item"], list) else [body["item"]]
    body["item"] = [str(catalogue["CL01"].id)] + items[1:]
    priced = client.post(reverse("checkout:new"), {**body, "action": "price"}, headers=HX)
    assert priced.status_code == 200, priced.content[:500]
    text = priced.content.decode()
    for name in ("priced_total", "priced_cash"):
        body[name] = re.search(rf'name="{name}" value="(-?\d+)"', text).group(1)
    body.update(pay_method=["cash", "cash"], pay_amount=["", ""], action="pay")
    return body


def test_checkout_pays_the_priced_bill_once(world, front_desk_a, catalogue):
    client = _client(front_desk_a.user)
    body = _bill(client, world, catalogue)
    assert body["clinic"] == str(world.clinic_a.id)
    before = Settlement.objects.count()
    response = client.post(reverse("checkout:new"), body)
    assert response.status_code == 302, response.content[:800]
    settlement = Settlement.objects.latest("id")
    assert Settlement.objects.count() == before + 1 and settlement.order.customer_id == world.customer_a.id
    assert settlement.order.amount_fen == int(body["priced_total"]) == catalogue["CL01"].list_price_fen
    again = client.post(reverse("checkout:new"), body)  # replay (a double click): the same key pays once
    assert again.status_code == 302 and Settlement.objects.count() == before + 1


def test_checkout_refuses_broken_lines_payments_and_clinic_b(world, front_desk_a, catalogue):
    body = _bill(_client(front_desk_a.user), world, catalogue)
    url = reverse("checkout:new")
    first_only = {**body, "item": body["item"][0], "quantity": "1", "tooth": ""}
    failures = _hostile(front_desk_a.user, url, first_only,
                        {"item": "id", "quantity": "id", "clinic": "id", "key": "text", "pay_amount": "free",
                         "priced_total": "id", "tooth": "optional text", "points": "free", "wallet_amount": "free"},
                        expect={("quantity", "missing"): False, ("quantity", "blank"): False,  # one, as the page
                                ("key", "control characters"): True, ("key", "letters"): False})
    for name, value in (("pay_amount", "-100"), ("pay_amount", "12.345"), ("pay_amount", TOO_LONG),
                        ("clinic", str(world.clinic_b.id)), ("quantity", "0"), ("quantity", "100")):
        poster = Poster(front_desk_a.user)
        response = poster.post(url, {**first_only, name: value})
        if response.status_code >= 500 or poster.changes or not (_refused(response) and _says_why(response)):
            failures.append(f"{name}={value[:20]!r}: {response.status_code}, changed {poster.changes}")
    assert not failures, "\n".join(failures)
    # clinic B's patient, or nobody: 404, nothing paid
    for customer in (world.customer.id, sweep.MISSING_ID, "abc"):
        _refused_quietly(front_desk_a.user, url, {**first_only, "customer": customer}, statuses=(404,))


def test_checkout_needs_its_token_and_the_visit_permission(world, chain, clinic_a, front_desk_a, catalogue):
    body = _bill(_client(front_desk_a.user), world, catalogue)
    before = Settlement.objects.count()
    _without_csrf(front_desk_a.user, reverse("checkout:new"), body)
    consultant = _staff(chain, Role.CONSULTANT, [clinic_a], "consultant_a")
    _refused_quietly(consultant.user, reverse("checkout:new"), body, statuses=(403,))
    assert Settlement.objects.count() == before


# --- tagging:bulk and tagging:customer_add --------------------------------------------------------------------------

def test_bulk_tag_tags_the_ticked_patients_once(world, chain, clinic_a, front_desk_a):
    other = CustomerFactory(chain=chain, name="批量乙", home_clinic=clinic_a)
    client = _client(front_desk_a.user)
    form = client.get(reverse("tagging:bulk"), headers=HX).content.decode()  # what the list loads under its table
    assert f'<option value="{world.tag.id}">' in form and 'hx-post="/' in form
    body = {"next": reverse("customers:list"), "tag": world.tag.id, "action": "apply",
            "customer_ids": [world.customer_a.id, other.id]}
    response = client.post(reverse("tagging:bulk"), body, headers=HX)
    assert response.status_code in (200, 204, 302) and response.get("HX-Redirect", response.get("Location"))
    assert set(CustomerTag.objects.filter(tag=world.tag).values_list("customer_id", flat=True)) >= {
        world.customer_a.id, other.id}
    count = CustomerTag.objects.count()
    client.post(reverse("tagging:bulk"), body, headers=HX)  # replay: no second row
    assert CustomerTag.objects.count() == count
    client.post(reverse("tagging:bulk"), {**body, "action": "remove"}, headers=HX)
    assert not CustomerTag.objects.filter(tag=world.tag, customer__in=[world.customer_a, other]).exists()


def test_bulk_tag_refuses_broken_fields_and_clinic_b_patients(world, chain, clinic_a, front_desk_a):
    other = CustomerFactory(chain=chain, name="批量乙", home_clinic=clinic_a)
    url = reverse("tagging:bulk")
    valid = {"next": reverse("customers:list"), "tag": str(world.tag.id), "action": "apply",
             "customer_ids": str(world.customer_a.id)}
    failures = _hostile(front_desk_a.user, url, valid, {"customer_ids": "id", "tag": "id", "next": "free"},
                        headers=HX)
    failures += _hostile(front_desk_a.user, url, valid, {"action": "id"}, headers=HX,
                         expect={("action", "missing"): False})  # no action: the form's initial (apply)
    rule_tag = TagFactory(group=world.tag_group, kind=TagKind.RULE, rule=world.rule, code="rule_bulk", name="规则")
    other_chain = TagFactory(group=TagGroupFactory(chain=ChainFactory()))
    for name, value in (("customer_ids", [world.customer_a.id, world.customer.id]), ("customer_ids", [other.id, -5]),
                        ("tag", rule_tag.id), ("tag", other_chain.id)):
        poster = Poster(front_desk_a.user)
        response = poster.post(url, {**valid, name: value}, headers=HX)
        if poster.changes or not _error_messages(response):
            failures.append(f"{name}={value}: {response.status_code}, changed {poster.changes}, "
                            f"{_error_messages(response)}")
    assert not failures, "\n".join(failures)


def test_bulk_tag_needs_its_token_and_a_clinic(world, chain, front_desk_a, no_clinic):
    body = {"tag": world.tag.id, "action": "apply", "customer_ids": world.customer_a.id}
    _without_csrf(front_desk_a.user, reverse("tagging:bulk"), body, headers=HX)
    # every role may tag by hand (Perm.TAG_APPLY is in the base set): a director with no clinic left tags nobody
    poster = Poster(no_clinic.user)
    response = poster.post(reverse("tagging:bulk"), body, headers=HX)
    assert poster.changes == [] and _error_messages(response)



def test_customer_tag_add_adds_the_chosen_tag_once(world, front_desk_a):
    client = _client(front_desk_a.user)
    url = reverse("tagging:customer_add", kwargs={"customer_id": world.customer_a.id})
    body = _page_form(client, reverse("customers:detail", kwargs={"customer_id": world.customer_a.id}), action=url,
                      fill={"tag": world.tag.id})
    response = client.post(url, body, headers=HX)
    assert response.status_code == 200
    assert CustomerTag.objects.filter(customer=world.customer_a, tag=world.tag).count() == 1
    poster = Poster(front_desk_a.user)  # replay: the tag is no longer offered; no second row either way
    again = poster.post(url, body, headers=HX)
    assert again.status_code < 500 and poster.changes == []


def test_customer_tag_add_refuses_broken_tags_and_clinic_b(world, front_desk_a):
    url = reverse("tagging:customer_add", kwargs={"customer_id": world.customer_a.id})
    failures = _hostile(front_desk_a.user, url, {"tag": str(world.tag.id)}, {"tag": "id"}, headers=HX)
    rule_tag = TagFactory(group=world.tag_group, kind=TagKind.RULE, rule=world.rule, code="rule_add", name="规则")
    inactive = TagFactory(group=world.tag_group, is_active=False, code="gone", name="停用")
    other_chain = TagFactory(group=TagGroupFactory(chain=ChainFactory()))
    for tag in (rule_tag, inactive, other_chain):
        poster = Poster(front_desk_a.user)
        response = poster.post(url, {"tag": tag.id}, headers=HX)
        if response.status_code != 422 or poster.changes or not _says_why(response):
            failures.append(f"tag {tag.code}: {response.status_code}, changed {poster.changes}")
    assert not failures, "\n".join(failures)
    for customer in (world.customer.id, sweep.MISSING_ID):
        _refused_quietly(front_desk_a.user, reverse("tagging:customer_add", kwargs={"customer_id": customer}),
                         {"tag": world.tag.id}, headers=HX, statuses=(404,))


def test_customer_tag_add_needs_its_token(world, front_desk_a):
    url = reverse("tagging:customer_add", kwargs={"customer_id": world.customer_a.id})
    _without_csrf(front_desk_a.user, url, {"tag": world.tag.id}, headers=HX)
    assert not CustomerTag.objects.filter(customer=world.customer_a).exists()


# --- segments:preview, segments:sql, segments:save_tag --------------------------------------------------------------

def _builder(client, world) -> tuple[dict, dict]:
    """The builder form of the world's segment as the page sends it with its buttons (htmx includes the enclosing
    form), and its condition fields by kind."""
    body = _page_form(client, reverse("segments:edit", kwargs={"segment_id": world.segment.id}), testid=None,
                      action=reverse("segments:edit", kwargs={"segment_id": world.segment.id}))
    conditions = {k: ("free" if k.endswith(("-group", "-shown", "-op")) else "id") for k in body
                  if k.startswith("c-")}
    return body, conditions


def test_preview_and_sql_show_clinic_a_only_and_write_nothing(world, director_a):
    tag_apply(customer=world.customer_a, tag=world.tag, actor=None)
    client = _client(director_a.user)
    body, _conditions = _builder(client, world)
    poster = Poster(director_a.user)
    preview = poster.post(reverse("segments:preview"), body, headers=HX)
    text = preview.content.decode()
    assert preview.status_code == 200 and poster.changes == []
    assert sweep.NAME_A in text and sweep.NAME_B not in text
    sql = poster.post(reverse("segments:sql"), body, headers=HX)
    assert sql.status_code == 200 and poster.changes == [] and "SELECT" in sql.content.decode().upper()


@pytest.mark.parametrize("url_name", ["segments:preview", "segments:sql"])
def test_preview_and_sql_refuse_broken_conditions(world, director_a, url_name):
    body, conditions = _builder(_client(director_a.user), world)
    value = next(k for k in conditions if k.endswith("-value"))
    field = next(k for k in conditions if k.endswith("-field"))
    failures = _hostile(director_a.user, reverse(url_name), body, {**conditions, "mode": "free"}, headers=HX,
                        expect={(value, "missing"): True, (field, "missing"): True})
    assert not failures, "\n".join(failures)


def test_preview_and_sql_need_their_token_and_permissions(world, director_a, front_desk_a):
    body, _conditions = _builder(_client(director_a.user), world)
    for url_name in ("segments:preview", "segments:sql"):
        _without_csrf(director_a.user, reverse(url_name), body, headers=HX)
        _refused_quietly(front_desk_a.user, reverse(url_name), body, headers=HX, statuses=(403,))


def _save_tag_body(client, world) -> dict:
    body, _conditions = _builder(client, world)
    body.update({"tag-group": str(world.tag_group.id), "tag-code": "qa_rule", "tag-name": "契约规则"})
    return body


def test_save_tag_creates_the_rule_tag_once(world, marketing):
    client = _client(marketing.user)
    page = client.get(reverse("segments:edit", kwargs={"segment_id": world.segment.id})).content.decode()
    assert f'hx-post="{reverse("segments:save_tag")}"' in page and 'name="tag-code"' in page
    body = _save_tag_body(client, world)
    response = client.post(reverse("segments:save_tag"), body, headers=HX)
    assert response.status_code in (200, 204, 302) and response.get("HX-Redirect", response.get("Location"))
    tag = Tag.objects.get(chain=world.tag_group.chain, code="qa_rule")
    assert tag.kind == TagKind.RULE and tag.rule == world.rule and tag.group_id == world.tag_group.id
    poster = Poster(marketing.user)  # replay: the code is taken; refused with the reason, no second tag
    again = poster.post(reverse("segments:save_tag"), body, headers=HX)
    assert again.status_code == 422 and poster.changes == [] and _says_why(again)


def test_save_tag_refuses_broken_fields(world, marketing):
    body = _save_tag_body(_client(marketing.user), world)
    failures = _hostile(marketing.user, reverse("segments:save_tag"), body,
                        {"tag-group": "id", "tag-code": "text", "tag-name": "text"}, headers=HX,
                        expect={("tag-code", "control characters"): True})
    other_group = TagGroupFactory(chain=ChainFactory())
    for name, value, statuses in (("tag-group", other_group.id, (422,)), ("tag-id", world.tag.id, (422,)),
                                  ("tag-id", "abc", (404,)), ("tag-id", NOTHING, (404,))):
        poster = Poster(marketing.user)
        response = poster.post(reverse("segments:save_tag"), {**body, name: value}, headers=HX)
        if response.status_code not in statuses or poster.changes or not _says_why(response):
            failures.append(f"{name}={value}: {response.status_code}, changed {poster.changes}")
    assert not failures, "\n".join(failures)


def test_save_tag_needs_its_token_and_the_tag_permission(world, marketing, director_a):
    body = _save_tag_body(_client(marketing.user), world)
    _without_csrf(marketing.user, reverse("segments:save_tag"), body, headers=HX)
    _refused_quietly(director_a.user, reverse("segments:save_tag"), body, headers=HX, statuses=(403,))
    assert not Tag.objects.filter(code="qa_rule").exists()


# --- followups:playbook_new, followups:playbooks_install, followups:step_remove --------------------------------------

def _playbook_body(client) -> dict:
    trigger = CREATABLE_TRIGGERS[0]
    body = _page_form(client, reverse("followups:playbook_new") + f"?trigger={trigger}", testid="playbook-form",
                      fill={"name": "契约回访"})
    assert body["trigger"] == trigger
    return body


def test_playbook_new_creates_an_inactive_playbook(world, chain_admin):
    client = _client(chain_admin.user)
    body = _playbook_body(client)
    before = Playbook.objects.count()
    response = client.post(reverse("followups:playbook_new"), body)
    assert response.status_code == 302, response.content[:800]
    playbook = Playbook.objects.latest("id")
    assert Playbook.objects.count() == before + 1
    assert playbook.name == "契约回访" and not playbook.is_active and playbook.trigger == body["trigger"]


def test_playbook_new_replayed_creates_one_playbook(world, chain_admin):
    client = _client(chain_admin.user)
    body = _playbook_body(client)
    before = Playbook.objects.count()
    client.post(reverse("followups:playbook_new"), body)
    client.post(reverse("followups:playbook_new"), body)
    assert Playbook.objects.count() == before + 1


def test_playbook_new_refuses_broken_fields(world, chain_admin):
    body = _playbook_body(_client(chain_admin.user))
    fields = {"name": "text", "trigger": "id", "goal": "free", "description": "long text"}
    fields.update({k: "free" for k in body if k not in fields})
    failures = _hostile(chain_admin.user, reverse("followups:playbook_new"), body, fields)
    assert not failures, "\n".join(failures)


def test_playbook_new_needs_its_token_and_the_playbook_permission(world, chain_admin, marketing):
    body = _playbook_body(_client(chain_admin.user))
    before = Playbook.objects.count()
    _without_csrf(chain_admin.user, reverse("followups:playbook_new"), body)
    _refused_quietly(marketing.user, reverse("followups:playbook_new"), body, statuses=(403,))
    assert Playbook.objects.count() == before


def test_playbooks_install_installs_the_built_in_ones_once(chain, chain_admin, marketing):
    other = ChainFactory(name="别的连锁")
    playbooks_install_defaults(chain=other)
    theirs = Playbook.objects.filter(chain=other).count()
    assert not Playbook.objects.filter(chain=chain).exists()
    url = reverse("followups:playbooks_install")
    _without_csrf(chain_admin.user, url, {})
    _refused_quietly(marketing.user, url, {}, statuses=(403,))
    client = _client(chain_admin.user)
    assert 'data-testid="playbooks-install"' in client.get(reverse("followups:playbooks")).content.decode()
    response = client.post(url, {"x": TOO_LONG, "chain": other.id})
    assert response.status_code in (200, 204, 302)
    installed = Playbook.objects.filter(chain=chain).count()
    assert installed == theirs > 0
    again = client.post(url, {})  # replay: installed by code, once
    assert again.status_code in (200, 204, 302) and Playbook.objects.filter(chain=chain).count() == installed
    assert Playbook.objects.filter(chain=other).count() == theirs


def _step_body(client, world) -> tuple[str, dict]:
    """The step's form on the playbook editor, sent by its "Remove step" button (formaction)."""
    url = reverse("followups:step_remove", kwargs={"playbook_id": world.playbook.id, "step_id": world.step.id})
    page = reverse("followups:playbook_edit", kwargs={"playbook_id": world.playbook.id})
    assert f'formaction="{url}"' in client.get(page).content.decode()
    return url, _page_form(client, page, action=reverse("followups:step_edit", kwargs={
        "playbook_id": world.playbook.id, "step_id": world.step.id}))


def test_step_remove_removes_the_step_once(world, chain_admin):
    client = _client(chain_admin.user)
    url, body = _step_body(client, world)
    response = client.post(url, body)
    assert response.status_code in (200, 204, 302)
    assert not PlaybookStep.objects.filter(pk=world.step.pk, is_active=True).exists()  # deleted (it had no tasks)
    poster = Poster(chain_admin.user)
    again = poster.post(url, body)
    assert again.status_code == 404 and poster.changes == []


def test_step_remove_refuses_steps_of_other_playbooks_and_chains(world, chain_admin, marketing):
    url, body = _step_body(_client(chain_admin.user), world)
    _without_csrf(chain_admin.user, url, body)
    _refused_quietly(marketing.user, url, body, statuses=(403,))
    other_chain = ChainFactory(name="别的连锁")
    playbooks_install_defaults(chain=other_chain)
    theirs = PlaybookStep.objects.filter(playbook__chain=other_chain).first()
    elsewhere = PlaybookStep.objects.exclude(playbook=world.playbook).filter(playbook__chain=world.playbook.chain,
                                                                             is_active=True).first()
    for playbook_id, step_id in ((world.playbook.id, elsewhere.id), (theirs.playbook_id, theirs.id),
                                 (world.playbook.id, theirs.id), (world.playbook.id, sweep.MISSING_ID),
                                 (sweep.MISSING_ID, world.step.id)):
        _refused_quietly(chain_admin.user, reverse("followups:step_remove", kwargs={
            "playbook_id": playbook_id, "step_id": step_id}), body, statuses=(404,))
    assert PlaybookStep.objects.filter(pk__in=[world.step.pk, theirs.pk, elsewhere.pk], is_active=True).count() == 3


# --- surveys:answer (the patient's public link) ---------------------------------------------------------------------

@pytest.fixture
def open_survey(world):
    return SurveyFactory(chain=world.clinic_a.chain, clinic=world.clinic_a, customer=world.customer_a)


def _survey_body(survey) -> tuple[str, dict]:
    url = reverse("surveys:answer", kwargs={"token": survey.token})
    return url, _page_form(Client(), url, action=url, fill={"score": "9", "comment": "很好"})


def test_survey_answer_is_taken_once(world, open_survey):
    url, body = _survey_body(open_survey)
    client = Client()
    response = client.post(url, body)
    assert response.status_code == 302
    open_survey.refresh_from_db()
    assert open_survey.score == 9 and open_survey.comment == "很好" and open_survey.answered_at is not None
    answered = Survey.objects.values_list("score", "comment", "answered_at").get(pk=open_survey.pk)
    again = client.post(url, {**body, "score": "1"})  # replay (or a changed mind): the first answer stands
    assert again.status_code == 409
    assert Survey.objects.values_list("score", "comment", "answered_at").get(pk=open_survey.pk) == answered


def test_survey_answer_refuses_broken_fields(world, open_survey):
    url, body = _survey_body(open_survey)
    fields = {"score": "id", "comment": "optional text"}
    fields.update({k: "free" for k in body if k not in fields})
    failures = _hostile(None, url, body, fields, expect={("score", "an id of nothing"): True})
    for score in ("11", "-0.5", "１０"):
        poster = _AnonymousPoster()
        response = poster.post(url, {**body, "score": score})
        if response.status_code != 422 or poster.changes or not _says_why(response):
            failures.append(f"score {score}: {response.status_code}, changed {poster.changes}")
    assert not failures, "\n".join(failures)
    _refused_quietly(None, reverse("surveys:answer", kwargs={"token": "nosuchtoken0"}), body, statuses=(404,))
    _without_csrf(None, url, body)


# --- clinics:audit_export -------------------------------------------------------------------------------------------

def _export_body(client) -> dict:
    return _page_form(client, reverse("clinics:audit_log"), action=reverse("clinics:audit_export"),
                      fill={"reason": "监管检查"})


def test_audit_export_is_a_csv_recorded_each_time(world, director_a):
    client = _client(director_a.user)
    body = _export_body(client)
    for n in (1, 2):  # each export is itself audited: a replay is recorded again, on purpose
        response = client.post(reverse("clinics:audit_export"), body)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        forms_sweep._content(response)
        assert AuditEvent.objects.filter(action="audit.export", reason="监管检查").count() == n


def test_audit_export_refuses_broken_filters_and_reasons(world, director_a):
    body = _export_body(_client(director_a.user))
    fields = {"reason": "text"}
    fields.update({k: "free" for k in body if k != "reason"})
    failures = _hostile(director_a.user, reverse("clinics:audit_export"), body, fields)
    dated = [k for k in body if k.endswith(("from", "to", "since", "until", "date"))]
    for name in dated:
        poster = Poster(director_a.user)
        response = poster.post(reverse("clinics:audit_export"), {**body, name: "2026-02-30"})
        if response.status_code != 422 or poster.changes or not _says_why(response):
            failures.append(f"{name} 2026-02-30: {response.status_code}, changed {poster.changes}")
    assert not failures, "\n".join(failures)


def test_audit_export_needs_its_token_and_the_privacy_permission(world, director_a, front_desk_a):
    body = _export_body(_client(director_a.user))
    _without_csrf(director_a.user, reverse("clinics:audit_export"), body)
    _refused_quietly(front_desk_a.user, reverse("clinics:audit_export"), body, statuses=(403,))
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_every_action_is_covered():
    covered = {"customers:merge", "customers:family_remove", "membership:reveal", "checkout:new", "tagging:bulk",
               "tagging:customer_add", "segments:preview", "segments:sql", "segments:save_tag",
               "followups:playbook_new", "followups:playbooks_install", "followups:step_remove", "surveys:answer",
               "clinics:audit_export"}
    names = {n for n, _ in forms_sweep.STAFF_URLS}
    assert covered <= names
