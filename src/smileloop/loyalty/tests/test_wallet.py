import datetime as dt
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smileloop.core.errors import Conflict
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import LedgerTransaction, Lot
from smileloop.ledger.selectors import ledger_check
from smileloop.ledger.services import account_for, ledger_reverse, system_account
from smileloop.loyalty._common import add_months, day_end
from smileloop.loyalty.enums import ShareMode
from smileloop.loyalty.errors import ConsentMissing, InsufficientWallet, NotFamily, PrincipalSpent
from smileloop.loyalty.models import Topup, TopupRefund, WalletShareUse
from smileloop.loyalty.selectors import WalletBalance, topup_total_fen
from smileloop.loyalty.services import (
    wallet_balance,
    wallet_spend,
    wallet_split,
    wallet_topup,
    wallet_topup_refund,
    wallet_transfer,
)
from smileloop.membership.enums import EventKind, PlanKind, WalletShareMode
from smileloop.membership.selectors import own_membership
from smileloop.membership.services import family_bind, wallet_share_consent_grant
from smileloop.membership.tests.factories import PlanFactory, TierFactory


def test_a_top_up_of_ten_thousand_yuan_gets_the_one_thousand_bonus(chain, wang, bonus_rules, clinic_a):
    # when
    topup = wallet_topup(customer=wang, amount_fen=1_000_000, method="wechat_pay", key="t1", clinic=clinic_a)
    # then
    assert wallet_balance(wang) == WalletBalance(principal=1_000_000, bonus=100_000)
    assert (topup.bonus_fen, topup.bonus_rule_id) == (100_000, bonus_rules[0].id)
    assert system_account(chain_id=chain.id, kind=AccountKind.CASH_IN).balance == -1_000_000
    assert system_account(chain_id=chain.id, kind=AccountKind.PROMOTION).balance == -100_000
    assert topup_total_fen(customer=wang) == 1_000_000
    assert ledger_check(chain_id=chain.id) == []


@pytest.mark.parametrize(("amount", "bonus"), [(499_999, 0), (500_000, 40_000), (999_999, 40_000),
                                               (2_000_000, 100_000)])
def test_the_highest_threshold_reached_gives_the_bonus(chain, wang, bonus_rules, amount, bonus):
    assert wallet_topup(customer=wang, amount_fen=amount, method="cash", key="t").bonus_fen == bonus


def test_a_top_up_is_idempotent_on_its_key(chain, wang, bonus_rules):
    first = wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    again = wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    assert again.id == first.id
    assert wallet_balance(wang).total == 540_000 and Topup.objects.count() == 1


def test_a_top_up_refund_returns_principal_and_forfeits_the_bonus_in_proportion(chain, wang, bonus_rules):
    # given
    topup = wallet_topup(customer=wang, amount_fen=1_000_000, method="cash", key="t1")
    # when: a third of the principal, then the rest
    first = wallet_topup_refund(topup=topup, amount_fen=333_333, key="r1")
    # then
    assert (first.amount_fen, first.bonus_forfeited_fen) == (333_333, 33_333)
    assert wallet_balance(wang) == WalletBalance(principal=666_667, bonus=66_667)
    # and when the rest is refunded, exactly everything is gone
    rest = wallet_topup_refund(topup=topup, key="r2")
    assert (rest.amount_fen, rest.bonus_forfeited_fen) == (666_667, 66_667)
    assert wallet_balance(wang) == WalletBalance(0, 0)
    topup.refresh_from_db()
    assert (topup.refunded_fen, topup.bonus_forfeited_fen) == (1_000_000, 100_000)
    assert topup_total_fen(customer=wang) == 0
    assert ledger_check(chain_id=chain.id) == []


@pytest.fixture
def stored_value_plan(chain):
    """储值会员: 银卡 from 5,000 yuan topped up, 金卡 from 10,000 (downgraded when top-ups are refunded)."""
    plan = PlanFactory(chain=chain, name="储值会员", kind=PlanKind.STORED_VALUE, spend_threshold_fen=None)
    return [TierFactory(plan=plan, rank=1, name="银卡", discount_bp=300, min_spend_fen=0, min_topup_fen=500_000,
                        downgrade_allowed=True),
            TierFactory(plan=plan, rank=2, name="金卡", discount_bp=500, min_spend_fen=0, min_topup_fen=1_000_000,
                        downgrade_allowed=True)]


def test_a_top_up_reaching_a_stored_value_tier_enrols_at_once_and_its_refund_downgrades(chain, wang, bonus_rules,
                                                                                       stored_value_plan):
    silver, gold = stored_value_plan
    # when 王芳 tops up 6,000 yuan: she is a 银卡 member before her next bill is priced
    wallet_topup(customer=wang, amount_fen=600_000, method="cash", key="t1")
    assert (own_membership(wang).tier_id, own_membership(wang).events.get().kind) == (silver.id, EventKind.ENROLLED)
    # and 5,000 more make her 金卡
    second = wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t2")
    assert own_membership(wang).tier_id == gold.id
    # when the second top-up is refunded, she is back to 银卡 (the tier allows downgrades)
    wallet_topup_refund(topup=second, key="r1")
    membership = own_membership(wang)
    assert membership.tier_id == silver.id
    assert list(membership.events.order_by("id").values_list("kind", flat=True)) == [
        EventKind.ENROLLED, EventKind.UPGRADED, EventKind.DOWNGRADED]
    assert ledger_check(chain_id=chain.id) == []


def test_a_members_tier_bonus_rules_override_the_chains_as_the_tier_form_says(chain, wang, spouse, bonus_rules,
                                                                              stored_value_plan):
    # given 王芳 is 银卡, whose tier gives 600 on 5,000 (the chain gives 400); the plan gives 1,000 on 10,000
    silver, gold = stored_value_plan
    silver.topup_bonus_rules = [{"min_topup_fen": 500_000, "bonus_fen": 60_000}]
    silver.save(update_fields=["topup_bonus_rules"])
    silver.plan.topup_bonus_rules = [{"min_topup_fen": 1_000_000, "bonus_fen": 150_000}]
    silver.plan.save(update_fields=["topup_bonus_rules"])
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t0")  # enrols her as 银卡 (chain bonus)
    # when she tops up 5,000 again, and 3,000
    again = wallet_topup(customer=wang, amount_fen=500_000, method="cash", key="t1")
    assert own_membership(wang).tier_id == gold.id  # 10,000 topped up: 金卡 from now on, with the plan's rules
    small = wallet_topup(customer=wang, amount_fen=300_000, method="cash", key="t2")
    big = wallet_topup(customer=wang, amount_fen=1_000_000, method="cash", key="t3")
    # then her tier's (then plan's) rules apply, not the chain's; a non-member still gets the chain's
    assert (again.bonus_fen, again.bonus_rule_id) == (60_000, None)
    assert (small.bonus_fen, big.bonus_fen) == (0, 150_000)
    assert wallet_topup(customer=spouse, amount_fen=500_000, method="cash", key="t4").bonus_fen == 40_000
    assert wallet_balance(wang).bonus == 40_000 + 60_000 + 150_000
    assert ledger_check(chain_id=chain.id) == []


def test_a_refund_beyond_the_principal_left_in_the_wallet_is_refused_and_nothing_changes(chain, wang, bonus_rules):
    # given: 10,000 + 1,000 topped up, 5,500 spent (5,000 principal + 500 bonus)
    topup = wallet_topup(customer=wang, amount_fen=1_000_000, method="cash", key="t1")
    wallet_spend(payer=wang, amount_fen=550_000, key="s1", source="order:1")
    assert wallet_balance(wang) == WalletBalance(principal=500_000, bonus=50_000)
    before = LedgerTransaction.objects.count()
    # when
    with pytest.raises(PrincipalSpent) as exc:
        wallet_topup_refund(topup=topup, key="r1")
    # then
    assert "at most 500000 fen can be refunded" in exc.value.message
    assert wallet_balance(wang) == WalletBalance(principal=500_000, bonus=50_000)
    assert LedgerTransaction.objects.count() == before and TopupRefund.objects.count() == 0
    # and the half left can be refunded, forfeiting half the bonus
    refund = wallet_topup_refund(topup=topup, amount_fen=500_000, key="r2")
    assert refund.bonus_forfeited_fen == 50_000 and wallet_balance(wang) == WalletBalance(0, 0)
    assert ledger_check(chain_id=chain.id) == []


def test_a_spend_takes_principal_and_bonus_in_proportion_and_its_reversal_puts_them_back(chain, wang, bonus_rules):
    # given: 10,000 principal + 1,000 bonus
    wallet_topup(customer=wang, amount_fen=1_000_000, method="cash", key="t1")
    # when: 333.33 yuan → 303.03 principal (333.33 × 10/11 = 303.027…) + 30.30 bonus
    [tx] = wallet_spend(payer=wang, amount_fen=33_333, key="s1", source="order:7")
    # then
    assert wallet_balance(wang) == WalletBalance(principal=1_000_000 - 30_303, bonus=100_000 - 3_030)
    assert system_account(chain_id=chain.id, kind=AccountKind.SALES).balance == 33_333
    assert tx.source == "order:7"
    # and when the bill is refunded
    ledger_reverse(original=tx, key="refund:s1", upto=Fraction(1))
    assert wallet_balance(wang) == WalletBalance(principal=1_000_000, bonus=100_000)
    assert sorted(Lot.objects.values_list("remaining", flat=True)) == [100_000, 1_000_000]
    assert ledger_check(chain_id=chain.id) == []


def test_spending_more_than_the_wallet_holds_is_refused_and_nothing_changes(chain, wang, bonus_rules):
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    with pytest.raises(InsufficientWallet):
        wallet_spend(payer=wang, amount_fen=100_001, key="s1", source="order:1")
    assert wallet_balance(wang) == WalletBalance(100_000, 0) and LedgerTransaction.objects.count() == 1


@given(amount=st.integers(min_value=1, max_value=10**9), principal=st.integers(min_value=0, max_value=10**9),
       bonus=st.integers(min_value=0, max_value=10**9))
def test_the_proportional_split_adds_up_exactly_and_stays_within_both_balances(amount, principal, bonus):
    # given
    amount = min(amount, principal + bonus)
    if amount == 0:
        return
    # when
    p, b = wallet_split(amount, principal, bonus)
    # then
    assert p + b == amount
    assert 0 <= p <= principal and 0 <= b <= bonus
    assert abs(Fraction(p) - Fraction(amount * principal, principal + bonus)) <= 1


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spends=st.lists(st.integers(min_value=1, max_value=300_000), min_size=1, max_size=6))
def test_any_sequence_of_spends_keeps_the_wallet_and_the_ledger_exact(chain, wang, bonus_rules, spends):
    # given
    run = Topup.objects.count()
    wallet_topup(customer=wang, amount_fen=500_000, method="cash", key=f"h{run}")
    start = wallet_balance(wang).total
    spent = 0
    # when
    for i, amount in enumerate(spends):
        if amount > wallet_balance(wang).total:
            continue
        wallet_spend(payer=wang, amount_fen=amount, key=f"h{run}:{i}", source="order:h")
        spent += amount
    # then
    assert wallet_balance(wang).total == start - spent
    assert system_account(chain_id=chain.id, kind=AccountKind.SALES).balance >= spent
    assert ledger_check(chain_id=chain.id) == []


@pytest.fixture
def bound_spouse(wang, spouse, family_membership):
    family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="F-1")
    return spouse


def test_a_family_member_needs_the_holders_consent_to_spend_from_the_wallet(chain, wang, bound_spouse, bonus_rules):
    # given: bound, but no wallet-share consent
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when
    with pytest.raises(ConsentMissing) as exc:
        wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1")
    # then
    assert exc.value.code == "consent_missing"
    assert wallet_balance(wang) == WalletBalance(100_000, 0)
    assert LedgerTransaction.objects.count() == 1 and WalletShareUse.objects.count() == 0


def test_a_per_use_consent_lets_a_bound_member_spend_and_is_recorded(chain, wang, bound_spouse, bonus_rules,
                                                                      front_desk_a):
    # given
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when
    [tx] = wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1",
                        per_use_consent=True, consent_token="sms-8842", actor=front_desk_a)
    # then
    use = WalletShareUse.objects.get()
    assert (use.holder_id, use.payer_id, use.mode, use.consent_token, use.recorded_by_id, use.transaction_id) == (
        wang.id, bound_spouse.id, ShareMode.PER_USE, "sms-8842", front_desk_a.id, tx.id)
    assert wallet_balance(wang).total == 90_000
    assert ledger_check(chain_id=chain.id) == []


def test_a_standing_consent_lets_a_bound_member_spend_without_asking(chain, wang, bound_spouse, bonus_rules):
    # given
    wallet_share_consent_grant(holder=wang, member=bound_spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when
    wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1")
    # then
    assert WalletShareUse.objects.get().mode == ShareMode.STANDING
    assert wallet_balance(wang).total == 90_000


def test_someone_outside_the_family_card_cannot_spend_even_with_a_per_use_consent(chain, wang, spouse, bonus_rules,
                                                                                  family_membership):
    # given: the spouse is in the household but not bound to the card
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when
    with pytest.raises(ConsentMissing):
        wallet_spend(payer=spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1", per_use_consent=True)
    # then
    assert wallet_balance(wang).total == 100_000 and WalletShareUse.objects.count() == 0


def test_a_family_transfer_keeps_each_lots_expiry(chain, wang, bound_spouse, bonus_rules, now):
    # given: the bonus is valid 6 months; the holder consented to sharing
    bonus_rules[0].validity_months = 6
    bonus_rules[0].save(update_fields=["validity_months"])
    wallet_share_consent_grant(holder=wang, member=bound_spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=1_000_000, method="cash", key="t1", at=now - dt.timedelta(days=10))
    # when
    txs = wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=110_000, key="x1", actor=None)
    # then: 100,000 principal + 10,000 bonus moved; the bonus lot keeps its expiry date
    assert len(txs) == 2
    assert wallet_balance(bound_spouse) == WalletBalance(principal=100_000, bonus=10_000)
    assert wallet_balance(wang) == WalletBalance(principal=900_000, bonus=90_000)
    bonus_lot = Lot.objects.get(account=account_for(chain_id=chain.id, kind=AccountKind.WALLET_BONUS,
                                                    customer=bound_spouse))
    assert bonus_lot.expires_at == day_end(add_months(now - dt.timedelta(days=10), 6))
    assert wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=110_000, key="x1",
                           actor=None) == txs
    # and the key sent again for another amount is refused, not answered with the first transfer
    with pytest.raises(Conflict) as caught:
        wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=50_000, key="x1", actor=None)
    assert caught.value.code == "idempotency_key_reused"
    assert wallet_balance(bound_spouse) == WalletBalance(principal=100_000, bonus=10_000)
    assert ledger_check(chain_id=chain.id) == []


def test_a_spend_key_sent_again_for_another_amount_is_refused_and_the_same_amount_replays(chain, wang, bonus_rules):
    wallet_topup(customer=wang, amount_fen=1_000_000, method="cash", key="t1")
    before = wallet_balance(wang).total
    [first] = wallet_spend(payer=wang, amount_fen=30_000, key="s1", source="order:1")
    assert wallet_spend(payer=wang, amount_fen=30_000, key="s1", source="order:1") == [first]
    with pytest.raises(Conflict) as caught:
        wallet_spend(payer=wang, amount_fen=45_000, key="s1", source="order:2")
    assert (caught.value.code, caught.value.field) == ("idempotency_key_reused", "key")
    assert wallet_balance(wang).total == before - 30_000


def test_a_spend_key_sent_again_for_another_wallet_or_payer_is_refused(chain, wang, bound_spouse, bonus_rules):
    # given: 王芳 shares her wallet with 李强, who has a wallet of his own; he paid ¥100 from hers under "s1"
    wallet_share_consent_grant(holder=wang, member=bound_spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    wallet_topup(customer=bound_spouse, amount_fen=100_000, method="cash", key="t2")
    [first] = wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1")
    # when: the key comes again for his own wallet, or for her paying herself — same amount, another request
    for payer, holder in ((bound_spouse, None), (wang, None), (wang, bound_spouse)):
        with pytest.raises(Conflict) as caught:
            wallet_spend(payer=payer, holder=holder, amount_fen=10_000, key="s1", source="order:1")
        assert caught.value.code == "idempotency_key_reused"
    # then: nothing else moved, and the true copy still replays
    assert (wallet_balance(wang).total, wallet_balance(bound_spouse).total) == (90_000, 100_000)
    assert wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1") == [first]
    assert WalletShareUse.objects.count() == 1


def test_a_transfer_key_sent_again_the_other_way_is_refused(chain, wang, bound_spouse, bonus_rules):
    wallet_share_consent_grant(holder=wang, member=bound_spouse, mode=WalletShareMode.STANDING, source="paper")
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    wallet_topup(customer=bound_spouse, amount_fen=100_000, method="cash", key="t2")
    txs = wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=20_000, key="x1", actor=None)
    with pytest.raises(Conflict) as caught:
        wallet_transfer(from_customer=bound_spouse, to_customer=wang, amount_fen=20_000, key="x1", actor=None)
    assert caught.value.code == "idempotency_key_reused"
    assert (wallet_balance(wang).total, wallet_balance(bound_spouse).total) == (80_000, 120_000)
    assert wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=20_000, key="x1",
                           actor=None) == txs


def test_a_spend_replayed_after_its_holder_was_merged_answers_with_the_first(chain, wang, clinic_a, bonus_rules,
                                                                                 director_scope):
    # given: 王芳's spend under "s1", then her record merged into another record of her
    from smileloop.customers.services import customer_merge
    from smileloop.loyalty.tests.conftest import patient
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    [first] = wallet_spend(payer=wang, amount_fen=10_000, key="s1", source="order:1")
    other = patient(chain, clinic_a, "王芳", birthday=dt.date(1980, 7, 1))
    customer_merge(scope=director_scope, survivor=other, merged=wang)
    other.refresh_from_db()
    # when the POS retries on the surviving record: the first spend, nothing more
    assert wallet_spend(payer=other, amount_fen=10_000, key="s1", source="order:1") == [first]
    assert wallet_balance(other).total == 90_000


def test_a_transfer_outside_a_family_card_is_refused_and_nothing_changes(chain, wang, stranger_b, bonus_rules):
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    with pytest.raises(NotFamily):
        wallet_transfer(from_customer=wang, to_customer=stranger_b, amount_fen=10_000, key="x1", actor=None)
    assert wallet_balance(wang).total == 100_000 and wallet_balance(stranger_b).total == 0


def test_a_transfer_without_the_holders_consent_is_refused(chain, wang, bound_spouse, bonus_rules):
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    with pytest.raises(ConsentMissing):
        wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=10_000, key="x1", actor=None)
    assert wallet_balance(bound_spouse).total == 0


def test_a_consent_for_each_use_does_not_let_a_transfer_through_without_consent_now(chain, wang, bound_spouse,
                                                                                    bonus_rules):
    # given: the holder consents to each use, not for good
    wallet_share_consent_grant(holder=wang, member=bound_spouse, mode=WalletShareMode.PER_USE, source="paper")
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when the transfer comes without this use's consent
    with pytest.raises(ConsentMissing) as refused:
        wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=10_000, key="x1", actor=None)
    # then nothing moved; with the consent recorded now it goes through, recorded as a per-use consent
    assert refused.value.field == "per_use_consent"
    assert wallet_balance(wang).total == 100_000 and wallet_balance(bound_spouse).total == 0
    assert WalletShareUse.objects.count() == 0
    wallet_transfer(from_customer=wang, to_customer=bound_spouse, amount_fen=10_000, key="x1", actor=None,
                    per_use_consent=True)
    assert wallet_balance(bound_spouse).total == 10_000
    assert WalletShareUse.objects.get().mode == ShareMode.PER_USE


def test_a_consent_refusal_names_a_holder_outside_the_readers_scope_masked(chain, clinic_b, wang, bound_spouse,
                                                                          bonus_rules, scope_a, admin_scope):
    # given 王芳 of clinic B holds the card her husband 李强 of clinic A is bound to, with no wallet-share consent
    wang.home_clinic = clinic_b
    wang.save(update_fields=["home_clinic"])
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when clinic A's staff have him pay from her wallet (a consent withdrawn after pricing: checkout's race)
    with pytest.raises(ConsentMissing) as refused:
        wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1", reader=scope_a)
    with pytest.raises(ConsentMissing) as refused_admin:
        wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1",
                     reader=admin_scope)
    with pytest.raises(ConsentMissing) as refused_nobody:
        wallet_spend(payer=bound_spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1")
    # then she is named masked to clinic A (he, in its scope, by name), in full to a chain role, masked to no one
    assert str(refused.value).startswith("王* has not given standing consent for 李强"), str(refused.value)
    assert str(refused_admin.value).startswith("王芳 has not given standing consent for 李强")
    assert "王芳" not in str(refused_nobody.value) and "李强" not in str(refused_nobody.value)


def test_a_not_bound_refusal_names_a_holder_outside_the_readers_scope_masked(chain, clinic_b, wang, spouse,
                                                                            family_membership, bonus_rules, scope_a):
    # given 王芳 of clinic B, and her husband 李强 of clinic A not (or no longer) bound to her card
    wang.home_clinic = clinic_b
    wang.save(update_fields=["home_clinic"])
    wallet_topup(customer=wang, amount_fen=100_000, method="cash", key="t1")
    # when
    with pytest.raises(ConsentMissing) as refused:
        wallet_spend(payer=spouse, holder=wang, amount_fen=10_000, key="s1", source="order:1", per_use_consent=True,
                     reader=scope_a)
    # then
    assert "王芳" not in str(refused.value) and "王*" in str(refused.value) and "李强" in str(refused.value)
