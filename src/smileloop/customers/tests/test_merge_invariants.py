"""Invariant (property-based) tests of `customer_merge` across every app.

Two or three records of one person get randomly chosen rows through the apps' own services (identities, visits,
bills with refunds, plans, procedures, consents at different times, tags, keyword hits, follow-up tasks, points,
wallet top-ups, memberships, family cards, friend links, households in every shape, vouchers); then they are merged,
one into another or in a chain (A into B, then B into C). A reference taken before the merge, generically over
every foreign key to Customer found through the model registry (so a new app is covered without touching this
test), says what must hold afterwards:

- every row that pointed at a merged-away record points at its survivor (through a chain, at the last one);
- no table loses a row, except the rows the merge is documented to collapse, each checked against its rule
  (search keys; the merged record's household place; a tag or keyword-hit day both records had; a household left
  with one person);
- ledger balances of the records add up on the survivor, and the books reconcile;
- no unique rule is broken: one live person per phone, identities only on live records, one active membership,
  one active binding, no binding, consent or friend link of a person with themselves, a household per person;
- the merged-away record is a tombstone pointing at its survivor, with its merge record and audit row;
- a merge into itself, into an already merged record or of a record outside the staff member's clinics is
  refused and changes nothing.
"""

import datetime as dt
import itertools

import pytest
from django.apps import apps
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.errors import Conflict, NotFound, ValidationFailed
from smileloop.core.models import AuditEvent
from smileloop.customers.enums import IdentityKind, Relation
from smileloop.customers.models import (
    Customer,
    CustomerMerge,
    CustomerSearchKey,
    Household,
    HouseholdMember,
    Identity,
)
from smileloop.customers.services import (
    consent_record,
    customer_merge,
    household_member_add,
    identity_add,
)
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.services import complaint_task_open
from smileloop.giftcards.services import voucher_issue
from smileloop.giftcards.tests.factories import CampaignFactory
from smileloop.ledger.models import Account
from smileloop.ledger.selectors import ledger_check
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.models import EntitlementGrant, EntitlementUse, PackageCover
from smileloop.loyalty.services import entitlement_redeem, package_sell, points_award, wallet_topup
from smileloop.loyalty.tests.factories import EarnRuleFactory, PackageEntitlementFactory, PackageFactory
from smileloop.membership.enums import MembershipStatus, PlanKind, WalletShareMode
from smileloop.membership.models import FamilyBinding, FriendLink, Membership, WalletShareConsent
from smileloop.membership.services import (
    family_bind,
    friend_link,
    membership_enrol,
    wallet_share_consent_grant,
)
from smileloop.membership.tests.factories import PlanFactory, TierFactory
from smileloop.tagging.enums import TagSource
from smileloop.tagging.models import CustomerTag, KeywordHit
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory
from smileloop.visits.enums import AppointmentStatus, Category
from smileloop.visits.models import Appointment, Order, ServiceItem
from smileloop.visits.services import (
    appointment_upsert,
    order_record,
    plan_record,
    procedure_record,
    refund_record,
)
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
DAYS = [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
_keys = itertools.count()


def key(prefix: str) -> str:
    return f"{prefix}-{next(_keys)}"


# --- the generic reference ------------------------------------------------------------------------------


def customer_foreign_keys() -> list:
    """Every concrete foreign key (and one-to-one) to Customer in every installed app, hidden ones included."""
    return [(model, field) for model in apps.get_models() for field in model._meta.concrete_fields
            if field.is_relation and field.related_model is Customer]


def fk_rows(ids) -> dict:
    """{(model label, pk, column): customer id} of every row in any app naming one of `ids`."""
    rows = {}
    for model, field in customer_foreign_keys():
        for pk, value in model._base_manager.filter(**{f"{field.attname}__in": ids}).values_list("pk", field.attname):
            rows[(model._meta.label, pk, field.attname)] = value
    return rows


def table_counts() -> dict:
    return {model._meta.label: model._base_manager.count() for model in apps.get_models()}


def world(ids) -> tuple:
    """What a refused merge must leave exactly as it was."""
    people = list(Customer.objects.filter(pk__in=ids).order_by("pk").values())
    return table_counts(), fk_rows(ids), people


def reference_visits(customer_id: int) -> int:
    """visit_count as the visits app documents it: the arrived or completed appointments, plus the (local) days
    with a bill and no such appointment."""
    appointments = [timezone.localdate(at) for at in Appointment.objects.filter(
        customer_id=customer_id, status__in=[AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED],
    ).values_list("start_at", flat=True)]
    bill_days = {timezone.localdate(at) for at in Order.objects.filter(customer_id=customer_id)
                 .values_list("ordered_at", flat=True)}
    return len(appointments) + len(bill_days - set(appointments))


def balances(ids) -> dict:
    out: dict[str, int] = {}
    for kind, balance in Account.objects.filter(customer_id__in=ids).values_list("kind", "balance"):
        out[kind] = out.get(kind, 0) + balance
    return {k: v for k, v in out.items() if v}


class Before:
    """The state the merge of `merged` into `survivor` is checked against, read before it."""

    def __init__(self, survivor: Customer, merged: Customer):
        self.s, self.m = survivor.pk, merged.pk
        ids = [self.s, self.m]
        self.rows = fk_rows(ids)
        self.counts = table_counts()
        self.balances = balances(ids)
        people = {c.pk: c for c in Customer.objects.filter(pk__in=ids)}
        self.spend = sum(c.lifetime_spend_fen for c in people.values())
        for c in people.values():
            assert c.visit_count == reference_visits(c.pk), "the reference is not the visits app's rule"
        self.mobiles = {c.mobile for c in people.values() if c.mobile}
        tags = CustomerTag.objects.filter(customer_id__in=ids)
        self.grants = {g.pk: (g.customer_id, g.purchase_id, g.entitlement_id, g.label)
                       for g in EntitlementGrant.objects.filter(customer_id__in=ids)}
        self.covers = {pk: (customer_id, purchase_id) for pk, customer_id, purchase_id in
                       PackageCover.objects.filter(customer_id__in=ids).values_list("pk", "customer_id", "purchase_id")}
        self.uses = dict(EntitlementUse.objects.filter(customer_id__in=ids).values_list("pk", "grant_id"))
        self.tags = {(t.customer_id, t.tag_id): t.source for t in tags}
        self.tag_rows = {t.pk: (t.customer_id, t.tag_id, t.source) for t in tags}
        self.hits = {(h.customer_id, h.tag_id, h.day): h.hits for h in KeywordHit.objects.filter(customer_id__in=ids)}
        self.household_of = dict(HouseholdMember.objects.values_list("pk", "household_id"))
        self.household_size = {}
        for household_id in self.household_of.values():
            self.household_size[household_id] = self.household_size.get(household_id, 0) + 1
        self.member_customer = dict(HouseholdMember.objects.values_list("pk", "customer_id"))
        self.heads = dict(Household.objects.values_list("pk", "head_id"))


# Rows the merge is documented to collapse; any other row that disappears is a lost row.
COLLAPSING = {"customers.CustomerSearchKey", "customers.HouseholdMember", "customers.Household",
              "tagging.CustomerTag", "tagging.KeywordHit", "loyalty.PackageCover", "loyalty.EntitlementGrant"}


def check_merge(before: Before) -> None:
    s, m = before.s, before.m
    # 1. every row naming the merged record names the survivor (the tombstone's own pointer and merge records
    #    excepted: a record merged into the merged one earlier keeps pointing at it, as documented)
    after = fk_rows([s, m])
    vanished = []
    for (label, pk, column), value in before.rows.items():
        if (label, pk, column) not in after:
            still = apps.get_model(label)._base_manager.filter(pk=pk).exists()
            assert not still or value not in (s, m), f"{label} #{pk}.{column} points elsewhere than {s}"
            vanished.append((label, pk, column, value))
            continue
        if label == "customers.CustomerMerge" or (label == "customers.Customer" and column == "merged_into_id"):
            assert after[(label, pk, column)] == value, (label, pk, column)
        else:
            assert after[(label, pk, column)] == s, f"{label} #{pk}.{column} still names {value}, not {s}"
    for (label, pk, column), value in after.items():
        if label != "customers.CustomerMerge" and column != "merged_into_id":
            assert value != m, f"{label} #{pk}.{column} names the merged record {m}"
    # 2. rows vanish only where documented, each by its rule
    for label, pk, _column, value in vanished:
        assert label in COLLAPSING, f"{label} #{pk} (of customer {value}) was lost by the merge"
        if label == "customers.CustomerSearchKey":
            assert value == m
        elif label == "tagging.CustomerTag":
            _customer, tag_id, _source = before.tag_rows[pk]
            assert CustomerTag.objects.filter(customer_id=s, tag_id=tag_id).exists(), f"tag {tag_id} was lost"
            if value == s:  # the survivor's own row yields only to one the merged record's staff set by hand
                assert before.tags.get((m, tag_id)) not in (None, TagSource.RULE) and _source == TagSource.RULE
        elif label == "loyalty.PackageCover":
            customer_id, purchase_id = before.covers[pk]
            assert customer_id == m and PackageCover.objects.filter(customer_id=s, purchase_id=purchase_id).exists()
        elif label == "loyalty.EntitlementGrant":
            customer_id, purchase_id, entitlement_id, grant_label = before.grants[pk]
            twin = EntitlementGrant.objects.get(customer_id=s, purchase_id=purchase_id, entitlement_id=entitlement_id,
                                                label=grant_label)
            assert customer_id == m and twin.pk in before.grants
            # its uses were not lost: they are the survivor's grant's now
            for use_pk, grant_pk in before.uses.items():
                if grant_pk == pk:
                    assert EntitlementUse.objects.get(pk=use_pk).grant_id == twin.pk
        elif label == "customers.HouseholdMember":
            household_id = before.household_of[pk]
            dissolved = not Household.objects.filter(pk=household_id).exists()
            assert value == m or (dissolved and before.household_size[household_id] == 2), (
                f"household member #{pk} (customer {value}) was dropped from a household that goes on")
    # the merge's relatives keep their place, unless theirs was a household of them and the merged record alone
    kept = set(HouseholdMember.objects.values_list("pk", flat=True))
    for pk, customer_id in before.member_customer.items():
        if customer_id not in (s, m) and pk not in kept:
            household_id = before.household_of[pk]
            assert before.household_size[household_id] == 2 and not Household.objects.filter(pk=household_id).exists(), (
                f"customer {customer_id} lost their household place #{pk}")
    counts = table_counts()
    for label, count in before.counts.items():
        if label not in COLLAPSING:
            assert counts[label] >= count, f"{label}: {count} rows before the merge, {counts[label]} after"
    for household_id, head in before.heads.items():
        if not Household.objects.filter(pk=household_id).exists():
            assert head in (s, m) or before.household_size.get(household_id, 0) <= 2, household_id
    for (customer_id, tag_id, day), hits in before.hits.items():
        if customer_id == m and (s, tag_id, day) in before.hits:
            assert KeywordHit.objects.get(customer_id=s, tag_id=tag_id, day=day).hits == hits + before.hits[
                (s, tag_id, day)]
    # 3. money adds up
    assert balances([s]) == before.balances
    assert balances([m]) == {}
    assert not Account.objects.filter(customer_id=m).exists()
    assert ledger_check(chain_id=Customer.objects.get(pk=s).chain_id) == []
    survivor = Customer.objects.get(pk=s)
    assert survivor.lifetime_spend_fen == before.spend
    assert survivor.visit_count == reference_visits(s), "one person's visit on one day counts once"
    # 4. the tombstone, its merge record and the audit row
    tomb = Customer.objects.get(pk=m)
    assert tomb.merged_into_id == s and tomb.mobile is None
    assert CustomerMerge.objects.filter(survivor_id=s, merged_id=m).count() == 1
    assert AuditEvent.objects.filter(action="customer.merge", object_id=str(s), detail__merged_id=m).count() == 1
    # 5. both numbers still find the survivor: as its mobile or as a phone identity
    numbers = {survivor.mobile} | set(Identity.objects.filter(customer_id=s, kind=IdentityKind.PHONE)
                                      .values_list("external_id", flat=True))
    assert before.mobiles <= numbers


def check_world(chain_id: int) -> None:
    """Unique rules the merges must keep, over the whole chain."""
    live = Customer.objects.filter(chain_id=chain_id, merged_into__isnull=True)
    live_ids = set(live.values_list("pk", flat=True))
    mobiles = [m for m in live.values_list("mobile", flat=True) if m]
    assert len(mobiles) == len(set(mobiles))
    phone_of = {}
    for customer_id, number in Identity.objects.filter(chain_id=chain_id).values_list("customer_id", "external_id"):
        assert customer_id in live_ids, f"identity {number} is on the tombstone {customer_id}"
    for customer_id, number in Identity.objects.filter(chain_id=chain_id, kind=IdentityKind.PHONE).values_list(
            "customer_id", "external_id"):
        phone_of[number] = customer_id
    for customer_id, mobile in live.exclude(mobile__isnull=True).values_list("pk", "mobile"):
        assert phone_of.get(mobile, customer_id) == customer_id, f"{mobile} is two people's"
    merged_ids = set(Customer.objects.filter(chain_id=chain_id, merged_into__isnull=False).values_list("pk", flat=True))
    assert not CustomerSearchKey.objects.filter(customer_id__in=merged_ids).exists()
    assert not CustomerTag.objects.filter(customer_id__in=merged_ids).exists()
    assert not KeywordHit.objects.filter(customer_id__in=merged_ids).exists()
    # households: every member live, every household has its head as a member with the relation head, two or more
    for household in Household.objects.filter(chain_id=chain_id):
        members = dict(HouseholdMember.objects.filter(household=household).values_list("customer_id", "relation"))
        assert household.head_id in live_ids
        assert members.get(household.head_id) == Relation.HEAD, (household.pk, household.head_id, members)
        assert list(members.values()).count(Relation.HEAD) == 1, members
        assert len(members) >= 2, members
        assert set(members) <= live_ids
    # memberships, bindings, consents and links: live people, never with themselves
    active = Membership.objects.filter(chain_id=chain_id, status=MembershipStatus.ACTIVE)
    assert set(active.values_list("customer_id", flat=True)) <= live_ids
    for binding in FamilyBinding.objects.filter(unbound_at__isnull=True, member__chain_id=chain_id).select_related(
            "holder__tier"):
        assert binding.member_id != binding.holder.customer_id
        assert binding.member_id in live_ids
        assert binding.holder.status == MembershipStatus.ACTIVE, binding.pk
    for holder in active.select_related("tier"):
        assert FamilyBinding.objects.filter(holder=holder, unbound_at__isnull=True).count() <= holder.tier.family_slots
    for consent in WalletShareConsent.objects.filter(revoked_at__isnull=True, holder__chain_id=chain_id):
        assert consent.holder_id != consent.member_id and {consent.holder_id, consent.member_id} <= live_ids
    for link in FriendLink.objects.filter(ended_at__isnull=True, friend__chain_id=chain_id):
        assert link.friend_id != link.member_id and {link.friend_id, link.member_id} <= live_ids


# --- building the records -------------------------------------------------------------------------------

record_rows = st.fixed_dictionaries({
    "openids": st.integers(0, 2),
    "appointments": st.lists(st.tuples(st.sampled_from(["booked", "completed", "no_show"]), st.sampled_from([3, 4])),
                             max_size=2),
    "orders": st.lists(st.tuples(st.sampled_from(["EX01", "CL01"]), st.sampled_from([0, 1000, None]),
                                 st.sampled_from([3, 4])), max_size=2),
    "plan": st.booleans(),
    "procedure": st.booleans(),
    "consents": st.lists(st.tuples(st.sampled_from(["marketing_sms", "health_data"]), st.booleans(),
                                   st.integers(0, 5)), max_size=3),
    "tags": st.dictionaries(st.integers(0, 1), st.sampled_from([TagSource.MANUAL, TagSource.RULE]), max_size=2),
    "hits": st.lists(st.tuples(st.integers(0, 1), st.sampled_from(DAYS), st.integers(1, 3)), max_size=2,
                     unique_by=lambda t: (t[0], t[1])),
    "tasks": st.sets(st.sampled_from(["survey:1", "survey:2"]), max_size=2),
    "points": st.integers(0, 2),
    "wallet": st.sampled_from([0, 5000, 20000]),
    "member": st.sampled_from([None, "low", "high"]),
    "phone": st.booleans(),
    "vouchers": st.integers(0, 1),
    "uses": st.integers(0, 2),  # cleanings used from the package covering them (if it does)
})

# Households among the records (indices) and outsiders: who heads which household with whom.
HOUSEHOLDS = [
    [],
    [(0, [1])],                        # 0 heads the household 1 is in
    [(1, [0])],                        # 1 heads the household 0 is in
    [("x", [0, 1])],                   # both in an outsider's household
    [(0, ["k"]), (1, ["k"])],          # each heads their own, with a relative
    [(0, ["k"]), ("x", [1])],          # 0 heads one, 1 is a member of another (0 into 1 is refused)
    [("x", [0]), ("y", [1])],          # each a member of another household
    [(0, [1, "k"])],                   # 0 heads 1 and a relative
    [(0, ["k"]), (2, [1])],            # three records: 0 heads, 2 heads 1
]


@st.composite
def scenarios(draw):
    n = draw(st.sampled_from([2, 3]))
    rows = [draw(record_rows) for _ in range(n)]
    households = draw(st.sampled_from([h for h in HOUSEHOLDS
                                       if all(isinstance(i, str) or i < n for head, ms in h for i in [head, *ms])]))
    binds = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2))
    friends = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2))
    covered = draw(st.sampled_from([None, "alone", "family"]))
    covered = None if covered is None else (draw(st.integers(0, n - 1)), covered)
    order = draw(st.permutations(range(n)))
    shape = draw(st.sampled_from(["chain", "star"])) if n == 3 else "chain"
    # "chain": order[0] into order[1], then order[1] into order[2]; "star": both into order[2]
    plan = [(order[i + 1], order[i]) for i in range(n - 1)] if shape == "chain" else [(order[2], order[0]),
                                                                                         (order[2], order[1])]
    return {"rows": rows, "households": households, "binds": binds, "friends": friends, "plan": plan,
            "covered": covered}


class World:
    def __init__(self):
        self.chain = ChainFactory()
        self.clinic = ClinicFactory(chain=self.chain)
        self.other_clinic = ClinicFactory(chain=self.chain)
        self.admin = StaffFactory(chain=self.chain, role=Role.CHAIN_ADMIN)
        self.admin_scope = scope_for_staff(self.admin)
        self.director = StaffFactory(chain=self.chain, role=Role.CLINIC_DIRECTOR, clinics=[self.other_clinic])
        self.director_scope = scope_for_staff(self.director)
        self.own_director_scope = scope_for_staff(
            StaffFactory(chain=self.chain, role=Role.CLINIC_DIRECTOR, clinics=[self.clinic]))
        items = [ServiceItemFactory(chain=self.chain, code=code, name=code, category=category, list_price_fen=price)
                 for code, category, price in (("EX01", Category.EXAM, 5000), ("CL01", Category.CLEANING, 30000))]
        EarnRuleFactory(chain=self.chain, code="review", trigger=EarnTrigger.REVIEW, points=50)
        plan = PlanFactory(chain=self.chain, kind=PlanKind.PAID, fee_fen=0, duration_months=12,
                           spend_threshold_fen=None, auto_enrol=False)
        self.tiers = {"low": TierFactory(plan=plan, rank=1, discount_bp=300, min_spend_fen=0, family_slots=1),
                      "high": TierFactory(plan=plan, rank=2, discount_bp=800, min_spend_fen=0, family_slots=2)}
        self.plan = plan
        self.tags = [TagFactory(group__chain=self.chain), TagFactory(group__chain=self.chain)]
        self.package = PackageFactory(chain=self.chain, validity_months=12, item_code="CL01")
        PackageEntitlementFactory(package=self.package, label="洁牙", category=Category.CLEANING, quantity=3)
        PackageEntitlementFactory(package=self.package, label="口腔检查", category=Category.EXAM, quantity=1)
        self.campaign = CampaignFactory(chain=self.chain, item=items[1])

    def person(self, phone=True, **kw) -> Customer:
        n = next(_keys)
        return CustomerFactory(chain=self.chain, home_clinic=self.clinic, name="王芳",
                               mobile=f"+86139{n:08d}" if phone else None, **kw)

    def fill(self, c: Customer, rows: dict) -> None:
        for _ in range(rows["openids"]):
            identity_add(customer=c, kind=IdentityKind.WECHAT_OPENID, external_id=key("oW"))
        for i, (status, days) in enumerate(rows["appointments"]):
            start = NOW - dt.timedelta(days=days, hours=i)
            appointment_upsert(customer=c, clinic=self.clinic, start_at=start, end_at=start + dt.timedelta(hours=1),
                               status=status, service_code="EX01")
        for i, (code, refund, days) in enumerate(rows["orders"]):
            price = 5000 if code == "EX01" else 30000
            order, _ = order_record(customer=c, clinic=self.clinic, ordered_at=NOW - dt.timedelta(days=days, hours=i),
                                    lines=[{"item_code": code}], payments=[{"method": "cash", "amount_fen": price}])
            if refund != 0:
                refund_record(order=order, amount_fen=refund, reason="退款")
        if rows["plan"]:
            plan_record(customer=c, clinic=self.clinic, title="种植修复方案",
                        steps=[{"seq": 1, "item_code": "EX01", "status": "done"},
                               {"seq": 2, "item_code": "CL01", "status": "planned"}])
        if rows["procedure"]:
            procedure_record(customer=c, clinic=self.clinic, item_code="EX01", performed_on=NOW.date())
        for purpose, granted, hours in rows["consents"]:
            consent_record(customer=c, purpose=purpose, granted=granted, source="paper",
                           at=NOW - dt.timedelta(hours=hours))
        for tag_index, source in rows["tags"].items():
            tag_apply(customer=c, tag=self.tags[tag_index], actor=None, source=source)
        for tag_index, day, hits in rows["hits"]:
            KeywordHit.objects.create(customer=c, tag=self.tags[tag_index], day=day, hits=hits, counts={"种牙": hits})
        for anchor in rows["tasks"]:
            complaint_task_open(customer=c, clinic=self.clinic, brief="投诉", anchor_key=anchor)
        for _ in range(rows["points"]):
            points_award(customer=c, rule_code="review", key=key("review"))
        if rows["wallet"]:
            wallet_topup(customer=c, amount_fen=rows["wallet"], method="cash", key=key("topup"))
        if rows["member"]:
            membership_enrol(customer=c, plan=self.plan, tier=self.tiers[rows["member"]], fee_fen=0)
        for _ in range(rows["vouchers"]):
            voucher_issue(campaign=self.campaign, customer=c, key=key("voucher"))


def build(w: World, scenario: dict) -> list[Customer]:
    rows = scenario["rows"]
    people = [w.person(phone=r["phone"]) for r in rows]
    for c, r in zip(people, rows, strict=True):
        w.fill(c, r)
    outsiders: dict[str, Customer] = {}

    def who(i):
        if isinstance(i, int):
            return people[i]
        if i == "k":  # a new relative each time
            return w.person()
        return outsiders.setdefault(i, w.person())

    event(f"households {scenario['households']}")
    for head, members in scenario["households"]:
        head = who(head)
        for i, member in enumerate(members):
            household_member_add(head=head, member=who(member), relation=[Relation.CHILD, Relation.SPOUSE][i % 2])
    if scenario["covered"]:
        # a family package: the holder and those of the records in the holder's household
        holder_index, who_else = scenario["covered"]
        holder = people[holder_index]
        place = HouseholdMember.objects.filter(customer=holder).first()
        family = set(HouseholdMember.objects.filter(household_id=place.household_id).values_list(
            "customer_id", flat=True)) if place and who_else == "family" else {holder.pk}
        covered = [holder] + [p for p in people if p.pk in family and p != holder]
        package_sell(package=w.package, holder=holder, covered=covered, key=key("sale"), at=NOW, clinic=w.clinic,
                     payments=[{"method": "cash", "amount_fen": w.package.price_fen}])
        event(f"package covering {len(covered)}")
        cleaning = ServiceItem.objects.get(chain=w.chain, code="CL01")
        for c, r in zip(people, rows, strict=True):
            if c in covered:
                for _ in range(r["uses"]):
                    entitlement_redeem(customer=c, item=cleaning, key=key("use"), at=NOW + dt.timedelta(hours=1))
    for holder, member in scenario["binds"]:
        holder, member = people[holder], people[member]
        if not Membership.objects.filter(customer=holder, status=MembershipStatus.ACTIVE).exists():
            continue
        if holder == member:
            member = w.person()  # a relative bound to the card
        try:
            with transaction.atomic():
                family_bind(holder=holder, member=member, relation="spouse", consent_source="paper",
                            consent_evidence=key("F"))
                event("bound")
                wallet_share_consent_grant(holder=holder, member=member, mode=WalletShareMode.STANDING,
                                           source="paper")
        except Exception as error:  # noqa: BLE001 - a binding the rules refuse (no slot, bound elsewhere) is skipped
            assert getattr(error, "code", None), error
    for friend, member in scenario["friends"]:
        friend, member = people[friend], people[member]
        if friend == member or not Membership.objects.filter(customer=member, status="active").exists():
            continue
        try:
            with transaction.atomic():
                friend_link(friend=friend, member=member)
                event("friend")
        except Exception as error:  # noqa: BLE001 - a friend who named another member already
            assert getattr(error, "code", None), error
    return people


def refused(scope, survivor, merged, error) -> None:
    ids = [survivor.pk, merged.pk]
    before = world(ids)
    with pytest.raises(error):
        customer_merge(scope=scope, survivor=survivor, merged=merged, reason="重复")
    assert world(ids) == before


# No shrinking: on this machine it ran for minutes (every example builds a dozen apps' rows); the events and the
# assertion messages name what broke, and the failing example is printed as drawn.
@settings(max_examples=40, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=scenarios())
def test_a_merge_moves_every_row_to_the_survivor_loses_none_and_keeps_every_rule(db, scenario):
    with transaction.atomic():
        w = World()
        people = build(w, scenario)
        check_world(w.chain.id)
        # the refusals change nothing
        refused(w.admin_scope, people[0], people[0], ValidationFailed)
        refused(w.director_scope, people[0], people[1], NotFound)  # the records are not the director's clinic's
        # one of the two is another clinic's patient: the records' own director may not take it in, nor give it one
        elsewhere = CustomerFactory(chain=w.chain, home_clinic=w.other_clinic, name="王芳", mobile=None)
        refused(w.own_director_scope, people[0], elsewhere, NotFound)
        refused(w.own_director_scope, elsewhere, people[1], NotFound)
        done: list[Customer] = []
        for s, m in scenario["plan"]:
            survivor, merged = people[s], people[m]
            before = Before(survivor, merged)
            unchanged = world([survivor.pk, merged.pk])
            try:
                customer_merge(scope=w.admin_scope, survivor=survivor, merged=merged, actor=w.admin, reason="重复")
            except Conflict as error:
                # documented: the merged record heads a family and the survivor is a member of another
                assert error.code == "household_conflict"
                event("household conflict")
                head = Household.objects.filter(head=merged).exists()
                member = HouseholdMember.objects.filter(customer=survivor).exclude(relation=Relation.HEAD).exists()
                assert head and member
                assert world([survivor.pk, merged.pk]) == unchanged
                break
            check_merge(before)
            now = table_counts()
            event(f"collapsed {sorted(label for label in COLLAPSING - {'customers.CustomerSearchKey'} if now[label] < before.counts[label])}")
            check_world(w.chain.id)
            done.append(merged)
        for tomb in done:
            live = next(p for p in people if p not in done)
            refused(w.admin_scope, live, tomb, NotFound)  # into (or from) an already merged record
            refused(w.admin_scope, tomb, live, NotFound)
        transaction.set_rollback(True)


# --- found by the invariant test above ------------------------------------------------------------------


def test_a_day_both_records_came_in_counts_as_one_visit_after_the_merge(db):
    """Each record counted its walk-in day (a bill and no visit appointment) as a visit; the merge added the two
    counts, so one person's one day at the clinic counted twice, and so did a day one record paid on and the other
    had its appointment (visits' rule: the appointments, plus the days with a bill and no such appointment)."""
    # given two records of one person: both paid a bill on one day; on the next, one came to an appointment and
    # the other paid a bill
    w = World()
    kept, duplicate = w.person(), w.person()
    day3, day4 = NOW - dt.timedelta(days=3), NOW - dt.timedelta(days=2)
    for customer, at in ((kept, day3), (duplicate, day3), (duplicate, day4)):
        order_record(customer=customer, clinic=w.clinic, ordered_at=at, lines=[{"item_code": "EX01"}],
                     payments=[{"method": "cash", "amount_fen": 5000}])
    appointment_upsert(customer=kept, clinic=w.clinic, start_at=day4, end_at=day4 + dt.timedelta(hours=1),
                       status=AppointmentStatus.COMPLETED, service_code="EX01")
    kept.refresh_from_db()
    duplicate.refresh_from_db()
    assert (kept.visit_count, duplicate.visit_count) == (2, 2)
    # when
    customer_merge(scope=w.admin_scope, survivor=kept, merged=duplicate, actor=w.admin, reason="重复建档")
    # then: the first day (two bills) and the second (an appointment and a bill) are one visit each
    kept.refresh_from_db()
    assert kept.visit_count == 2 == reference_visits(kept.pk)
    assert kept.lifetime_spend_fen == 15000
