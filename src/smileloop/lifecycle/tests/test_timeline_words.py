"""Stage changes are stored as English sentences and read in the reader's language on the 360 page: every
sentence the event paths and the set-based jobs write matches a registered template (customers.timeline)."""

import datetime as dt
import re

from django.urls import reverse
from django.utils import timezone, translation

from smileloop.customers.models import Interaction
from smileloop.customers.services import customer_mark_lost, interaction_add
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.customers.timeline import timeline_text
from smileloop.lifecycle.tasks import stages_job
from smileloop.visits.services import appointment_upsert, order_record

TODAY = timezone.localdate()
ENGLISH = re.compile(r"[A-Za-z]{3,}")


def at(days_ago: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(TODAY - dt.timedelta(days=days_ago), dt.time(10)))


def system_texts(customer) -> list[str]:
    return list(Interaction.objects.filter(customer=customer, kind__in=["system", "visit"]).order_by("id")
                .values_list("text", flat=True))


def test_every_sentence_the_stage_paths_write_reads_in_chinese(chain, clinic_a, front_desk_a, catalogue):
    booked = CustomerFactory(chain=chain, home_clinic=clinic_a)
    start = at(-2)
    appointment_upsert(customer=booked, clinic=clinic_a, start_at=start, end_at=start + dt.timedelta(hours=1),
                       status="booked")
    called = CustomerFactory(chain=chain, home_clinic=clinic_a)
    interaction_add(customer=called, kind="call", text="回访", author=front_desk_a)
    paid = CustomerFactory(chain=chain, home_clinic=clinic_a)
    order_record(customer=paid, clinic=clinic_a, ordered_at=at(400), lines=[{"item_code": "EX01"}],
                 payments=[{"method": "cash", "amount_fen": 5000}])
    came = CustomerFactory(chain=chain, home_clinic=clinic_a)
    appointment_upsert(customer=came, clinic=clinic_a, start_at=at(3), end_at=at(3) + dt.timedelta(hours=1),
                       status="completed")
    gone = CustomerFactory(chain=chain, home_clinic=clinic_a)
    never = CustomerFactory(chain=chain, home_clinic=clinic_a)
    never.__class__.objects.filter(pk=never.pk).update(created_at=at(200))
    stages_job(today=TODAY)  # paid → dormant (SQL-built cause), never → lost
    from smileloop.core.scoping import Scope
    scope = Scope(user_id=None, staff_id=front_desk_a.pk, chain_id=chain.pk, clinic_ids=None,
                  permissions=frozenset({"customer.edit"}), role="chain_admin")
    customer_mark_lost(scope=scope, customer=gone, reason="搬家到外地", actor=front_desk_a)
    texts = [t for c in (booked, called, paid, came, gone, never) for t in system_texts(c)]
    assert len(texts) >= 7
    with translation.override("zh-hans"):
        shown = [timeline_text(t) for t in texts]
    untranslated = [(t, s) for t, s in zip(texts, shown, strict=True) if ENGLISH.search(s)]
    assert not untranslated, untranslated
    with translation.override("en"):
        # English readers see the stored sentence, with the stages by their labels (a visit: "Visit (Completed)")
        assert [timeline_text(t).lower() for t in texts] == [
            re.sub(r"^visit (\w+)(:|$)", r"visit (\1)\2", t).lower() for t in texts]
    with translation.override("zh-hans"):
        assert timeline_text(system_texts(gone)[-1]).endswith("标记为流失：搬家到外地")
        dormant = timeline_text(system_texts(paid)[-1])
        assert dormant.startswith("阶段 ") and "起未到店（12 个月）" in dormant, dormant


def test_text_no_template_knows_or_with_an_unknown_code_is_shown_as_stored():
    with translation.override("zh-hans"):
        assert timeline_text("hello world") == "hello world"
        assert timeline_text("stage lead → nowhere: paid") == "stage lead → nowhere: paid"
        assert timeline_text("teleport by 小王") == "teleport by 小王"  # not a contact kind
        assert timeline_text("call by 小王") != "call by 小王"


def test_the_360_page_shows_a_stage_change_in_chinese_and_a_note_as_written(client, chain, clinic_a, front_desk_a,
                                                                            catalogue):
    customer = CustomerFactory(chain=chain, home_clinic=clinic_a)
    order_record(customer=customer, clinic=clinic_a, ordered_at=at(1), lines=[{"item_code": "EX01"}],
                 payments=[{"method": "cash", "amount_fen": 5000}])
    interaction_add(customer=customer, kind="note", text="visit completed", author=front_desk_a)
    client.force_login(front_desk_a.user)
    html = client.get(reverse("customers:detail", args=[customer.id]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f"在 {clinic_a.name} 支付订单 #" in html
    assert "paid order" not in html
    assert "visit completed" in html  # what a person wrote is never rewritten
