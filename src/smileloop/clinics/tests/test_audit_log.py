"""The audit log page: a privacy officer finds who did what to which personal data, within their scope, by date,
staff member, action, patient and clinic; bad filter input is a message, never a 500 or everyone's events."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import audit_event_list, scope_for_staff
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.core.audit import STAFF_ACTIONS, SYSTEM_ACTIONS, audit_record
from smileloop.core.models import AuditEvent

pytestmark = pytest.mark.django_db
URL = "/audit/"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _event(staff, action="phone.reveal", *, customer=None, at=None, **kwargs) -> AuditEvent:
    event = audit_record(actor=staff.user if staff else None, action=action,
                         object_type=kwargs.pop("object_type", "customer"),
                         object_id=customer if customer is not None else "", reason=kwargs.pop("reason", "回访"),
                         **kwargs)
    if at is not None:
        AuditEvent.objects.filter(pk=event.pk).update(created_at=at)
    return event


def _ids(response) -> list[int]:
    return [row["event"].id for row in response.context["rows"]]


@pytest.fixture
def people(chain, clinic_a, clinic_b, front_desk_a, director_a, chain_admin):
    front_desk_b = StaffFactory(chain=chain, role=Role.FRONT_DESK, name="前台小赵", clinics=[clinic_b],
                                user__username="frontdesk_b")
    other_chain = ChainFactory(name="别家连锁")
    stranger = StaffFactory(chain=other_chain, role=Role.CHAIN_ADMIN, name="别家管理员",
                            clinics=[], user__username="stranger")
    ClinicFactory(chain=other_chain)
    return {"a": front_desk_a, "b": front_desk_b, "director": director_a, "admin": chain_admin,
            "stranger": stranger}


# --- scope ----------------------------------------------------------------------------------------------------


def test_a_director_sees_only_their_clinics_staff_and_a_chain_admin_the_whole_chain(client, people):
    # given an event by each, and one without an actor (the login lockout)
    mine = [_event(people["a"], customer=1), _event(people["director"], customer=2)]
    clinic_b = _event(people["b"], customer=3)
    admin = _event(people["admin"], customer=4)
    _event(people["stranger"], customer=5)
    _event(None, "login.lockout", object_type="username", customer="someone")
    # when / then
    client.force_login(people["director"].user)
    response = client.get(URL)
    assert response.status_code == 200 and _ids(response) == [e.id for e in reversed(mine)]
    client.force_login(people["admin"].user)
    assert _ids(client.get(URL)) == [admin.id, clinic_b.id, mine[1].id, mine[0].id]


def test_a_director_also_sees_what_anyone_did_to_their_clinics_patients(client, people, clinic_a, clinic_b):
    """A chain admin who looked at a clinic-A patient's phone is in clinic A's director's log (AuditEvent.clinic_id);
    their look at a clinic-B patient is not, nor a chain-wide event of theirs."""
    ours = _event(people["admin"], customer=4, clinic_id=clinic_a.pk)
    _event(people["admin"], customer=5, clinic_id=clinic_b.pk)
    _event(people["admin"], "customer.export")
    _event(people["stranger"], customer=6, clinic_id=ClinicFactory(chain=people["stranger"].chain).pk)
    _event(None, "login.lockout", object_type="username", customer="someone", clinic_id=clinic_a.pk)
    mine = _event(people["a"], customer=1, clinic_id=clinic_b.pk)  # their own staff's, whoever the patient
    client.force_login(people["director"].user)
    assert _ids(client.get(URL)) == [mine.id, ours.id]
    assert _ids(client.get(URL, {"actor": people["admin"].pk})) == []  # the chain admin is no staff of theirs
    assert _ids(client.get(URL, {"clinic": clinic_a.pk})) == [mine.id, ours.id]


def test_the_clinic_filter_is_its_staffs_events_and_those_about_its_patients(client, people, clinic_a, clinic_b):
    by_staff = _event(people["b"], customer=3)
    about_patient = _event(people["admin"], customer=4, clinic_id=clinic_b.pk)
    _event(people["admin"], customer=5, clinic_id=clinic_a.pk)
    client.force_login(people["admin"].user)
    assert _ids(client.get(URL, {"clinic": clinic_b.pk})) == [about_patient.id, by_staff.id]


def test_the_selector_reads_no_other_chains_clinic_or_a_clinic_outside_the_scope(people, clinic_a, clinic_b):
    foreign_clinic = ClinicFactory(chain=people["stranger"].chain)
    _event(people["stranger"], customer=6, clinic_id=foreign_clinic.pk)
    b_patient = _event(people["admin"], customer=5, clinic_id=clinic_b.pk)
    admin_scope = scope_for_staff(people["admin"])
    assert list(audit_event_list(admin_scope, clinic_id=foreign_clinic.pk)) == []
    assert list(audit_event_list(admin_scope, clinic_id=clinic_b.pk)) == [b_patient]
    assert list(audit_event_list(scope_for_staff(people["director"]), clinic_id=clinic_b.pk)) == []


def test_the_events_about_a_patient_carry_their_home_clinic(client, people, clinic_a):
    from smileloop.customers.tests.factories import CustomerFactory

    patient = CustomerFactory(chain=clinic_a.chain, home_clinic=clinic_a, mobile="+8613800138000")
    client.force_login(people["admin"].user)
    response = client.post(reverse("customers:phone_reveal", args=[patient.pk]), {"reason": "回访确认"})
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="phone.reveal")
    assert (event.object_id, event.clinic_id) == (str(patient.pk), clinic_a.pk)
    client.force_login(people["director"].user)
    assert _ids(client.get(URL)) == [event.id]


def test_the_migration_gives_earlier_events_their_patients_home_clinic(people, clinic_a, clinic_b):
    import importlib

    from django.apps import apps

    from smileloop.customers.tests.factories import CustomerFactory

    backfill = importlib.import_module("smileloop.customers.migrations.0021_auditevent_clinic_backfill").backfill
    in_a = CustomerFactory(chain=clinic_a.chain, home_clinic=clinic_a)
    in_b = CustomerFactory(chain=clinic_a.chain, home_clinic=clinic_b)
    events = [_event(people["admin"], customer=in_a.pk), _event(people["admin"], customer=in_b.pk),
              _event(people["admin"], customer=999_999), _event(people["admin"], "customer.export"),
              _event(people["admin"], "staff.password_set", object_type="staff", customer=in_a.pk)]
    backfill(apps, None)
    assert [AuditEvent.objects.get(pk=e.pk).clinic_id for e in events] == [clinic_a.pk, clinic_b.pk, None, None, None]


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.CONSULTANT, Role.DOCTOR, Role.ASSISTANT, Role.MEMBER_OPS,
                                  Role.MARKETING])
def test_roles_without_the_privacy_permission_are_refused(client, chain, clinic_a, role):
    staff = StaffFactory(chain=chain, role=role, clinics=[clinic_a])
    client.force_login(staff.user)
    assert client.get(URL).status_code == 403
    assert client.post(reverse("clinics:audit_export"), {"reason": "x"}).status_code == 403


def test_a_director_cannot_name_another_clinics_staff_member(client, people):
    # given
    _event(people["b"], customer=3)
    client.force_login(people["director"].user)
    # when
    response = client.get(URL, {"actor": people["b"].pk})
    # then the filter is refused with a message, and nothing is listed (never everyone's events)
    assert response.status_code == 200
    assert response.context["form"].errors["actor"] and response.context["rows"] == []
    assert 'data-testid="error-actor"' in response.content.decode()


# --- filters ----------------------------------------------------------------------------------------------------


def test_the_date_range_is_of_local_days_and_includes_its_last_day(client, people):
    # given events just before, on, and just after 1–30 November (Shanghai)
    before = _event(people["a"], at=dt.datetime(2026, 10, 31, 23, 59, tzinfo=SHANGHAI))
    first = _event(people["a"], at=dt.datetime(2026, 11, 1, 0, 0, tzinfo=SHANGHAI))
    last = _event(people["a"], at=dt.datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI))
    after = _event(people["a"], at=dt.datetime(2026, 12, 1, 0, 0, tzinfo=SHANGHAI))
    client.force_login(people["director"].user)
    # when / then
    assert _ids(client.get(URL, {"date_from": "2026-11-01", "date_to": "2026-11-30"})) == [last.id, first.id]
    assert _ids(client.get(URL, {"date_from": "2026-12-01"})) == [after.id]
    assert _ids(client.get(URL, {"date_to": "2026-10-31"})) == [before.id]


def test_one_staff_members_events(client, people):
    mine = _event(people["a"])
    _event(people["director"])
    client.force_login(people["admin"].user)
    assert _ids(client.get(URL, {"actor": people["a"].pk})) == [mine.id]


def test_a_staff_member_who_left_keeps_their_history(client, people):
    event = _event(people["a"])
    people["a"].is_active = False
    people["a"].save(update_fields=["is_active"])
    client.force_login(people["director"].user)
    assert _ids(client.get(URL, {"actor": people["a"].pk})) == [event.id]


def test_one_action(client, people):
    reveal = _event(people["a"], "phone.reveal", customer=7)
    export = _event(people["director"], "customer.export")
    client.force_login(people["director"].user)
    assert _ids(client.get(URL, {"action": "customer.export"})) == [export.id]
    assert _ids(client.get(URL, {"action": "phone.reveal"})) == [reveal.id]


def test_one_patient_by_id_or_by_the_address_of_their_page_with_the_merge_that_took_them_in(client, people):
    # given events about patient 7 (and 70, whose id begins alike), and the merge of 7 into 9
    reveal = _event(people["a"], customer=7)
    copy = _event(people["director"], "customer.data_export", customer=7)
    _event(people["a"], customer=70)
    merge = _event(people["director"], "customer.merge", customer=9, detail={"merged_id": 7, "moved": {}})
    client.force_login(people["director"].user)
    expected = [merge.id, copy.id, reveal.id]
    # when / then
    assert _ids(client.get(URL, {"customer": "7"})) == expected
    assert _ids(client.get(URL, {"customer": "https://smileloop.example.cn/customers/7/"})) == expected
    assert _ids(client.get(URL, {"customer": "/customers/7/?section=timeline#timeline"})) == expected
    assert _ids(client.get(URL, {"customer": "9"})) == [merge.id]


def test_one_patient_finds_the_bulk_taggings_that_listed_them(client, people, chain, clinic_a):
    """Bulk tagging is one event for many patients (core.audit.PATIENT_LIST_ACTIONS): found by any of them, through
    the real service; a list naming 70 or 170 is no list naming 7."""
    from smileloop.clinics.selectors import scope_for_staff
    from smileloop.customers.tests.factories import CustomerFactory
    from smileloop.tagging.services import tags_bulk_apply, tags_bulk_remove
    from smileloop.tagging.tests.factories import TagFactory, TagGroupFactory

    patients = [CustomerFactory(chain=chain, home_clinic=clinic_a) for _ in range(3)]
    tag = TagFactory(group=TagGroupFactory(chain=chain), chain=chain)
    scope = scope_for_staff(people["director"])
    tags_bulk_apply(scope=scope, customer_ids=[p.pk for p in patients], tag=tag, actor=people["director"])
    tags_bulk_remove(scope=scope, customer_ids=[patients[0].pk], tag=tag, actor=people["director"])
    applied, removed = (AuditEvent.objects.get(action=a) for a in ("tag.bulk_apply", "tag.bulk_remove"))
    _event(people["a"], "tag.bulk_apply", object_type="tag", customer=tag.pk,
           detail={"customer_ids": [int(f"{patients[0].pk}0"), int(f"1{patients[0].pk}")]})
    client.force_login(people["director"].user)
    assert _ids(client.get(URL, {"customer": patients[0].pk})) == [removed.id, applied.id]
    assert _ids(client.get(URL, {"customer": patients[2].pk})) == [applied.id]


def test_the_staff_of_one_clinic(client, people, clinic_b):
    _event(people["a"])
    theirs = _event(people["b"])
    client.force_login(people["admin"].user)
    assert _ids(client.get(URL, {"clinic": clinic_b.pk})) == [theirs.id]


def test_filters_combine(client, people):
    hit = _event(people["a"], "phone.reveal", customer=7, at=dt.datetime(2026, 11, 5, 10, tzinfo=SHANGHAI))
    _event(people["a"], "phone.reveal", customer=8, at=dt.datetime(2026, 11, 5, 10, tzinfo=SHANGHAI))
    _event(people["a"], "customer.data_export", customer=7, at=dt.datetime(2026, 11, 5, 10, tzinfo=SHANGHAI))
    _event(people["director"], "phone.reveal", customer=7, at=dt.datetime(2026, 11, 5, 10, tzinfo=SHANGHAI))
    _event(people["a"], "phone.reveal", customer=7, at=dt.datetime(2026, 10, 5, 10, tzinfo=SHANGHAI))
    client.force_login(people["director"].user)
    response = client.get(URL, {"date_from": "2026-11-01", "date_to": "2026-11-30", "actor": people["a"].pk,
                                "action": "phone.reveal", "customer": "7"})
    assert _ids(response) == [hit.id]
    page = response.content.decode()
    assert f'href="{reverse("customers:detail", args=[7])}"' in page and "前台小王" in page


# --- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, field", [
    ({"date_from": "2026-13-40"}, "date_from"),
    ({"date_to": "yesterday"}, "date_to"),
    ({"date_from": "2026-11-30", "date_to": "2026-11-01"}, "date_to"),
    ({"actor": "999999"}, "actor"),
    ({"actor": "abc"}, "actor"),
    ({"actor": "99999999999999999999999"}, "actor"),
    ({"action": "drop.table"}, "action"),
    ({"customer": "张三"}, "customer"),
    ({"customer": "https://smileloop.example.cn/segments/3/"}, "customer"),
    ({"customer": "99999999999999999999999"}, "customer"),
    ({"clinic": "999999"}, "clinic"),
    ({"page": "abc"}, "page"),
])
def test_a_filter_that_cannot_be_applied_names_its_field_and_lists_nothing(client, people, params, field):
    _event(people["a"], customer=7)
    client.force_login(people["director"].user)
    response = client.get(URL, params)
    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    assert response.context["rows"] == []
    page = response.content.decode()
    assert f'data-testid="error-{field}"' in page
    assert 'data-testid="audit-invalid"' in page


def test_every_action_written_in_the_code_is_listed():
    """The action filter offers STAFF_ACTIONS: an action written by audit_record that is in neither list would be
    impossible to filter for."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    written = set()
    for path in root.rglob("*.py"):
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        written |= set(re.findall(r'action="([a-z_]+\.[a-z_.]+)"', path.read_text(encoding="utf-8")))
    assert written - set(STAFF_ACTIONS) - SYSTEM_ACTIONS == set()


# --- pages and queries ------------------------------------------------------------------------------------------


def test_fifty_events_a_page_with_the_next_and_previous_pages(client, people):
    events = [_event(people["a"], customer=i) for i in range(1, 53)]
    client.force_login(people["director"].user)
    first = client.get(URL, {"action": "phone.reveal"})
    assert _ids(first) == [e.id for e in reversed(events)][:50] and first.context["next_page"] == 2
    assert "page=2" in first.content.decode() and "action=phone.reveal" in first.content.decode()
    second = client.get(URL, {"action": "phone.reveal", "page": "2"})
    assert _ids(second) == [events[1].id, events[0].id]
    assert (second.context["next_page"], second.context["previous_page"]) == (None, 1)


def test_the_page_reads_a_fixed_number_of_queries_whatever_the_rows(client, people, django_assert_max_num_queries):
    for i in range(30):
        _event(people["a" if i % 2 else "director"], customer=i + 1)
    client.force_login(people["director"].user)
    client.get(URL)  # sessions, caches
    with django_assert_max_num_queries(12):
        response = client.get(URL)
    assert len(response.context["rows"]) == 30


@pytest.mark.parametrize("reader", ["director", "admin"])  # the scope's two forms: IN for clinics, EXISTS chain-wide
def test_the_selector_is_one_query_with_the_staff_names(people, django_assert_num_queries, reader):
    _event(people["a"])
    _event(people["director"])
    scope = scope_for_staff(people[reader])
    with django_assert_num_queries(1):
        names = [e.actor.staff.name for e in audit_event_list(scope)]
    assert names == ["院长老李", "前台小王"]


# --- export -----------------------------------------------------------------------------------------------------


def test_the_export_is_the_filtered_list_and_is_itself_audited(client, people):
    # given
    reveal = _event(people["a"], customer=7, reason="=HYPERLINK(1)")
    _event(people["a"], "customer.export")
    _event(people["b"], customer=7)
    client.force_login(people["director"].user)
    # when
    response = client.post(reverse("clinics:audit_export"), {"customer": "7", "reason": "患者投诉 2026-12-01"})
    # then
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 2 and rows[1][1] == "前台小王" and rows[1][4] == "Patient 7"
    assert rows[1][5] == "'=HYPERLINK(1)" and str(STAFF_ACTIONS["phone.reveal"]) == rows[1][3]
    audit = AuditEvent.objects.get(action="audit.export")
    assert (audit.actor_id, audit.reason, audit.detail) == (people["director"].user_id, "患者投诉 2026-12-01",
                                                              {"filters": {"customer_id": 7}})
    assert reveal.id != audit.id


def test_the_export_needs_a_reason_and_valid_filters_and_then_writes_nothing(client, people):
    client.force_login(people["director"].user)
    refused = client.post(reverse("clinics:audit_export"), {"reason": "  "})
    assert refused.status_code == 422 and "reason" in refused.content.decode()
    bad = client.post(reverse("clinics:audit_export"), {"reason": "查询", "date_from": "2026-02-30"})
    assert bad.status_code == 422 and "From" in bad.content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_what_an_event_is_about_is_named_in_the_readers_language_on_the_page_and_in_the_csv(client, people):
    # given events about a follow-up task, a staff member and the patient list (stored as codes)
    _event(people["admin"], "followup.reassign", object_type="followup_task", customer="12")
    _event(people["admin"], "staff.deactivate", object_type="staff", customer="7")
    _event(people["admin"], "customer.export", object_type="customer", customer="")
    client.force_login(people["admin"].user)
    # when a Chinese reader opens the page and downloads the CSV
    page = client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans")
    export = client.post(reverse("clinics:audit_export"), {"reason": "核查"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then the objects read 患者, 员工 7 and 回访任务 12 — not "customer" or "followup_task 12"
    assert sorted(row["object"] for row in page.context["rows"]) == sorted(["患者", "员工 7", "回访任务 12"])
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert {"患者", "回访任务 12", "员工 7"} <= {row[4] for row in rows[1:]}
    assert "followup_task" not in page.text


def test_an_events_detail_names_its_keys_in_the_readers_language(client, people):
    # given a merge (stored as merged_id and moved) and an import (file, rows, created, merged, skipped)
    _event(people["admin"], "customer.merge", customer=9, detail={"merged_id": 7, "moved": {"visits.Order": 2}})
    _event(people["admin"], "import.customers", object_type="chain", customer="",
           detail={"file": "患者.xlsx", "rows": 3, "created": 2, "merged": 1, "skipped": 0, "unknown_key": "x"})
    client.force_login(people["admin"].user)
    # when a Chinese reader opens the page, then an English one
    chinese = {row["event"].action: row["detail"] for row in client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans")
               .context["rows"]}
    english = {row["event"].action: row["detail"] for row in client.get(URL, HTTP_ACCEPT_LANGUAGE="en")
               .context["rows"]}
    # then the keys are words of each language; ids, codes and a key nobody named are shown as stored (in the order
    # the database keeps them: PostgreSQL's jsonb sorts an object's keys)
    def parts(text):
        return sorted(text.split("; "))

    assert parts(chinese["customer.merge"]) == parts("被合并的档案: 7; 转移的记录: visits.Order=2")
    assert parts(chinese["import.customers"]) == parts("文件: 患者.xlsx; 行数: 3; 新建: 2; 合并: 1; 跳过: 0; unknown_key: x")
    assert parts(english["customer.merge"]) == parts("Merged record: 7; Records moved: visits.Order=2")
