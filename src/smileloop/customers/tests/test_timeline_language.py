"""The timeline speaks the reader's language: what the system writes is stored in English and shown translated on
the 360 page; what people wrote is shown as written, whatever the entry's kind."""

import pytest
from django.urls import reverse
from django.utils import translation

from smileloop.clinics.selectors import scope_for_staff
from smileloop.customers.enums import InteractionKind, Relation
from smileloop.customers.models import Interaction
from smileloop.customers.services import (
    customer_merge,
    customer_update,
    customer_upsert,
    household_member_add,
    interaction_add,
)
from smileloop.customers.templatetags.customers_ui import interaction_text
from smileloop.customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def shown(entry: Interaction, language: str) -> str:
    with translation.override(language):
        return interaction_text(entry)


def test_a_new_person_through_the_api_names_the_source_channel_and_campaign(chain, front_desk_a):
    # when
    customer, _ = customer_upsert(chain=chain, source="api", actor=front_desk_a,
                                  data={"name": "张三", "mobile": "13800138000", "source": "douyin",
                                        "campaign": "种植牙科普直播"})
    # then
    [entry] = Interaction.objects.filter(customer=customer)
    assert entry.text == "created (api) via douyin · 种植牙科普直播"
    assert shown(entry, "zh-hans") == "新建（经接口），来源：抖音 · 种植牙科普直播"
    assert shown(entry, "en") == "created (through the API) via Douyin · 种植牙科普直播"


def test_a_new_person_at_the_front_desk_without_a_channel(chain, front_desk_a):
    customer, _ = customer_upsert(chain=chain, source="form", actor=front_desk_a, data={"name": "李四"})
    [entry] = Interaction.objects.filter(customer=customer)
    assert (entry.kind, entry.text) == (InteractionKind.FORM, "created (form)")
    assert shown(entry, "zh-hans") == "新建（工作台录入）"
    assert shown(entry, "en") == "created (in the workspace)"


def test_an_edit_lists_the_changed_fields_by_their_labels(chain, front_desk_a):
    customer, _ = customer_upsert(chain=chain, source="form", data={"name": "王五"})
    # when
    customer_update(customer=customer, actor=front_desk_a, data={"birthday": "1990-01-05", "community": "静安小区"})
    # then
    entry = Interaction.objects.filter(customer=customer).order_by("-id").first()
    assert entry.text == "updated: birthday, community"
    assert shown(entry, "zh-hans") == "修改了：生日、小区"
    assert shown(entry, "en") == "updated: birthday, community"


def test_a_merge_and_a_new_family_member_are_translated_and_keep_their_data(chain, clinic_a, chain_admin):
    survivor = CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    twin = CustomerFactory(chain=chain, name="张三", home_clinic=clinic_a)
    child = CustomerFactory(chain=chain, name="张小宝", home_clinic=clinic_a)
    # when
    customer_merge(scope=scope_for_staff(chain_admin), survivor=survivor, merged=twin, actor=chain_admin,
                   reason="同一手机号")
    household_member_add(head=survivor, member=child, relation=Relation.CHILD, actor=chain_admin)
    # then
    merge = Interaction.objects.get(customer=survivor, kind=InteractionKind.MERGE)
    assert merge.text == f"merged #{twin.id} 张三 into this record: 同一手机号"
    assert shown(merge, "zh-hans") == f"已将 #{twin.id} 张三 合并到本档案：同一手机号"
    family = Interaction.objects.get(customer=survivor, kind=InteractionKind.NOTE)
    assert family.text == "family member added: 张** (child)"
    assert shown(family, "zh-hans") == "添加家庭成员：张**（子女）"
    assert shown(family, "en") == "family member added: 张** (Child)"


@pytest.mark.parametrize("text", [
    "updated: 价格太贵",                      # looks like an edit, names no field
    "created (api) via tiktok",             # a channel we do not have
    "患者说: 已联系上 — 下周再来",             # looks like a follow-up outcome, is not one
    "明天下午三点复诊",
    "visit completed",                      # a visit's words (visits.services), typed by a person
])
def test_what_people_wrote_is_shown_as_written_whatever_it_looks_like(chain, front_desk_a, text):
    customer, _ = customer_upsert(chain=chain, source="form", data={"name": "赵六"})
    entry = interaction_add(customer=customer, kind=InteractionKind.NOTE, text=text, author=front_desk_a)
    assert shown(entry, "zh-hans") == text
    assert shown(entry, "en") == text


def test_the_360_page_shows_system_entries_in_the_readers_language(client, chain, front_desk_a, clinic_a):
    customer, _ = customer_upsert(chain=chain, source="api", data={"name": "孙七", "mobile": "13700137000",
                                                                  "source": "meituan", "home_clinic": clinic_a})
    customer_update(customer=customer, actor=front_desk_a, data={"gender": "F"})
    interaction_add(customer=customer, kind=InteractionKind.NOTE, text="想约周六洁牙", author=front_desk_a)
    client.force_login(front_desk_a.user)
    url = reverse("customers:detail", args=[customer.id])
    # when
    zh = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").text
    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en").text
    # then
    assert "新建（经接口），来源：美团 / 大众点评" in zh and "修改了：性别" in zh and "想约周六洁牙" in zh
    assert "created (through the API) via Meituan / Dianping" in en and "updated: gender" in en
    assert "想约周六洁牙" in en
    assert "created (api)" not in zh and "updated:" not in zh


@pytest.mark.parametrize(("stored", "english", "chinese"), [
    ("visit completed: 洁牙", "Visit (Completed): 洁牙", "就诊（已完成）：洁牙"),
    ("visit arrived", "Visit (Arrived)", "就诊（已到店）"),
])
def test_a_visit_reads_as_a_visit_with_its_status_in_both_languages(chain, stored, english, chinese):
    customer = CustomerFactory(chain=chain)
    entry = interaction_add(customer=customer, kind=InteractionKind.VISIT, text=stored)
    assert shown(entry, "en") == english
    assert shown(entry, "zh-hans") == chinese
