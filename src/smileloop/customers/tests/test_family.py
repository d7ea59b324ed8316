"""Linking relatives from a customer's page: the relation staff pick is what the relative is to that customer,
whoever heads the household; what is stored is the relation to the head."""

import uuid

import pytest
from django.urls import reverse

from smileloop.core.errors import Conflict, ValidationFailed
from smileloop.customers.enums import Relation
from smileloop.customers.models import Customer, Household, HouseholdMember
from smileloop.customers.services import customer_merge, household_member_add, household_relative_add
from smileloop.customers.tests.factories import CustomerFactory


def _place(customer) -> tuple[str, str] | None:
    """(head's name, relation to the head), or None without a household."""
    member = HouseholdMember.objects.select_related("household__head").filter(customer=customer).first()
    return None if member is None else (member.household.head.name, member.relation)


@pytest.fixture
def family(chain, clinic_a):
    """王峰 heads a household with his wife 郑佳琪 and their son 王锦程; 王奶奶 and 小李 are in none."""
    people = {name: CustomerFactory(chain=chain, name=name, home_clinic=clinic_a)
              for name in ["王峰", "郑佳琪", "王锦程", "王奶奶", "小李"]}
    household_member_add(head=people["王峰"], member=people["郑佳琪"], relation=Relation.SPOUSE)
    household_member_add(head=people["王峰"], member=people["王锦程"], relation=Relation.CHILD)
    return people


@pytest.mark.parametrize(("page", "relative", "relation", "expected"), [
    # from the son's page: his sister is the head's child, his child the head's grandchild
    ("王锦程", "小李", Relation.SIBLING, ("王峰", Relation.CHILD)),
    ("王锦程", "小李", Relation.CHILD, ("王峰", Relation.GRANDCHILD)),
    # from the wife's page: her mother is the head's mother-in-law (another relative), her child the head's child
    ("郑佳琪", "王奶奶", Relation.PARENT, ("王峰", Relation.OTHER)),
    ("郑佳琪", "小李", Relation.CHILD, ("王峰", Relation.CHILD)),
    # from the head's page: as picked
    ("王峰", "王奶奶", Relation.PARENT, ("王峰", Relation.PARENT)),
])
def test_the_relation_is_what_the_relative_is_to_the_customer_whose_page_it_is(family, page, relative, relation,
                                                                                  expected):
    household_relative_add(customer=family[page], relative=family[relative], relation=relation)

    assert _place(family[relative]) == expected
    assert Household.objects.count() == 1


@pytest.mark.parametrize(("page", "relative", "relation", "expected"), [
    ("王奶奶", "王峰", Relation.CHILD, ("王峰", Relation.PARENT)),  # the head is her son: she is his parent
    ("小李", "王锦程", Relation.SIBLING, ("王峰", Relation.CHILD)),
    ("小李", "郑佳琪", Relation.PARENT, ("王峰", Relation.CHILD)),  # the head's wife is her mother
])
def test_a_customer_without_a_household_joins_the_relatives(family, page, relative, relation, expected):
    household_relative_add(customer=family[page], relative=family[relative], relation=relation)

    assert _place(family[page]) == expected
    assert Household.objects.count() == 1


def test_without_households_a_parent_heads_the_new_one_else_the_customer_does(chain, clinic_a):
    child, mother = CustomerFactory(chain=chain, name="李小宝"), CustomerFactory(chain=chain, name="周敏")
    wife, husband = CustomerFactory(chain=chain, name="陈芳"), CustomerFactory(chain=chain, name="刘洋")

    household_relative_add(customer=child, relative=mother, relation=Relation.PARENT)  # from the child's page
    household_relative_add(customer=wife, relative=husband, relation=Relation.SPOUSE)

    assert (_place(mother), _place(child)) == (("周敏", Relation.HEAD), ("周敏", Relation.CHILD))
    assert (_place(wife), _place(husband)) == (("陈芳", Relation.HEAD), ("陈芳", Relation.SPOUSE))


def test_what_does_not_follow_for_certain_is_refused_and_changes_nothing(family):
    # the son's grandmother: the head's mother, or his wife's?
    with pytest.raises(ValidationFailed) as caught:
        household_relative_add(customer=family["王锦程"], relative=family["王奶奶"], relation=Relation.GRANDPARENT)
    assert caught.value.errors[0].field == "relation"
    assert _place(family["王奶奶"]) is None and HouseholdMember.objects.count() == 3


def test_two_people_in_households_already_are_a_conflict(family, chain):
    other = CustomerFactory(chain=chain, name="赵六")
    household_member_add(head=other, member=family["小李"], relation=Relation.CHILD)

    with pytest.raises(Conflict) as same:
        household_relative_add(customer=family["王峰"], relative=family["王锦程"], relation=Relation.CHILD)
    with pytest.raises(Conflict) as elsewhere:
        household_relative_add(customer=family["王峰"], relative=family["小李"], relation=Relation.CHILD)

    assert (same.value.code, elsewhere.value.code) == ("household_same", "household_conflict")
    assert _place(family["小李"]) == ("赵六", Relation.CHILD)


def test_the_family_form_asks_what_they_are_to_this_patient_and_explains_a_refusal(client, front_desk_a, family):
    from smileloop.customers.tests.test_views import login

    login(client, front_desk_a)
    grandmother = family["王奶奶"]
    grandmother.mobile = "+8613600136000"
    grandmother.save(update_fields=["mobile"])
    url = reverse("customers:family_add", args=[family["王锦程"].id])

    # the label names the patient of the page
    page = client.get(reverse("customers:detail", args=[family["王锦程"].id]), HTTP_ACCEPT_LANGUAGE="en").text
    assert "What they are to 王锦程" in page

    # a grandmother from the child's page is refused with the reason
    response = client.post(url, {"member": "136 0013 6000", "relation": "grandparent"},
                           headers={"HX-Request": "true", "Accept-Language": "zh-hans"})
    assert response.status_code == 422
    assert "户主的页面" in response.text
    assert _place(grandmother) is None

    # the sister is linked as the head's child
    sister = CustomerFactory(chain=family["王峰"].chain, name="王锦瑶", mobile="+8613500135000",
                             home_clinic=family["王峰"].home_clinic)
    response = client.post(url, {"member": "13500135000", "relation": "sibling"}, headers={"HX-Request": "true", "Accept-Language": "zh-hans"})
    assert response.status_code == 200 and "王锦瑶" in response.text
    assert _place(sister) == ("王峰", Relation.CHILD)

    # linking her again says she is in this family already
    response = client.post(url, {"member": "13500135000", "relation": "sibling"}, headers={"HX-Request": "true", "Accept-Language": "zh-hans"})
    assert response.status_code == 422 and "已在这个家庭中" in response.text


# --- registering a new customer with the consents given at the desk and the relative they came with ------------


def _register(client, clinic, *, follow: bool = False, **extra):
    data = {"name": "李小宝", "gender": "M", "birthday": "2019-05-01", "home_clinic": clinic.id,
            "key": uuid.uuid4().hex, **extra}  # a new page's key: each call is a form of its own
    return client.post(reverse("customers:create"), data, HTTP_ACCEPT_LANGUAGE="en", follow=follow)


def test_a_child_is_registered_with_the_parent_and_the_consents_given_at_the_desk(client, front_desk_a, chain,
                                                                                 clinic_a):
    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.customers.models import Consent, Customer
    from smileloop.customers.selectors import guardians_for
    from smileloop.customers.tests.test_views import login

    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    login(client, front_desk_a)

    response = _register(client, clinic_a, relative="138 0013 8000", relation=Relation.PARENT,
                         consents=["data_processing", "health_data"], consent_source="paper",
                         consent_evidence="登记表 2026-118")

    child = Customer.objects.get(name="李小宝")
    assert response.status_code == 302 and child.mobile is None
    assert _place(mother) == ("周敏", Relation.HEAD) and _place(child) == ("周敏", Relation.CHILD)
    assert guardians_for(scope_for_staff(front_desk_a), [child.pk]) == {child.pk: mother}
    consents = Consent.objects.filter(customer=child).order_by("purpose")
    assert [(c.purpose, c.granted, c.source, c.evidence, c.recorded_by_id) for c in consents] == [
        ("data_processing", True, "paper", "登记表 2026-118", front_desk_a.id),
        ("health_data", True, "paper", "登记表 2026-118", front_desk_a.id)]


@pytest.mark.parametrize(("extra", "field", "message"), [
    ({"relative": "138 0013 8000"}, "relation", "Say what the relative is to the new customer."),
    ({"relation": "parent"}, "relative", "Enter the relative's mobile or customer number, or clear the relation."),
    ({"relative": "13900139000", "relation": "parent"}, "relative",
     "No customer with this mobile or number in your clinics."),
    ({"consents": ["marketing_sms"], "consent_source": ""}, "consent_source", "Say how the consent was given."),
    ({"consents": ["no_such_purpose"]}, "consents", "Select a valid choice."),
])
def test_a_registration_with_a_bad_family_or_consent_part_names_it_and_writes_nothing(client, front_desk_a, chain,
                                                                                    clinic_a, extra, field, message):
    from smileloop.customers.models import Consent, Customer
    from smileloop.customers.tests.test_views import login

    CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    login(client, front_desk_a)

    response = _register(client, clinic_a, **extra)

    assert response.status_code == 422
    assert any(message in str(e) for e in response.context["form"].errors[field])
    assert not Customer.objects.filter(name="李小宝").exists() and not Consent.objects.exists()
    assert not HouseholdMember.objects.exists()


def test_a_relation_that_cannot_be_linked_leaves_no_person_behind(client, front_desk_a, chain, clinic_a):
    from smileloop.customers.tests.test_views import login

    # given a woman who is the sister of a household's head: whose grandchild is not certain from that
    head = CustomerFactory(chain=chain, name="周建国", home_clinic=clinic_a)
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    household_member_add(head=head, member=mother, relation=Relation.SIBLING)
    login(client, front_desk_a)

    response = _register(client, clinic_a, relative="13800138000", relation=Relation.GRANDPARENT,
                         consents=["data_processing"], consent_source="paper")

    assert response.status_code == 422
    assert any("Add them from the head's page" in str(e) for e in response.context["form"].errors["relation"])
    assert not Customer.objects.filter(name="李小宝").exists()


def test_the_edit_form_has_no_registration_parts(client, front_desk_a, chain, clinic_a):
    from smileloop.customers.tests.test_views import login

    customer = CustomerFactory(chain=chain, name="周敏", home_clinic=clinic_a)
    login(client, front_desk_a)
    page = client.get(reverse("customers:edit", args=[customer.id])).text
    assert 'id="registration-consents"' not in page and 'name="relative"' not in page
    assert 'id="registration-consents"' in client.get(reverse("customers:create")).text


def test_households_join_links_many_at_once_and_later_links_see_earlier_ones(chain, clinic_a, family):
    from smileloop.customers.models import Interaction
    from smileloop.customers.services import households_join

    mother, child1, child2 = (CustomerFactory(chain=chain, name=n, home_clinic=clinic_a) for n in ("周敏", "小一", "小二"))
    links = [
        (child1.pk, mother.pk, Relation.PARENT),  # the mother heads a new household
        (child2.pk, mother.pk, Relation.PARENT),  # the same one
        (child1.pk, mother.pk, Relation.PARENT),  # already there
        (family["小李"].pk, family["王锦程"].pk, Relation.GRANDPARENT),  # the son's grandchild? not for certain
        (family["王锦程"].pk, mother.pk, Relation.PARENT),  # in 王峰's household already
    ]

    # a plan writes nothing
    assert households_join(links, write=False) == ["joined", "joined", "already", "unclear", "elsewhere"]
    assert Household.objects.count() == 1

    # the real thing
    assert households_join(links) == ["joined", "joined", "already", "unclear", "elsewhere"]
    assert Household.objects.count() == 2
    assert (_place(mother), _place(child1), _place(child2)) == (
        ("周敏", Relation.HEAD), ("周敏", Relation.CHILD), ("周敏", Relation.CHILD))
    notes = sorted(Interaction.objects.filter(customer=mother, kind="note").values_list("text", flat=True))
    assert notes == ["family member added: 小* (child)", "family member added: 小* (child)"]


# --- taking someone out of a family -----------------------------------------------------------------------------


def test_a_member_taken_out_leaves_the_rest_and_the_head_hears_of_it(family):
    from smileloop.customers.models import Interaction
    from smileloop.customers.services import household_member_remove

    household_member_remove(member=family["王锦程"])

    assert _place(family["王锦程"]) is None
    assert (_place(family["王峰"]), _place(family["郑佳琪"])) == (("王峰", Relation.HEAD), ("王峰", Relation.SPOUSE))
    assert Interaction.objects.filter(customer=family["王峰"], text="family member removed: 王** (child)").exists()


def test_a_household_left_with_one_person_is_dissolved(family):
    from smileloop.customers.services import household_member_remove

    household_member_remove(member=family["王锦程"])
    household_member_remove(member=family["郑佳琪"])

    assert not Household.objects.exists() and not HouseholdMember.objects.exists()


def test_the_head_of_three_is_refused_and_of_two_dissolves_the_household(family):
    from smileloop.customers.services import household_member_remove

    with pytest.raises(Conflict) as refused:
        household_member_remove(member=family["王峰"])
    assert refused.value.code == "household_head" and HouseholdMember.objects.count() == 3

    household_member_remove(member=family["王锦程"])
    household_member_remove(member=family["王峰"])
    assert not Household.objects.exists()

    with pytest.raises(Conflict) as alone:
        household_member_remove(member=family["王峰"])
    assert alone.value.code == "no_household"


def test_the_family_section_takes_a_relative_out_and_explains_a_refusal(client, front_desk_a, family, chain, clinic_b):
    from smileloop.customers.tests.test_views import login

    login(client, front_desk_a)
    son, head = family["王锦程"], family["王峰"]

    # the head of three cannot leave first
    refused = client.post(reverse("customers:family_remove", args=[son.id, head.id]),
                          headers={"HX-Request": "true", "Accept-Language": "en"})
    assert refused.status_code == 422 and "王峰 heads this family: make another member head first." in refused.text

    # the son is taken out from his own page
    response = client.post(reverse("customers:family_remove", args=[son.id, son.id]),
                           headers={"HX-Request": "true", "Accept-Language": "en"})
    assert response.status_code == 200 and _place(son) is None

    # a relative of another clinic, or someone outside the family, is not found
    stranger = CustomerFactory(chain=chain, name="外人", home_clinic=family["王峰"].home_clinic)
    other_clinic = CustomerFactory(chain=chain, name="别家", home_clinic=clinic_b)
    household_member_add(head=head, member=other_clinic, relation=Relation.SIBLING)
    for member in (stranger, other_clinic):
        assert client.post(reverse("customers:family_remove", args=[head.id, member.id])).status_code == 404
    assert _place(other_clinic) == ("王峰", Relation.SIBLING)


def test_a_child_already_in_the_relatives_family_is_not_registered_twice(client, front_desk_a, chain, clinic_a):
    from smileloop.customers.tests.test_views import login

    # given: 李小宝 imported with his mother's number, so in her family without a phone of his own
    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    child = CustomerFactory(chain=chain, name="李小宝", mobile=None, birthday="2019-05-01", home_clinic=clinic_a)
    household_member_add(head=mother, member=child, relation=Relation.CHILD)
    login(client, front_desk_a)

    # when the front desk registers him again, with his mother (his name written with a stray space)
    response = _register(client, clinic_a, name="李小宝 ", relative="138 0013 8000", relation=Relation.PARENT,
                         consents=["data_processing"], consent_source="paper", follow=True)

    # then nothing is written; the form says so, on a page of its own (a GET), and links to his record
    assert response.redirect_chain[0][0].startswith(reverse("customers:create") + "?warned=")
    assert any("李小宝 is already in 周敏's family" in str(e) for e in response.context["form"].errors["name"])
    page = response.content.decode()
    assert 'data-testid="existing-customer"' in page and reverse("customers:detail", args=[child.id]) in page
    assert Customer.objects.filter(name="李小宝").count() == 1 and not child.consents.exists()
    assert HouseholdMember.objects.filter(household__head=mother).count() == 2


def test_a_namesake_with_another_birthday_or_with_a_phone_is_registered(client, front_desk_a, chain, clinic_a):
    from smileloop.customers.tests.test_views import login

    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    cousin = CustomerFactory(chain=chain, name="李小宝", mobile=None, birthday="2012-01-09", home_clinic=clinic_a)
    household_member_add(head=mother, member=cousin, relation=Relation.OTHER)
    login(client, front_desk_a)

    born_later = _register(client, clinic_a, relative="13800138000", relation=Relation.PARENT)
    with_phone = _register(client, clinic_a, name="周敏", mobile="13900139000", birthday="1990-03-03",
                           relative="13800138000", relation=Relation.SIBLING)

    assert born_later.status_code == 302 and with_phone.status_code == 302
    assert Customer.objects.filter(name="李小宝").count() == 2
    assert Customer.objects.filter(name="周敏").count() == 2


def test_the_service_refuses_a_family_member_registered_twice_and_writes_nothing(chain, clinic_a, front_desk_a):
    import datetime as dt

    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.customers.services import customer_register

    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    child = CustomerFactory(chain=chain, name="李小宝", mobile=None, birthday=None, home_clinic=clinic_a)
    household_member_add(head=mother, member=child, relation=Relation.CHILD)
    count = Customer.objects.count()

    with pytest.raises(Conflict) as refused:
        customer_register(scope=scope_for_staff(front_desk_a), relative=mother, relation=Relation.PARENT,
                          data={"name": "李小宝", "birthday": dt.date(2019, 5, 1), "home_clinic": clinic_a},
                          consents=[{"purpose": "data_processing", "granted": True, "source": "paper"}],
                          actor=front_desk_a)

    assert refused.value.code == "family_member_exists" and refused.value.field == "name"
    assert Customer.objects.count() == count and not child.consents.exists()


def test_a_family_member_of_another_clinic_is_named_masked_and_not_linked(client, front_desk_a, chain, clinic_a,
                                                                           clinic_b):
    from smileloop.customers.tests.test_views import login

    mother = CustomerFactory(chain=chain, name="周敏", mobile="+8613800138000", home_clinic=clinic_a)
    child = CustomerFactory(chain=chain, name="李小宝", mobile=None, birthday="2019-05-01", home_clinic=clinic_b)
    household_member_add(head=mother, member=child, relation=Relation.CHILD)
    login(client, front_desk_a)

    response = client.post(reverse("customers:create"), {
        "name": "李小宝", "gender": "M", "birthday": "2019-05-01", "home_clinic": clinic_a.id, "key": "k1",
        "relative": "13800138000", "relation": Relation.PARENT}, HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)

    assert response.redirect_chain[0][0].startswith(reverse("customers:create") + "?warned=")
    assert "李**已在周敏的家庭中" in response.text
    assert reverse("customers:detail", args=[child.id]) not in response.text
    assert 'data-testid="existing-customer"' not in response.text
    assert Customer.objects.filter(name="李小宝").count() == 1


# --- merging records of people in households ---------------------------------------------------------------------

def _households() -> list[tuple[str, list[tuple[str, str]]]]:
    """Every household as (head's name, sorted (member name, relation)): the head must be among its members."""
    return sorted((h.head.name, sorted((m.customer.name, m.relation) for m in h.members.select_related("customer")))
                  for h in Household.objects.select_related("head"))


def test_merging_the_head_of_a_family_into_the_head_of_another_joins_the_families(family, chain, clinic_a,
                                                                                   director_scope):
    # given: 王峰 was registered twice; the second record heads a household with his mother
    again = CustomerFactory(chain=chain, name="王峰", home_clinic=clinic_a)
    household_member_add(head=again, member=family["王奶奶"], relation=Relation.PARENT)
    # when
    customer_merge(scope=director_scope, survivor=family["王峰"], merged=again, reason="同一人")
    # then: one household, headed by the survivor, with every relative
    assert _households() == [("王峰", [("王奶奶", "parent"), ("王峰", "head"), ("王锦程", "child"),
                                       ("郑佳琪", "spouse")])]


def test_merging_a_family_head_into_a_member_of_another_family_is_refused_and_changes_nothing(family, chain,
                                                                                            clinic_a, director_scope):
    # given: 郑佳琪's duplicate record heads a household with her mother (as 小李 stands in)
    again = CustomerFactory(chain=chain, name="郑佳琪", home_clinic=clinic_a)
    household_member_add(head=again, member=family["小李"], relation=Relation.PARENT)
    before = _households()
    # when
    with pytest.raises(Conflict) as refused:
        customer_merge(scope=director_scope, survivor=family["郑佳琪"], merged=again, reason="同一人")
    # then
    assert refused.value.code == "household_conflict"
    assert "take one of them out of their household" in refused.value.message
    assert _households() == before
    assert Customer.objects.get(pk=again.pk).merged_into_id is None


def test_merging_a_member_into_someone_of_another_family_keeps_that_family_whole(family, chain, clinic_a,
                                                                                director_scope):
    # given: the son has a duplicate record who is in the household of 小李 (a wrong link)
    household_member_add(head=family["小李"], member=family["王奶奶"], relation=Relation.PARENT)
    again = CustomerFactory(chain=chain, name="王锦程", home_clinic=clinic_a)
    household_member_add(head=family["小李"], member=again, relation=Relation.OTHER)
    # when
    customer_merge(scope=director_scope, survivor=family["王锦程"], merged=again, reason="同一人")
    # then: both households keep a head that is among their members
    assert _households() == [
        ("小李", [("小李", "head"), ("王奶奶", "parent")]),
        ("王峰", [("王峰", "head"), ("王锦程", "child"), ("郑佳琪", "spouse")]),
    ]


def test_merging_the_head_into_a_member_of_the_same_family_makes_the_survivor_head(family, chain, director_scope):
    # when: the head's record is merged into the son's (staff picked the wrong survivor: they are one person here)
    customer_merge(scope=director_scope, survivor=family["王锦程"], merged=family["王峰"], reason="同一人")
    # then
    assert _households() == [("王锦程", [("王锦程", "head"), ("郑佳琪", "spouse")])]


def test_a_household_is_called_after_its_head_when_the_head_is_renamed_or_merged_away(family, chain, clinic_a,
                                                                                        director_scope):
    from smileloop.customers.services import customer_update

    household = Household.objects.get()
    assert household.name == "王峰家"
    # a member's rename leaves the household's name alone; the head's renames it
    customer_update(customer=family["郑佳琪"], data={"name": "郑佳"})
    household.refresh_from_db()
    assert household.name == "王峰家"
    customer_update(customer=family["王峰"], data={"name": "王锋"})
    household.refresh_from_db()
    assert household.name == "王锋家"
    # a head merged into a record of another spelling: the survivor heads the household, and names it
    again = CustomerFactory(chain=chain, name="王峰", home_clinic=clinic_a)
    customer_merge(scope=director_scope, survivor=again, merged=family["王峰"], reason="同一人")
    household.refresh_from_db()
    assert (household.head_id, household.name) == (again.pk, "王峰家")
