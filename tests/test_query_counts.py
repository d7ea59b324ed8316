"""N+1 guard: the staff workspace's list pages, the 360 page and its htmx sections, and the API's list and detail
endpoints run as many queries with 4× as many rows as with a few. A count that grows with the rows is a query per
row (an N+1); the counts are compared with each other, not with a number, so a query added once does not fail."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.core.audit import audit_record
from smileloop.customers.models import Consent, Household, HouseholdMember
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.models import FollowupTask, Playbook, PlaybookStep
from smileloop.giftcards.services import friend_card_issue, voucher_issue
from smileloop.giftcards.tests.factories import CampaignFactory, ProgrammeFactory
from smileloop.imports.models import ImportBatch
from smileloop.loyalty.services.packages import package_sell
from smileloop.loyalty.services.wallet import wallet_topup
from smileloop.loyalty.tests.factories import OrderLineFactory, PackageEntitlementFactory, PackageFactory
from smileloop.membership.models import FamilyBinding, WalletShareConsent
from smileloop.membership.tests.factories import (
    BenefitFactory,
    MembershipFactory,
    PlanFactory,
    TierFactory,
    TreatmentPlanFactory,
)
from smileloop.segments.tests.factories import (
    AppointmentFactory,
    OrderFactory,
    ProcedureFactory,
    SegmentFactory,
)
from smileloop.surveys.tests.factories import SurveyFactory
from smileloop.tagging.tests.factories import (
    CustomerTagFactory,
    InteractionFactory,
    TagFactory,
    TagGroupFactory,
)

SMALL, LARGE = 1, 4  # rows of each kind; LARGE is 4× SMALL

PAGES = [
    "/customers/", "/customers/?q=患者", "/customers/?tag={tag}", "/customers/duplicates/",
    "/customers/{c}/",
    "/customers/{c}/?section=timeline&page=1", "/customers/{c}/?section=appointments&page=1",
    "/customers/{c}/?section=orders&page=1", "/customers/{c}/?section=procedures&page=1",
    "/membership/customers/{c}/forms/bind/", "/loyalty/customers/{c}/forms/package/", "/checkout/new/?customer={c}",
    "/tags/", "/tags/{tag}/", "/segments/", "/segments/{segment}/", "/membership/plans/", "/loyalty/",
    "/surveys/", "/imports/", "/audit/", "/followups/", "/followups/board/", "/followups/playbooks/", "/lifecycle/",
    "/checkout/codes/",
]
API = [
    "/api/customers", "/api/customers/{c}", "/api/tags", "/api/tags/customers/{c}", "/api/segments", "/api/surveys",
    "/api/followups/tasks", "/api/followups/playbooks", "/api/membership/customers/{c}",
    "/api/loyalty/customers/{c}/entitlements", "/api/loyalty/customers/{c}/wallet",
]


class World:
    """A patient with long histories of every kind (the 360 page's subject) and the chain's lists around them;
    `grow(k)` adds k rows of each kind, each row with its own doctor, tag group, plan… (one shared related row would
    be read once and hide a query per row)."""

    def __init__(self, chain, clinic, reader, catalogue):
        self.chain, self.clinic, self.reader, self.item = chain, clinic, reader, catalogue["CL01"]
        self.subject = CustomerFactory(chain=chain, home_clinic=clinic)
        self.tag = TagFactory(group=TagGroupFactory(chain=chain))
        self.membership = MembershipFactory(customer=self.subject, tier=TierFactory(plan=PlanFactory(chain=chain)))
        self.household = Household.objects.create(chain=chain, head=self.subject, name="张家")
        HouseholdMember.objects.create(household=self.household, customer=self.subject, relation="self")
        self.segment = SegmentFactory(chain=chain)
        self.rows = 0

    def grow(self, k: int) -> None:
        chain, clinic, subject, item, now = self.chain, self.clinic, self.subject, self.item, timezone.now()
        for _ in range(k):
            self.rows += 1
            n = self.rows
            doctor = StaffFactory(chain=chain, role=Role.DOCTOR, clinics=[clinic])
            other = CustomerFactory(chain=chain, home_clinic=clinic, consultant=doctor, birthday=dt.date(1990, 1, n))
            # a likely duplicate of `other` (same name and phone tail): the duplicates page lists a group per row
            CustomerFactory(chain=chain, home_clinic=clinic, mobile=None, mobile_tail=other.mobile_tail,
                            name=other.name, birthday=other.birthday)
            CustomerTagFactory(customer=subject, tag=TagFactory(group=TagGroupFactory(chain=chain)))
            CustomerTagFactory(customer=other, tag=self.tag)
            MembershipFactory(customer=other, tier=TierFactory(plan=PlanFactory(chain=chain)), enrolled_by=doctor)
            BenefitFactory(tier=self.membership.tier)
            FamilyBinding.objects.create(holder=self.membership, member=other, relation="child", consent_by="self",
                                         consent_at=now, consent_source="form", bound_at=now, bound_by=doctor)
            WalletShareConsent.objects.create(holder=subject, member=other, mode="standing", granted_at=now,
                                              source="form", recorded_by=doctor)
            HouseholdMember.objects.create(household=self.household, customer=other, relation="child")
            AppointmentFactory(customer=subject, doctor=doctor, service_item=item)
            OrderLineFactory(order=OrderFactory(customer=subject, cashier=doctor), item=item)
            ProcedureFactory(customer=subject, doctor=doctor, item=item)
            TreatmentPlanFactory(customer=subject, doctor=doctor)
            InteractionFactory(customer=subject, author=doctor, clinic=clinic, kind="note")
            Consent.objects.create(customer=subject, purpose="marketing_sms", granted=True, source="form",
                                   recorded_by=doctor, recorded_at=now)
            SurveyFactory(chain=chain, clinic=clinic, customer=subject, doctor=doctor, score=9)
            SurveyFactory(chain=chain, clinic=clinic, customer=other, doctor=doctor, score=6)
            audit_record(actor=doctor.user, action="phone.reveal", object_type="customer", object_id=other.id,
                         clinic_id=clinic.id)
            friend_card_issue(member=subject, programme=ProgrammeFactory(chain=chain, limit_per_period=100),
                              trigger="t", key=f"card-{n}", actor=doctor)
            voucher_issue(campaign=CampaignFactory(chain=chain, item=item), customer=subject, key=f"voucher-{n}")
            wallet_topup(customer=subject, amount_fen=100_000, method="cash", key=f"topup-{n}", actor=doctor,
                         clinic=clinic)
            package = PackageFactory(chain=chain, item_code=item.code)
            PackageEntitlementFactory(package=package)
            package_sell(package=package, holder=subject, covered=[subject], key=f"package-{n}", actor=doctor,
                         clinic=clinic, payments=[{"method": "cash", "amount_fen": package.price_fen}])
            ImportBatch.objects.create(chain=chain, kind="customers", status="previewed", original_name=f"{n}.csv",
                                       extension="csv", uploaded_by=self.reader, default_clinic=clinic, report={})
            playbook = Playbook.objects.create(chain=chain, code=f"playbook-{n}", name="召回", trigger="lead_created")
            step = PlaybookStep.objects.create(playbook=playbook, seq=1)
            for customer in (subject, other):
                FollowupTask.objects.create(chain=chain, clinic=clinic, customer=customer, playbook=playbook,
                                            step=step, anchor_key=f"lead:{n}:{customer.id}", anchor_at=now,
                                            doctor=doctor, assignee=self.reader, due_at=now, sla_due_at=now)
            SegmentFactory(chain=chain)


def _counts(client, world: World, token: str) -> dict[str, tuple[int, int]]:
    """(status, query count) of every page, section (as htmx asks for it) and endpoint."""
    values = {"c": world.subject.id, "tag": world.tag.id, "segment": world.segment.id}
    counts = {}
    for template in PAGES + API:
        url = template.format(**values)
        headers = {"Authorization": f"Bearer {token}"} if url.startswith("/api/") else {}
        if "section=" in url:
            headers["HX-Request"] = "true"
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, headers=headers)
        counts[template] = (response.status_code, len(queries))
    return counts


@pytest.mark.django_db
@pytest.mark.parametrize("reader", ["chain_admin", "director_a"])
def test_no_page_section_or_endpoint_queries_once_per_row(client, request, chain, clinic_a, catalogue, reader):
    staff = request.getfixturevalue(reader)
    token = token_create(username=staff.user.username)
    client.force_login(staff.user)
    world = World(chain, clinic_a, staff, catalogue)
    world.grow(SMALL)
    _counts(client, world, token)  # the first answers warm what is read once per process or per login
    small = _counts(client, world, token)
    world.grow(LARGE - SMALL)
    large = _counts(client, world, token)
    refused = {url for url, (status, _) in large.items() if status != 200}
    assert refused == (set() if reader == "chain_admin" else {"/membership/plans/", "/loyalty/", "/followups/playbooks/"})
    grown = {url: f"{small[url]} → {large[url]}" for url in small if small[url] != large[url]}
    assert not grown, f"(status, queries) with {SMALL} → {LARGE} rows of each kind: {grown}"


@pytest.mark.django_db
def test_membership_api_reads_every_family_members_wallet_consent_at_once(client, chain, clinic_a, front_desk_a):
    """The membership answer's `wallet_share` of each family member (standing, per use, none) in one query: it
    was read per member (two queries each)."""
    token = token_create(username=front_desk_a.user.username)
    holder = CustomerFactory(chain=chain, home_clinic=clinic_a)
    membership = MembershipFactory(customer=holder, tier=TierFactory(plan=PlanFactory(chain=chain)))
    now = timezone.now()

    def bind(mode):
        member = CustomerFactory(chain=chain, home_clinic=clinic_a)
        FamilyBinding.objects.create(holder=membership, member=member, relation="child", consent_by="self",
                                     consent_at=now, consent_source="form", bound_at=now)
        if mode:
            WalletShareConsent.objects.create(holder=holder, member=member, mode=mode, granted_at=now, source="form")
        return member

    def answer():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/api/membership/customers/{holder.id}",
                                  headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        return {f["member_id"]: f["wallet_share"] for f in response.json()["family"]}, len(queries)

    expected = {bind(mode).id: mode for mode in ("standing", "per_use", None)}
    answer()  # the token's first use is recorded once
    family, few = answer()
    assert family == expected
    expected |= {bind(mode).id: mode for mode in ("standing", "per_use", None) * 3}
    family, many = answer()
    assert family == expected
    assert many == few
