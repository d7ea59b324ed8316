import datetime as dt
import io

from django.core.management import call_command

from smileloop.checkout.models import Settlement
from smileloop.demo.services import demo_create
from smileloop.giftcards.enums import ProgrammeKind
from smileloop.giftcards.models import GiftCard, GiftCardEvent, Voucher
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.models import Entry, Lot
from smileloop.loyalty.models import PackagePurchase, Topup
from smileloop.membership.enums import MembershipStatus
from smileloop.membership.models import BenefitReveal, Membership

TODAY = dt.date(2026, 11, 23)


def _state() -> tuple[int, ...]:
    return (Membership.objects.count(), Lot.objects.count(), Entry.objects.count(), Topup.objects.count(),
            PackagePurchase.objects.count(), GiftCard.objects.count(), Voucher.objects.count(),
            Settlement.objects.count(), BenefitReveal.objects.count())


def test_demo_loads_members_points_wallets_packages_and_friend_cards_the_ledger_reconciles_and_a_replay_is_a_no_op(
        db):
    # when
    report = demo_create(customers=300, today=TODAY, points_orders=150)
    before = _state()
    second = demo_create(customers=300, today=TODAY, points_orders=150)
    # then
    chain = report.chain
    assert Membership.objects.filter(chain=chain, status=MembershipStatus.ACTIVE).exists()
    assert Lot.objects.filter(account__chain=chain, account__kind=AccountKind.POINTS, remaining__gt=0).exists()
    assert Topup.objects.filter(chain=chain, amount_fen__gt=0).exists()
    assert PackagePurchase.objects.filter(chain=chain).exists()
    card = GiftCard.objects.filter(chain=chain, programme__kind=ProgrammeKind.FRIEND_CARD).order_by("id").first()
    assert card is not None and card.face_value_fen == 60_000 and card.giver is not None
    assert GiftCardEvent.objects.filter(card__chain=chain, kind="used").exists()
    assert Voucher.objects.filter(chain=chain, status="redeemed").exists()
    assert report.loaded["members"] > 0 and report.loaded["gift_cards"] == GiftCard.objects.filter(chain=chain).count()
    out = io.StringIO()
    call_command("ledger", "check", stdout=out)
    assert "OK" in out.getvalue()
    assert not second.created and second.programmes == {} and _state() == before
