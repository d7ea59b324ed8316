"""Staff pages: the member card on the 360 page and its htmx forms, and the configuration pages' permission."""

import pytest
from django.urls import reverse
from django.utils import translation

from smileloop.membership import selectors, services
from smileloop.membership.models import (
    BenefitReveal,
    FamilyBinding,
    Membership,
    MembershipEvent,
    MembershipPlan,
    Tier,
)
from smileloop.membership.tests.conftest import NOW, patient
from smileloop.membership.tests.factories import BenefitFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("smileloop.membership.tests.urls")]
HTMX = {"HX-Request": "true"}


def test_the_360_page_shows_the_member_card_with_tier_history_and_revealed_benefits(client, front_desk_a, wang,
                                                                                   family_plan, family_tier,
                                                                                   friend_card):
    # given
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    services.benefit_reveal(membership=m, benefit=friend_card, trigger="plan_half_done", detail="种植修复过半", as_of=NOW)
    client.force_login(front_desk_a.user)
    # when
    response = client.get(reverse("customers:detail", args=[wang.id]))
    # then
    assert response.status_code == 200
    card = response.text.split('data-testid="member-card"')[1].split("</section>")[0]
    assert "家庭会员" in card and "12% off" in card and "88折" not in card  # 折 is the Chinese page's notation
    assert "enrolled in 家庭会员: cumulative spend 30,120.00 ≥ 30,000.00 on 2026-03-02, lifetime" in card
    assert "亲友储值卡 600 元" in card and "种植修复过半" in card


def test_what_a_discount_is_not_given_on_and_what_a_benefit_does_read_in_the_readers_language(client, front_desk_a,
                                                                                    chain_admin, wang, family_plan,
                                                                                    family_tier):
    # given a tier excluding special-price items but no category, and one excluding two categories as well
    family_tier.excluded_categories, family_tier.exclude_special_price = [], True
    family_tier.save()
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    from smileloop.membership.tests.factories import TierFactory

    premium = TierFactory(plan=family_plan, rank=2, name="家庭尊享", min_spend_fen=10_000_000,
                          exclude_special_price=True, excluded_categories=["oral_care_product", "whitening"])
    BenefitFactory(tier=premium, name="亲友储值卡", is_hidden=True, trigger="plan_half_done",
                   action_code="issue_friend_card")
    # when the 360 page and the plan page are read in Chinese
    client.force_login(front_desk_a.user)
    with translation.override("zh-hans"):
        card = client.get(reverse("customers:detail", args=[wang.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").text
        card = card.split('data-testid="member-discount"')[1].split("</p>")[0]
        client.force_login(chain_admin.user)
        plan_page = client.get(reverse("membership:plan_edit", args=[family_plan.id]),
                               HTTP_ACCEPT_LANGUAGE="zh-hans").text
    # then the list has no empty entry and is joined with 、, not an English comma
    assert "不适用于 特价项目" in card and "—" not in card, card
    assert "口护产品、美白、特价项目" in plan_page
    assert "—, " not in plan_page and "—、" not in plan_page
    # and what the hidden benefit does is said in words, not as its code
    assert "赠送亲友卡" in plan_page and "issue_friend_card" not in plan_page.split("<main")[-1]


def test_event_reasons_read_in_the_staff_language_and_old_events_keep_their_text(client, front_desk_a, wang,
                                                                               family_plan, family_tier):
    # given: an enrolment (reason stored as English text and as a message) and an event from before messages
    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    MembershipEvent.objects.create(membership=m, kind="renewed", occurred_at=NOW, reason="renewed by hand in 2025")
    client.force_login(front_desk_a.user)
    # when
    zh = client.get(reverse("customers:detail", args=[wang.id]), HTTP_ACCEPT_LANGUAGE="zh-hans")
    en = client.get(reverse("customers:detail", args=[wang.id]), HTTP_ACCEPT_LANGUAGE="en")
    # then
    card = zh.text.split('data-testid="member-card"')[1].split("</section>")[0]
    assert "2026-03-02 加入家庭会员：累计消费 ¥30,120.00 ≥ ¥30,000.00，终身有效" in card  # amounts as money
    assert "enrolled in" not in card
    assert "renewed by hand in 2025" in card
    assert "enrolled in 家庭会员: cumulative spend 30,120.00 ≥ 30,000.00 on 2026-03-02, lifetime" in en.text
    assert m.events.get(kind="enrolled").reason.startswith("enrolled in 家庭会员: cumulative spend")  # audit text


def test_the_card_hides_unrevealed_benefits_behind_a_staff_reveal_button(client, front_desk_a, wang, family_plan,
                                                                        family_tier):
    # given
    home = BenefitFactory(tier=family_tier, name="上门服务", is_hidden=True, trigger="staff_decision")
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    client.force_login(front_desk_a.user)
    # when
    response = client.post(reverse("membership:reveal", args=[wang.id, home.id]), headers=HTMX)
    # then
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="membership"')
    assert BenefitReveal.objects.get().trigger == "staff_decision"


def test_a_refused_reveal_answers_with_the_card_and_the_reason_not_a_bare_sentence(client, front_desk_a, wang,
                                                                                    family_plan, family_tier,
                                                                                    premium_tier):
    # given a stale page: the benefit shown belongs to a tier she is no longer in
    other = BenefitFactory(tier=premium_tier, name="上门服务", is_hidden=True, trigger="staff_decision")
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    client.force_login(front_desk_a.user)
    # when
    with translation.override("zh-hans"):
        response = client.post(reverse("membership:reveal", args=[wang.id, other.id]), headers=HTMX,
                               HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then the card itself comes back (htmx swaps a 422 in place of it) with the reason on top, in the reader's
    # language; nothing revealed
    assert response.status_code == 422
    assert response.text.lstrip().startswith('<section id="membership"')
    assert "此权益无法揭晓：该权益不属于会员当前的等级。" in response.text
    assert "is not a benefit" not in response.text
    assert not BenefitReveal.objects.exists()


def test_a_renewal_posted_twice_with_one_form_renews_and_records_the_fee_once(client, front_desk_a, wang, paid_plan,
                                                                              annual_tier):
    # given a year's paid membership, and the renew form as the card shows it
    services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    client.force_login(front_desk_a.user)
    form = client.get(reverse("membership:form", args=[wang.id, "renew"]), headers=HTMX).text
    key = form.split('name="key" value="', 1)[1].split('"', 1)[0]
    # when the same form is posted twice (the first answer was lost, the front desk clicked again)
    for _ in range(2):
        response = client.post(reverse("membership:renew", args=[wang.id]), {"key": key}, headers=HTMX)
        assert response.status_code == 200
    # then one year was added and one fee recorded
    membership = Membership.objects.get(customer=wang)
    assert membership.fee_fen == 2 * 89_900
    assert membership.events.filter(kind="renewed").count() == 1


def test_enrol_through_the_card_form(client, front_desk_a, wang, paid_plan, annual_tier):
    client.force_login(front_desk_a.user)
    response = client.post(reverse("membership:enrol", args=[wang.id]), {"plan": paid_plan.id}, headers=HTMX)
    assert response.status_code == 200
    assert Membership.objects.get(customer=wang).fee_fen == 89_900


def test_binding_an_adult_without_consent_answers_422_with_the_message_and_binds_nobody(client, front_desk_a, wang,
                                                                                        spouse, family_plan,
                                                                                        family_tier):
    # given
    services.membership_enrol(customer=wang, plan=family_plan)
    client.force_login(front_desk_a.user)
    # when
    response = client.post(reverse("membership:bind", args=[wang.id]),
                           {"member": str(spouse.id), "relation": "spouse", "consent_source": "paper"}, headers=HTMX)
    # then
    assert response.status_code == 422
    assert "Record the consent" in response.text
    assert FamilyBinding.objects.count() == 0


def test_bind_and_unbind_through_the_card(client, front_desk_a, wang, spouse, family_plan, family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    client.force_login(front_desk_a.user)
    client.post(reverse("membership:bind", args=[wang.id]), {"member": str(spouse.id), "relation": "spouse",
                "consent_source": "paper", "consent_evidence": "同意书 1"}, headers=HTMX)
    assert FamilyBinding.objects.filter(unbound_at__isnull=True).count() == 1
    response = client.post(reverse("membership:unbind", args=[wang.id, spouse.id]), headers=HTMX)
    assert response.status_code == 200
    assert FamilyBinding.objects.filter(unbound_at__isnull=True).count() == 0


def test_binding_and_unbinding_are_on_both_timelines_in_chinese_naming_the_other_masked_and_who_did_it(
        client, front_desk_a, wang, spouse, family_plan, family_tier):
    # given a family card, bound and then unbound with a reason through the card
    from smileloop.customers.models import Interaction

    services.membership_enrol(customer=wang, plan=family_plan)
    client.force_login(front_desk_a.user)
    client.post(reverse("membership:bind", args=[wang.id]), {"member": str(spouse.id), "relation": "spouse",
                "consent_source": "paper", "consent_evidence": "同意书 1"}, headers=HTMX)
    client.post(reverse("membership:unbind", args=[wang.id, spouse.id]), {"reason": "夫妻分开办卡"}, headers=HTMX)
    # then each timeline says it, written by the front desk, the other person masked
    def entries(person):
        return list(Interaction.objects.filter(customer=person, text__contains="family card").order_by("id")
                    .values_list("text", "author_id"))

    author = front_desk_a.id
    assert entries(wang) == [("family card: 李* bound as spouse", author),
                             ("family card: 李* unbound: 夫妻分开办卡", author)]
    assert entries(spouse) == [("bound to the family card of 王* as spouse", author),
                               ("stage treated → member: bound to the family card of 王* as spouse", author),
                               ("unbound from the family card of 王*: 夫妻分开办卡", author),
                               # a member only through the card: back to the stage she had reached, at once
                               ("stage member → treated: unbound from the family card of 王*: 夫妻分开办卡", author)]
    # and the 360 pages read them in Chinese
    with translation.override("zh-hans"):
        page = client.get(reverse("customers:detail", args=[spouse.id]), headers={"Accept-Language": "zh-hans"})
    assert "以配偶身份绑定到 王* 的家庭卡" in page.text and "已从 王* 的家庭卡解绑：夫妻分开办卡" in page.text


def test_unbinding_asks_for_confirmation_first(client, front_desk_a, wang, spouse, family_plan, family_tier):
    services.membership_enrol(customer=wang, plan=family_plan)
    services.family_bind(holder=wang, member=spouse, relation="spouse", consent_source="paper", consent_evidence="A")
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id]))
    assert 'hx-confirm="Unbind 李强 from the family card?' in page.text


def test_binding_is_not_offered_by_a_tier_without_family_slots(client, front_desk_a, wang, family_plan, family_tier):
    # given a member of a tier whose card shares with nobody
    Tier.objects.filter(pk=family_tier.pk).update(family_slots=0)
    services.membership_enrol(customer=wang, plan=family_plan)
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id]))
    # then the card offers no binding ("0 of 0 slots", every bind refused), only what it can do
    assert 'data-subform="bind"' not in page.text and 'data-subform="cancel"' in page.text


def test_the_tier_change_is_offered_only_when_the_plan_has_another_tier(client, front_desk_a, wang, family_plan,
                                                                       family_tier):
    # given a member of a plan with one tier
    services.membership_enrol(customer=wang, plan=family_plan)
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id]))
    # then the card offers no tier change (its list would be empty), but binding and cancelling
    assert 'data-subform="tier"' not in page.text and 'data-subform="bind"' in page.text
    # when the plan gets a second tier, the change is offered
    from smileloop.membership.tests.factories import TierFactory

    TierFactory(plan=family_plan, rank=2, name="家庭尊享", discount_bp=1500, min_spend_fen=10_000_000)
    page = client.get(reverse("customers:detail", args=[wang.id]))
    assert 'data-subform="tier"' in page.text


def test_card_actions_on_another_clinics_patient_are_404(client, front_desk_a, chain, clinic_b, paid_plan,
                                                        annual_tier):
    other = patient(chain, clinic_b, "外院")
    client.force_login(front_desk_a.user)
    response = client.post(reverse("membership:enrol", args=[other.id]), {"plan": paid_plan.id})
    assert response.status_code == 404
    assert Membership.objects.count() == 0


def test_the_360_page_renders_the_card_with_a_bounded_number_of_queries(client, front_desk_a, wang, family_plan,
                                                                        family_tier, django_assert_max_num_queries):
    services.membership_enrol(customer=wang, plan=family_plan)
    client.force_login(front_desk_a.user)
    with django_assert_max_num_queries(60):
        assert client.get(reverse("customers:detail", args=[wang.id])).status_code == 200


# --- configuration pages -------------------------------------------------------------------------------


def test_config_pages_need_the_config_permission(client, front_desk_a, paid_plan):
    client.force_login(front_desk_a.user)
    assert client.get(reverse("membership:plans")).status_code == 403
    assert client.post(reverse("membership:plan_create"), {"name": "x", "kind": "paid"}).status_code == 403
    assert MembershipPlan.objects.count() == 1


def test_a_chain_admin_creates_a_plan_a_tier_and_a_hidden_benefit(client, chain_admin):
    # given
    client.force_login(chain_admin.user)
    # when
    response = client.post(reverse("membership:plan_create"), {
        "name": "年度会员", "kind": "paid", "fee_yuan": "899", "duration_months": "12", "topup_bonus_rules": "[]",
        "is_active": "on"})
    plan = MembershipPlan.objects.get()
    client.post(reverse("membership:tier_create", args=[plan.id]), {
        "rank": "1", "name": "年卡", "discount_percent": "5", "excluded_categories": ["oral_care_product"],
        "exclude_special_price": "on", "points_multiplier": "1.2", "family_slots": "1", "friend_discount_percent": "0",
        "min_spend_yuan": "0", "min_topup_yuan": "0", "topup_bonus_rules": "[]"})
    tier = plan.tiers.get()
    client.post(reverse("membership:benefit_create", args=[tier.id]), {
        "position": "1", "name": "生日礼物", "is_hidden": "on", "trigger": "birthday_month", "action_data": "{}"})
    # then
    assert response.status_code == 302
    assert (plan.fee_fen, plan.duration_months) == (89_900, 12)
    assert (tier.discount_bp, tier.excluded_categories) == (500, ["oral_care_product"])
    assert list(tier.benefits.values_list("name", "trigger")) == [("生日礼物", "birthday_month")]
    page = client.get(reverse("membership:plan_edit", args=[plan.id]))
    assert page.status_code == 200 and "生日礼物" in page.text and "rank 1 · 5% off" in page.text


def test_a_paid_plan_without_duration_is_refused_field_by_field(client, chain_admin):
    client.force_login(chain_admin.user)
    response = client.post(reverse("membership:plan_create"), {"name": "年卡", "kind": "paid", "fee_yuan": "899",
                                                               "topup_bonus_rules": "[]"})
    assert response.status_code == 422
    assert response.context["form"].errors == {
        "duration_months": ["is required for a paid plan (a fee buys N months)"]}
    assert MembershipPlan.objects.count() == 0


def test_the_member_card_forms_load_when_opened(client, front_desk_a, wang, family_plan, family_tier, premium_tier):
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    client.force_login(front_desk_a.user)
    page = client.get(reverse("customers:detail", args=[wang.id])).text
    card = page.split('data-testid="member-card"')[1].split("</section>")[0]
    for name in ("tier", "bind", "cancel"):
        assert f'hx-get="{reverse("membership:form", args=[wang.id, name])}"' in card
    assert 'name="tier"' not in card and 'name="consent_source"' not in card
    # opening "change tier" fetches the form with the member's other tiers to choose from
    fragment = client.get(reverse("membership:form", args=[wang.id, "tier"]), headers=HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'name="tier"' in fragment.text and f'value="{premium_tier.id}"' in fragment.text
    assert f'hx-post="{reverse("membership:tier", args=[wang.id])}"' in fragment.text
    # a refusal comes back with that form open in place
    refused = client.post(reverse("membership:cancel", args=[wang.id]), {"reason": ""}, headers=HTMX)
    assert refused.status_code == 422
    opened = refused.text.split('data-subform="cancel" open>')[1].split("</details>")[0]
    assert 'name="reason"' in opened and "field-error" in opened


def test_member_card_forms_of_another_clinics_patient_are_404(client, front_desk_a, chain, clinic_b, paid_plan):
    other = patient(chain, clinic_b, "外院")
    client.force_login(front_desk_a.user)
    assert client.get(reverse("membership:form", args=[other.id, "enrol"]), headers=HTMX).status_code == 404
    assert client.get(reverse("membership:form", args=[other.id, "bogus"]), headers=HTMX).status_code == 404


def test_the_card_history_reads_equal_the_orm_ones(wang, family_plan, family_tier, premium_tier, friend_card):
    """Events and reveals are plain reads (core.sql) following membership → tier: the ORM's rows and order."""
    def fields(obj):
        return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}

    m = services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    services.benefit_reveal(membership=m, benefit=friend_card, trigger="plan_half_done", detail="过半", as_of=NOW)
    events = selectors.membership_events(wang, limit=10)
    orm = list(MembershipEvent.objects.filter(membership__customer_id=wang.pk)
               .select_related("membership__tier", "actor").order_by("-occurred_at", "-id")[:10])
    assert [(fields(e), fields(e.membership), fields(e.membership.tier)) for e in events] == [
        (fields(e), fields(e.membership), fields(e.membership.tier)) for e in orm] and events
    reveals = selectors.revealed_benefits_history(wang)
    orm_reveals = list(BenefitReveal.objects.filter(membership__customer_id=wang.pk)
                       .select_related("benefit", "membership__tier", "actor").order_by("-revealed_at", "-id"))
    assert [(fields(r), fields(r.benefit), r.membership.tier.name) for r in reveals] == [
        (fields(r), fields(r.benefit), r.membership.tier.name) for r in orm_reveals] and len(reveals) == 1


def test_the_member_card_names_no_patient_of_another_clinic(client, front_desk_a, clinic_b, wang, spouse, friend,
                                                            family_plan, family_tier):
    # given a member of clinic B (王芳 moved there), her friend 赵敏 and her husband bound by a chain role, both in
    # clinic A
    wang.home_clinic = clinic_b
    wang.save(update_fields=["home_clinic"])
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    services.friend_link(friend=friend, member=wang)
    services.family_bind(holder=wang, member=spouse, relation="spouse", consent_source="in_person",
                         consent_evidence="F-1")
    client.force_login(front_desk_a.user)
    # when clinic A's front desk opens the friend's and the husband's 360 pages
    for patient_a in (friend, spouse):
        html = client.get(reverse("customers:detail", args=[patient_a.id])).text
        # then the member of clinic B is masked, not named nor linked
        assert "王芳" not in html and "王*" in html, patient_a.name
        assert reverse("customers:detail", args=[wang.id]) not in html


def test_a_tiers_discounts_are_typed_as_percentages_not_basis_points(client, chain_admin, chain):
    from smileloop.membership.forms import TierForm
    from smileloop.membership.tests.factories import TierFactory

    tier = TierFactory(plan__chain=chain, discount_bp=1250, friend_discount_bp=1200)
    form = TierForm(instance=tier)
    assert (form.initial["discount_percent"], form.initial["friend_discount_percent"]) == (12.5, 12)
    assert "discount_bp" not in form.fields
    bound = TierForm({"rank": "2", "name": "金卡", "discount_percent": "12.5", "friend_discount_percent": "101",
                      "points_multiplier": "1", "family_slots": "3", "min_spend_yuan": "0", "min_topup_yuan": "0"},
                     instance=tier)
    assert not bound.is_valid() and "friend_discount_percent" in bound.errors
    bound.data = {**bound.data, "friend_discount_percent": "8"}
    bound = TierForm(bound.data, instance=tier)
    assert bound.is_valid(), bound.errors
    data = bound.service_data()
    assert (data["discount_bp"], data["friend_discount_bp"]) == (1250, 800)


def test_an_enrol_posted_for_a_member_is_refused_with_its_reason_on_the_card(client, front_desk_a, wang, paid_plan,
                                                                             annual_tier):
    # given a member: the card offers no enrol form any more (a second tab, a double click)
    services.membership_enrol(customer=wang, plan=paid_plan, as_of=NOW)
    client.force_login(front_desk_a.user)
    before = list(Membership.objects.values_list("id", "fee_fen", "expires_at"))
    # when an enrol with a plan that does not exist is posted
    response = client.post(reverse("membership:enrol", args=[wang.id]), {"plan": "999999"}, headers=HTMX)
    # then it is refused, the card says why, and nothing changed
    assert response.status_code == 422
    error = response.text.split('data-testid="member-card-error"', 1)[1].split("</div>", 1)[0]
    assert "Plan:" in error and "Select a valid choice" in error
    assert list(Membership.objects.values_list("id", "fee_fen", "expires_at")) == before


def test_a_renewal_of_a_lifetime_card_is_refused_with_its_reason_on_the_card(client, front_desk_a, wang,
                                                                             family_plan, family_tier):
    # given a lifetime membership: the card offers no renew form
    services.membership_enrol(customer=wang, plan=family_plan, as_of=NOW)
    client.force_login(front_desk_a.user)
    before = list(MembershipEvent.objects.values_list("id", flat=True))
    # when a renewal is posted without its key
    response = client.post(reverse("membership:renew", args=[wang.id]), {"fee_yuan": "10"}, headers=HTMX)
    # then the card says what is wrong
    assert response.status_code == 422
    error = response.text.split('data-testid="member-card-error"', 1)[1].split("</div>", 1)[0]
    assert "This form is incomplete (its key is missing): reload the page and try again." in error
    assert list(MembershipEvent.objects.values_list("id", flat=True)) == before
