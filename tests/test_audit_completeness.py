"""PIPL audit completeness: every response that serves a patient's FULL phone number is matched by an audit row.

The product masks phones by default (138****8000; birthdays and addresses are shown as they are, to every role, and
so are not "unmasked data" here). A role with customer.phone_view may see the full number, and "every access to
unmasked data or export is audited" (core.audit): the same request writes a `phone.reveal`, `customer.export`,
`customer.data_export` or `audit.export` row (ACCESS_ACTIONS) whose actor is the reader.

For every role, the sweep GETs every named staff URL (tests.urlwalk; full page and htmx, the 360 page's history
sections, with the patient's id in the query), the Django admin pages of the patient's records (chain admins),
every read-only POST (exports, data copy, reveals, previews: READ_POSTS) and every API GET (token auth), over a
small chain whose patients have known phones: a mobile, a second phone identity, the mobile staff replaced, a merged
record's, a likely duplicate's (merge pages), another patient's; an IMPORT role also uploads a file naming them and
walks the batch's pages, and an API upsert names the patient by phone (its answer may echo only what it was sent).
The URLs and their parameters
come from tests/test_scope_sweep.py's registry (STAFF_URLS, API_OPERATIONS, PARAMS), so a new page or endpoint is
swept without touching this file. Whenever a response contains a full number in any form (+8613…, 8613…, 13…,
137 8765 4321, 137-8765-4321) and the request wrote no access row by its reader, the test fails, unless the URL is
in EXCEPTIONS with its reason. A reveal's row must name the patient whose number was shown.

API tokens (clinics.services.token_create) belong to a staff login and carry its role: a PMS/POS integration is
such a login, and the API masks phones in every answer (customers.api's docstring) except the audited
`GET /api/customers/{id}?reveal_phone=true&reason=…`; so the API needs no exception here.
"""

import datetime as dt
import io

import openpyxl
import pytest
from django.test import Client
from django.urls import reverse

from smileloop.clinics.enums import ROLE_PERMISSIONS, Perm, Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.models import AuditEvent
from smileloop.customers.models import Customer
from smileloop.customers.services import customer_merge, customer_update, identity_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask
from tests.test_scope_sweep import (
    API_OPERATIONS,
    API_QUERIES,
    NAME_A,
    PHONE_A,
    STAFF_URLS,
    _api_call,
    _api_client,
    _api_url,
    _clinic_world,
    _config,
    _staff_kwargs_a,
    _text,
)
from tests.urlwalk import named_urls

pytestmark = pytest.mark.django_db

ROLES = sorted(ROLE_PERMISSIONS)
HTMX = {"HX-Request": "true"}
ACCESS_ACTIONS = {"phone.reveal", "customer.export", "customer.data_export", "audit.export", "import.errors_export"}

# The patient's other number (a phone identity: a landline kept from an import, an old mobile after a merge), and a
# second patient of the same clinic, each found nowhere else.
OTHER_PHONE = "+8613711223344"
SECOND_NAME = "静安甲第二患者"
SECOND_PHONE = "+8615866554433"
# A likely duplicate of the patient (same name and birthday, another phone): the merge pages compare the two.
TWIN_PHONE = "+8618911112222"
# The patient's history: the mobile they had before staff changed it, and a record of theirs merged into theirs.
OLD_PHONE = "+8613522334455"
MERGED_PHONE = "+8617766778899"

# Staff pages beyond the sweep's namespaces: the audit log (its own export is audited).
EXTRA_NAMESPACES = ("clinics",)

# POSTs that only read (they answer with data, change nothing a later request depends on), with their body.
READ_POSTS = {
    "customers:export": {"reason": "月度报表"},
    "customers:data_copy": {"copy-reason": "本人书面申请"},
    "customers:phone_reveal": {"reason": "回访电话"},
    "followups:call": {"reason": "回访电话"},
    "clinics:audit_export": {"reason": "季度审计"},
    "segments:preview": {"rule": '{"all": []}'},
}

# Responses that show a full number without an audit row on purpose, each with its reason. Keys: a staff URL name,
# "admin:<name>", or an API operation id ("GET /api/…").
EXCEPTIONS: dict[str, str] = {}


def _phone_forms(e164: str) -> list[str]:
    national = e164[3:]
    return [e164, e164[1:], national, f"{national[:3]} {national[3:7]} {national[7:]}",
            f"{national[:3]}-{national[3:7]}-{national[7:]}"]


NEEDLES = [form for phone in (PHONE_A, OTHER_PHONE, SECOND_PHONE,
                                                               TWIN_PHONE, OLD_PHONE, MERGED_PHONE) for form in _phone_forms(phone)]


def _full_phones(body: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in body]


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _body(response) -> str:
    """The response as text; an XLSX download (zipped: the number is not in its bytes) as its cells' values."""
    if not response.get("Content-Type", "").startswith(XLSX):
        return _text(response)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    return "\n".join(" ".join(str(v) for v in row if v is not None) for sheet in book.worksheets
                     for row in sheet.iter_rows(values_only=True))


class Sweep:
    """Sends requests as one staff member and records each response that shows a full phone without an access row."""

    def __init__(self, staff, owners: dict[str, int] | None = None):
        self.staff = staff
        self.owners = owners or {}  # a number's every form → the id of the patient it belongs to
        self.failures: list[str] = []
        self.shown: list[str] = []  # every request that showed a full phone (audited or not)
        self.shown_keys: list[str] = []

    def check(self, key: str, what: str, send, *, sent: str = ""):
        """`sent`: a number the request itself carried (an answer may echo what its caller sent)."""
        last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        response = send()
        body = _body(response)
        if response.status_code >= 500:
            self.failures.append(f"{what}: {response.status_code}")
            return
        shown = [needle for needle in _full_phones(body) if not sent or needle not in _phone_forms(sent)]
        if not shown:
            return
        self.shown.append(what)
        self.shown_keys.append(key)
        rows = list(AuditEvent.objects.filter(pk__gt=last, actor=self.staff.user, action__in=ACCESS_ACTIONS)
                    .values_list("action", "object_id"))
        if not rows and key not in EXCEPTIONS:
            self.failures.append(f"{what}: {response.status_code} shows {shown[:2]} without an audit row")
        # a reveal's row names the patient whose number it showed (an export's names the list, not each patient)
        revealed = {object_id for action, object_id in rows if action == "phone.reveal"}
        whose = {str(self.owners[needle]) for needle in shown if needle in self.owners}
        if rows and all(action == "phone.reveal" for action, _ in rows) and not whose <= revealed:
            self.failures.append(f"{what}: shows the numbers of {sorted(whose)}, the audit rows name {sorted(revealed)}")


@pytest.fixture
def patients(chain, clinic_a, catalogue, chain_admin, director_a):
    """Clinic A's patient with everything a URL can name (test_scope_sweep's world), a history and a second number."""
    world_a = _clinic_world(_config(chain, catalogue, chain_admin), chain=chain, clinic=clinic_a, catalogue=catalogue,
                            director=director_a, name=NAME_A, phone=PHONE_A, key="a")
    customer = world_a.customer
    Customer.objects.filter(pk=customer.pk).update(mobile=OLD_PHONE, mobile_tail=OLD_PHONE[-4:])
    customer.refresh_from_db()
    customer_update(customer=customer, data={"mobile": PHONE_A}, actor=director_a)
    merged = CustomerFactory(chain=chain, name=NAME_A, home_clinic=clinic_a, mobile=MERGED_PHONE,
                             mobile_tail=MERGED_PHONE[-4:])
    customer_merge(scope=scope_for_staff(director_a), survivor=customer, merged=merged, actor=director_a,
                   reason="同一人")
    world_a.customer.refresh_from_db()
    identity_add(customer=world_a.customer, kind="phone", external_id=OTHER_PHONE, source="import")
    world_a.second = CustomerFactory(chain=chain, name=SECOND_NAME, home_clinic=clinic_a, mobile=SECOND_PHONE,
                                     mobile_tail=SECOND_PHONE[-4:], address="上海市静安区南京西路1号",
                                     birthday="1985-03-04")
    world_a.customer.birthday = dt.date(1990, 5, 6)
    world_a.customer.save(update_fields=["birthday"])
    world_a.twin = CustomerFactory(chain=chain, name=NAME_A, birthday=world_a.customer.birthday, home_clinic=clinic_a,
                                   mobile=TWIN_PHONE, mobile_tail=TWIN_PHONE[-4:])
    return world_a


def _owners(world) -> dict[str, int]:
    owners = {(PHONE_A, OTHER_PHONE, OLD_PHONE, MERGED_PHONE): world.customer.id, (SECOND_PHONE,): world.second.id,
              (TWIN_PHONE,): world.twin.id}
    return {form: pk for phones, pk in owners.items() for phone in phones for form in _phone_forms(phone)}


def _staff(chain, clinic_a, role):
    return StaffFactory(chain=chain, role=role, clinics=[] if role == Role.CHAIN_ADMIN else [clinic_a],
                        user__username=f"audit_{role}")


def _staff_pages(sweep: Sweep, client: Client, world):
    for url_name, params in STAFF_URLS + named_urls(EXTRA_NAMESPACES):
        url = reverse(url_name, kwargs=_staff_kwargs_a(world, url_name, params))
        # A page about an object names it in the path; a list page may take the patient or a search in the query.
        requests = [({}, {}), ({}, HTMX)]
        if not params:
            requests += [({"customer": world.customer.id}, {}), ({"q": NAME_A}, HTMX), ({"q": PHONE_A[-4:]}, {}),
                         ({"customers": f"{world.customer.id},{world.twin.id}"}, {})]
        if url_name == "customers:detail":  # the 360 page's history sections (htmx asks for one section's rows)
            requests += [({"section": s, "page": 1}, HTMX) for s in ("timeline", "appointments", "orders",
                                                                      "procedures")]
        for query, headers in requests:
            sweep.check(url_name, f"GET {url} {query} {headers}",
                        lambda u=url, q=query, h=headers: client.get(u, q, headers=h))
    for url_name, data in READ_POSTS.items():
        params = dict(STAFF_URLS + named_urls(EXTRA_NAMESPACES))[url_name]
        url = reverse(url_name, kwargs=_staff_kwargs_a(world, url_name, params))
        for headers in ({}, HTMX):
            sweep.check(url_name, f"POST {url} {headers}", lambda u=url, d=data, h=headers: client.post(u, d, headers=h))


ADMIN_PAGES = [  # (URL name, the object it names: None or a function of the world)
    ("admin:customers_customer_changelist", None),
    ("admin:customers_customer_change", lambda w: w.customer.id),
    ("admin:customers_identity_changelist", None),
    ("admin:customers_interaction_changelist", None),
    ("admin:core_auditevent_changelist", None),
]


def _import(sweep: Sweep, client: Client, world, settings, tmp_path):
    """Upload a customer file naming the known patients' phones (one row twice, so that its phone is in the errors),
    then walk the batch's pages and downloads."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    rows = f"姓名,手机号,性别\n{NAME_A},{PHONE_A[3:]},男\n{SECOND_NAME},{SECOND_PHONE[3:]},女\n" \
           f"{SECOND_NAME},{SECOND_PHONE[3:]},女\n"
    response = client.post(reverse("imports:upload"), {
        "kind": "customers", "default_clinic": world.clinic.id, "file": SimpleUploadedFile("患者.csv", rows.encode())})
    assert response.status_code == 302, response.status_code
    batch_id = response.url.rstrip("/").split("/")[-1]
    for url_name in ("imports:preview", "imports:progress"):
        url = reverse(url_name, kwargs={"batch_id": batch_id})
        for headers in ({}, HTMX):
            sweep.check(url_name, f"GET {url} {headers}", lambda u=url, h=headers: client.get(u, headers=h))
    url = reverse("imports:errors_csv", kwargs={"batch_id": batch_id})  # a POST: audited as import.errors_export
    sweep.check("imports:errors_csv", f"POST {url}", lambda: client.post(url))


def _admin_pages(sweep: Sweep, client: Client, world):
    for url_name, obj in ADMIN_PAGES:
        url = reverse(url_name, args=[obj(world)] if obj else [])
        for query in ({}, {"q": NAME_A}):
            sweep.check(url_name, f"GET {url} {query}", lambda u=url, q=query: client.get(u, q))


def _api(sweep: Sweep, world):
    client, headers = _api_client(sweep.staff)  # (the token's creation writes its own row: before any count)
    for op_id, method, path, params in API_OPERATIONS:
        if method != "GET":
            continue
        url = _api_url(world, op_id, path, params) if params else path
        url += API_QUERIES.get(op_id, "")
        queries = [{}] if params else [{}, {"q": NAME_A}, {"customer_id": world.customer.id}]
        for query in queries:
            sweep.check(op_id, f"{op_id} {query}", lambda u=url, q=query: client.get(u, q, headers=headers))
    # an upsert naming the patient by their phone answers with the record: its other numbers stay masked
    for n, mobile in enumerate((PHONE_A[3:], f"{PHONE_A[3:6]} {PHONE_A[6:10]} {PHONE_A[10:]}")):
        sweep.check("POST /api/customers/upsert", f"upsert {mobile}", lambda m=mobile, k=n: _api_call(
            client, headers, "POST", "/api/customers/upsert", {"mobile": m, "name": NAME_A}, key=f"audit-up-{k}"),
            sent=PHONE_A)
    url = f"/api/customers/{world.customer.id}"
    sweep.check("GET /api/customers/{int:customer_id}", "reveal_phone",
                lambda: client.get(url, {"reveal_phone": "true", "reason": "回访电话"}, headers=headers))


@pytest.mark.parametrize("role", ROLES)
def test_every_response_with_a_full_phone_is_audited(patients, chain, clinic_a, role, settings, tmp_path):
    staff = _staff(chain, clinic_a, role)
    FollowupTask.objects.filter(pk=patients.task.pk).update(assignee=staff)  # so the inbox lists the patient
    client = Client()
    client.force_login(staff.user)
    sweep = Sweep(staff, _owners(patients))
    _staff_pages(sweep, client, patients)
    if Perm.ADMIN_SITE in ROLE_PERMISSIONS[role]:
        _admin_pages(sweep, client, patients)
    if Perm.IMPORT in ROLE_PERMISSIONS[role]:
        _import(sweep, client, patients, settings, tmp_path)
    _api(sweep, patients)
    assert sweep.failures == []
    # not vacuous: what the role may do did show the full numbers (and was audited)
    expected = {"customers:phone_reveal", "followups:call", "GET /api/customers/{int:customer_id}"} \
        if Perm.PHONE_VIEW in ROLE_PERMISSIONS[role] else set()
    expected |= {"customers:export"} if Perm.CUSTOMER_EXPORT in ROLE_PERMISSIONS[role] else set()
    expected |= {"customers:data_copy"} if Perm.CUSTOMER_PRIVACY in ROLE_PERMISSIONS[role] else set()
    assert expected <= set(sweep.shown_keys), (role, sweep.shown)


def test_every_exception_names_a_real_url():
    known = ({n for n, _ in STAFF_URLS + named_urls(EXTRA_NAMESPACES)} | {n for n, _ in ADMIN_PAGES}
             | {o[0] for o in API_OPERATIONS})
    assert set(EXCEPTIONS) - known == set()
    assert set(READ_POSTS) <= {n for n, _ in STAFF_URLS + named_urls(EXTRA_NAMESPACES)}


def test_the_sweep_catches_a_full_phone_served_without_an_audit_row(patients, chain, clinic_a):
    """The check itself: a response with the full number and no row fails, the audited reveal passes."""
    staff = _staff(chain, clinic_a, Role.FRONT_DESK)
    client = Client()
    client.force_login(staff.user)
    sweep = Sweep(staff)
    from django.http import HttpResponse

    sweep.check("none", "unaudited", lambda: HttpResponse(f"电话 {PHONE_A[3:6]} {PHONE_A[6:10]} {PHONE_A[10:]}"))
    assert len(sweep.failures) == 1
    url = reverse("customers:phone_reveal", args=[patients.customer.id])
    sweep.check("customers:phone_reveal", "reveal", lambda: client.post(url, {"reason": "回访电话"}))
    assert sweep.shown_keys == ["none", "customers:phone_reveal"] and len(sweep.failures) == 1
