"""QA sweep: merging two records that BOTH have a year of history in every app, as a front desk would.

test_merge_invariants.py draws random, mostly thin records; here both people are rich at once (memberships in the
same or different plans binding each other, points both available and pending, wallets, gift cards held, family
cards, open and closed follow-up tasks of one step, answered surveys, tags set by hand and by rule, stages that
differ, bills and refunds, plans, procedures, consents decided both ways, identities), merged in both directions.
Refusals (an erased record, another chain, out of scope, a household the merge cannot join) are compared against a
snapshot of every table, not only the rows naming the two records.
"""

import datetime as dt
import itertools

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.errors import Conflict, NotFound
from smileloop.customers.enums import IdentityKind, Relation
from smileloop.customers.models import Customer, CustomerMerge
from smileloop.customers.privacy import customer_erase
from smileloop.customers.selectors import consent_current
from smileloop.customers.services import consent_record, customer_merge, household_member_add, identity_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.enums import TaskStatus
from smileloop.followups.models import FollowupTask, Playbook
from smileloop.followups.services import playbooks_install_defaults
from smileloop.followups.services.tasks import PERSON_TRIGGERS
from smileloop.giftcards.models import GiftCard
from smileloop.giftcards.services import friend_card_issue, giftcard_holder_register
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.ledger.models import Account, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.lifecycle.services import stages_derive
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.services import points_award, wallet_topup
from smileloop.loyalty.tests.factories import EarnRuleFactory
from smileloop.membership.enums import MembershipStatus, PlanKind, WalletShareMode
from smileloop.membership.models import FamilyBinding, Membership, WalletShareConsent
from smileloop.membership.services import family_bind, membership_enrol, wallet_share_consent_grant
from smileloop.membership.tests.factories import PlanFactory, TierFactory
from smileloop.surveys.tests.factories import SurveyFactory
from smileloop.tagging.enums import TagSource
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory
from smileloop.visits.enums import AppointmentStatus
from smileloop.visits.models import Order
from smileloop.visits.services import (
    appointment_upsert,
    order_record,
    plan_record,
    procedure_record,
    refund_record,
)

pytestmark = pytest.mark.django_db

_keys = itertools.count()


def key(prefix: str) -> str:
    return f"{prefix}-{next(_keys)}"


def snapshot() -> dict:
    """Every row of every table (what a refused merge must leave exactly as it was)."""
    return {m._meta.label: sorted(map(repr, m._base_manager.order_by("pk").values_list()))
            for m in apps.get_models() if m._meta.managed and not m._meta.proxy}


def rows_naming(customer_id: int) -> list:
    """(model, pk, field) of every row that names `customer_id`, through any foreign key to Customer."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model is Customer:
                for pk in model._base_manager.filter(**{field.name: customer_id}).values_list("pk", flat=True):
                    found.append((model._meta.label, pk, field.name))
    return found


def customer_balances(customer_ids) -> dict:
    """kind → (total, available now) over the people's own accounts."""
    now = timezone.now()
    out = {}
    for account in Account.objects.filter(customer_id__in=customer_ids, code__isnull=True):
        total, available = out.get(account.kind, (0, 0))
        lots = Lot.objects.filter(account=account, remaining__gt=0)
        available += sum(lot.remaining for lot in lots if lot.available_at <= now
                         and (lot.expires_at is None or lot.expires_at > now))
        out[account.kind] = (total + account.balance, available)
    return out


def card_balances(customer_ids) -> int:
    return sum(c.account.balance for c in GiftCard.objects.filter(holder_id__in=customer_ids).select_related("account"))


class World:
    def __init__(self, chain, clinic, admin):
        self.chain, self.clinic, self.admin = chain, clinic, admin
        self.scope = scope_for_staff(admin)
        EarnRuleFactory(chain=chain, code="review", trigger=EarnTrigger.REVIEW, points=50)
        EarnRuleFactory(chain=chain, code="checkin", trigger=EarnTrigger.EVENT_CHECKIN, points=30, pending_days=14)
        paid = PlanFactory(chain=chain, name="金卡", kind=PlanKind.PAID, fee_fen=0, duration_months=12,
                           spend_threshold_fen=None, auto_enrol=False)
        other = PlanFactory(chain=chain, name="家庭卡", kind=PlanKind.PAID, fee_fen=0, duration_months=12,
                            spend_threshold_fen=None, auto_enrol=False)
        self.tiers = {
            "gold": TierFactory(plan=paid, rank=1, discount_bp=300, min_spend_fen=0, family_slots=2),
            "platinum": TierFactory(plan=paid, rank=2, discount_bp=800, min_spend_fen=0, family_slots=2),
            "family": TierFactory(plan=other, rank=1, discount_bp=500, min_spend_fen=0, family_slots=2),
        }
        self.tags = [TagFactory(group__chain=chain, name="种植意向"), TagFactory(group__chain=chain, name="高价值")]
        self.programme = ProgrammeFactory(chain=chain, face_value_fen=60000, valid_months=3)
        playbooks_install_defaults(chain=chain)
        self.recall = Playbook.objects.filter(chain=chain, trigger__in=PERSON_TRIGGERS).first()
        self.recall_step = self.recall.steps.order_by("seq").first()
        self.n = 0

    def person(self, name="王芳", **kw) -> Customer:
        self.n += 1
        return CustomerFactory(chain=self.chain, home_clinic=self.clinic, name=name,
                               mobile=f"+86139{next(_keys):08d}", **kw)

    def task(self, c, anchor, status, days_ago):
        at = timezone.now() - dt.timedelta(days=days_ago)
        return FollowupTask.objects.create(
            chain=self.chain, clinic=self.clinic, customer=c, playbook=self.recall, step=self.recall_step,
            anchor_key=anchor, anchor_at=at, due_at=at, sla_due_at=at + dt.timedelta(days=1), status=status,
            completed_at=at if status != TaskStatus.OPEN else None)

    def history(self, c, *, days_ago: int, spend: int, refund: int, tier: str, wallet: int, hand_tag: int,
                consents: list, anchor: str):
        now = timezone.now()
        identity_add(customer=c, kind=IdentityKind.WECHAT_OPENID, external_id=key("oW"))
        visit = now - dt.timedelta(days=days_ago)
        appointment_upsert(customer=c, clinic=self.clinic, start_at=visit, end_at=visit + dt.timedelta(hours=1),
                           status=AppointmentStatus.COMPLETED, service_code="EX01")
        order, _ = order_record(customer=c, clinic=self.clinic, ordered_at=visit, lines=[{"item_code": "CL01" if spend == 30000 else "FI01"}],
                                payments=[{"method": "cash", "amount_fen": spend}])
        if refund:
            refund_record(order=order, amount_fen=refund, reason="部分退款")
        plan_record(customer=c, clinic=self.clinic, title="种植修复方案",
                    steps=[{"seq": 1, "item_code": "EX01", "status": "done"},
                           {"seq": 2, "item_code": "CL01", "status": "planned"}])
        procedure_record(customer=c, clinic=self.clinic, item_code="EX01", performed_on=timezone.localdate(visit))
        for purpose, granted, hours in consents:
            consent_record(customer=c, purpose=purpose, granted=granted, source="paper",
                           at=now - dt.timedelta(hours=hours))
        tag_apply(customer=c, tag=self.tags[hand_tag], actor=None, source=TagSource.MANUAL)
        tag_apply(customer=c, tag=self.tags[1 - hand_tag], actor=None, source=TagSource.RULE)
        points_award(customer=c, rule_code="review", key=key("review"))
        points_award(customer=c, rule_code="checkin", key=key("checkin"))  # pending 14 days
        wallet_topup(customer=c, amount_fen=wallet, method="cash", key=key("topup"))
        membership_enrol(customer=c, plan=self.tiers[tier].plan, tier=self.tiers[tier], fee_fen=0)
        # open and closed tasks of one playbook step: a closed one for the same anchor on both, an open one each
        self.task(c, "recall:2026-05-01", TaskStatus.DONE, 200)
        self.task(c, anchor, TaskStatus.OPEN, 3)
        SurveyFactory(chain=self.chain, clinic=self.clinic, customer=c, score=9)
        # a gift card each holds, given by a friend
        friend = self.person(name="朋友")
        card = friend_card_issue(member=friend, programme=self.programme, trigger="benefit", key=key("card"))
        giftcard_holder_register(card=card, customer=c)


@pytest.fixture
def world(chain, clinic_a, chain_admin, catalogue):
    return World(chain, clinic_a, chain_admin)


def rich_pair(w: World, tiers=("platinum", "family")):
    a, b = w.person(), w.person()
    w.history(a, days_ago=420, spend=30000, refund=5000, tier=tiers[0], wallet=20000, hand_tag=0,
              consents=[("marketing_sms", True, 50), ("health_data", False, 20)], anchor="recall:2026-11-01")
    w.history(b, days_ago=10, spend=60000, refund=0, tier=tiers[1], wallet=5000, hand_tag=1,
              consents=[("marketing_sms", False, 10), ("health_data", True, 30)], anchor="recall:2026-11-20")
    # family cards binding relatives and each other; a standing wallet consent each way
    ra, rb = w.person(name="王小明"), w.person(name="王小红")
    family_bind(holder=a, member=ra, relation="child", consent_source="paper", consent_evidence=key("F"))
    # b holds a card of her own: family_bind refuses that now (own_membership); a binding recorded before the rule is
    # still on file in a database, and must merge consistently, so it is written as it stands there
    FamilyBinding.objects.create(holder=Membership.objects.get(customer=a, status=MembershipStatus.ACTIVE), member=b,
                                 relation="spouse", consent_by="member", consent_at=timezone.now(),
                                 consent_source="paper", consent_evidence=key("F"), bound_at=timezone.now())
    family_bind(holder=b, member=rb, relation="child", consent_source="paper", consent_evidence=key("F"))
    wallet_share_consent_grant(holder=a, member=b, mode=WalletShareMode.STANDING, source="paper")
    wallet_share_consent_grant(holder=a, member=ra, mode=WalletShareMode.STANDING, source="paper")
    wallet_share_consent_grant(holder=b, member=rb, mode=WalletShareMode.STANDING, source="paper")
    return a, b, ra, rb


def lifetime_spend(customer_ids) -> int:
    return sum(o.amount_fen - o.refunded_fen for o in Order.objects.filter(customer_id__in=customer_ids))


@pytest.mark.parametrize("tiers", [("platinum", "family"), ("gold", "platinum")], ids=["plans", "tiers"])
@pytest.mark.parametrize("direction", ["a_into_b", "b_into_a"])
def test_two_rich_histories_merge_into_one_consistent_person(world, client, chain_admin, direction, tiers):
    w = world
    a, b, ra, rb = rich_pair(w, tiers)
    survivor, merged = (b, a) if direction == "a_into_b" else (a, b)
    ids = [a.pk, b.pk]
    balances = customer_balances(ids)
    cards = card_balances(ids)
    spend = lifetime_spend(ids)
    best = max(Membership.objects.filter(customer_id__in=ids, status=MembershipStatus.ACTIVE).select_related("tier"),
               key=lambda m: m.tier.discount_bp)
    last_visit = max(Customer.objects.get(pk=a.pk).last_visit_at, Customer.objects.get(pk=b.pk).last_visit_at)

    customer_merge(scope=w.scope, survivor=survivor, merged=merged, actor=chain_admin, reason="重复登记")

    s = Customer.objects.get(pk=survivor.pk)
    # nothing but the tombstone pointer and the merge record names the merged record
    left = [r for r in rows_naming(merged.pk)
            if r[0] != "customers.CustomerMerge" and not (r[0] == "customers.Customer" and r[2] == "merged_into")]
    assert left == []
    # money: every kind's total and what is spendable now add up; pending points stay pending; the books balance
    assert customer_balances([s.pk]) == balances
    assert card_balances([s.pk]) == cards
    assert ledger_check(chain_id=w.chain.pk) == []
    # one active membership, the better one
    active = list(Membership.objects.filter(customer=s, status=MembershipStatus.ACTIVE))
    assert [m.pk for m in active] == [best.pk]
    # no family binding of a person to themselves, bindings within the slots, no self wallet consent
    for binding in FamilyBinding.objects.filter(unbound_at__isnull=True).select_related("holder__tier"):
        assert binding.member_id != binding.holder.customer_id
        assert binding.holder.status == MembershipStatus.ACTIVE
    assert FamilyBinding.objects.filter(holder=best, unbound_at__isnull=True).count() <= best.tier.family_slots
    assert set(FamilyBinding.objects.filter(unbound_at__isnull=True, holder=best).values_list("member_id", flat=True)) \
        <= {ra.pk, rb.pk}
    assert not WalletShareConsent.objects.filter(revoked_at__isnull=True, holder_id=s.pk, member_id=s.pk).exists()
    # one open task per step for the person; the closed history of both kept
    open_tasks = FollowupTask.objects.filter(customer=s, status=TaskStatus.OPEN, step=w.recall_step)
    assert open_tasks.count() == 1
    assert FollowupTask.objects.filter(customer=s, status=TaskStatus.DONE).count() == 2
    # both survey answers and both identities are the person's
    assert s.surveys.filter(score=9).count() == 2
    assert s.identities.filter(kind=IdentityKind.WECHAT_OPENID).count() == 2
    # tags: both, set by hand wins over the rule
    assert dict(CustomerTag.objects.filter(customer=s).values_list("tag_id", "source")) == {
        w.tags[0].pk: TagSource.MANUAL, w.tags[1].pk: TagSource.MANUAL}
    # derived figures
    assert s.lifetime_spend_fen == spend
    assert s.last_visit_at == last_visit
    assert s.visit_count == 2
    stage = s.stage
    stages_derive(chain=w.chain, today=timezone.localdate())
    s.refresh_from_db()
    assert s.stage == stage, f"the merge left {stage}, the facts say {s.stage}"
    # consents: the latest decision per purpose, whichever record it was made on
    current = consent_current(s)
    assert current["marketing_sms"].granted is False  # withdrawn 10 h ago on b, after a granted it 50 h ago
    assert current["health_data"].granted is False  # withdrawn 20 h ago on a, after b granted it 30 h ago
    # the 360 page renders; the merged record's address says it was merged and leads to the survivor
    client.force_login(chain_admin.user)
    assert client.get(reverse("customers:detail", args=[s.pk])).status_code == 200
    response = client.get(reverse("customers:detail", args=[merged.pk]), follow=True)
    assert response.status_code == 200 and response.redirect_chain[-1][0].endswith(f"/{s.pk}/")
    assert f"{merged.pk}" in response.content.decode()
    assert CustomerMerge.objects.filter(survivor=s, merged_id=merged.pk).count() == 1


def refused_unchanged(scope, survivor, merged, error):
    before = snapshot()
    with pytest.raises(error):
        customer_merge(scope=scope, survivor=survivor, merged=merged, reason="重复")
    after = snapshot()
    changed = [label for label in before if before[label] != after[label]]
    assert changed == []


@pytest.mark.parametrize("which", ["survivor", "merged"])
def test_merging_into_or_from_an_erased_record_is_refused_and_changes_nothing(world, chain_admin, which):
    w = world
    a, b, _ra, _rb = rich_pair(w)
    erased = a if which == "survivor" else b
    # an erasure needs the wallet settled: forfeit it
    customer_erase(scope=w.scope, customer=erased, actor=chain_admin, reason="本人申请", forfeit=True)
    refused_unchanged(w.scope, a, b, Conflict)


def test_a_merge_across_chains_or_out_of_the_staff_members_clinics_is_refused_and_changes_nothing(world, chain_admin):
    w = world
    a, b, _ra, _rb = rich_pair(w)
    other_chain = ChainFactory()
    stranger = CustomerFactory(chain=other_chain, home_clinic=ClinicFactory(chain=other_chain), name="王芳",
                               mobile="+8613900000001")
    refused_unchanged(w.scope, a, stranger, NotFound)
    refused_unchanged(w.scope, stranger, a, NotFound)
    other_clinic = ClinicFactory(chain=w.chain)
    director = scope_for_staff(StaffFactory(chain=w.chain, role=Role.CLINIC_DIRECTOR, clinics=[other_clinic]))
    refused_unchanged(director, a, b, NotFound)
    # the other chain's own admin cannot take this chain's record either
    foreign_admin = scope_for_staff(StaffFactory(chain=other_chain, role=Role.CHAIN_ADMIN))
    refused_unchanged(foreign_admin, stranger, a, NotFound)


def test_a_merge_refused_after_the_apps_hooks_ran_changes_nothing(world):
    """The household check comes after the ledger, membership, tagging, follow-up and visit hooks have written:
    a refusal there must take every hook's writes back (the merged record heads a family, the survivor is a member
    of another)."""
    w = world
    a, b, _ra, _rb = rich_pair(w)
    household_member_add(head=b, member=w.person(name="王小军"), relation=Relation.CHILD)
    household_member_add(head=w.person(name="李强"), member=a, relation=Relation.SPOUSE)
    refused_unchanged(w.scope, a, b, Conflict)


def test_a_desk_writing_on_a_record_merged_since_its_page_was_read_is_refused_and_leaves_nothing_on_the_tombstone(
        world, chain_admin):
    """The page was read before another desk merged the record away: a consent (a withdrawal above all), an
    identity, a booking, a bill, a tag or a gift card's holder written from it would stay on the tombstone, out of everyone's sight (the
    survivor's marketing consent still counting). Each is refused as the record's page now is (NotFound).
    test_qa_merge_across_apps_postgres.py has the same while the merge is still in its transaction."""
    w = world
    survivor, merged = w.person(), w.person()
    consent_record(customer=merged, purpose="marketing_sms", granted=True, source="form",
                   at=timezone.now() - dt.timedelta(days=1))
    card = friend_card_issue(member=w.person(name="朋友"), programme=w.programme, trigger="benefit", key=key("card"))
    stale = Customer.objects.get(pk=merged.pk)
    customer_merge(scope=w.scope, survivor=survivor, merged=merged, actor=chain_admin, reason="重复")
    start = timezone.now() + dt.timedelta(days=2)
    writes = {
        "withdrawal": lambda: consent_record(customer=stale, purpose="marketing_sms", granted=False, source="wechat"),
        "grant": lambda: consent_record(customer=stale, purpose="health_data", granted=True, source="paper"),
        "identity": lambda: identity_add(customer=stale, kind=IdentityKind.WECHAT_OPENID, external_id="oW-stale"),
        "booking": lambda: appointment_upsert(customer=stale, clinic=w.clinic, start_at=start,
                                              end_at=start + dt.timedelta(hours=1), status="booked",
                                              service_code="EX01"),
        "bill": lambda: order_record(customer=stale, clinic=w.clinic, ordered_at=timezone.now(),
                                     lines=[{"item_code": "EX01"}], payments=[{"method": "cash", "amount_fen": 5000}]),
        "tag": lambda: tag_apply(customer=stale, tag=w.tags[0], actor=None),
        "gift card": lambda: giftcard_holder_register(card=card, customer=stale),
    }
    for what, write in writes.items():
        with pytest.raises(NotFound):
            write()
        assert [r for r in rows_naming(merged.pk) if r[0] != "customers.CustomerMerge"
                and r[2] != "merged_into"] == [], what
    # the consent given on the merged record before the merge is the survivor's, and still counts
    assert consent_current(Customer.objects.get(pk=survivor.pk))["marketing_sms"].granted is True
