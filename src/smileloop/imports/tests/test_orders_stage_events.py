"""Imported bills move stages as bills recorded one by one through visits.order_record do (the lifecycle funnel and
every patient's timeline): a stage event per customer moved, dated by the bill that moved them; progress only up;
a dormant or lost patient back on a bill recent enough, and, when lost, paid after the mark.

Before, the import moved leads to treated without a stage event (no "stage lead → treated: paid order …" on their
timelines) and left dormant and lost patients where they were, where the same bills through the API brought them
back. Twins compared: one of each pair gets its bills from a file, the other through order_record, oldest first."""

import datetime as dt
import re
import zoneinfo

import pytest
from django.utils import timezone

from smileloop.customers.models import Customer, Interaction
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.imports.services import orders_import
from smileloop.imports.tests.files import csv_write
from smileloop.lifecycle.selectors import funnel
from smileloop.visits.models import Order
from smileloop.visits.services import order_record

pytestmark = pytest.mark.django_db

HEADER = ["订单号", "手机号", "门诊", "日期", "项目编码", "数量", "单价", "折扣", "金额", "支付方式"]
DAY = dt.timedelta(days=1)

# name → (stage, stage reached, set to that stage how many days ago, the bills' days ago, oldest first)
PEOPLE = {
    "线索": ("lead", "lead", None, [20, 5]),
    "已联系": ("contacted", "contacted", 30, [3]),
    "会员": ("member", "member", 50, [2]),
    "沉睡近单": ("dormant", "treated", 100, [60]),  # over 4 weeks old, within the 12 months: back
    "沉睡会员": ("dormant", "member", 40, [400, 10]),  # the first bill is too old; the second brings them back
    "流失前单": ("lost", "treated", 5, [30]),  # paid before they were marked lost: nothing new since
    "流失后单": ("lost", "arrived", 90, [15]),
    "沉睡旧单": ("dormant", "treated", 30, [500]),  # older than the dormant threshold: still dormant
}


@pytest.fixture
def twins(chain, clinic_a, clinic_b):
    """Each person twice, alike but for the phone and the home clinic (a: the file's, b: order_record's)."""
    now = timezone.now()
    out = {}
    for i, (name, (stage, reached, days, _bills)) in enumerate(PEOPLE.items()):
        out[name] = [CustomerFactory(chain=chain, name=name, mobile=f"+86{prefix}{i:08d}", home_clinic=clinic,
                                     stage=stage, stage_reached=reached,
                                     stage_changed_at=None if days is None else now - days * DAY)
                     for prefix, clinic in (("138", clinic_a), ("139", clinic_b))]
    return out


def _at(chain, days_ago: int) -> dt.datetime:
    local = timezone.now().astimezone(zoneinfo.ZoneInfo(chain.time_zone)) - days_ago * DAY
    return local.replace(hour=10, minute=0, second=0, microsecond=0)


def _events(customer) -> list[tuple]:
    """The stage events on the timeline, the bill named by its number in the file, not its id."""
    numbers = dict(Order.objects.filter(customer=customer).values_list("id", "external_id"))

    def named(text: str) -> str:
        return re.sub(r"#(\d+)", lambda m: "#" + numbers[int(m.group(1))][2:], text)

    return [(e.kind, named(e.text), e.data["stage_from"], e.data["stage_to"], named(e.data["cause"]), e.occurred_at,
             e.author_id, e.clinic_id)
            for e in Interaction.objects.filter(customer=customer).order_by("occurred_at", "pk")
            if isinstance(e.data, dict) and "stage_to" in e.data]


def _state(customer) -> tuple:
    return Customer.objects.values_list("stage", "stage_reached", "stage_prev", "stage_changed_at").get(
        pk=customer.pk)


def test_imported_bills_move_stages_and_write_the_events_order_record_writes(
        tmp_path, chain, clinic_a, clinic_b, catalogue, chain_admin, admin_scope, twins):
    # given the same bills for each pair: in a file for one twin, through order_record (oldest first) for the other
    rows, n = [HEADER], 0
    for name, (_s, _r, _d, bills) in PEOPLE.items():
        file_twin, api_twin = twins[name]
        for days_ago in bills:
            n += 1
            at = _at(chain, days_ago)
            rows.append([f"A-{n}", file_twin.mobile[3:], "静安门诊", at.strftime("%Y-%m-%d %H:%M"), "EX01", "1", "50",
                         "0", "50", "现金"])
            order_record(customer=Customer.objects.get(pk=api_twin.pk), clinic=clinic_a, ordered_at=at,
                         lines=[{"item_code": "EX01"}], payments=[{"method": "cash", "amount_fen": 5000}],
                         external_id=f"B-{n}", cashier=chain_admin)

    # when the file is imported
    report = orders_import(path=csv_write(tmp_path / "o.csv", rows), chain=chain, actor=chain_admin)

    # then every file twin's stage, and the stage events on their timeline, are their twin's
    assert (report.created, report.errors) == (n, [])
    for name, (file_twin, api_twin) in twins.items():
        assert (_state(file_twin), _events(file_twin)) == (_state(api_twin), _events(api_twin)), name
    assert [_state(twins[name][0])[0] for name in PEOPLE] == [
        "treated", "treated", "member", "treated", "member", "lost", "treated", "dormant"]
    assert len(_events(twins["线索"][0])) == 1  # one event per move, by the first bill
    # and the funnel counts the same at both home clinics
    file_funnel, api_funnel = (funnel(admin_scope, clinic_id=c.id) for c in (clinic_a, clinic_b))
    assert file_funnel.stages == api_funnel.stages
