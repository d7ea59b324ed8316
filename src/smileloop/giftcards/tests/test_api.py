"""Who may hand out value nobody paid for through the API: vouchers and friend cards need value.issue."""

import json

import pytest

from smileloop.clinics.enums import Role
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers.privacy import customer_erase
from smileloop.giftcards.models import GiftCard, Voucher
from smileloop.ledger.models import LedgerTransaction

pytestmark = pytest.mark.django_db


def post(client, url, body, *, staff, key):
    headers = {"Authorization": f"Bearer {token_create(username=staff.user.username)}", "Idempotency-Key": key}
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.CONSULTANT])
def test_desk_roles_may_not_issue_vouchers_or_friend_cards(client, chain, clinic_a, member, programme,
                                                            cleaning_campaign, role):
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a])
    voucher = post(client, "/api/giftcards/vouchers", {"campaign": cleaning_campaign.code, "customer_id": member.id},
                   staff=staff, key="v-1")
    card = post(client, "/api/giftcards/friend-cards", {"member_id": member.id, "programme": programme.code},
                staff=staff, key="c-1")
    assert (voucher.status_code, card.status_code) == (403, 403)
    assert not Voucher.objects.exists() and not GiftCard.objects.exists()


@pytest.mark.parametrize("role", [Role.CLINIC_DIRECTOR, Role.MEMBER_OPS, Role.CHAIN_ADMIN])
def test_leads_and_member_operations_issue_them(client, chain, clinic_a, member, programme, cleaning_campaign, role):
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a] if role == Role.CLINIC_DIRECTOR else [])
    voucher = post(client, "/api/giftcards/vouchers", {"campaign": cleaning_campaign.code, "customer_id": member.id},
                   staff=staff, key="v-1")
    card = post(client, "/api/giftcards/friend-cards", {"member_id": member.id, "programme": programme.code},
                staff=staff, key="c-1")
    assert (voucher.status_code, card.status_code) == (201, 201), (voucher.content, card.content)
    assert Voucher.objects.get().customer_id == member.id and GiftCard.objects.get().giver_id == member.id


def test_a_code_look_up_gives_its_times_in_local_time_like_the_rest_of_the_api(client, chain, clinic_a, member,
                                                                                cleaning_campaign):
    director = StaffFactory(chain=chain, role=Role.CLINIC_DIRECTOR, clinics=[clinic_a])
    made = post(client, "/api/giftcards/vouchers", {"campaign": cleaning_campaign.code, "customer_id": member.id},
                staff=director, key="v-1").json()
    looked = client.get(f"/api/giftcards/codes/{made['code']}",
                        headers={"Authorization": f"Bearer {token_create(username=director.user.username)}"}).json()
    for at in (made["issued_at"], made["expires_at"], looked["issued_at"], *[h["at"] for h in looked["history"]]):
        assert at.endswith("+08:00"), at


def test_an_erased_record_is_given_no_voucher_no_friend_card_and_holds_no_card(client, chain, clinic_a, member, friend,
                                                                               programme, cleaning_campaign,
                                                                               director_a, director_scope):
    # given a card 王芳 gave, and the friend who was to register as its holder erased at her request
    card = post(client, "/api/giftcards/friend-cards", {"member_id": member.id, "programme": programme.code},
                staff=director_a, key="c-0").json()
    customer_erase(scope=director_scope, customer=friend, actor=None, reason="本人书面申请")
    customer_erase(scope=director_scope, customer=member, actor=None, reason="本人书面申请", forfeit=True)
    before = (Voucher.objects.count(), GiftCard.objects.count(), LedgerTransaction.objects.count())
    # when value is issued to them, or the card registered to the erased friend
    answers = {
        "body.customer_id": post(client, "/api/giftcards/vouchers",
                                 {"campaign": cleaning_campaign.code, "customer_id": friend.id},
                                 staff=director_a, key="v-1"),
        "body.member_id": post(client, "/api/giftcards/friend-cards",
                               {"member_id": member.id, "programme": programme.code}, staff=director_a, key="c-1"),
    }
    holder = post(client, f"/api/giftcards/codes/{card['code']}/holder", {"customer_id": friend.id},
                  staff=director_a, key="h-1")
    # then each is a 409 `erased` naming the person's field, and nothing was written
    for field, answer in answers.items():
        assert answer.status_code == 409, answer.content
        assert (answer.json()["code"], answer.json()["errors"][0]["field"]) == ("erased", field)
    assert (holder.status_code, holder.json()["code"]) == (409, "erased")
    assert (Voucher.objects.count(), GiftCard.objects.count(), LedgerTransaction.objects.count()) == before
    assert GiftCard.objects.get(code=card["code"]).holder_id is None
