"""A person's rights under PIPL (art. 44–47): a copy of their personal information (`customer_data_export`) and its
erasure (`customer_erase`).

Erasure is not deletion. Medical records (outpatient records are kept ~15 years) and accounting records must be
kept, so the person's bills, payments, refunds, treatment plans, procedures, ledger balances and audit rows stay;
what identifies them and is not needed for those obligations goes, and nothing markets to them again: the record
becomes an anonymous one (`Customer.erased_at`, named "已注销客户 #<id>"). Higher apps that hold personal text about
the person (follow-up notes, survey comments, gift-card events, family-card bindings) register an erase hook, and
the apps that hold value the person could still claim register an obligation check (`erase_check_register`): a
positive balance must be refunded, or forfeited on purpose, before the erasure goes ahead."""

import json
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Staff
from smileloop.core.audit import audit_record
from smileloop.core.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from smileloop.core.models import IdempotencyRecord
from smileloop.core.scoping import Scope
from smileloop.customers.enums import ConsentPurpose, Gender, IdentityKind, InteractionKind, Relation
from smileloop.customers.models import (
    Consent,
    Customer,
    CustomerMerge,
    CustomerSearchKey,
    Household,
    HouseholdMember,
    Identity,
    Interaction,
)
from smileloop.customers.normalize import phone_national
from smileloop.customers.selectors import customer_visible
from smileloop.customers.services import _user, household_member_remove, households_lock, interaction_add
from smileloop.customers.timeline import ERASED, STAGE_EVENT, timeline_format

# The anonymous record's name: neutral, unique, and no prefix of anyone's real name search.
ERASED_NAME = "已注销客户 #%(id)s"
MARKETING_PURPOSES = (ConsentPurpose.MARKETING_SMS, ConsentPurpose.MARKETING_WECHAT, ConsentPurpose.MARKETING_WECOM,
                      ConsentPurpose.MARKETING_PHONE)
CONSENT_SOURCE = "erasure"
REASON_LIMIT = 200
# Customer fields that identify the person, and what they become.
ERASED_VALUES = {"mobile": None, "mobile_tail": "", "gender": Gender.UNKNOWN, "birthday": None, "address": "",
                 "community": "", "latitude": None, "longitude": None, "notes": ""}


@dataclass(frozen=True)
class Obligation:
    """Value the clinic still owes the person (a wallet's money, a gift card they hold): `message` is an English
    sentence for staff, `code` its kind, `amount_fen` how much."""

    code: str
    message: str
    amount_fen: int


class ObligationsOwed(Conflict):
    """The erasure is refused while the clinic owes the person value; `obligations` says what."""

    def __init__(self, obligations: list[Obligation]):
        super().__init__("The clinic still owes this patient: " + "; ".join(o.message for o in obligations)
                         + ". Refund it first, or forfeit it on purpose.", code="erase_obligations", field="forfeit")
        self.obligations = obligations


_ERASE_HOOKS: list = []
_ERASE_CHECKS: list = []


def erase_hook_register(func) -> None:
    """Higher apps register `hook(customer=…, actor=…)` for their rows about the person that hold personal text or
    keep processing them (open follow-ups, survey comments, gift-card events, family bindings). Called inside the
    erasure's transaction before the customer's own fields are blanked (the record still has its name, so a hook
    can find sentences naming it). May return a dict of counts for the audit row (no personal values)."""
    _ERASE_HOOKS.append(func)


def erase_check_register(func) -> None:
    """Higher apps register `check(customer) -> list[Obligation]`: value the person could still claim. Any found
    refuses the erasure unless staff forfeit it on purpose (`customer_erase(forfeit=True)`)."""
    _ERASE_CHECKS.append(func)


def erase_obligations(customer: Customer) -> list[Obligation]:
    """What the registered checks find the clinic still owes `customer`."""
    return [obligation for check in _ERASE_CHECKS for obligation in check(customer)]


def _reason_clean(reason: str) -> str:
    text = " ".join(str(reason or "").split())
    if not text:
        raise ValidationFailed([FieldError("reason", "is required (why: the patient's request and its date)", reason)])
    if len(text) > REASON_LIMIT:
        raise ValidationFailed([FieldError("reason", f"is longer than {REASON_LIMIT} characters", text)])
    try:  # the audit row cannot store a NUL on PostgreSQL
        ProhibitNullCharactersValidator()(text)
    except ValidationError:
        raise ValidationFailed([FieldError("reason", "contains a NUL character", None)])
    return text


def _merged_records(customer: Customer) -> list[int]:
    """The tombstones merged into `customer` (and into them, and so on): the same person's older records, whose rows
    still hold their details as they were."""
    found: list[int] = []
    frontier = [customer.pk]
    while frontier:
        frontier = list(Customer.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True))
        frontier = [pk for pk in frontier if pk not in found]
        found += frontier
    return found


def _timeline_blank(people: list[int]) -> int:
    """Blank the text of every timeline entry of the person (what they or staff wrote, and system sentences that may
    name them or carry a staff member's free text). A stage change keeps its structure: its stages, no cause."""
    entries = Interaction.objects.filter(customer_id__in=people)
    stages = [e for e in entries.filter(kind=InteractionKind.SYSTEM).only("id", "data")
              if isinstance(e.data, dict) and e.data.get("stage_from") and e.data.get("stage_to")]
    for entry in stages:
        entry.data = {"stage_from": entry.data["stage_from"], "stage_to": entry.data["stage_to"]}
        entry.text = timeline_format(STAGE_EVENT, stage_from=entry.data["stage_from"],
                                     stage_to=entry.data["stage_to"], cause="")
    Interaction.objects.bulk_update(stages, ["text", "data"])
    return entries.exclude(pk__in=[e.pk for e in stages]).update(text="", data={}) + len(stages)


def _household_leave(customer: Customer, actor: Staff | None) -> str:
    """Take the person out of their household. A household they head is dissolved: every relation in it is to them,
    and with them gone none of them says anything (staff link the others again from their pages)."""
    own = HouseholdMember.objects.select_related("household").filter(customer=customer).first()
    headed = list(Household.objects.filter(head=customer).values_list("pk", flat=True))
    if own is not None and own.relation != Relation.HEAD and own.household_id not in headed:
        dissolved = household_member_remove(member=customer, actor=actor)
        return "left_dissolved" if dissolved else "left"
    if own is not None:
        headed.append(own.household_id)
    if not headed:
        return ""
    HouseholdMember.objects.filter(household_id__in=headed).delete()
    Household.objects.filter(pk__in=headed).delete()
    return "dissolved"


# Keys of an API answer's customer object (customers.api's CustomerOut, its upsert's) that hold what the erasure
# blanks, and what they become in a stored answer.
_ANSWER_VALUES = {"mobile": "", "gender": Gender.UNKNOWN, "birthday": None, "address": "", "community": "",
                  "latitude": None, "longitude": None, "notes": "", "identities": [], "consents": [],
                  "household": None}


def _customer_object(value: dict, ids: set[int]) -> bool:
    # A customer in an answer has an id, a name and a (masked) mobile; a clinic or a staff member has no mobile.
    return value.get("id") in ids and "name" in value and "mobile" in value


def _answers_scrub(people: list[int], names: dict[int, str], done: set[int] | None = None) -> int:
    """Rewrite the stored API answers (core.idempotency: replayed for a week on a retried key, shown in the admin)
    that name the person: a customer object of theirs loses its personal values (_ANSWER_VALUES) and their name
    becomes the anonymous one wherever the answer says it. Only answers that hold one of `people`'s ids as a
    customer are touched: another person of the same name keeps theirs. Returns how many were rewritten (their ids
    added to `done`)."""
    found = Q()
    for name in {n for n in names.values() if n}:
        found |= Q(text__contains=name) | Q(text__contains=json.dumps(name)[1:-1])
    if not found:
        return 0
    ids = set(people)

    def about(value) -> bool:
        if isinstance(value, dict):
            if _customer_object(value, ids) or value.get("customer_id") in ids:
                return True
            return any(about(v) for v in value.values())
        return isinstance(value, list) and any(about(v) for v in value)

    def scrub(value):
        if isinstance(value, dict):
            if _customer_object(value, ids):
                value = {**value, **{k: v for k, v in _ANSWER_VALUES.items() if k in value},
                         "name": ERASED_NAME % {"id": value["id"]}}
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            for pk, name in names.items():
                if len(name or "") > 1:  # a one-character name would be found in any text
                    value = value.replace(name, ERASED_NAME % {"id": pk})
            return value
        return value

    rewritten = 0
    for record in IdempotencyRecord.objects.annotate(text=Cast("response", TextField())).filter(found).only(
            "id", "response"):
        stored_as_text = isinstance(record.response, str)
        body = json.loads(record.response) if stored_as_text else record.response
        if not about(body):
            continue
        body = scrub(body)
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            response=json.dumps(body, separators=(",", ":"), ensure_ascii=False) if stored_as_text else body)
        rewritten += 1
        if done is not None:
            done.add(record.pk)
    return rewritten


@dataclass(frozen=True)
class ErasedPerson:
    """What identifies a person about to be erased, read before anything is blanked (erase hooks call
    `erased_person` to find their own copies): the record and those merged into it (`people`), their names, phone
    numbers (E.164: mobiles and phone identities), birthday and other identity values; `forms` are the ways the
    numbers and identities are written in text (_value_forms), longest first."""

    people: tuple[int, ...]
    names: dict[int, str]
    phones: frozenset[str]
    birthday: object
    external_ids: frozenset[str]

    @property
    def forms(self) -> list[str]:
        return _value_forms(set(self.phones), set(self.external_ids))


def erased_person(customer: Customer) -> ErasedPerson:
    merged = _merged_records(customer)
    people = (customer.pk, *merged)
    rows = dict((pk, (name, mobile)) for pk, name, mobile in
                Customer.objects.filter(pk__in=merged).values_list("pk", "name", "mobile"))
    rows[customer.pk] = (customer.name, customer.mobile)
    identities = list(Identity.objects.filter(customer_id__in=people).values_list("kind", "external_id"))
    phones = {mobile for _name, mobile in rows.values() if mobile}
    phones |= {value for kind, value in identities if kind == IdentityKind.PHONE}
    return ErasedPerson(people=people, names={pk: name for pk, (name, _m) in rows.items()}, phones=frozenset(phones),
                        birthday=customer.birthday,
                        external_ids=frozenset(value for kind, value in identities if kind != IdentityKind.PHONE))


# Values shorter than this are not searched for in stored answers: they would be found inside unrelated text.
_VALUE_MIN_LENGTH = 6
_ERASED_VALUE = "***"


def _value_forms(phones: set[str], external_ids: set[str]) -> list[str]:
    """The ways the person's numbers and identities are written in an answer, longest first (so that a number's
    E.164 form is replaced before the national digits inside it): E.164, without its +, the national significant
    number (13800138000; a landline also with its trunk 0), the national format with spaces (138 0013 8000)."""
    forms = set(external_ids)
    for e164 in phones:
        forms |= {e164, e164.lstrip("+"), phone_national(e164)}
        if e164.startswith("+86"):
            forms.add(e164[3:])
            if not e164.startswith("+861"):
                forms.add("0" + e164[3:])
    return sorted((f for f in forms if f and len(f) >= _VALUE_MIN_LENGTH), key=len, reverse=True)


def _stored_values_scrub(chain_id: int, people: list[int], names: dict[int, str], values: list[str],
                         done: set[int]) -> int:
    """The stored answers `_answers_scrub` cannot tie to the person by a customer object: refusals (a 409 or 422
    quoting "张三 is already in another household" or "identity phone:+8613800138000 is the mobile of another
    customer") and answers holding only an identity (identity_add's {"kind", "external_id"}). Only answers to the
    chain's own staff are searched. An answer is about the person when it holds one of their phone numbers or identity
    values (`values`: unique to them in the chain), or, for a refusal, names "customer <id>" of theirs or their name
    while no other live customer of the chain bears it. A name shared with another live customer is not enough: the
    refusal may be about the other one, and is left as it is (a limit: such a refusal keeps the name for the 7 days
    its key is kept). In an answer found, the values become "***" and the names the anonymous one."""
    shared = set(Customer.objects.filter(chain_id=chain_id, name__in=[n for n in names.values() if n],
                                         merged_into__isnull=True, erased_at__isnull=True)
                 .exclude(pk__in=people).values_list("name", flat=True))
    own_names = {n for n in names.values() if len(n or "") > 1 and n not in shared}
    references = [re.compile(rf"\bcustomer {pk}\b") for pk in people]
    found = Q()
    for value in values:
        found |= Q(text__contains=value)
    refused = Q()
    for name in own_names:
        refused |= Q(text__contains=name) | Q(text__contains=json.dumps(name)[1:-1])
    for pk in people:
        refused |= Q(text__contains=f"customer {pk}")
    if not found and not refused:
        return 0
    candidates = (IdempotencyRecord.objects.filter(user__staff__chain_id=chain_id).exclude(pk__in=done)
                  .annotate(text=Cast("response", TextField()))
                  .filter(found | (Q(status_code__gte=400) & refused)))

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    def scrub(value):
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            for form in values:
                value = value.replace(form, _ERASED_VALUE)
            for pk, name in names.items():
                if len(name or "") > 1:
                    value = value.replace(name, ERASED_NAME % {"id": pk})
            return value
        return value

    rewritten = 0
    for record in candidates.only("id", "response", "status_code"):
        stored_as_text = isinstance(record.response, str)
        body = json.loads(record.response) if stored_as_text else record.response
        texts = strings(body)
        about = any(form in text for text in texts for form in values) or (record.status_code >= 400 and any(
            name in text for text in texts for name in own_names) or any(
            ref.search(text) for text in texts for ref in references))
        if not about:
            continue
        body = scrub(body)
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            response=json.dumps(body, separators=(",", ":"), ensure_ascii=False) if stored_as_text else body)
        rewritten += 1
    return rewritten


@transaction.atomic
def customer_erase(*, scope: Scope, customer: Customer, actor: Staff | None, reason: str, forfeit: bool = False,
                   ip_address: str | None = None) -> Customer:
    """Erase the person's personal information (PIPL art. 47) and keep the anonymous record of their care and money.

    Blanks name (→ "已注销客户 #<id>"), mobile, gender, birthday, address, community, coordinates and notes, on this
    record and on the records merged into it; deletes identities and search keys; blanks the timeline (a stage
    change keeps its stages); empties the merge snapshots; rewrites the stored API answers about them (a replayed
    Idempotency-Key answers the anonymous record; a stored refusal quoting their phone, identity or name loses
    it: _stored_values_scrub); takes them out of their household; blanks their consents' evidence (free text) and
    records every marketing consent as withdrawn (append-only); runs the registered hooks (open follow-ups cancelled,
    survey comments, gift-card events, family bindings, appointment notes). Orders, payments, refunds, plans,
    procedures, ledger balances and audit rows stay. One audit row (who, reason, counts — never the erased values)
    and a system timeline sentence.

    Needs customer.privacy and a reason; outside the scope (or merged away) NotFound. Refused (Conflict
    `erase_obligations`, nothing written) while the clinic owes the person value (erase_obligations), unless
    `forfeit`: the audit row then names the kinds and amounts given up. Idempotent: an erased record is returned
    as it is. A later upsert of the same phone finds nobody and creates a new person: the erased record is never
    revived with new details."""
    if not scope.can(Perm.CUSTOMER_PRIVACY):
        raise PermissionDenied("Your role may not erase a patient's personal information")
    text = _reason_clean(reason)
    # Their family first (households_lock): an erasure of another member (or a merge of two) waits here, before
    # holding anyone; it held its own person and waited for this one's as this one waited for it, a deadlock.
    households = households_lock(customer.pk)
    locked = Customer.objects.select_for_update().filter(pk=customer.pk, chain_id=scope.chain_id).first()
    if locked is None or not customer_visible(scope, locked):
        raise NotFound("Customer not found")
    if locked.erased_at is not None:
        return locked
    households_lock(locked.pk, held=households)  # a family joined meanwhile
    owed = erase_obligations(locked)
    if owed and not forfeit:
        raise ObligationsOwed(owed)
    detail: dict = {"forfeited": [{"code": o.code, "amount_fen": o.amount_fen} for o in owed]}
    for hook in _ERASE_HOOKS:
        detail.update(hook(customer=locked, actor=actor) or {})
    merged = _merged_records(locked)
    people = [locked.pk, *merged]
    names = {locked.pk: locked.name, **dict(Customer.objects.filter(pk__in=merged).values_list("pk", "name"))}
    values = erased_person(locked).forms
    now = timezone.now()
    for pk in merged:
        Customer.objects.filter(pk=pk).update(name=ERASED_NAME % {"id": pk}, erased_at=now, updated_at=now,
                                              **ERASED_VALUES)
    locked.name = ERASED_NAME % {"id": locked.pk}
    for field, value in ERASED_VALUES.items():
        setattr(locked, field, value)
    locked.erased_at = now
    locked.save(update_fields=["name", *ERASED_VALUES, "erased_at", "updated_at"])
    detail["identities"], _ = Identity.objects.filter(customer_id__in=people).delete()
    CustomerSearchKey.objects.filter(customer_id__in=people).delete()
    detail["timeline_entries"] = _timeline_blank(people)
    detail["merged_records"] = len(merged)
    CustomerMerge.objects.filter(Q(survivor_id__in=people) | Q(merged_id__in=people)).update(merged_snapshot={},
                                                                                           reason="")
    detail["household"] = _household_leave(locked, actor)
    rewritten: set[int] = set()
    detail["api_answers"] = _answers_scrub(people, names, rewritten)
    detail["api_answers"] += _stored_values_scrub(locked.chain_id, people, names, values, rewritten)
    # The consents stay (what was agreed, when, how); their evidence is free text staff typed ("张三签字 138…").
    detail["consent_evidence"] = Consent.objects.filter(customer_id__in=people).exclude(evidence="").update(
        evidence="")
    Consent.objects.bulk_create([
        Consent(customer=locked, purpose=purpose, granted=False, source=CONSENT_SOURCE, recorded_by=actor,
                recorded_at=now) for purpose in MARKETING_PURPOSES])
    interaction_add(customer=locked, kind=InteractionKind.SYSTEM, author=actor,
                    text=timeline_format(ERASED, name=actor.name if actor else "system"))
    audit_record(actor=_user(scope), action="customer.erase", object_type="customer", object_id=locked.pk,
                 reason=text, detail=detail, ip_address=ip_address, clinic_id=locked.home_clinic_id)
    return locked

