"""A plain-Python evaluation of a rule tree over a small chain, written from the field definitions' words
and not from the compiler, so the compiler can be checked against it (compile ids == python ids)."""

import datetime as dt
import math
from collections import defaultdict
from zoneinfo import ZoneInfo

from django.conf import settings

from smileloop.clinics.models import Clinic
from smileloop.customers.models import Consent, Customer, Interaction
from smileloop.membership.models import Membership
from smileloop.tagging.models import CustomerTag
from smileloop.visits.models import Appointment, Order, Procedure, TreatmentPlan

TZ = ZoneInfo(settings.TIME_ZONE)


def _start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=TZ)


def _in_window(at: dt.datetime, today: dt.date, days: int) -> bool:
    local_day = at.astimezone(TZ).date()
    return today - dt.timedelta(days=days - 1) <= local_day <= today


def _compare(actual, op, value) -> bool:
    if op == "eq":
        return actual == value
    if op == "ne":
        return actual != value
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "gte":
        return actual is not None and actual >= value
    if op == "lte":
        return actual is not None and actual <= value
    if op == "between":
        return actual is not None and value[0] <= actual <= value[1]
    raise ValueError(op)


def _age(birthday: dt.date, today: dt.date) -> int:
    years = today.year - birthday.year
    if (today.month, today.day) < (birthday.month, birthday.day):
        years -= 1
    return years


class World:
    """Everything about one chain's customers, loaded into dicts."""

    def __init__(self, chain_id: int):
        self.customers = {c.id: c for c in Customer.objects.filter(chain_id=chain_id)}
        ids = list(self.customers)
        self.clinics = {c.id: c for c in Clinic.objects.filter(chain_id=chain_id)}
        self.orders = defaultdict(list)
        for o in Order.objects.filter(customer_id__in=ids):
            self.orders[o.customer_id].append(o)
        self.visits = defaultdict(list)
        for a in Appointment.objects.filter(customer_id__in=ids):
            self.visits[a.customer_id].append(a)
        self.procedures = defaultdict(list)
        for p in Procedure.objects.filter(customer_id__in=ids).select_related("item"):
            self.procedures[p.customer_id].append(p)
        self.plans = defaultdict(list)
        for p in TreatmentPlan.objects.filter(customer_id__in=ids):
            self.plans[p.customer_id].append(p)
        self.consents = defaultdict(list)
        for c in Consent.objects.filter(customer_id__in=ids):
            self.consents[c.customer_id].append(c)
        self.contacts = defaultdict(list)
        for i in Interaction.objects.filter(customer_id__in=ids):
            self.contacts[i.customer_id].append(i)
        self.tags = defaultdict(set)
        for ct in CustomerTag.objects.filter(customer_id__in=ids).select_related("tag"):
            self.tags[ct.customer_id].add(ct.tag.code)
        self.memberships = defaultdict(list)
        for m in Membership.objects.filter(customer_id__in=ids):
            self.memberships[m.customer_id].append(m)


def python_eval(rule: dict, *, chain_id: int, today: dt.date, clinic_ids=None, staff_id=None) -> set[int]:
    world = World(chain_id)
    out = set()
    for c in world.customers.values():
        if c.merged_into_id is not None:
            continue
        if clinic_ids is not None and c.home_clinic_id not in clinic_ids and (
                staff_id is None or c.consultant_id != staff_id):
            continue
        if _eval(rule, c, world, today):
            out.add(c.id)
    return out


def _eval(node, c, world: World, today: dt.date) -> bool:
    if "all" in node:
        return all(_eval(n, c, world, today) for n in node["all"])
    if "any" in node:
        return any(_eval(n, c, world, today) for n in node["any"])
    if "not" in node:
        return not _eval(node["not"], c, world, today)
    return _leaf(node, c, world, today)


def _leaf(leaf: dict, c, world: World, today: dt.date) -> bool:  # noqa: C901 (one branch per field)
    field, op, value = leaf["field"], leaf["op"], leaf.get("value")
    if field == "stage":
        return _compare(c.stage, op, value)
    if field == "clinic":
        return _compare(c.home_clinic_id, op, value)
    if field == "source":
        return _compare(c.first_touch_channel, op, value)
    if field == "gender":
        return _compare(c.gender, op, value)
    if field == "age":
        return c.birthday is not None and _compare(_age(c.birthday, today), op, value)
    if field == "community":
        if op == "contains":
            return value.strip().lower() in c.community.lower()
        return _compare(c.community, op, [v.strip() for v in value] if op == "in" else value.strip())
    if field == "distance_km":
        clinic = world.clinics.get(leaf["clinic"])
        if c.latitude is None or c.longitude is None or clinic is None or clinic.latitude is None:
            return False
        lat0, lng0 = float(clinic.latitude), float(clinic.longitude)
        dx = (float(c.longitude) - lng0) * math.cos(math.radians(lat0))
        dy = float(c.latitude) - lat0
        d = math.hypot(dx, dy) * 111.32  # km per degree: the equirectangular approximation
        return d <= value if op == "lte" else d >= value
    if field == "birthday_month":
        if c.birthday is None:
            return False
        month = today.month % 12 + 1 if op == "next_month" else today.month if op == "this_month" else value
        return c.birthday.month == month
    if field == "tag":
        have = world.tags[c.id]
        if op == "any_of":
            return bool(have & set(value))
        if op == "all_of":
            return set(value) <= have
        return not (have & set(value))
    if field == "consent":
        rows = sorted((r for r in world.consents[c.id] if r.purpose == value), key=lambda r: (r.recorded_at, r.id))
        granted = bool(rows) and rows[-1].granted
        return granted if op == "granted" else not granted
    if field == "last_contact_days":
        contacts = [i for i in world.contacts[c.id] if i.kind in ("call", "chat", "sms") and i.author_id]
        if op == "never":
            return not contacts
        recent = any(i.occurred_at >= _start(today - dt.timedelta(days=value - 1)) for i in contacts)
        return recent if op == "within" else not recent
    if field == "membership_tier":
        start = _start(today)
        tiers = {m.tier_id for m in world.memberships[c.id]
                 if m.status == "active" and (m.expires_at is None or m.expires_at > start)}
        if op == "any":
            return bool(tiers)
        if op == "none":
            return not tiers
        return bool(tiers & set(value)) if op == "in" else not (tiers & set(value))
    if field == "spend_fen_days":
        total = sum(o.amount_fen - o.refunded_fen for o in world.orders[c.id]
                    if _in_window(o.ordered_at, today, leaf["days"]))
        return _compare(total, op, value)
    if field == "visits_days":
        count = sum(1 for a in world.visits[c.id]
                    if a.status in ("arrived", "completed") and _in_window(a.start_at, today, leaf["days"]))
        return _compare(count, op, value)
    if field == "lifetime_spend_fen":
        return _compare(c.lifetime_spend_fen, op, value)
    if field == "visit_count":
        return _compare(c.visit_count, op, value)
    if field == "last_visit_days":
        if op == "never":
            return c.last_visit_at is None
        if c.last_visit_at is None:
            return False
        within = c.last_visit_at >= _start(today - dt.timedelta(days=value - 1))
        return within if op == "within" else not within
    if field == "unfinished_plan":
        has = any(p.status == "active" and p.steps_done < p.steps_total for p in world.plans[c.id])
        return has == value
    if field == "procedure_days":
        low, high = (value, value) if op == "eq" else (0, value) if op == "within" else value
        return any(p.item.category == leaf["category"] and low <= (today - p.performed_on).days <= high
                   for p in world.procedures[c.id])
    raise ValueError(field)
