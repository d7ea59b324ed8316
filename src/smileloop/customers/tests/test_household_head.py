"""Changing who heads a family (household_head_set): every relation is stored to the head, so each member's is
derived again where it follows for certain and asked for where it does not; the page's "Make head" control and the
API's POST …/family/head."""

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.services import token_create
from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.core.models import IdempotencyRecord
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, Household, HouseholdMember, Interaction
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import (
    customer_merge,
    customer_update,
    household_head_relations,
    household_head_set,
    household_member_add,
    household_member_remove,
)
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

H, S, C, P, SIB, GP, GC, OTH = (Relation.HEAD, Relation.SPOUSE, Relation.CHILD, Relation.PARENT, Relation.SIBLING,
                              Relation.GRANDPARENT, Relation.GRANDCHILD, Relation.OTHER)


def _relations(household_id=None) -> dict[str, str]:
    """name → relation to the head, of every member."""
    members = HouseholdMember.objects.select_related("customer")
    if household_id is not None:
        members = members.filter(household_id=household_id)
    return {m.customer.name: m.relation for m in members}


def _snapshot():
    return (sorted(HouseholdMember.objects.values_list("customer_id", "relation", "updated_at")),
            sorted(Household.objects.values_list("id", "head_id", "name", "updated_at")),
            Interaction.objects.count())


@pytest.fixture
def family(chain, clinic_a):
    """王峰 heads his wife 郑佳琪, their son 王锦程 and daughter 王锦溪, and his mother 王奶奶."""
    people = {name: CustomerFactory(chain=chain, name=name, home_clinic=clinic_a)
              for name in ["王峰", "郑佳琪", "王锦程", "王锦溪", "王奶奶"]}
    for name, relation in (("郑佳琪", S), ("王锦程", C), ("王锦溪", C), ("王奶奶", P)):
        household_member_add(head=people["王峰"], member=people[name], relation=relation)
    return people


# --- what follows ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("new_head_was", "member_was", "member_becomes"), [
    (C, S, P),     # the head's son heads: his mother is his parent
    (C, C, SIB),   # … his sister his sibling
    (C, P, GP),    # … his grandmother his grandparent
    (C, GC, None),  # … the head's grandchild: his child or a nephew?
    (S, C, C),     # the head's wife heads: their child is her child
    (S, P, OTH),     # … her mother-in-law another relative
    (S, SIB, OTH),
    (P, S, OTH),     # the head's mother heads: her daughter-in-law is another relative
    (P, C, GC),    # … her grandchild
    (SIB, C, OTH),   # the head's brother heads: the head's child is his nephew (another relative)
    (OTH, C, None),  # another relative heads: the head's child is anyone to them
    (GC, C, None),  # the head's grandchild heads: the head's child is their parent, or an uncle
])
def test_a_members_relation_to_the_new_head_follows_only_where_it_is_certain(new_head_was, member_was,
                                                                             member_becomes):
    derived = household_head_relations({1: H, 2: new_head_was, 3: member_was}, 2)

    assert derived[2] == H and derived[3] == member_becomes


@pytest.mark.parametrize(("new_head_was", "old_head_becomes"), [(C, P), (P, C), (S, S), (SIB, SIB), (GC, GP),
                                                                (GP, GC), (OTH, OTH)])
def test_the_old_head_becomes_the_inverse_of_the_new_heads_old_relation(new_head_was, old_head_becomes):
    assert household_head_relations({1: H, 2: new_head_was}, 2)[1] == old_head_becomes


# --- the service -----------------------------------------------------------------------------------------------

def test_the_son_made_head_heads_the_family_and_everyone_is_related_to_him(family, front_desk_a):
    son, father = family["王锦程"], family["王峰"]

    household = household_head_set(new_head=son, actor=front_desk_a)

    assert (household.head_id, household.name) == (son.pk, "王锦程家")
    assert _relations() == {"王锦程": H, "王峰": P, "郑佳琪": P, "王锦溪": SIB, "王奶奶": GP}
    # each head's timeline names the other masked, with what the old head now is
    handed = Interaction.objects.get(customer=father, text__startswith="family head")
    taken = Interaction.objects.get(customer=son, text__startswith="family head")
    assert handed.text == "family head handed to 王**; this patient is now their parent"
    assert taken.text == "family head taken over from 王* (parent)"
    assert (handed.author, taken.author, handed.data) == (front_desk_a, front_desk_a, {"relation": "parent"})


def test_a_relation_that_does_not_follow_must_be_given_and_nothing_is_written_until_it_is(family, chain, clinic_a):
    grandson = CustomerFactory(chain=chain, name="王小宝", home_clinic=clinic_a)
    household_member_add(head=family["王峰"], member=grandson, relation=GC)
    before = _snapshot()

    with pytest.raises(ValidationFailed) as refused:
        household_head_set(new_head=family["王锦程"])

    assert [(e.field, e.message) for e in refused.value.errors] == [
        (f"relations.{grandson.pk}", "does not follow for certain: say what 王小宝 is to 王锦程 (parent, child, "
                                     "spouse, …)")]
    assert _snapshot() == before

    household_head_set(new_head=family["王锦程"], relations={grandson.pk: C})
    assert _relations()["王小宝"] == C and _relations()["王锦程"] == H


@pytest.mark.parametrize("relations", [
    {"who": "王锦溪", "relation": "head"},
    {"who": "王锦溪", "relation": "cousin"},
    {"who": "王锦程", "relation": "child"},  # the new head
    {"who": "stranger", "relation": "child"},  # not of this family
])
def test_a_relation_given_wrongly_is_refused_naming_it_and_writes_nothing(family, chain, clinic_a, relations):
    stranger = CustomerFactory(chain=chain, name="外人", home_clinic=clinic_a)
    who = stranger if relations["who"] == "stranger" else family[relations["who"]]
    before = _snapshot()

    with pytest.raises(ValidationFailed) as refused:
        household_head_set(new_head=family["王锦程"], relations={who.pk: relations["relation"]})

    assert [e.field for e in refused.value.errors] == [f"relations.{who.pk}"]
    assert _snapshot() == before


def test_a_relation_given_wins_over_the_one_that_follows(family):
    # the grandmother is the son's grandparent by what follows; the desk says she is the wife's mother (other)
    household_head_set(new_head=family["王锦程"], relations={family["王奶奶"].pk: OTH})

    assert _relations()["王奶奶"] == OTH and _relations()["王峰"] == P


def test_making_the_head_head_again_changes_nothing(family):
    before = _snapshot()

    household = household_head_set(new_head=family["王峰"], relations={family["王锦程"].pk: OTH})

    assert household.head_id == family["王峰"].pk and _snapshot() == before


def test_someone_in_no_household_is_a_conflict(chain, clinic_a):
    alone = CustomerFactory(chain=chain, home_clinic=clinic_a)

    with pytest.raises(Conflict) as refused:
        household_head_set(new_head=alone)

    assert refused.value.code == "no_household"


def test_an_erased_record_is_refused_also_when_the_caller_read_it_before_the_erasure(family):
    son = family["王锦程"]
    Customer.objects.filter(pk=son.pk).update(erased_at=timezone.now())  # still in the family: as a race would see
    before = _snapshot()

    for stale_or_fresh in (son, Customer.objects.get(pk=son.pk)):
        with pytest.raises(Conflict) as refused:
            household_head_set(new_head=stale_or_fresh)
        assert refused.value.code == "erased"
    assert _snapshot() == before


def test_a_record_merged_away_is_refused_naming_the_merge(family, director_scope, chain, clinic_a):
    again = CustomerFactory(chain=chain, name="王锦程", home_clinic=clinic_a)
    son = family["王锦程"]
    customer_merge(scope=director_scope, survivor=again, merged=son, reason="同一人")

    with pytest.raises(Conflict) as refused:
        household_head_set(new_head=son)

    assert refused.value.code == "merged" and f"merged into #{again.pk}" in refused.value.message


def test_the_old_head_of_three_is_taken_out_once_another_member_heads(family):
    father = family["王峰"]
    with pytest.raises(Conflict) as refused:
        household_member_remove(member=father)
    assert refused.value.code == "household_head" and "make another member head first" in refused.value.message

    household_head_set(new_head=family["郑佳琪"])
    household_member_remove(member=father)

    assert _relations() == {"郑佳琪": H, "王锦程": C, "王锦溪": C, "王奶奶": OTH}
    assert Household.objects.get().head_id == family["郑佳琪"].pk


def test_a_merge_refused_for_a_head_goes_through_once_another_member_heads(family, director_scope, chain,
                                                                          clinic_a):
    # 王峰's second record is his brother-in-law's household's member; the first heads his own family
    again = CustomerFactory(chain=chain, name="王峰", home_clinic=clinic_a)
    household_member_add(head=CustomerFactory(chain=chain, name="郑大", home_clinic=clinic_a), member=again,
                         relation=SIB)
    with pytest.raises(Conflict) as refused:
        customer_merge(scope=director_scope, survivor=again, merged=family["王峰"], reason="同一人")
    assert refused.value.code == "household_conflict" and "make another member head of 王峰家" in refused.value.message

    household_head_set(new_head=family["郑佳琪"])
    customer_merge(scope=director_scope, survivor=again, merged=Customer.objects.get(pk=family["王峰"].pk),
                   reason="同一人")

    assert _relations(Household.objects.get(head=family["郑佳琪"]).pk) == {"郑佳琪": H, "王锦程": C, "王锦溪": C,
                                                                          "王奶奶": OTH}


def test_the_household_name_follows_the_new_head_and_their_renaming(family):
    household_head_set(new_head=family["郑佳琪"])
    customer_update(customer=family["王峰"], data={"name": "王峰峰"})  # the old head no longer names it
    assert Household.objects.get().name == "郑佳琪家"

    customer_update(customer=Customer.objects.get(pk=family["郑佳琪"].pk), data={"name": "郑佳"})
    assert Household.objects.get().name == "郑佳家"


def test_erasing_the_new_head_dissolves_the_family_and_the_old_head_only_leaves(family, director_a):
    from smileloop.clinics.selectors import scope_for_staff

    household_head_set(new_head=family["王锦程"])
    customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=family["王峰"].pk),
                   actor=director_a, reason="本人申请")
    assert _relations() == {"王锦程": H, "郑佳琪": P, "王锦溪": SIB, "王奶奶": GP}

    customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=family["王锦程"].pk),
                   actor=director_a, reason="本人申请")
    assert not Household.objects.exists() and not HouseholdMember.objects.exists()


# --- the 360 page ----------------------------------------------------------------------------------------------

def _post_head(client, page, member, data=None):
    return client.post(reverse("customers:family_head", args=[page.id, member.id]), data or {},
                       headers={"HX-Request": "true", "Accept-Language": "en"})


def test_the_family_section_offers_make_head_to_staff_who_edit_families(client, front_desk_a, marketing, family):
    page = reverse("customers:detail", args=[family["王锦溪"].id])

    client.force_login(front_desk_a.user)
    shown = client.get(page).content.decode()
    assert all(f'data-testid="make-head-{family[n].id}"' in shown for n in ("郑佳琪", "王锦程", "王锦溪", "王奶奶"))
    assert f'data-testid="make-head-{family["王峰"].id}"' not in shown  # the head

    client.force_login(marketing.user)
    assert 'data-testid="make-head-' not in client.get(page).content.decode()
    assert _post_head(client, family["王锦溪"], family["王锦程"]).status_code == 403
    assert Household.objects.get().head_id == family["王峰"].pk


def test_make_head_on_the_page_changes_the_head_and_shows_the_family_again(client, front_desk_a, family):
    client.force_login(front_desk_a.user)

    response = _post_head(client, family["王锦溪"], family["王锦程"])

    assert response.status_code == 200 and "王锦程家" in response.text
    assert _relations()["王锦程"] == H and _relations()["王锦溪"] == SIB
    # back, without htmx: the grandmother's relation to 王峰 does not follow from her being the son's grandparent
    plain = client.post(reverse("customers:family_head", args=[family["王锦溪"].id, family["王峰"].id]),
                        {f"relation-{family['王奶奶'].id}": "parent"})
    assert plain.status_code == 302 and plain.url.endswith("#family")
    assert _relations() == {"王峰": H, "郑佳琪": S, "王锦程": C, "王锦溪": C, "王奶奶": P}


def test_the_page_asks_for_the_relations_that_do_not_follow(client, front_desk_a, family, chain, clinic_a):
    grandson = CustomerFactory(chain=chain, name="王小宝", home_clinic=clinic_a)
    household_member_add(head=family["王峰"], member=grandson, relation=GC)
    client.force_login(front_desk_a.user)

    page = client.get(reverse("customers:detail", args=[family["王锦程"].id])).content.decode()
    assert f'name="relation-{grandson.id}"' in page and "What is 王小宝 to 王锦程?" in page

    refused = _post_head(client, family["王锦程"], family["王锦程"])
    assert refused.status_code == 422
    assert "Choose what each of them is to 王锦程: 王小宝." in refused.text
    assert Household.objects.get().head_id == family["王峰"].pk

    done = _post_head(client, family["王锦程"], family["王锦程"], {f"relation-{grandson.id}": "child"})
    assert done.status_code == 200 and _relations()["王小宝"] == C


def test_the_page_answers_404_for_a_relative_or_a_patient_outside_the_scope(client, front_desk_a, family, chain,
                                                                           clinic_b):
    other_clinic = CustomerFactory(chain=chain, name="别家", home_clinic=clinic_b)
    household_member_add(head=family["王峰"], member=other_clinic, relation=SIB)
    stranger = CustomerFactory(chain=chain, name="外人", home_clinic=family["王峰"].home_clinic)
    client.force_login(front_desk_a.user)

    assert _post_head(client, family["王峰"], other_clinic).status_code == 404
    assert _post_head(client, family["王峰"], stranger).status_code == 404
    assert _post_head(client, other_clinic, family["王锦程"]).status_code == 404
    assert Household.objects.get().head_id == family["王峰"].pk


def test_the_page_cannot_make_head_when_a_hidden_relative_needs_a_relation(client, front_desk_a, family, chain,
                                                                          clinic_b):
    hidden = CustomerFactory(chain=chain, name="别家", home_clinic=clinic_b)
    household_member_add(head=family["王峰"], member=hidden, relation=GC)  # the son's child, or his nephew?
    client.force_login(front_desk_a.user)

    page = client.get(reverse("customers:detail", args=[family["王锦程"].id])).content.decode()
    refused = _post_head(client, family["王锦程"], family["王锦程"])

    assert f'data-testid="make-head-{family["王锦程"].id}"' in page and "别家" not in page
    assert refused.status_code == 422 and "A relative at a clinic outside your access" in refused.text
    assert "别家" not in refused.text and Household.objects.get().head_id == family["王峰"].pk


def test_the_remove_refusal_points_to_make_head(client, front_desk_a, family):
    client.force_login(front_desk_a.user)

    refused = client.post(reverse("customers:family_remove", args=[family["王锦程"].id, family["王峰"].id]),
                          headers={"HX-Request": "true", "Accept-Language": "en"})

    assert refused.status_code == 422 and "王峰 heads this family: make another member head first." in refused.text


def test_the_page_speaks_chinese(client, front_desk_a, family):
    client.force_login(front_desk_a.user)

    page = client.get(reverse("customers:detail", args=[family["王锦程"].id]),
                      headers={"Accept-Language": "zh-hans"}).content.decode()
    _post_head(client, family["王锦程"], family["王锦程"])
    timeline = client.get(reverse("customers:detail", args=[family["王锦程"].id]),
                          headers={"Accept-Language": "zh-hans"}).content.decode()

    assert "设为户主" in page and "确定将 王锦程 设为这个家庭的户主吗？" in page
    assert "接替 王*（父母）成为户主" in timeline


# --- the API ---------------------------------------------------------------------------------------------------

def _api(client, customer, body, *, token, key="h1"):
    return client.post(f"/api/customers/{customer.id}/family/head", data=json.dumps(body),
                       content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


@pytest.fixture
def token_a(front_desk_a):
    return token_create(username=front_desk_a.user.username)


def test_the_api_makes_head_and_a_replay_answers_the_same_without_writing_again(client, token_a, family):
    son = family["王锦程"]

    first = _api(client, son, {}, token=token_a)
    notes = Interaction.objects.count()
    replay = _api(client, son, {}, token=token_a)

    assert first.status_code == 200 and replay.json() == first.json()
    body = first.json()
    assert (body["head_id"], body["name"], body["relation"]) == (son.id, "王锦程家", "head")
    assert {m["customer_id"]: m["relation"] for m in body["members"]}[family["王峰"].id] == "parent"
    assert Interaction.objects.count() == notes and IdempotencyRecord.objects.count() == 1


def test_the_api_names_each_relation_missing_or_wrong_and_writes_nothing(client, token_a, family, chain, clinic_a,
                                                                         clinic_b):
    grandson = CustomerFactory(chain=chain, name="王小宝", home_clinic=clinic_a)
    hidden = CustomerFactory(chain=chain, name="别家", home_clinic=clinic_b)
    household_member_add(head=family["王峰"], member=grandson, relation=GC)
    household_member_add(head=family["王峰"], member=hidden, relation=SIB)
    before = _snapshot()

    missing = _api(client, family["王锦程"], {}, token=token_a, key="a")
    wrong = _api(client, family["王锦程"], {"relations": {str(grandson.id): "cousin"}}, token=token_a, key="b")
    outside = _api(client, family["王锦程"], {"relations": {str(hidden.id): "other", "x": "child"}}, token=token_a,
                   key="c")
    bad_type = _api(client, family["王锦程"], {"relations": {str(grandson.id): 3}}, token=token_a, key="d")

    assert (missing.status_code, missing.json()["code"]) == (422, "invalid")
    assert [e["field"] for e in missing.json()["errors"]] == [f"body.relations.{grandson.id}"]
    assert [e["field"] for e in wrong.json()["errors"]] == [f"body.relations.{grandson.id}"]
    assert [e["field"] for e in outside.json()["errors"]] == [f"body.relations.{hidden.id}", "body.relations.x"]
    assert "别家" not in outside.text and bad_type.status_code == 422
    assert _snapshot() == before


def test_the_api_masks_a_hidden_relative_whose_relation_must_be_given(client, token_a, family, chain, clinic_b):
    hidden = CustomerFactory(chain=chain, name="别家", home_clinic=clinic_b)
    household_member_add(head=family["王峰"], member=hidden, relation=GC)

    refused = _api(client, family["王锦程"], {}, token=token_a)

    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["body.relations"]
    assert str(hidden.id) not in refused.text and "别家" not in refused.text


def test_the_api_is_404_outside_the_scope_and_409_for_an_erased_record(client, token_a, family, chain, clinic_b):
    other_clinic = CustomerFactory(chain=chain, name="别家", home_clinic=clinic_b)
    household_member_add(head=family["王峰"], member=other_clinic, relation=SIB)
    erased = CustomerFactory(chain=chain, home_clinic=family["王峰"].home_clinic, erased_at=timezone.now())

    assert _api(client, other_clinic, {}, token=token_a, key="a").status_code == 404
    assert (_api(client, erased, {}, token=token_a, key="b").json()["code"]) == "erased"
    assert Household.objects.get().head_id == family["王峰"].pk
