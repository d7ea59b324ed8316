"""PIPL completeness, walked over the model registry (django.apps.apps.get_models()) so that a model added later is
covered without touching this file: after an erasure (customers.privacy.customer_erase) no text-like column of any
model (CharField, TextField, JSONField) nor any stored import file holds anything that identifies the person, and
the data copy (customers.data_copy) has a row for every record that points at the person through a foreign key.

One person is touched by every app that can hold data about them, through the services the product uses; a second,
unrelated person is built the same way and must come out of the erasure unchanged.

What the erasure keeps on purpose (customers.privacy's docstring: "Medical records … and accounting records must be
kept, so the person's bills, payments, refunds, treatment plans, procedures, ledger balances and audit rows stay"),
and so what the sweep skips (KEPT_ON_PURPOSE, column by column):
- core.AuditEvent, every column: the accountability record of who did what and why, as staff typed it (a phone
  reveal's, a merge's, an import's file name). The erasure's own row holds counts, never the erased values.
- the text of accounting records (a bill's notes, a refund's reason) and of medical records (a procedure's notes,
  a plan's title): kept as written.
Nothing else may keep a trace. A masked phone ("137****0987") is never searched for: the sweep looks for the full
number in every form (E.164, without +, national, with spaces or dashes), the birthday as 1983-07-19 and 19830719.
"""

import datetime as dt
import io
import json
from pathlib import Path

import openpyxl
import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from smileloop.checkout.services import checkout_pay, checkout_price
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.customers.data_copy import _OWN, customer_data_export, data_copy_sheets
from smileloop.customers.enums import ConsentPurpose, InteractionKind, Relation
from smileloop.customers.models import Customer, CustomerMerge, CustomerSearchKey, Household, HouseholdMember
from smileloop.customers.privacy import customer_erase
from smileloop.customers.services import (
    consent_record,
    customer_merge,
    household_relative_add,
    identity_add,
    interaction_add,
    phone_reveal,
)
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.followups.services import complaint_task_open, followup_complete
from smileloop.giftcards.services import friend_card_issue, giftcard_holder_note
from smileloop.giftcards.tests.factories import ProgrammeFactory
from smileloop.imports.services.batches import batch_confirm, batch_upload
from smileloop.loyalty.enums import EarnTrigger
from smileloop.loyalty.services.packages import package_sell
from smileloop.loyalty.services.points import gift_exchange, points_award
from smileloop.loyalty.services.wallet import wallet_topup, wallet_transfer
from smileloop.loyalty.tests.factories import EarnRuleFactory, GiftFactory, PackageEntitlementFactory
from smileloop.membership.services import (
    family_bind,
    friend_link,
    membership_upgrade,
    wallet_share_consent_grant,
)
from smileloop.membership.tests.factories import MembershipFactory, TierFactory
from smileloop.surveys.services import survey_answer
from smileloop.surveys.tests.factories import SurveyFactory
from smileloop.tagging.enums import TagKind
from smileloop.tagging.keywords import keyword_tags_scan
from smileloop.tagging.services import tag_apply
from smileloop.tagging.tests.factories import TagFactory
from smileloop.visits.services import appointment_upsert, order_record, plan_record, procedure_record

pytestmark = pytest.mark.django_db

REASON = "本人书面申请 2026-12-01"
# Models whose text the erasure keeps on purpose (see the module's docstring).
KEPT_ON_PURPOSE = {
    ("core.auditevent", "*"): "audit rows stay: who did what and why, as staff wrote it (a reveal's, a merge's reason)",
    ("visits.order", "notes"): "a bill is an accounting record, kept as written",
    ("visits.refund", "reason"): "a refund is an accounting record, kept as written",
    ("checkout.refundsettlement", "reason"): "a refund is an accounting record, kept as written",
    ("loyalty.packagecancellation", "reason"): "a package's cancellation refunds its bill: an accounting record",
    ("visits.procedure", "notes"): "a procedure is a medical record (outpatient records are kept ~15 years)",
    ("visits.treatmentplan", "title"): "a treatment plan is a medical record",
}


def _unexpected(found: dict[str, list]) -> dict[str, list]:
    """The hits that are not kept on purpose (KEPT_ON_PURPOSE)."""
    left = {label: [hit for hit in hits if (label, "*") not in KEPT_ON_PURPOSE and (label, hit[1]) not in
                    KEPT_ON_PURPOSE] for label, hits in found.items()}
    return {label: hits for label, hits in left.items() if hits}


# Models of the customers app the data copy leaves out on purpose (customers.data_copy._OWN's comment).
COPY_LEFT_OUT = {
    "customers.customersearchkey": "derived from the name and phone (the profile sheet has both)",
    "customers.customermerge": "the product's bookkeeping of a merge, not information about the person",
}


class Person:
    """One person's distinctive values: none of them occurs anywhere else in the world built here."""

    def __init__(self, *, name, mobile, old_mobile, birthday, address, old_address, community, notes, openid,
                 unionid, relative):
        self.name, self.mobile, self.old_mobile, self.birthday = name, mobile, old_mobile, birthday
        self.address, self.old_address, self.community, self.notes = address, old_address, community, notes
        self.openid, self.unionid, self.relative = openid, unionid, relative

    def needles(self) -> list[str]:
        """Every form in which the person may be written down."""
        forms = [self.name, self.birthday.isoformat(), self.address, self.old_address, self.community, self.notes,
                 self.openid, self.unionid, self.birthday.strftime("%Y%m%d")]
        for e164 in (self.mobile, self.old_mobile):
            national = e164[3:]
            forms += [e164, e164[1:], national, f"{national[:3]} {national[3:7]} {national[7:]}",
                      f"{national[:3]}-{national[3:7]}-{national[7:]}"]
        return forms


ZHEN = Person(name="甄珮琳", mobile="+8613712340987", old_mobile="+8615823451098", birthday=dt.date(1983, 7, 19),
              address="上海市静安区愚园路甄家弄77号", old_address="徐汇区漕溪北路旧居18弄", community="愚园雅苑",
              notes="怕打麻药，喜欢周四上午来", openid="oWX-zhenpeilin-0719", unionid="uWX-zhen-union-4242",
              relative="甄小宝")
WU = Person(name="邬思远", mobile="+8613698761234", old_mobile="+8615987650123", birthday=dt.date(1979, 2, 3),
            address="上海市浦东新区锦绣路邬宅9号", old_address="闵行区七宝老街邬家3号", community="锦绣华庭",
            notes="对青霉素过敏，喜欢晚上来", openid="oWX-wusiyuan-0203", unionid="uWX-wu-union-5151",
            relative="邬小米")


@pytest.fixture(autouse=True)
def import_dir(settings, tmp_path):
    settings.SMILELOOP_IMPORT_DIR = tmp_path / "imports"
    return Path(settings.SMILELOOP_IMPORT_DIR)


def _customer(chain, clinic, p: Person, director, *, key: str, config: dict, client, capture) -> Customer:
    """`p` in every app, each through the service (or API) the product writes it with: the API's upsert with
    identities, consents with evidence, staff notes and chats, a household, a merged older record, a phone reveal,
    an appointment, a plan, a procedure, bills, a membership upgraded for a reason, a family member bound with
    wallet sharing, a friend, points, a gift exchange, stored value and a transfer, a package, gift cards given and
    held, a survey answer and its complaint task, a follow-up's outcome, tags, keyword hits, an import waiting to be
    confirmed and a written one named after them."""
    programme, tier, rule, keyword_tag = (config[k] for k in ("programme", "tier", "rule", "keyword_tag"))
    body = {"name": p.name, "mobile": p.mobile[3:], "birthday": p.birthday.isoformat(), "address": p.address,
            "community": p.community, "notes": p.notes, "home_clinic": clinic.code,
            "identities": [{"kind": "wechat_openid", "external_id": p.openid}]}
    token = token_create(username=director.user.username)
    answer = client.post("/api/customers/upsert", data=json.dumps(body), content_type="application/json",
                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"{key}-upsert"})
    assert answer.status_code in (200, 201), answer.content
    person = Customer.objects.get(pk=answer.json()["customer"]["id"])
    identity_add(customer=person, kind="wechat_unionid", external_id=p.unionid, source="miniprogram")
    consent_record(customer=person, purpose=ConsentPurpose.MARKETING_SMS, granted=True, source="form",
                   evidence=f"{p.name}签字 {p.mobile[3:]}", actor=director)
    consent_record(customer=person, purpose=ConsentPurpose.HEALTH_DATA, granted=True, source="form", actor=director)
    interaction_add(customer=person, kind=InteractionKind.NOTE, author=director,
                    text=f"{p.name}说她住{p.community}，{p.address}，手机{p.mobile[3:]}，{p.notes}")
    interaction_add(customer=person, kind=InteractionKind.CHAT, text=f"我是{p.name}，想做种植牙，种牙多少钱")
    relative = CustomerFactory(chain=chain, home_clinic=clinic, name=p.relative, mobile=None)
    household_relative_add(customer=person, relative=relative, relation=Relation.CHILD, actor=director)
    old = CustomerFactory(chain=chain, home_clinic=clinic, name=p.name, mobile=p.old_mobile,
                          mobile_tail=p.old_mobile[-4:], address=p.old_address, birthday=p.birthday)
    customer_merge(scope=scope_for_staff(director), survivor=person, merged=old, actor=director,
                   reason=f"同一人，{p.name}本人确认")
    person.refresh_from_db()
    phone_reveal(scope=scope_for_staff(director), customer=person, reason=f"{p.name}本人来电核对")
    # visits
    now = timezone.now()
    appointment_upsert(customer=person, clinic=clinic, start_at=now + dt.timedelta(days=2),
                       end_at=now + dt.timedelta(days=2, hours=1), notes=f"{p.name}要求女医生",
                       external_id=f"{key}-appt")
    plan_record(customer=person, clinic=clinic, title="种植计划", external_id=f"{key}-plan",
                steps=[{"seq": 1, "item_code": "IM01", "tooth": "36"}])
    procedure_record(customer=person, clinic=clinic, item_code="EX01", performed_on=timezone.localdate(),
                     notes=f"{p.name}主诉左下牙痛", external_id=f"{key}-proc")
    order_record(customer=person, clinic=clinic, ordered_at=now - dt.timedelta(days=1), external_id=f"{key}-pos",
                 lines=[{"item_code": "EX01"}], payments=[], notes=f"{p.name}的家人代付")
    bill = checkout_price(customer=person, clinic=clinic, lines=[{"item_code": "CL01"}])
    checkout_pay(priced=bill, payments=[{"method": "cash", "amount_fen": bill.cash_fen}], key=f"{key}-pay")
    # membership, family card, wallet sharing, friend
    membership = MembershipFactory(customer=person, tier=tier)
    membership_upgrade(membership=membership, tier=config["upper_tier"], actor=director,
                       reason=f"{p.name}是十年老客户，手机{p.mobile[3:]}")
    family_bind(holder=person, member=relative, relation="child", consent_source="paper",
                consent_evidence=f"{p.name}签字", actor=director)
    wallet_share_consent_grant(holder=person, member=relative, mode="standing", source="paper",
                               evidence=f"{p.name}口头同意", actor=director)
    friend = CustomerFactory(chain=chain, home_clinic=clinic, name=f"{p.relative[0]}同学甲")
    friend_link(friend=friend, member=person, source="referral", actor=director)
    # points, stored value, gift cards (given, and held)
    points_award(customer=person, rule_code=rule.code, key=f"{key}-award", actor=director)
    wallet_topup(customer=person, amount_fen=20000, method="cash", key=f"{key}-topup", clinic=clinic)
    wallet_transfer(from_customer=person, to_customer=relative, amount_fen=1000, key=f"{key}-transfer",
                    actor=director)
    gift_exchange(customer=person, gift=config["gift"], key=f"{key}-gift", actor=director)
    package_sell(package=config["package"], holder=person, covered=[person, relative], key=f"{key}-package",
                 actor=director, clinic=clinic)
    friend_card_issue(member=person, programme=programme, trigger="benefit", key=f"{key}-card-given")
    giver = CustomerFactory(chain=chain, home_clinic=clinic, name=f"{p.relative[0]}老师乙")
    held = friend_card_issue(member=giver, programme=programme, trigger="benefit", key=f"{key}-card-held")
    giftcard_holder_note(card=held, customer=person, at=now, actor=director)
    # a detractor's survey answer (its complaint task copies the comment), a follow-up's outcome
    survey = SurveyFactory(chain=chain, clinic=clinic, customer=person)
    survey_answer(token=survey.token, score=2, tags=[], comment=f"{p.name}：等了一个小时，{p.notes}")
    task = complaint_task_open(customer=person, clinic=clinic, brief=f"{p.name}投诉前台", anchor_key=f"{key}-c")
    followup_complete(task=task, outcome="reached", note=f"已联系{p.name}，{p.mobile[3:]}", actor=director)
    # tags: a manual one and a keyword hit
    tag_apply(customer=person, tag=TagFactory(group=keyword_tag.group, name=f"{key}重要"), actor=director)
    # an upload naming them, waiting to be confirmed
    rows = [["姓名", "手机号", "生日", "地址"], [p.name, p.mobile[3:], p.birthday.isoformat(), p.address],
            [f"{p.relative[0]}朋友丙", "13500135000", "", ""]]
    batch_upload(staff=director, kind="customers", default_clinic=clinic, upload=SimpleUploadedFile(
        f"{key}.csv", "\n".join(",".join(r) for r in rows).encode()))
    # and an import named after them, written (its file is gone, its report and name stay)
    written = batch_upload(staff=director, kind="customers", default_clinic=clinic, upload=SimpleUploadedFile(
        f"{p.name}补录.csv", "\n".join(",".join(r) for r in rows[:2]).encode()))
    with capture(execute=True):
        batch_confirm(batch=written, staff=director)
    return person


@pytest.fixture
def world(client, chain, clinic_a, catalogue, director_a, django_capture_on_commit_callbacks):
    """甄珮琳, to be erased, and 邬思远, who must come out of it unchanged."""
    programme = ProgrammeFactory(chain=chain, code="friend-card", reminder_days=[7, 30])
    # ranks of their own: the factory's rank is a session-wide sequence, which passes any fixed number once enough
    # tests made tiers (it reached 1000 and the upgrade was refused as "not above")
    tier = TierFactory(plan__chain=chain, rank=1, family_slots=3)
    rule = EarnRuleFactory(chain=chain, code="review", trigger=EarnTrigger.REVIEW, points_per_yuan=0,
                           points=100, pending_days=0)
    keyword_tag = TagFactory(group__chain=chain, name="种植意向", kind=TagKind.KEYWORD, keywords=["种植", "种牙"],
                             keyword_threshold=1, keyword_window_days=30)
    config = {"programme": programme, "tier": tier, "rule": rule, "keyword_tag": keyword_tag,
              "upper_tier": TierFactory(plan=tier.plan, rank=2, family_slots=3),
              "gift": GiftFactory(chain=chain, points_price=50),
              "package": PackageEntitlementFactory(package__chain=chain, item_code="CL01").package}
    made = {p.name: _customer(chain, clinic_a, p, director_a, key=key, config=config, client=client,
                              capture=django_capture_on_commit_callbacks)
            for p, key in ((ZHEN, "zhen"), (WU, "wu"))}
    keyword_tags_scan(chain=chain, until=timezone.now() + dt.timedelta(minutes=1))
    return made[ZHEN.name], made[WU.name]


# --- the registry walk ------------------------------------------------------------------------------------------

def _text_fields(model) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if isinstance(f, (models.CharField, models.TextField,
                                                                     models.JSONField))]


def _forms(needle: str) -> set[str]:
    """The needle as stored: as it is, and inside JSON (SQLite's JSONField writes non-ASCII as \\u escapes)."""
    return {needle, json.dumps(needle)[1:-1]}


def _where_found(needles: list[str]) -> dict[str, list]:
    """{model label: [(pk, field, needle), …]} of every text-like column of every model holding a needle: one query
    per model (each column cast to text, OR-ed), then the rows found are read to say where."""
    found = {}
    for model in apps.get_models():
        fields = _text_fields(model)
        if not fields:
            continue
        annotations = {f"_t_{f.attname}": Cast(f.attname, TextField()) for f in fields}
        condition = Q()
        for alias in annotations:
            for needle in needles:
                for form in _forms(needle):
                    condition |= Q(**{f"{alias}__contains": form})
        rows = model._base_manager.annotate(**annotations).filter(condition).values("pk", *annotations)
        hits = [(row["pk"], alias[3:], needle) for row in rows for alias in annotations for needle in needles
                if row[alias] and any(form in row[alias] for form in _forms(needle))]
        if hits:
            found[model._meta.label_lower] = hits
    return found


def _files_holding(root: Path, needles: list[str]) -> list[str]:
    held = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []:
        data = path.read_bytes()
        if any(needle.encode() in data for needle in needles):
            held.append(path.name)
    return held


def _customer_foreign_keys() -> list[tuple[type[models.Model], models.Field]]:
    return [(model, field) for model in apps.get_models() for field in model._meta.concrete_fields
            if field.is_relation and field.related_model is Customer]


def _rows_about(person_ids) -> dict[str, str]:
    """A fingerprint of every row that points at the people (any FK to Customer) and of their own records."""
    state = {}
    for model, field in _customer_foreign_keys():
        rows = list(model._base_manager.filter(**{f"{field.attname}__in": person_ids}).order_by("pk").values())
        state[f"{model._meta.label_lower}.{field.name}"] = repr(rows)
    state["customers.customer"] = repr(list(Customer.objects.filter(pk__in=person_ids).order_by("pk").values()))
    return state


def _erase(scope, customer):
    return customer_erase(scope=scope, customer=customer, actor=None, reason=REASON, forfeit=True)


# --- the tests --------------------------------------------------------------------------------------------------

def test_the_world_names_both_people_in_every_app_that_can_hold_them(world, import_dir):
    zhen, wu = world
    # the sweep can fail: before the erasure every kind of record holds the person
    found = _where_found(ZHEN.needles())
    for label in ("customers.customer", "customers.identity", "customers.interaction", "customers.consent",
                  "core.idempotencyrecord", "followups.followuptask", "surveys.survey", "giftcards.giftcardevent",
                  "imports.importbatch", "visits.appointment", "membership.familybinding",
                  "membership.walletshareconsent"):
        assert label in found, f"the world does not put 甄珮琳 in {label}"
    assert _files_holding(import_dir, [ZHEN.mobile[3:]]), "the waiting upload holds her number"
    for label in ("tagging.customertag", "tagging.keywordhit", "ledger.account", "giftcards.giftcard",
                  "membership.friendlink", "membership.membership", "loyalty.topup", "checkout.settlement",
                  "visits.procedure", "visits.treatmentplan", "followups.followuptask", "surveys.survey",
                  "loyalty.packagepurchase", "loyalty.entitlementgrant", "loyalty.giftexchange"):
        model = apps.get_model(label)
        fks = [f.attname for f in model._meta.concrete_fields if f.is_relation and f.related_model is Customer]
        assert model._base_manager.filter(Q(*[(fk, zhen.pk) for fk in fks], _connector=Q.OR)).exists(), \
            f"the world has no {label} row of 甄珮琳"


def test_after_the_erasure_no_column_of_any_model_nor_any_stored_file_holds_the_person(
        world, admin_scope, import_dir, django_capture_on_commit_callbacks):
    zhen, wu = world
    other_before = _rows_about([wu.pk, *Customer.objects.filter(merged_into=wu).values_list("pk", flat=True)])
    # when
    with django_capture_on_commit_callbacks(execute=True):
        _erase(admin_scope, zhen)
    # then: nothing but what is kept on purpose holds any of her values
    found = _where_found(ZHEN.needles())
    assert _unexpected(found) == {}
    # nor does any column hold her number masked with its tail (no stored text documents keeping one)
    masked = [f"{e164[3:6]}****{e164[-4:]}" for e164 in (ZHEN.mobile, ZHEN.old_mobile)]
    assert _unexpected(_where_found(masked)) == {}
    # what is kept on purpose is kept as written: her bill's note and her procedure's, the audit of the reveal
    assert {(label, field) for label, hits in found.items() for _pk, field, _n in hits} >= {
        ("visits.order", "notes"), ("visits.procedure", "notes"), ("core.auditevent", "reason")}
    assert _files_holding(import_dir, [n for n in ZHEN.needles() if n.isascii()] + [ZHEN.name]) == []
    # and the other person is untouched, everywhere
    assert _rows_about([wu.pk, *Customer.objects.filter(merged_into=wu).values_list("pk", flat=True)]) == \
        other_before
    assert set(_where_found(WU.needles())) >= {"customers.customer", "customers.identity", "surveys.survey",
                                               "imports.importbatch"}
    assert _files_holding(import_dir, [WU.mobile[3:]])


def test_erasing_the_family_member_leaves_their_name_nowhere_in_the_card_holders_records(
        world, admin_scope, django_capture_on_commit_callbacks):
    # given 甄小宝, in 甄珮琳's household, bound to her family card, sharing her wallet, covered by her package
    zhen, _wu = world
    relative = Customer.objects.get(name=ZHEN.relative)
    assert "customers.customer" in _where_found([ZHEN.relative])
    # when the relative is erased
    with django_capture_on_commit_callbacks(execute=True):
        _erase(admin_scope, relative)
    # then the card holder's records (her timeline, membership, ledger, package) no longer name them
    assert _unexpected(_where_found([ZHEN.relative])) == {}
    assert Customer.objects.get(pk=zhen.pk).name == ZHEN.name


def test_the_data_copy_has_a_row_for_every_record_that_points_at_the_person(world, admin_scope):
    zhen, _wu = world
    # given the copy the person asks for
    _name, data = customer_data_export(scope=admin_scope, customer=zhen, reason=REASON)
    book = openpyxl.load_workbook(io.BytesIO(data))
    titles = [title for title, _h, _r in data_copy_sheets(admin_scope, zhen)]
    assert len(titles) == len(book.worksheets)
    sheets = {title: [list(r) for r in ws.iter_rows(values_only=True)] for title, ws in zip(titles, book.worksheets,
                                                                                        strict=True)}
    # then every model with rows of hers through a foreign key to Customer is in a sheet of its own, row by row
    missing = []
    for model, field in _customer_foreign_keys():
        label = model._meta.label_lower
        ids = set(model._base_manager.filter(**{field.attname: zhen.pk}).values_list("pk", flat=True))
        if not ids or label in COPY_LEFT_OUT:
            continue
        if model in _OWN:
            continue  # this app's own sheets, checked below one by one (Customer.merged_into: "Merged records")
        plural = str(model._meta.verbose_name_plural)
        shown = set()
        for title, rows in sheets.items():
            if title == plural or title.startswith(f"{plural} ("):
                shown |= {row[0] for row in rows[1:]}
        if not ids <= shown:
            missing.append(f"{label}.{field.name}: {sorted(ids - shown)}")
    assert missing == []
    own = {"customers.identity": "Identities", "customers.consent": "Consents", "customers.interaction": "Timeline"}
    for label, title in own.items():
        count = apps.get_model(label)._base_manager.filter(customer=zhen).count()
        assert count and len(sheets[title]) - 1 == count, label
    merged = set(Customer.objects.filter(merged_into=zhen).values_list("pk", flat=True))
    assert merged and {row[0] for row in sheets["Merged records"][1:]} == merged
    family = HouseholdMember.objects.filter(household__in=Household.objects.filter(head=zhen)).count()
    assert family and len(sheets["Family"]) - 1 == family
    assert CustomerSearchKey.objects.filter(customer=zhen).exists() and CustomerMerge.objects.filter(
        survivor=zhen).exists()  # the left-out ones exist, and are left out on purpose (COPY_LEFT_OUT)


def test_the_data_copy_holds_every_value_the_product_keeps_about_the_person(world, admin_scope):
    zhen, _wu = world
    _name, data = customer_data_export(scope=admin_scope, customer=zhen, reason=REASON)
    book = openpyxl.load_workbook(io.BytesIO(data))
    text = " | ".join(str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row)
    # every value of hers the product holds (the sweep finds each before the erasure) is in her copy, the old
    # address of her merged record included
    held = {needle for hits in _where_found(ZHEN.needles()).values() for _pk, _f, needle in hits}
    assert {ZHEN.name, ZHEN.mobile, ZHEN.old_mobile, ZHEN.address, ZHEN.old_address, ZHEN.openid} <= held
    assert sorted(n for n in held if n not in text and n in (
        ZHEN.name, ZHEN.mobile, ZHEN.old_mobile, ZHEN.birthday.isoformat(), ZHEN.address, ZHEN.old_address,
        ZHEN.community, ZHEN.notes, ZHEN.openid, ZHEN.unionid)) == []
    # and the other person is in it nowhere
    assert not any(needle in text for needle in WU.needles())
