"""Least privilege for every URL (PIPL): a clinic-A staff member (front desk, clinic director) gets a 404 for any
object of clinic B, on every staff page (GET and POST, full page and htmx fragment) and every API operation, and a
refused POST changes nothing; list pages, list endpoints, exports and segment previews never name a clinic-B
patient to them, nor do the pages about their own patient when that patient is linked to clinic B's (household,
family card, wallet share, friend card, referral, duplicate); a body naming a clinic-B patient is refused exactly
as one naming nobody; roles without the phone permission never see a full phone number.

The sweep walks every named URL of the staff namespaces and every API operation. Each path parameter must be known
to PARAMS (how to build clinic B's object for it) or the test fails, so nothing escapes the sweep by being new; a URL
that is chain-wide on purpose is listed in CHAIN_WIDE with its reason (it is still checked for clinic-B patients).

A refusal is a 404. The one other answer accepted is a refusal that cannot depend on the object: the same status
(403 for a role without the operation's permission, 405 for a method the URL does not take, 422 for input refused
before any look-up) given to the same request naming an id that does not exist, so the answer says nothing about
clinic B. A chain admin (for an import, its uploader) gets something other than a 404 for the same URL, so the
sweep cannot pass by building objects nobody can see.
"""

import datetime as dt
import hashlib
import json
import re
import uuid

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from config.api import api
from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.clinics.enums import ROLE_PERMISSIONS, Perm, Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep
from smileloop.followups.services import complaint_task_open, playbooks_install_defaults
from smileloop.giftcards.services import friend_card_issue
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.imports.enums import BatchStatus
from smileloop.imports.models import ImportBatch
from smileloop.loyalty.services.packages import package_sell
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.loyalty.tests.factories import (
    EarnRuleFactory,
    GiftFactory,
    PackageEntitlementFactory,
    PackageFactory,
    TopupBonusRuleFactory,
)
from smileloop.membership.services import family_bind
from smileloop.membership.tests.factories import (
    BenefitFactory,
    MembershipFactory,
    TierFactory,
    TreatmentPlanFactory,
)
from smileloop.segments import services as segment_services
from smileloop.surveys.tests.factories import SurveyFactory
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory, TagGroupFactory
from smileloop.visits.models import PlanStep
from tests.urlwalk import named_urls

pytestmark = pytest.mark.django_db

STAFF_NAMESPACES = ("customers", "imports", "membership", "loyalty", "checkout", "tagging", "segments", "lifecycle",
                    "followups", "surveys")

# Clinic B's patient: a name and a phone found nowhere else, so a response that contains either has shown them. Every
# text of clinic B's records (the family member's name, a complaint, a survey comment) starts with MARK_B.
MARK_B = "边界乙"
NAME_B = "边界乙测试患者"
PHONE_B = "+8613912345678"
NATIONAL_B = PHONE_B[3:]
# Clinic A's patient, for the masking checks.
NAME_A = "静安甲测试患者"
PHONE_A = "+8613787654321"
NATIONAL_A = PHONE_A[3:]


def _full_phone_forms(national: str) -> list[str]:
    return [national, f"{national[:3]} {national[3:7]} {national[7:]}", f"{national[:3]}-{national[3:7]}-{national[7:]}"]


def _masked(national: str) -> str:
    return f"{national[:3]}****{national[-4:]}"


# --- what the sweep walks -----------------------------------------------------------------------------------------

def _staff_urls() -> list[tuple[str, list[str]]]:
    return named_urls(STAFF_NAMESPACES)


_PATH_PARAM = re.compile(r"{(?:[a-z]+:)?([a-z_]+)}")


def _api_operations() -> list[tuple[str, str, str, list[str]]]:
    """(id "METHOD /api/path", method, path template, parameter names) of every API operation."""
    found = []
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                full = "/api/" + "/".join(p.strip("/") for p in (prefix, path) if p.strip("/"))  # as ninja mounts it
                for method in operation.methods:
                    found.append((f"{method} {full}", method, full, _PATH_PARAM.findall(full)))
    return found


STAFF_URLS = _staff_urls()
API_OPERATIONS = _api_operations()


# --- URLs that are deliberately chain-wide (not one clinic's patient data) -----------------------------------------

CHAIN_WIDE = {
    # configuration of the chain, edited by CONFIG / PLAYBOOK_MANAGE / TAG_MANAGE roles; no patient in it
    "membership:plan_edit": "a membership plan is chain configuration",
    "membership:tier_create": "a membership plan is chain configuration",
    "membership:tier_edit": "a membership tier is chain configuration",
    "membership:benefit_create": "a membership tier is chain configuration",
    "membership:benefit_edit": "a membership benefit is chain configuration",
    "loyalty:earn_rule_edit": "an earn rule is chain configuration",
    "loyalty:bonus_rule_edit": "a top-up bonus rule is chain configuration",
    "loyalty:gift_edit": "the gift catalogue is chain configuration",
    "loyalty:package_edit": "a service package is chain configuration",
    "loyalty:entitlement_create": "a service package is chain configuration",
    "loyalty:entitlement_edit": "a package entitlement is chain configuration",
    "followups:playbook_edit": "a follow-up playbook is chain configuration",
    "followups:playbook_toggle": "a follow-up playbook is chain configuration",
    "followups:step_add": "a follow-up playbook is chain configuration",
    "followups:step_edit": "a playbook step is chain configuration",
    "followups:step_remove": "a playbook step is chain configuration",
    "tagging:group_edit": "a tag group is chain configuration",
    "tagging:tag_edit": "a tag definition is chain configuration",
    # chain objects whose patients are cut to the reader's scope (checked: no clinic-B patient in the page)
    "tagging:tag_customers": "a tag is the chain's; the page lists only the patients in the reader's scope",
    "segments:edit": "a segment belongs to the chain; its preview is cut to the reader's scope",
    "segments:count": "a segment belongs to the chain; its count is cut to the reader's scope",
    "segments:delete": "a segment belongs to the chain (deleting needs SEGMENT_MANAGE, not a clinic)",
    "imports:template": "an import template lists the columns the import reads; no patient in it",
    # the patient's own survey link: no login, the unguessable token is the credential
    "surveys:answer": "the patient's public survey link (no staff login; the token is the credential)",
    "surveys:thanks": "the patient's public survey link (no staff login; the token is the credential)",
    # API
    "GET /api/segments/{int:segment_id}": "a segment belongs to the chain",
    "PUT /api/segments/{int:segment_id}": "a segment belongs to the chain (editing needs SEGMENT_MANAGE)",
    "DELETE /api/segments/{int:segment_id}": "a segment belongs to the chain (deleting needs SEGMENT_MANAGE)",
    "GET /api/segments/{int:segment_id}/count": "a segment belongs to the chain; its count is cut to the scope",
    "GET /api/giftcards/codes/{code}": "a card code is a bearer instrument usable at any clinic; the answer "
                                       "names giver and holder only when they are in the reader's scope",
    "POST /api/giftcards/codes/{code}/holder": "a card code is a bearer instrument: its holder may be a patient "
                                               "of any clinic (the holder named must be in the writer's scope)",
    "POST /api/surveys/answer/{token}": "the patient's public survey answer (the token is the credential)",
}


# --- the clinic-B world ---------------------------------------------------------------------------------------------

class World:
    """One clinic's objects (one per kind a URL can name) and the chain's configuration."""


def _config(chain, catalogue, chain_admin) -> World:
    c = World()
    c.tier = TierFactory(plan__chain=chain, name="家庭会员", discount_bp=1000, rank=1)
    c.plan = c.tier.plan
    c.benefit = BenefitFactory(tier=c.tier)
    c.earn_rule = EarnRuleFactory(chain=chain)
    c.bonus_rule = TopupBonusRuleFactory(chain=chain)
    c.gift = GiftFactory(chain=chain)
    c.package = PackageFactory(chain=chain)
    c.entitlement = PackageEntitlementFactory(package=c.package)
    playbooks_install_defaults(chain=chain)
    c.playbook = Playbook.objects.filter(chain=chain).order_by("id").first()
    c.step = PlaybookStep.objects.filter(playbook=c.playbook).order_by("id").first()
    c.programme = ProgrammeFactory(chain=chain, code="friend-card-sweep", name="亲友卡", face_value_fen=60000)
    c.tag_group = TagGroupFactory(chain=chain)
    c.tag = TagFactory(group=c.tag_group)
    c.rule = {"all": [{"field": "tag", "op": "any_of", "value": [c.tag.code]}]}  # every patient of the sweep has it
    c.segment = segment_services.segment_create(chain=chain, name="打过标签", actor=chain_admin, rule=c.rule)
    return c


def _clinic_world(config: World, *, chain, clinic, catalogue, director, name: str, phone: str, key: str) -> World:
    """A patient of `clinic` with everything a URL can name: membership with a family member, a top-up, a paid
    bill, a treatment plan, a follow-up task, a survey, a friend card, a tag, and an import of the clinic's director."""
    w = World()
    w.__dict__.update(config.__dict__)
    w.clinic, w.director = clinic, director
    w.customer = CustomerFactory(chain=chain, name=name, home_clinic=clinic, mobile=phone, mobile_tail=phone[-4:])
    w.member = CustomerFactory(chain=chain, name=f"{name}家属", home_clinic=clinic)
    MembershipFactory(customer=w.customer, tier=w.tier)
    family_bind(holder=w.customer, member=w.member, relation="spouse", consent_source="paper", consent_evidence="F")
    w.topup = wallet_topup(customer=w.customer, amount_fen=20000, method="cash", key=f"{key}-topup", clinic=clinic)
    bill = checkout_price(customer=w.customer, clinic=clinic, lines=[{"item_code": "CL01"}])
    w.settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}],
                                key=f"{key}-pay")
    w.order = w.settlement.order
    w.treatment_plan = TreatmentPlanFactory(customer=w.customer, clinic=clinic)
    PlanStep.objects.create(plan=w.treatment_plan, seq=1, item=catalogue["IM01"])
    w.task = complaint_task_open(customer=w.customer, clinic=clinic, brief=f"{name}投诉", anchor_key=f"{key}-task")
    w.survey = SurveyFactory(chain=chain, clinic=clinic, customer=w.customer, score=3, comment=f"{name}评论")
    w.card = friend_card_issue(member=w.customer, programme=w.programme, trigger="sweep", key=f"{key}-card")
    tag_apply(customer=w.customer, tag=w.tag, actor=None)
    w.purchase = package_sell(package=w.package, holder=w.customer, covered=[w.customer], key=f"{key}-package")
    w.batch = ImportBatch.objects.create(chain=chain, kind="customers", original_name=f"{key}.csv", extension=".csv",
                                         uploaded_by=director, status=BatchStatus.PREVIEWED, default_clinic=clinic)
    return w


@pytest.fixture
def config(chain, catalogue, chain_admin):
    return _config(chain, catalogue, chain_admin)


@pytest.fixture
def director_b(chain, clinic_b):
    return StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, name="院长浦东", clinics=[clinic_b],
                        user__username="director_b")


@pytest.fixture
def no_clinic(chain):
    """A clinic director whose clinics were all taken away: an empty scope, not a chain-wide one."""
    return StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, name="院长无门诊", clinics=[],
                        user__username="director_none")


@pytest.fixture
def world(config, chain, clinic_a, clinic_b, catalogue, front_desk_a, director_a, director_b):
    """Clinic B's objects, and (as `customer_a`) a patient of clinic A for bodies that name one's own patient."""
    w = _clinic_world(config, chain=chain, clinic=clinic_b, catalogue=catalogue, director=director_b, name=NAME_B,
                      phone=PHONE_B, key="b")
    w.director_b = director_b
    w.clinic_a, w.clinic_b = clinic_a, clinic_b
    # Clinic B's task is still assigned to front desk A, who worked at clinic B before moving to clinic A (tasks are
    # assigned to staff of the task's clinic; a move leaves them behind).
    FollowupTask.objects.filter(pk=w.task.pk).update(assignee=front_desk_a)
    w.customer_a = CustomerFactory(chain=chain, name=NAME_A, home_clinic=clinic_a, mobile=PHONE_A,
                                   mobile_tail=PHONE_A[-4:])
    return w


# Path parameter → clinic B's value. A key "namespace:param" (staff) or "/api/prefix:param" (API) wins over "param".
PARAMS = {
    "customer_id": lambda w: w.customer.id,
    "member_id": lambda w: w.member.id,
    "checkout:settlement_id": lambda w: w.settlement.id,
    "/api/checkout:settlement_id": lambda w: w.settlement.id,
    "task_id": lambda w: w.task.id,
    "batch_id": lambda w: w.batch.id,
    "name": lambda w: None,  # the card form's name: filled per URL (see _form_name)
    "survey_id": lambda w: w.survey.id,
    "token": lambda w: w.survey.token,
    "order_id": lambda w: w.order.id,
    "/api/treatment-plans:plan_id": lambda w: w.treatment_plan.id,
    "seq": lambda w: 1,
    "topup_id": lambda w: w.topup.id,
    "purchase_id": lambda w: w.purchase.id,
    "code": lambda w: w.card.code,
    "tag": lambda w: w.tag.code,
    "membership:benefit_id": lambda w: w.benefit.id,
    "/api/membership:benefit_id": lambda w: w.benefit.id,
    # chain configuration (only reached through CHAIN_WIDE URLs)
    "membership:plan_id": lambda w: w.plan.id,
    "tier_id": lambda w: w.tier.id,
    "rule_id": lambda w: w.earn_rule.id,
    "loyalty:bonus_rule_edit:rule_id": lambda w: w.bonus_rule.id,
    "gift_id": lambda w: w.gift.id,
    "package_id": lambda w: w.package.id,
    "entitlement_id": lambda w: w.entitlement.id,
    "playbook_id": lambda w: w.playbook.id,
    "step_id": lambda w: w.step.id,
    "group_id": lambda w: w.tag_group.id,
    "tag_id": lambda w: w.tag.id,
    "segment_id": lambda w: w.segment.id,
    "imports:template:kind": lambda w: "customers",
}

# The same parameter naming nothing (for the "refusal cannot depend on the object" comparison).
MISSING = {"batch_id": uuid.UUID(int=1), "seq": 1, "token": "nosuchtoken0", "code": "NOSUCHCODE0", "tag": "nosuchtag",
           "name": None}
MISSING_ID = 987654321


def _param_key(scope_name: str, url_name: str, param: str) -> str | None:
    for key in (f"{url_name}:{param}", f"{scope_name}:{param}", param):
        if key in PARAMS:
            return key
    return None


def _form_name(url_name: str) -> str:
    return {"membership:form": "enrol", "loyalty:form": "topup"}[url_name]


def _staff_kwargs(world, url_name: str, params: list[str], *, missing: bool = False) -> dict:
    namespace = url_name.split(":")[0]
    kwargs = {}
    for param in params:
        key = _param_key(namespace, url_name, param)
        assert key is not None, f"{url_name}: the sweep does not know how to build clinic B's {param!r}"
        if param == "name":
            kwargs[param] = _form_name(url_name)
        elif missing:
            kwargs[param] = MISSING.get(param, MISSING_ID)
        else:
            kwargs[param] = PARAMS[key](world)
    return kwargs


def _api_prefix(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:3])  # "/api/membership"


def _api_url(world, op_id: str, path: str, params: list[str], *, missing: bool = False) -> str:
    prefix = _api_prefix(path)
    url = path
    for param in params:
        key = _param_key(prefix, op_id, param)
        assert key is not None, f"{op_id}: the sweep does not know how to build clinic B's {param!r}"
        value = MISSING.get(param, MISSING_ID) if missing else PARAMS[key](world)
        url = re.sub(r"{(?:[a-z]+:)?" + param + "}", str(value), url)
    return url


# --- snapshots: a refused POST changes nothing ----------------------------------------------------------------------

# Rows a refused request may legitimately write: the token's last-used time; the caller's own idempotency record
# (a refused write is answered the same way when replayed with its key: core.idempotency).
SNAPSHOT_SKIP = {"clinics.apitoken", "core.idempotencyrecord"}


def _snapshot() -> dict[str, str]:
    state = {}
    for model in apps.get_models():
        if not model.__module__.startswith("smileloop.") or model._meta.label_lower in SNAPSHOT_SKIP:
            continue
        rows = list(model._base_manager.order_by("pk").values_list())
        state[model._meta.label_lower] = hashlib.sha256(repr(rows).encode()).hexdigest() + f" ({len(rows)} rows)"
    return state


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(label for label in before if before[label] != after.get(label))


# --- plausible input --------------------------------------------------------------------------------------------

def _form_data(world) -> dict:
    """One body for every staff form: the fields the forms use, each plausible, naming clinic A where a clinic or
    a customer of one's own is needed, so that only the object in the URL is clinic B's."""
    return {
        "key": "sweep-form", "amount": "100", "amount_fen": "10000", "method": "cash", "points": "10",
        "reason": "sweep", "note": "sweep", "text": "sweep", "body": "sweep", "outcome": "reached", "result": "reached",
        "relation": "spouse", "consent_source": "paper", "consent_evidence": "F-1", "source": "paper",
        "purpose": "marketing", "channel": "sms", "granted": "on", "name": "sweep", "lost_reason": "moved",
        "tier": world.tier.id, "plan": world.plan.id, "gift": world.gift.id, "package": world.package.id,
        "tag": world.tag.id, "assignee": "", "clinic": world.clinic_a.id, "member": world.customer_a.id,
        "mobile": "13600000000", "phone": "13600000000", "gender": "unknown", "quantity": "1", "confirm": "on",
        "step": "", "due_at": "", "next": "/",
    }


# Bodies that pass each operation's input validation, so the request reaches the look-up of the object in the
# path; a reference to "our own" patient in a body is clinic A's. Operations not listed take {}.
API_BODIES = {
    "POST /api/customers/{int:customer_id}/identities": lambda w: {"kind": "phone", "external_id": "13600000001"},
    "POST /api/customers/{int:customer_id}/lost": lambda w: {"reason": "moved away"},
    "POST /api/customers/{int:customer_id}/family": lambda w: {"relative_id": w.customer_a.id, "relation": "parent"},
    "POST /api/orders/{int:order_id}/refunds": lambda w: {"amount_fen": 100, "reason": "sweep"},
    "POST /api/treatment-plans/{int:plan_id}/steps/{int:seq}": lambda w: {"status": "done"},
    "POST /api/membership/customers/{int:customer_id}/enrol": lambda w: {"plan_id": w.plan.id},
    "POST /api/membership/customers/{int:customer_id}/upgrade": lambda w: {"tier_id": w.tier.id},
    "POST /api/membership/customers/{int:customer_id}/downgrade": lambda w: {"tier_id": w.tier.id},
    "POST /api/membership/customers/{int:customer_id}/cancel": lambda w: {"reason": "sweep"},
    "POST /api/membership/customers/{int:customer_id}/family": lambda w: {"member_id": w.customer_a.id,
                                                                         "relation": "spouse"},
    "POST /api/membership/customers/{int:customer_id}/wallet-share": lambda w: {
        "member_id": w.member.id, "mode": "standing", "source": "paper"},
    "POST /api/membership/customers/{int:customer_id}/friend-link": lambda w: {"member_id": w.customer_a.id},
    "POST /api/loyalty/customers/{int:customer_id}/points/award": lambda w: {"rule_code": w.earn_rule.code},
    "POST /api/loyalty/customers/{int:customer_id}/gift-exchanges": lambda w: {"gift_id": w.gift.id},
    "POST /api/loyalty/customers/{int:customer_id}/wallet/topups": lambda w: {"amount_fen": 10000, "method": "cash"},
    "POST /api/loyalty/topups/{int:topup_id}/refunds": lambda w: {"whole": True},
    "POST /api/loyalty/customers/{int:customer_id}/wallet/transfers": lambda w: {"to_customer_id": w.customer_a.id,
                                                                                "amount_fen": 100},
    "POST /api/loyalty/customers/{int:customer_id}/packages": lambda w: {"package_id": w.package.id,
                                                                        "covered_ids": [w.customer.id]},
    "POST /api/loyalty/customers/{int:customer_id}/entitlements/redeem": lambda w: {"item_code": "CL01"},
    "POST /api/loyalty/packages/{int:purchase_id}/cancel": lambda w: {"reason": "sweep"},
    "POST /api/checkout/settlements/{int:settlement_id}/refund": lambda w: {"whole": True, "reason": "sweep"},
    "POST /api/giftcards/codes/{code}/holder": lambda w: {"customer_id": w.customer_a.id},
    "POST /api/tags/customers/{int:customer_id}": lambda w: {"tag": w.tag.code},
    "PUT /api/segments/{int:segment_id}": lambda w: {"name": "改名", "rule": w.segment.rule},
    "POST /api/followups/tasks/{int:task_id}/complete": lambda w: {"outcome": "reached", "note": "sweep"},
    "POST /api/surveys/answer/{token}": lambda w: {"score": 9},
}
API_QUERIES = {"GET /api/loyalty/customers/{int:customer_id}/points/redeem-quote": "?bill_fen=10000"}


def _api_body(world, op_id: str) -> dict:
    return API_BODIES.get(op_id, lambda w: {})(world)


def _api_client(staff) -> tuple[Client, dict]:
    token = token_create(username=staff.user.username)
    return Client(), {"Authorization": f"Bearer {token}"}


def _api_call(client, headers, method: str, url: str, body: dict | None, key: str):
    if method == "GET":
        return client.get(url, headers=headers)
    return client.generic(method, url, data=json.dumps(body or {}), content_type="application/json",
                          headers={**headers, "Idempotency-Key": key})


def _refused(response, probe) -> bool:
    """A 404, or a refusal the object cannot have caused (the same answer for an id that does not exist)."""
    if response.status_code == 404:
        return True
    return response.status_code in (403, 405, 422) and probe.status_code == response.status_code


def _text(response) -> str:
    """The body as text; JSON re-encoded without \\u escapes, so a name in it is found as written."""
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    text = response.content.decode(errors="replace")
    if response.get("Content-Type", "").startswith("application/json"):
        try:
            return json.dumps(json.loads(text), ensure_ascii=False)
        except ValueError:
            return text
    return text


def _no_patient_b(body: str, query: dict | None = None) -> list[str]:
    """Clinic B's patient's name and phone (full or masked) found in `body`; a text the request itself sent (a search
    box shows what was searched for) does not count."""
    sent = " ".join(str(v) for v in (query or {}).values())
    return [text for text in (MARK_B, *_full_phone_forms(NATIONAL_B), _masked(NATIONAL_B))
            if text in body and text not in sent]


# --- the registry knows every parameter -------------------------------------------------------------------------

def test_the_sweep_walks_every_staff_namespace_and_the_api():
    namespaces = {name.split(":")[0] for name, _ in STAFF_URLS}
    assert namespaces == set(STAFF_NAMESPACES)
    assert len(API_OPERATIONS) > 50


@pytest.mark.parametrize(("url_name", "params"), STAFF_URLS, ids=[n for n, _ in STAFF_URLS])
def test_every_staff_url_parameter_is_known_to_the_sweep(url_name, params):
    namespace = url_name.split(":")[0]
    unknown = [p for p in params if _param_key(namespace, url_name, p) is None]
    assert unknown == [], f"{url_name}: add clinic B's {unknown} to PARAMS (or the URL to CHAIN_WIDE with a reason)"


@pytest.mark.parametrize(("op_id", "params"), [(o[0], o[3]) for o in API_OPERATIONS], ids=[o[0] for o in API_OPERATIONS])
def test_every_api_parameter_is_known_to_the_sweep(op_id, params):
    prefix = _api_prefix(op_id.split(" ", 1)[1])
    unknown = [p for p in params if _param_key(prefix, op_id, p) is None]
    assert unknown == [], f"{op_id}: add clinic B's {unknown} to PARAMS (or the operation to CHAIN_WIDE with a reason)"


def test_every_chain_wide_entry_names_a_real_url():
    known = {n for n, _ in STAFF_URLS} | {o[0] for o in API_OPERATIONS}
    assert set(CHAIN_WIDE) - known == set()


# --- staff pages ----------------------------------------------------------------------------------------------------

PARAMETRISED_STAFF = [(n, p) for n, p in STAFF_URLS if p]
LIST_STAFF = [n for n, p in STAFF_URLS if not p]


@pytest.mark.parametrize(("url_name", "params"), PARAMETRISED_STAFF, ids=[n for n, _ in PARAMETRISED_STAFF])
def test_a_clinic_a_user_gets_404_for_clinic_b_objects_on_staff_pages(world, front_desk_a, director_a, chain_admin,
                                                                     url_name, params):
    url = reverse(url_name, kwargs=_staff_kwargs(world, url_name, params))
    probe_url = reverse(url_name, kwargs=_staff_kwargs(world, url_name, params, missing=True))
    data = _form_data(world)
    failures = []
    for staff in (front_desk_a, director_a):
        client = Client()  # CSRF checks off, as in Django's test client by default
        client.force_login(staff.user)
        for htmx in (False, True):
            headers = {"HX-Request": "true"} if htmx else {}
            response = client.get(url, headers=headers)
            if url_name in CHAIN_WIDE:
                if response.status_code >= 500 or _no_patient_b(_text(response)):
                    failures.append(f"{staff.role} GET{' htmx' if htmx else ''}: {response.status_code}, "
                                    f"shows {_no_patient_b(_text(response))}")
                continue
            probe = client.get(probe_url, headers=headers)
            if not _refused(response, probe):
                failures.append(f"{staff.role} GET{' htmx' if htmx else ''}: {response.status_code} "
                                f"(no such id: {probe.status_code})")
            before = _snapshot()
            response = client.post(url, data, headers=headers)
            after = _snapshot()
            probe = client.post(probe_url, data, headers=headers)
            if not _refused(response, probe):
                failures.append(f"{staff.role} POST{' htmx' if htmx else ''}: {response.status_code} "
                                f"(no such id: {probe.status_code})")
            if _changed(before, after):
                failures.append(f"{staff.role} POST{' htmx' if htmx else ''} changed {_changed(before, after)}")
    # sanity: the objects are there and reachable for someone who may see clinic B (imports: the uploader only)
    owner = world.director_b if url_name.startswith("imports:") else chain_admin
    client = Client()
    client.force_login(owner.user)
    response = client.get(url)
    if response.status_code == 404:
        failures.append(f"{owner.role} (may see clinic B) GET: 404, so the sweep proves nothing here")
    assert failures == [], f"{url_name} ({url})"


@pytest.mark.parametrize("url_name", LIST_STAFF)
def test_list_pages_never_show_a_clinic_b_patient_to_clinic_a(world, front_desk_a, director_a, no_clinic, url_name):
    url = reverse(url_name)
    failures = []
    for staff in (front_desk_a, director_a, no_clinic):
        client = Client()
        client.force_login(staff.user)
        for query in ({}, {"q": NAME_B}, {"q": NATIONAL_B}, {"q": NATIONAL_B[-4:]}, {"customer": world.customer.id},
                      {"clinic": world.clinic_b.id}, {"code": world.card.code}):
            response = client.get(url, query)
            body = _text(response)
            if response.status_code >= 500:
                failures.append(f"{staff.role} {query}: {response.status_code}")
            elif _no_patient_b(body, query):
                failures.append(f"{staff.role} {query}: shows {_no_patient_b(body, query)}")
    assert failures == []


# --- API ------------------------------------------------------------------------------------------------------------

PARAMETRISED_API = [o for o in API_OPERATIONS if o[3]]
LIST_API = [o for o in API_OPERATIONS if not o[3]]


@pytest.mark.parametrize(("op_id", "method", "path", "params"), PARAMETRISED_API, ids=[o[0] for o in PARAMETRISED_API])
def test_a_clinic_a_token_gets_404_for_clinic_b_objects_on_the_api(world, front_desk_a, director_a, chain_admin,
                                                                  op_id, method, path, params):
    url = _api_url(world, op_id, path, params) + API_QUERIES.get(op_id, "")
    probe_url = _api_url(world, op_id, path, params, missing=True) + API_QUERIES.get(op_id, "")
    body = _api_body(world, op_id)
    failures = []
    for n, staff in enumerate((front_desk_a, director_a)):
        client, headers = _api_client(staff)
        before = _snapshot()
        response = _api_call(client, headers, method, url, body, key=f"sweep-{n}")
        after = _snapshot()
        text = _text(response)
        if op_id in CHAIN_WIDE:
            if response.status_code >= 500 or _no_patient_b(text):
                failures.append(f"{staff.role}: {response.status_code}, shows {_no_patient_b(text)}")
            continue
        probe = _api_call(client, headers, method, probe_url, body, key=f"sweep-probe-{n}")
        if not _refused(response, probe):
            failures.append(f"{staff.role}: {response.status_code} (no such id: {probe.status_code}) {text[:200]}")
        if _changed(before, after):
            failures.append(f"{staff.role} changed {_changed(before, after)}")
    if method == "GET":
        client, headers = _api_client(chain_admin)
        response = _api_call(client, headers, method, url, None, key="sweep-admin")
        if response.status_code == 404:
            failures.append("chain admin GET: 404, so the sweep proves nothing here")
    assert failures == [], f"{op_id} ({url})"


@pytest.mark.parametrize(("op_id", "method", "path"), [o[:3] for o in LIST_API if o[1] == "GET"],
                         ids=[o[0] for o in LIST_API if o[1] == "GET"])
def test_list_endpoints_never_show_a_clinic_b_patient_to_clinic_a(world, front_desk_a, director_a, no_clinic, op_id,
                                                                 method,
                                                                 path):
    failures = []
    for staff in (front_desk_a, director_a, no_clinic):
        client, headers = _api_client(staff)
        for query in ({}, {"q": NAME_B}, {"q": NATIONAL_B}, {"phone": PHONE_B}, {"customer_id": world.customer.id},
                      {"mine": "false"}, {"clinic": world.clinic_b.id}, {"clinic": world.clinic_b.code}):
            response = client.get(path, query, headers=headers)
            text = _text(response)
            if response.status_code >= 500:
                failures.append(f"{staff.role} {query}: {response.status_code}")
            elif _no_patient_b(text, query):
                failures.append(f"{staff.role} {query}: shows {_no_patient_b(text, query)}")
    assert failures == []


# --- references in a body or query: a clinic-B patient named where one's own is expected -----------------------------

# (what, method, URL builder, body builder naming clinic B's patient). Each is also sent naming an id that does not
# exist: the two answers must be the same refusal, and nothing may change.
def _bill(w, customer_id):
    return {"customer": customer_id, "clinic": w.clinic_a.id, "item": [""], "quantity": ["1"], "tooth": [""],
            "points_mode": "none", "wallet_mode": "none", "vouchers": "", "gift_cards": "", "wallet_amount": "",
            "key": "sweep-bill"}


STAFF_BODY_REFERENCES = [
    ("checkout:new customer", "get", lambda w: reverse("checkout:new"), lambda w, b: {"customer": b}),
    ("checkout:new bill", "post", lambda w: reverse("checkout:new"), lambda w, b: _bill(w, b)),
    ("checkout:holder_register", "post", lambda w: reverse("checkout:holder_register"),
     lambda w, b: {"code": w.card.code, "customer": b}),
    ("customers:merge", "post", lambda w: reverse("customers:merge"),
     lambda w, b: {"customers": f"{w.customer_a.id},{b}", "survivor": w.customer_a.id, "reason": "sweep"}),
    ("customers:merge preview", "get", lambda w: reverse("customers:merge"),
     lambda w, b: {"customers": f"{w.customer_a.id},{b}"}),
    ("customers:family_add", "post", lambda w: reverse("customers:family_add", args=[w.customer_a.id]),
     lambda w, b: {"member": str(b), "relation": "spouse"}),
    ("membership:bind", "post", lambda w: reverse("membership:bind", args=[w.customer_a.id]),
     lambda w, b: {"member": str(b), "relation": "spouse", "consent_source": "paper", "consent_evidence": "F"}),
    ("loyalty:package covered", "post", lambda w: reverse("loyalty:package", args=[w.customer_a.id]),
     lambda w, b: {"package": w.package.id, "covered": [w.customer_a.id, b], "key": "sweep-package"}),
    ("tagging:bulk", "post", lambda w: reverse("tagging:bulk"),
     lambda w, b: {"customer_ids": [b], "tag": w.tag.id, "action": "apply", "next": "/customers/"}),
    ("tagging:bulk remove", "post", lambda w: reverse("tagging:bulk"),
     lambda w, b: {"customer_ids": [b], "tag": w.tag.id, "action": "remove", "next": "/customers/"}),
]


@pytest.mark.parametrize(("what", "method", "url", "body"), STAFF_BODY_REFERENCES,
                         ids=[r[0] for r in STAFF_BODY_REFERENCES])
def test_a_staff_form_naming_a_clinic_b_patient_is_refused_as_if_they_did_not_exist(world, front_desk_a, director_a,
                                                                                   what, method, url, body):
    failures = []
    for staff in (front_desk_a, director_a):
        client = Client()
        client.force_login(staff.user)
        send = getattr(client, method)
        before = _snapshot()
        response = send(url(world), body(world, world.customer.id))
        after = _snapshot()
        probe = send(url(world), body(world, MISSING_ID))
        text = _text(response)
        if response.status_code != probe.status_code or response.status_code >= 500:
            failures.append(f"{staff.role}: {response.status_code} (no such id: {probe.status_code})")
        if response.status_code in (302, 303) and response.get("Location") != probe.get("Location"):
            failures.append(f"{staff.role}: redirected to {response['Location']} (no such id: {probe['Location']})")
        if _no_patient_b(text, {}):
            failures.append(f"{staff.role}: shows {_no_patient_b(text, {})}")
        if method == "post" and _changed(before, after):
            failures.append(f"{staff.role} changed {_changed(before, after)}")
    assert failures == []


API_BODY_REFERENCES = [
    ("POST", "/api/appointments", lambda w, b: {
        "customer_id": b, "clinic": w.clinic_a.id, "start_at": "2026-12-20T10:00:00+08:00",
        "end_at": "2026-12-20T10:30:00+08:00"}),
    ("POST", "/api/orders", lambda w, b: {
        "customer_id": b, "clinic": w.clinic_a.id, "ordered_at": "2026-12-01T10:00:00+08:00",
        "lines": [{"item_code": "CL01"}]}),
    ("POST", "/api/treatment-plans", lambda w, b: {
        "customer_id": b, "clinic": w.clinic_a.id, "title": "种植", "steps": [{"item_code": "IM01"}]}),
    ("POST", "/api/procedures", lambda w, b: {
        "customer_id": b, "clinic": w.clinic_a.id, "item_code": "CL01", "performed_on": "2026-12-01"}),
    ("POST", "/api/checkout/price", lambda w, b: {"customer_id": b, "clinic": w.clinic_a.id,
                                                  "lines": [{"item_code": "CL01"}]}),
    ("POST", "/api/checkout/pay", lambda w, b: {"customer_id": b, "clinic": w.clinic_a.id,
                                                "lines": [{"item_code": "CL01"}],
                                                "payments": [{"method": "cash", "amount_fen": 30000}]}),
    ("POST", "/api/checkout/price", lambda w, b: {"customer_id": w.customer_a.id, "clinic": w.clinic_a.id,
                                                  "lines": [{"item_code": "CL01"}],
                                                  "wallet": {"holder_id": b, "amount_fen": 100}}),
    ("POST", "/api/giftcards/friend-cards", lambda w, b: {"member_id": b, "programme": w.programme.code}),
    ("POST", "/api/giftcards/vouchers", lambda w, b: {"campaign": "nosuch", "customer_id": b}),
    ("POST", "/api/membership/customers/{a}/family", lambda w, b: {"member_id": b, "relation": "spouse"}),
    ("POST", "/api/customers/{a}/family", lambda w, b: {"relative_id": b, "relation": "parent"}),
    ("POST", "/api/membership/customers/{a}/wallet-share", lambda w, b: {"member_id": b, "mode": "standing",
                                                                         "source": "paper"}),
    ("POST", "/api/membership/customers/{a}/friend-link", lambda w, b: {"member_id": b}),
    ("POST", "/api/loyalty/customers/{a}/wallet/transfers", lambda w, b: {"to_customer_id": b, "amount_fen": 100}),
    ("POST", "/api/loyalty/customers/{a}/packages", lambda w, b: {"package_id": w.package.id, "covered_ids": [b]}),
    ("POST", "/api/tags/bulk", lambda w, b: {"tag": w.tag.code, "customer_ids": [b]}),
    ("POST", "/api/tags/bulk", lambda w, b: {"tag": w.tag.code, "customer_ids": [b], "action": "remove"}),
]


@pytest.mark.parametrize(("method", "path", "body"), API_BODY_REFERENCES,
                         ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(API_BODY_REFERENCES)])
def test_an_api_body_naming_a_clinic_b_patient_is_refused_as_if_they_did_not_exist(world, front_desk_a, director_a,
                                                                                  method, path, body):
    url = path.replace("{a}", str(world.customer_a.id))
    failures = []
    for n, staff in enumerate((front_desk_a, director_a)):
        client, headers = _api_client(staff)
        before = _snapshot()
        response = _api_call(client, headers, method, url, body(world, world.customer.id), key=f"ref-{n}")
        after = _snapshot()
        probe = _api_call(client, headers, method, url, body(world, MISSING_ID), key=f"ref-probe-{n}")
        text = _text(response)
        if response.status_code != probe.status_code or response.status_code < 400:
            failures.append(f"{staff.role}: {response.status_code} {text[:200]} (no such id: {probe.status_code} "
                            f"{probe.content[:200]!r})")
        if _no_patient_b(text, {}):
            failures.append(f"{staff.role}: shows {_no_patient_b(text, {})}")
        if _changed(before, after):
            failures.append(f"{staff.role} changed {_changed(before, after)}")
    assert failures == []


def test_an_upsert_with_a_clinic_b_patients_phone_neither_changes_nor_shows_them(world, front_desk_a, director_a):
    failures = []
    for n, staff in enumerate((front_desk_a, director_a)):
        client, headers = _api_client(staff)
        before = _snapshot()
        response = _api_call(client, headers, "POST", "/api/customers/upsert",
                             {"name": "冒名", "mobile": NATIONAL_B, "home_clinic": world.clinic_a.id}, key=f"up-{n}")
        after = _snapshot()
        text = _text(response)
        if response.status_code < 400 or _changed(before, after) or _no_patient_b(text, {"m": NATIONAL_B}):
            failures.append(f"{staff.role}: {response.status_code} {text[:200]} changed {_changed(before, after)}")
    assert failures == []


# --- masking: roles without the phone permission never see a full number ------------------------------------------

NO_PHONE_ROLES = sorted(role for role, perms in ROLE_PERMISSIONS.items() if Perm.PHONE_VIEW not in perms)


def test_the_roles_without_the_phone_permission_are_the_ones_masked_here():
    # Read from ROLE_PERMISSIONS (clinics.enums), not chosen here: doctors, assistants, marketing, member operations.
    assert set(NO_PHONE_ROLES) == {Role.DOCTOR, Role.ASSISTANT, Role.MARKETING, Role.MEMBER_OPS}


@pytest.fixture
def world_a(config, chain, clinic_a, catalogue, director_a):
    """Clinic A's patient with everything a URL can name, for the masking sweep."""
    return _clinic_world(config, chain=chain, clinic=clinic_a, catalogue=catalogue, director=director_a, name=NAME_A,
                         phone=PHONE_A, key="a")


def _full_phone_a(body: str) -> list[str]:
    return [text for text in _full_phone_forms(NATIONAL_A) if text in body]


def _staff_kwargs_a(world_a, url_name: str, params: list[str]) -> dict:
    return {p: (_form_name(url_name) if p == "name" else PARAMS[_param_key(url_name.split(":")[0], url_name, p)](world_a))
            for p in params}


@pytest.mark.parametrize("role", NO_PHONE_ROLES)
def test_staff_pages_never_show_a_full_phone_to_a_role_without_the_phone_permission(world_a, chain, clinic_a, role):
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a], user__username=f"mask_{role}")
    FollowupTask.objects.filter(pk=world_a.task.pk).update(assignee=staff)  # so the inbox lists the patient
    client = Client()
    client.force_login(staff.user)
    failures = []
    for url_name, params in STAFF_URLS:
        url = reverse(url_name, kwargs=_staff_kwargs_a(world_a, url_name, params))
        for query in ({}, {"customer": world_a.customer.id}, {"q": NAME_A}):
            for headers in ({}, {"HX-Request": "true"}):
                response = client.get(url, query, headers=headers)
                if _full_phone_a(_text(response)):
                    failures.append(f"GET {url} {query} {headers}: {response.status_code}")
    for url_name in REVEALS:
        params = dict(STAFF_URLS)[url_name]
        url = reverse(url_name, kwargs=_staff_kwargs_a(world_a, url_name, params))
        response = client.post(url, {"reason": "need to call"})
        if _full_phone_a(_text(response)):
            failures.append(f"POST {url}: {response.status_code}")
    assert failures == []


REVEALS = ("customers:phone_reveal", "followups:call")


@pytest.mark.parametrize("url_name", REVEALS)
def test_the_audited_reveal_shows_the_full_phone_to_a_role_with_the_permission(world_a, front_desk_a, url_name):
    """The other side of the masking checks (so they cannot pass by never finding a number)."""
    FollowupTask.objects.filter(pk=world_a.task.pk).update(assignee=front_desk_a)
    client = Client()
    client.force_login(front_desk_a.user)
    url = reverse(url_name, kwargs=_staff_kwargs_a(world_a, url_name, dict(STAFF_URLS)[url_name]))
    response = client.post(url, {"reason": "need to call"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert _full_phone_a(response.content.decode())


@pytest.mark.parametrize("role", [*NO_PHONE_ROLES, Role.FRONT_DESK, Role.CLINIC_DIRECTOR])
def test_api_answers_never_show_a_full_phone_without_an_audited_reveal(world_a, chain, clinic_a, role):
    """customers.api: "Phones are masked in every response" unless revealed (PHONE_VIEW roles, with a reason)."""
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a], user__username=f"mask_{role}")
    client, headers = _api_client(staff)
    failures = []
    for op_id, method, path, params in API_OPERATIONS:
        if method != "GET":
            continue
        url = path
        for param in params:
            url = re.sub(r"{(?:[a-z]+:)?" + param + "}", str(PARAMS[_param_key(_api_prefix(path), op_id, param)](world_a)),
                         url)
        for query in ({}, {"q": NAME_A}):
            response = client.get(url + API_QUERIES.get(op_id, ""), query, headers=headers)
            if _full_phone_a(_text(response)):
                failures.append(f"{op_id} {query}: {response.status_code}")
    if Perm.PHONE_VIEW not in ROLE_PERMISSIONS[role]:
        response = client.get(f"/api/customers/{world_a.customer.id}", {"reveal_phone": "true", "reason": "call"},
                              headers=headers)
        if _full_phone_a(_text(response)):
            failures.append(f"reveal: {response.status_code}")
    assert failures == []


# --- a clinic-A patient linked to a clinic-B patient: clinic A's pages about their own patient never show them -----

TWIN_PHONE = "+8613911112222"


@pytest.fixture(params=["a_holds", "b_holds"])
def linked(request, world_a, chain, clinic_a, clinic_b, catalogue):
    """Clinic A's patient tied to clinic B's in every way the product knows, either way round. a_holds: A heads the
    household and holds the family card, shares the wallet with B, referred B's friend, gave a friend card B holds,
    and a duplicate of A (same name and birthday) is registered at clinic B. b_holds: B heads the household, holds
    the card A is bound to and shares the wallet with A, referred A, gave a friend card A holds, sold a package
    covering A, and A paid a bill from B's wallet (the sweep's customer, bill and order are then that patient's)."""
    from smileloop.customers.services import household_member_add
    from smileloop.giftcards.services import giftcard_holder_register
    from smileloop.loyalty.services.packages import package_sell
    from smileloop.membership.services.family import friend_link, wallet_share_consent_grant

    b = CustomerFactory(chain=chain, name=NAME_B, home_clinic=clinic_b, mobile=PHONE_B, mobile_tail=PHONE_B[-4:])
    if request.param == "a_holds":
        a = world_a.customer
        household_member_add(head=a, member=b, relation="spouse")
        family_bind(holder=a, member=b, relation="sibling", consent_source="paper", consent_evidence="F-2")
        wallet_share_consent_grant(holder=a, member=b, mode="standing", source="paper")
        friend = CustomerFactory(chain=chain, name="边界乙朋友", home_clinic=clinic_b)
        friend_link(friend=friend, member=a)
        giftcard_holder_register(card=world_a.card, customer=b)
        a.birthday = dt.date(1990, 5, 6)
        a.save(update_fields=["birthday"])
        CustomerFactory(chain=chain, name=NAME_A, birthday=a.birthday, home_clinic=clinic_b, mobile=TWIN_PHONE,
                        mobile_tail=TWIN_PHONE[-4:])
        return world_a
    a = CustomerFactory(chain=chain, name=f"{NAME_A}二", home_clinic=clinic_a, mobile="+8613755556666",
                        mobile_tail="6666")
    MembershipFactory(customer=b, tier=world_a.tier)
    household_member_add(head=b, member=a, relation="spouse")
    family_bind(holder=b, member=a, relation="spouse", consent_source="paper", consent_evidence="F-3")
    wallet_share_consent_grant(holder=b, member=a, mode="standing", source="paper")
    friend_link(friend=a, member=b)
    card = friend_card_issue(member=b, programme=world_a.programme, trigger="sweep", key="b-card-linked")
    giftcard_holder_register(card=card, customer=a)
    package_sell(package=world_a.package, holder=b, covered=[a], key="b-package-linked")
    wallet_topup(customer=b, amount_fen=20000, method="cash", key="b-topup-linked", clinic=clinic_b)
    bill = checkout_price(customer=a, clinic=clinic_a, lines=[{"item_code": "CL01"}],
                          wallet={"holder": b, "amount_fen": 100})
    settlement = checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}],
                              key="a-pay-from-b")
    world_a.customer, world_a.card, world_a.settlement, world_a.order = a, card, settlement, settlement.order
    return world_a


def _clinic_b_people(body: str) -> list[str]:
    texts = [MARK_B, *_full_phone_forms(NATIONAL_B), _masked(NATIONAL_B),
             *_full_phone_forms(TWIN_PHONE[3:]), _masked(TWIN_PHONE[3:])]
    return [text for text in texts if text in body]


def test_clinic_a_pages_about_their_patient_never_show_the_clinic_b_people_linked_to_them(linked, front_desk_a,
                                                                                        director_a, chain_admin):
    admin = Client()
    admin.force_login(chain_admin.user)
    assert NAME_B in _text(admin.get(reverse("customers:detail", args=[linked.customer.id])))  # the links are there
    failures = []
    for staff in (front_desk_a, director_a):
        client = Client()
        client.force_login(staff.user)
        for url_name, params in STAFF_URLS:
            url = reverse(url_name, kwargs=_staff_kwargs_a(linked, url_name, params))
            queries = [{}, {"customer": linked.customer.id}, {"code": linked.card.code}]
            if url_name == "customers:detail":  # the 360 page's history pages (htmx asks for one section's rows)
                queries += [{"section": s, "page": 1} for s in ("timeline", "appointments", "orders", "procedures")]
            for query in queries:
                for headers in ({}, {"HX-Request": "true"}):
                    response = client.get(url, query, headers=headers)
                    shown = _clinic_b_people(_text(response))
                    if shown or response.status_code >= 500:
                        failures.append(f"{staff.role} GET {url} {query} {headers}: {response.status_code} {shown}")
        api_client, headers = _api_client(staff)
        for op_id, method, path, params in API_OPERATIONS:
            if method != "GET":
                continue
            url = path
            for param in params:
                value = PARAMS[_param_key(_api_prefix(path), op_id, param)](linked)
                url = re.sub(r"{(?:[a-z]+:)?" + param + "}", str(value), url)
            response = api_client.get(url + API_QUERIES.get(op_id, ""), headers=headers)
            shown = _clinic_b_people(_text(response))
            if shown or response.status_code >= 500:
                failures.append(f"{staff.role} {op_id}: {response.status_code} {shown}")
    assert failures == []


# --- the list checks are not vacuous: someone who may see clinic B finds its patient there ---------------------------

LIST_SANITY_STAFF = ["customers:list", "tagging:tag_customers", "surveys:nps"]
LIST_SANITY_API = [("GET", "/api/customers", None), ("GET", "/api/followups/tasks?mine=false", None), ("GET", "/api/surveys", None),
                   ("POST", "/api/segments/preview", lambda w: {"rule": w.rule})]


def test_the_chain_admin_finds_clinic_b_on_the_pages_clinic_a_must_not(world, chain_admin):
    client = Client()
    client.force_login(chain_admin.user)
    missing = []
    for url_name in LIST_SANITY_STAFF:
        params = dict(STAFF_URLS)[url_name]
        url = reverse(url_name, kwargs=_staff_kwargs(world, url_name, params))
        if MARK_B not in _text(client.get(url)):
            missing.append(url_name)
    if MARK_B not in _text(client.post(reverse("customers:export"), {"reason": "monthly report"})):
        missing.append("customers:export")
    api_client, headers = _api_client(chain_admin)
    for method, path, body in LIST_SANITY_API:
        response = _api_call(api_client, headers, method, path, body(world) if body else None, key="sanity")
        if MARK_B not in _text(response):
            missing.append(path)
    assert missing == [], missing


@pytest.mark.parametrize("path", ["/api/segments/preview", "/api/segments/validate", "/api/segments/sql"])
def test_segment_previews_never_show_a_clinic_b_patient_to_clinic_a(world, front_desk_a, director_a, path):
    failures = []
    for n, staff in enumerate((front_desk_a, director_a)):
        client, headers = _api_client(staff)
        response = _api_call(client, headers, "POST", path, {"rule": world.rule, "limit": 100}, key=f"seg-{n}")
        if response.status_code >= 500 or _no_patient_b(_text(response)):
            failures.append(f"{staff.role}: {response.status_code} {_no_patient_b(_text(response))}")
    assert failures == []


@pytest.mark.parametrize("url_name", LIST_STAFF)
def test_posts_to_list_pages_never_show_a_clinic_b_patient_to_clinic_a(world, front_desk_a, director_a, no_clinic,
                                                                      url_name):
    """The export, the segment builder's preview, bulk forms: whatever a parameter-less page answers to a POST."""
    failures = []
    for staff in (front_desk_a, director_a, no_clinic):
        client = Client()
        client.force_login(staff.user)
        for data in ({**_form_data(world), "reason": "monthly report"}, {"reason": "monthly report"},
                     {"reason": "monthly report", "clinic": world.clinic_b.id}):
            for headers in ({}, {"HX-Request": "true"}):
                response = client.post(reverse(url_name), data, headers=headers)
                shown = _no_patient_b(_text(response))
                if shown or response.status_code >= 500:
                    failures.append(f"{staff.role} {headers}: {response.status_code} {shown}")
    assert failures == []


def test_an_import_naming_a_clinic_b_patients_phone_neither_shows_nor_changes_them(world, director_a, settings,
                                                                                   tmp_path):
    """A clinic-A director imports customers and orders naming clinic B's patient's phone."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from smileloop.customers.models import Customer
    from smileloop.visits.models import Order

    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    client = Client()
    client.force_login(director_a.user)
    before = Customer.objects.filter(pk=world.customer.pk).values().get()
    failures = []
    orders = ("订单号,手机号,门诊,日期,项目编码,数量,单价,折扣,金额,支付方式\n"
              f"S001,{NATIONAL_B},{world.clinic_a.code},2026-11-01 10:00,CL01,1,300,0,300,现金\n")
    for kind, content in (("customers", f"姓名,手机号,性别\n改名字,{NATIONAL_B},男\n"), ("orders", orders)):
        response = client.post(reverse("imports:upload"), {
            "kind": kind, "default_clinic": world.clinic_a.id,
            "file": SimpleUploadedFile("患者.csv", content.encode())})
        if response.status_code != 302:
            failures.append(f"{kind} upload: {response.status_code} {_no_patient_b(_text(response), {})}")
            continue
        preview = client.get(response.url)
        batch_id = response.url.rstrip("/").split("/")[-1]
        confirm = client.post(reverse("imports:confirm", kwargs={"batch_id": batch_id}), {"skip_invalid": "on"})
        after_confirm = client.get(reverse("imports:preview", kwargs={"batch_id": batch_id}))
        errors_csv = client.post(reverse("imports:errors_csv", kwargs={"batch_id": batch_id}))
        for what, r in (("preview", preview), ("confirm", confirm), ("after", after_confirm), ("errors", errors_csv)):
            # the director's own file's cell, echoed on the preview (masked there for every role since the errors
            # CSV is the audited way to see it in full): what they sent, not clinic B's data
            shown = _no_patient_b(_text(r), {"m": NATIONAL_B, "echo": _masked(NATIONAL_B)})
            if shown or r.status_code >= 500:
                failures.append(f"{kind} {what}: {r.status_code} {shown}")
    after = Customer.objects.filter(pk=world.customer.pk).values().get()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert failures == [] and changed == {}
    assert not Order.objects.filter(customer=world.customer, external_id="S001").exists()


def test_a_task_of_clinic_b_still_assigned_to_a_clinic_a_user_is_not_on_their_patients_360_page(world_a, clinic_b,
                                                                                                front_desk_a):
    """The 360 section reads tasks with task_queryset's rule: a task it lists is one its reader may open."""
    task = complaint_task_open(customer=world_a.customer, clinic=clinic_b, brief=f"{MARK_B}门诊的投诉",
                               anchor_key="b-task-of-a")
    FollowupTask.objects.filter(pk=task.pk).update(assignee=front_desk_a)
    client = Client()
    client.force_login(front_desk_a.user)
    page = _text(client.get(reverse("customers:detail", args=[world_a.customer.id])))
    assert client.get(reverse("followups:task", args=[task.id])).status_code == 404
    assert MARK_B not in page and reverse("followups:task", args=[task.id]) not in page


MIXED = [("staff", name, params) for name, params in STAFF_URLS if {"customer_id", "member_id"} <= set(params)] + [
    ("api", op[0], op[3]) for op in API_OPERATIONS if {"customer_id", "member_id"} <= set(op[3])]


@pytest.mark.parametrize(("kind", "name", "params"), MIXED, ids=[m[1] for m in MIXED])
def test_a_clinic_a_patients_url_naming_a_clinic_b_family_member_is_refused(world_a, chain, clinic_b, front_desk_a,
                                                                           director_a, kind, name, params):
    """Clinic A's patient holds the card clinic B's patient is bound to (with a wallet share): clinic A may not act
    on clinic B's patient through it (the path's second id is clinic B's)."""
    from smileloop.membership.services.family import wallet_share_consent_grant

    b = CustomerFactory(chain=chain, name=NAME_B, home_clinic=clinic_b, mobile=PHONE_B, mobile_tail=PHONE_B[-4:])
    family_bind(holder=world_a.customer, member=b, relation="sibling", consent_source="paper", consent_evidence="F")
    wallet_share_consent_grant(holder=world_a.customer, member=b, mode="standing", source="paper")
    values = {"customer_id": world_a.customer.id, "member_id": b.id}
    failures = []
    for n, staff in enumerate((front_desk_a, director_a)):
        if kind == "staff":
            before = _snapshot()
            client = Client()
            client.force_login(staff.user)
            response = client.post(reverse(name, kwargs=values), {"reason": "sweep"}, headers={"HX-Request": "true"})
            probe = client.post(reverse(name, kwargs={**values, "member_id": MISSING_ID}), {"reason": "sweep"},
                                headers={"HX-Request": "true"})
        else:
            method, path = name.split(" ", 1)
            client, headers = _api_client(staff)  # (its token's creation is audited: before the snapshot)
            before = _snapshot()
            url = path.replace("{int:customer_id}", str(values["customer_id"]))
            response = _api_call(client, headers, method, url.replace("{int:member_id}", str(b.id)),
                                 {"reason": "sweep"}, key=f"mixed-{n}")
            probe = _api_call(client, headers, method, url.replace("{int:member_id}", str(MISSING_ID)),
                              {"reason": "sweep"}, key=f"mixed-probe-{n}")
        after = _snapshot()
        if response.status_code != probe.status_code or response.status_code < 400 or _changed(before, after):
            failures.append(f"{staff.role}: {response.status_code} (no such id: {probe.status_code}) "
                            f"changed {_changed(before, after)}")
    assert failures == []
