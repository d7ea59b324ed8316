import factory

from smileloop.clinics.tests.factories import ChainFactory
from smileloop.giftcards.enums import VoucherValueKind
from smileloop.giftcards.models import GiftCardProgramme, VoucherCampaign


class ProgrammeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GiftCardProgramme

    chain = factory.SubFactory(ChainFactory)
    code = factory.Sequence(lambda n: f"friend-card-{n}")
    name = "亲友储值卡"
    face_value_fen = 60000
    valid_months = 3


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VoucherCampaign

    chain = factory.SubFactory(ChainFactory)
    code = factory.Sequence(lambda n: f"campaign-{n}")
    name = "9.9元洁牙"
    price_paid_fen = 990
    value_kind = VoucherValueKind.WHOLE_LINE
    valid_days = 30
