"""The 360 page's long histories (timeline, appointments, orders, procedures): the latest page only, a fixed
number of queries whatever the history holds, and a "more" control that loads the next page as an htmx
fragment (or, without JavaScript, as a plain link to the page) — within the staff member's scope."""

import datetime as dt

import pytest
from django.db import connection
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.tests.factories import StaffFactory
from smileloop.customers import selectors as customer_selectors
from smileloop.customers.models import Consent, Identity, Interaction
from smileloop.customers.services import consent_record, household_member_add, identity_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.views import HISTORY_PAGE_SIZE
from smileloop.visits import selectors
from smileloop.visits import services as visit_services
from smileloop.visits.models import (
    Appointment,
    Order,
    OrderLine,
    Payment,
    PlanStep,
    Procedure,
    Refund,
    TreatmentPlan,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def with_history(chain, clinic, name: str, count: int, *, visits: bool = True):
    """A patient with `count` orders (two lines, a payment; every fifth partly refunded) and, with `visits`,
    as many appointments (each a timeline entry) and procedures, the newest on top: order i was placed i days
    ago."""
    customer = CustomerFactory(chain=chain, name=name, home_clinic=clinic)
    now = timezone.now()
    for i in range(count):
        at = now - dt.timedelta(days=i, hours=1)
        order, _ = visit_services.order_record(
            customer=customer, clinic=clinic, ordered_at=at, external_id=f"{name}-POS-{i}",
            lines=[{"item_code": "CL01", "quantity": 1}, {"item_code": "EX01", "quantity": 1}],
            payments=[{"method": "wechat_pay", "amount_fen": 35000}])
        if i % 5 == 0:
            visit_services.refund_record(order=order, amount_fen=1000, reason="partial")
        if not visits:
            continue
        visit_services.appointment_upsert(customer=customer, clinic=clinic, start_at=at, end_at=at + dt.timedelta(hours=1),
                                          status="completed", service_code="CL01")
        visit_services.procedure_record(customer=customer, clinic=clinic, item_code="EX01", performed_on=at.date(),
                                        tooth=str(11 + i % 8))
    visit_services.plan_record(customer=customer, clinic=clinic, title="种植修复方案",
                               steps=[{"seq": 1, "item_code": "EX01", "status": "done"},
                                      {"seq": 2, "item_code": "IM01", "tooth": "36", "status": "planned"}])
    return customer


def detail(customer, **query) -> str:
    url = reverse("customers:detail", args=[customer.id])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_the_360_page_runs_no_more_queries_for_60_orders_than_for_5(client, chain, clinic_a, catalogue, director_a,
                                                                    django_assert_max_num_queries):
    # given two patients, one with a short and one with a long history
    short = with_history(chain, clinic_a, "短", 5)
    long = with_history(chain, clinic_a, "长", 60)
    client.force_login(director_a.user)
    with CaptureQueriesContext(connection) as baseline:
        assert client.get(detail(short)).status_code == 200
    # when / then: no query per order, line, payment, refund, appointment, procedure or timeline row
    with django_assert_max_num_queries(len(baseline.captured_queries)):
        response = client.get(detail(long))
    assert response.status_code == 200
    c360 = response.context["c360"]
    for section in ("orders", "appointments", "procedures", "timeline"):
        page = getattr(c360, section)
        assert (len(page), page.number, page.has_next) == (HISTORY_PAGE_SIZE, 1, True), section
    assert "长-POS-0<" in response.text and f"长-POS-{HISTORY_PAGE_SIZE}<" not in response.text


def test_the_first_page_shows_the_newest_rows_and_a_more_link(client, chain, clinic_a, catalogue, director_a):
    # given
    customer = with_history(chain, clinic_a, "王", HISTORY_PAGE_SIZE + 3, visits=False)
    client.force_login(director_a.user)
    # when
    response = client.get(detail(customer))
    # then
    orders = response.context["c360"].orders
    assert [o.external_id for o in orders] == [f"王-POS-{i}" for i in range(HISTORY_PAGE_SIZE)]
    assert f'href="{detail(customer)}?section=orders&amp;page=2#orders"' in response.text
    assert f'hx-get="{detail(customer)}?section=orders&amp;page=2"' in response.text


def test_more_returns_the_next_page_of_orders_as_a_fragment(client, chain, clinic_a, catalogue, director_a):
    # given
    customer = with_history(chain, clinic_a, "王", HISTORY_PAGE_SIZE + 3, visits=False)
    client.force_login(director_a.user)
    # when
    response = client.get(detail(customer, section="orders", page=2), headers=HTMX)
    # then: the three oldest orders with their lines and refunds, no page around them, no further "more"
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="timeline"' not in response.text
    assert [o.external_id for o in response.context["c360"].orders] == [
        f"王-POS-{i}" for i in range(HISTORY_PAGE_SIZE, HISTORY_PAGE_SIZE + 3)]
    assert response.text.count('<article class="order">') == 3
    assert "王-POS-20<" in response.text and "洁牙" in response.text and "−¥10.00" in response.text
    assert "section=orders&amp;page=3" not in response.text


@pytest.mark.parametrize(("section", "rows"), [("appointments", "<tr>"), ("procedures", "<tr>"),
                                                ("timeline", '<li class="timeline-item')])
def test_more_returns_the_next_rows_of_each_history_table(client, chain, clinic_a, catalogue, director_a,
                                                          section, rows):
    # given 45 appointments and procedures (pages of 20, 20 and 5) and a timeline at least as long
    customer = with_history(chain, clinic_a, "王", 45)
    total = 45 if section != "timeline" else customer.interactions.count()
    client.force_login(director_a.user)
    # when
    second = client.get(detail(customer, section=section, page=2), headers=HTMX)
    third = client.get(detail(customer, section=section, page=3), headers=HTMX)
    # then
    assert "<html" not in second.text and second.text.count(rows) == HISTORY_PAGE_SIZE
    assert f"section={section}&amp;page=3" in second.text
    page = getattr(third.context["c360"], section)
    assert (page.number, len(page), page.has_next) == (
        3, min(HISTORY_PAGE_SIZE, total - 2 * HISTORY_PAGE_SIZE), total > 3 * HISTORY_PAGE_SIZE)
    assert third.text.count(rows) == len(page)
    assert (f"section={section}&amp;page=4" in third.text) == page.has_next


def test_more_without_javascript_is_a_plain_link_to_the_whole_page(client, chain, clinic_a, catalogue, director_a):
    # given
    customer = with_history(chain, clinic_a, "王", HISTORY_PAGE_SIZE + 3)
    client.force_login(director_a.user)
    # when
    response = client.get(detail(customer, section="orders", page=2))
    # then the whole page, its orders section showing the older orders and a way back
    assert response.status_code == 200 and "<html" in response.text
    assert [o.external_id for o in response.context["c360"].orders] == [
        f"王-POS-{i}" for i in range(HISTORY_PAGE_SIZE, HISTORY_PAGE_SIZE + 3)]
    assert len(response.context["c360"].appointments) == HISTORY_PAGE_SIZE  # other sections: their first page
    assert "Back to the latest" in response.text


@pytest.mark.parametrize("query", [{"section": "orders", "page": "abc"}, {"section": "identities", "page": 2},
                                   {"section": "orders", "page": 0}])
def test_an_invalid_page_request_shows_the_first_page(client, chain, clinic_a, catalogue, director_a, query):
    customer = with_history(chain, clinic_a, "王", 2, visits=False)
    client.force_login(director_a.user)
    response = client.get(detail(customer, **query), headers=HTMX)
    assert response.status_code == 200 and "<html" in response.text
    assert response.context["c360"].orders.number == 1


def test_more_for_a_patient_of_another_clinic_is_404(client, chain, clinic_b, catalogue, front_desk_a):
    # given a patient of clinic B with a long history, and a front desk of clinic A
    other = with_history(chain, clinic_b, "外院", HISTORY_PAGE_SIZE + 1, visits=False)
    client.force_login(front_desk_a.user)
    # when / then: the fragment and the plain link are refused like the page itself
    for section in ("orders", "appointments", "timeline", "procedures"):
        assert client.get(detail(other, section=section, page=2), headers=HTMX).status_code == 404
        assert client.get(detail(other, section=section, page=2)).status_code == 404


def test_procedures_stay_hidden_in_more_for_roles_without_health_permission(client, chain, clinic_a, catalogue,
                                                                            front_desk_a):
    # given
    customer = with_history(chain, clinic_a, "王", HISTORY_PAGE_SIZE + 3)
    client.force_login(front_desk_a.user)
    # when
    response = client.get(detail(customer, section="procedures", page=2), headers=HTMX)
    # then
    assert response.status_code == 200
    assert len(response.context["c360"].procedures) == 0 and "<tr>" not in response.text


def _fields(obj):
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_the_history_reads_build_what_the_orm_would_and_children_cost_no_query(chain, clinic_a, catalogue):
    """The sections read through core.sql (plain SQL, ordinary instances): same rows, same order, same field
    values and related rows as the ORM's select_related / prefetch_related, for any page."""
    customer = with_history(chain, clinic_a, "赵", 12)
    other = with_history(chain, clinic_a, "钱", 3)  # another patient's rows must not leak in
    for offset, limit in ((0, 5), (5, 5), (10, 5)):
        orders = selectors.order_list_for_customer(customer, offset=offset, limit=limit)
        orm = list(Order.objects.filter(customer=customer).select_related("clinic")
                   .prefetch_related(Prefetch("lines", OrderLine.objects.select_related("item").order_by("id")),
                                     Prefetch("payments", Payment.objects.order_by("id")),
                                     Prefetch("refunds", Refund.objects.order_by("id")))
                   .order_by("-ordered_at", "-id")[offset:offset + limit])
        assert [_fields(o) for o in orders] == [_fields(o) for o in orm]
        with CaptureQueriesContext(connection) as queries:
            for mine, theirs in zip(orders, orm, strict=True):
                assert mine.clinic.name == theirs.clinic.name
                assert [(_fields(line), line.item.code) for line in mine.lines.all()] == [
                    (_fields(line), line.item.code) for line in theirs.lines.all()]
                assert [_fields(p) for p in mine.payments.all()] == [_fields(p) for p in theirs.payments.all()]
                assert [_fields(r) for r in mine.refunds.all()] == [_fields(r) for r in theirs.refunds.all()]
                assert all(line.order is mine for line in mine.lines.all())
        assert len(queries) == 0
        for loader, model, order_by, related in (
                (selectors.appointment_list_for_customer, Appointment, ("-start_at", "-id"),
                 ("clinic", "doctor", "service_item")),
                (selectors.procedure_list_for_customer, Procedure, ("-performed_on", "-id"),
                 ("clinic", "item", "doctor"))):
            rows = loader(customer, offset=offset, limit=limit)
            orm_rows = list(model.objects.filter(customer=customer).select_related(*related)
                            .order_by(*order_by)[offset:offset + limit])
            assert [_fields(r) for r in rows] == [_fields(r) for r in orm_rows] and rows
    assert sum(len(o.refunds.all()) for o in selectors.order_list_for_customer(customer)) == 3
    assert {o.customer_id for o in selectors.order_list_for_customer(other)} == {other.id}


def test_plans_timeline_identities_and_consents_read_as_the_orm_would(chain, clinic_a, catalogue, director_a):
    customer = with_history(chain, clinic_a, "孙", 4)
    visit_services.plan_record(customer=customer, clinic=clinic_a, title="正畸方案",
                               steps=[{"seq": 2, "item_code": "IM01", "status": "planned"},
                                      {"seq": 1, "item_code": "EX01", "status": "done"}])
    identity_add(customer=customer, kind="wechat_openid", external_id="o-abc", source="test")
    consent_record(customer=customer, purpose="marketing_sms", granted=True, source="paper_form", actor=director_a)
    consent_record(customer=customer, purpose="marketing_sms", granted=False, source="phone", actor=None)

    plans = selectors.plan_list_for_customer(customer)
    orm = list(TreatmentPlan.objects.filter(customer=customer).select_related("clinic", "doctor").prefetch_related(
        Prefetch("steps", PlanStep.objects.select_related("item").order_by("seq", "id"))).order_by("-planned_at", "-id"))
    assert [_fields(p) for p in plans] == [_fields(p) for p in orm] and len(plans) == 2
    with CaptureQueriesContext(connection) as queries:
        assert [[(s.seq, s.item.code) for s in p.steps.all()] for p in plans] == [
            [(s.seq, s.item.code) for s in p.steps.all()] for p in orm]
    assert len(queries) == 0

    timeline = customer_selectors.interaction_list_for_customer(customer, offset=1, limit=3)
    assert [_fields(i) for i in timeline] == [_fields(i) for i in Interaction.objects.filter(
        customer=customer).order_by("-occurred_at", "-id")[1:4]]
    assert [_fields(i) for i in customer_selectors.identity_list_for_customer(customer)] == [
        _fields(i) for i in Identity.objects.filter(customer=customer).order_by("kind", "id")]
    current = customer_selectors.consent_current(customer)
    latest = Consent.objects.filter(customer=customer, purpose="marketing_sms").order_by("-recorded_at", "-id").first()
    assert _fields(current["marketing_sms"]) == _fields(latest) and current["marketing_sms"].granted is False


def test_the_family_section_names_only_relatives_in_scope_and_counts_the_others(chain, clinic_a, clinic_b,
                                                                               chain_admin):
    """PIPL: a clinic's staff see the relatives they may see (their clinic's patients, or ones they own as
    consultant); the others are counted, never named. Same rule as customer_queryset, on every member."""
    consultant = StaffFactory(chain=chain, role=Role.CONSULTANT, clinics=[clinic_a], user__username="cons_a")
    head = CustomerFactory(chain=chain, name="周父", home_clinic=clinic_a)
    spouse = CustomerFactory(chain=chain, name="周母", home_clinic=clinic_b)
    child = CustomerFactory(chain=chain, name="周子", home_clinic=clinic_b, consultant=consultant)
    grandparent = CustomerFactory(chain=chain, name="周奶奶", home_clinic=clinic_a)
    household_member_add(head=head, member=spouse, relation="spouse")
    household_member_add(head=head, member=child, relation="child")
    household_member_add(head=head, member=grandparent, relation="grandparent")

    def names(scope, customer):
        found = customer_selectors.household_in_scope(scope, customer)
        return found.household.head_id, sorted(m.customer.name for m in found.visible), found.hidden

    assert names(scope_for_staff(consultant), child) == (head.id, ["周奶奶", "周子", "周父"], 1)
    assert names(scope_for_staff(chain_admin), spouse) == (head.id, ["周奶奶", "周子", "周母", "周父"], 0)
    other_clinic = StaffFactory(chain=chain, role=Role.FRONT_DESK, clinics=[clinic_b], user__username="fd_b")
    assert names(scope_for_staff(other_clinic), spouse) == (head.id, ["周子", "周母"], 2)
    assert customer_selectors.household_in_scope(scope_for_staff(chain_admin), CustomerFactory(chain=chain)) is None
