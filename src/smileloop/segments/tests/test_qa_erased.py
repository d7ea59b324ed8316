"""Segments and erased people (customers.privacy.customer_erase): an erased record is in no segment, no preview, no
count and gets no rule tag, even when the erasure commits while the nightly rule-tag job writes. The race runs on
PostgreSQL only (threads, each with its own connection); SQLite serialises writers."""

import datetime as dt
import threading

import pytest

from smileloop.clinics.selectors import scope_for_staff
from smileloop.core.testing import paused, postgresql_only, race
from smileloop.customers import privacy
from smileloop.customers.models import Customer
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.segments.selectors import segment_count, segment_preview
from smileloop.segments.tasks import rule_tags_job
from smileloop.tagging.models import CustomerTag
from smileloop.tagging.tests.factories import CustomerTagFactory, TagFactory

WHALE = {"all": [{"field": "lifetime_spend_fen", "op": "gte", "value": 3_000_000}]}


@pytest.mark.django_db(transaction=True)
@postgresql_only
def test_a_patient_erased_while_the_rule_tag_job_runs_is_left_without_the_rule_tag(
        chain, clinic_a, director_a, today, monkeypatch):
    """The job read the patient before the erasure committed and added the rule tag after the erasure's tagging hook
    had removed their tags: an erased record profiled ("big whale") until the next night."""
    TagFactory(chain=chain, group__chain=chain, code="whale", kind="rule", rule=WHALE)
    whale = CustomerFactory(chain=chain, home_clinic=clinic_a, lifetime_spend_fen=5_000_000, mobile="+8613800138009")
    CustomerTagFactory(customer=whale, tag=TagFactory(chain=chain, group__chain=chain, code="vip"), source="manual")
    erasing = threading.Event()
    # after the hooks (tags removed), before the erasure commits
    monkeypatch.setattr(privacy, "_household_leave", paused(privacy._household_leave, erasing))

    def erase():
        return privacy.customer_erase(scope=scope_for_staff(director_a), customer=Customer.objects.get(pk=whale.pk),
                                      actor=director_a, reason="本人申请")

    out = race(erase, lambda: rule_tags_job(today=today), erasing, atomic=False)
    assert "first_error" not in out and "then_error" not in out, out
    whale.refresh_from_db()
    assert whale.erased_at is not None
    assert not CustomerTag.objects.filter(customer=whale).exists()
    assert out["then"]["added"] == 0


@pytest.mark.django_db
def test_an_erased_or_merged_record_is_neither_counted_nor_listed_by_a_segment(chain, clinic_a, director_a, admin_scope,
                                                                            today):
    """Guard (passes before any fix here): a "birthday next month" segment is a list of people to contact."""
    birthday = {"all": [{"field": "birthday_month", "op": "next_month"}]}
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=3)
    live = CustomerFactory(chain=chain, home_clinic=clinic_a, birthday=next_month.replace(year=1980))
    erased = CustomerFactory(chain=chain, home_clinic=clinic_a, birthday=next_month.replace(year=1981),
                             mobile="+8613800138011")
    merged = CustomerFactory(chain=chain, home_clinic=clinic_a, birthday=next_month.replace(year=1982))
    Customer.objects.filter(pk=merged.pk).update(merged_into=live)
    privacy.customer_erase(scope=scope_for_staff(director_a), customer=erased, actor=director_a, reason="本人申请")
    Customer.objects.filter(pk=erased.pk).update(birthday=next_month.replace(year=1981))  # even with a birthday kept
    assert segment_count(admin_scope, birthday, today=today) == 1
    assert [row.id for row in segment_preview(admin_scope, birthday, today=today).rows] == [live.id]
