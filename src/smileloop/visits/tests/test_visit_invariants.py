"""Invariant (property-based, stateful) tests of the visits ingestion API, driven through the django test client
with a real token, against an independent reference model kept here.

Random sequences of appointment upserts (status changes back and forth, moves to another day, future times),
POS orders (several lines, discounts, split payments, wrong payment totals), refunds (amounts, lines, whole,
over-refunds, refunds of refunded lines, external-id replays), treatment plans (replaced steps, explicit
statuses) with step progress (done/undone, cancelled, unknown steps) and procedures; Idempotency-Key replays and
reuses with another body. After every step:

- money: order amount = Σ line amounts = Σ payments (when reported); 0 ≤ refunded ≤ amount per line and per
  order; refunded = Σ refunds = Σ refund lines; the order's status follows its refunded amount; the model agrees;
- the customer's GET (`/api/customers/{id}`) agrees with the model: lifetime spend (bills − refunds), lifecycle
  stage (only up: booked on any appointment, arrived on a visit, treated on a bill), counts, and visit_count by
  the rule `_visit_day_counted` documents: the arrived or completed appointments, plus the days with a bill and
  no such appointment;
- plans: steps_total/steps_done/progress_percent/status/completed_at agree with the model, and so does
  `unfinished_plan_list` at 0, 50 and 100 % ("at least N % done" means progress_percent ≥ N);
- idempotency: a replay answers the first status and body and changes nothing; the same key with another body is
  a 409 `idempotency_key_reused` and changes nothing; a refused write (4xx) names its field and changes no row in
  any table (the stored idempotency answer and the token's last-used time aside).

Appointments have no documented status transition rule besides the time bound (booked/cancelled may lie ahead,
a visit or a no-show may not): every status may follow every other, so that is what is checked.
"""

import datetime as dt
import itertools
import json

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from smileloop.clinics.enums import Role
from smileloop.clinics.selectors import scope_for_staff
from smileloop.clinics.services import token_create
from smileloop.clinics.tests.factories import ChainFactory, ClinicFactory, StaffFactory
from smileloop.customers.enums import STAGE_PROGRESS, Stage
from smileloop.customers.tests.factories import CustomerFactory
from smileloop.visits.models import Order, OrderLine, Payment, Refund, RefundLine, TreatmentPlan
from smileloop.visits.selectors import unfinished_plan_list
from smileloop.visits.tests.factories import ServiceItemFactory

pytestmark = pytest.mark.django_db

_seq = itertools.count()
PRICES = {"EX01": 5000, "CL01": 30000, "FI01": 60000, "OC01": 39900}
CODES = sorted(PRICES)
VISIT = {"arrived", "completed"}
STATUSES = ["booked", "arrived", "completed", "no_show", "cancelled"]
METHODS = ["cash", "wechat_pay", "alipay", "bank_card", "insurance", "wallet", "other"]
# Not compared for "a refused write changes nothing": the answer stored for the key, the token's last use.
UNCOMPARED = {"core.idempotencyrecord", "clinics.apitoken"}


def snapshot() -> dict:
    """Every row of every table (bar UNCOMPARED)."""
    out = {}
    for model in apps.get_models():
        if model._meta.label_lower in UNCOMPARED or not model._meta.managed or model._meta.proxy:
            continue
        out[model._meta.label_lower] = list(model._base_manager.order_by("pk").values_list())
    return out


def snapshot_diff(before: dict, after: dict) -> list[str]:
    return [label for label in before if before[label] != after.get(label)]


def rank(stage: str) -> int:
    return STAGE_PROGRESS.index(stage)


class VisitMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        n = next(_seq)
        self.chain = ChainFactory()
        self.clinic = ClinicFactory(chain=self.chain, code=f"QV{n}")
        director = StaffFactory(chain=self.chain, role=Role.CLINIC_DIRECTOR, clinics=[self.clinic],
                                user__username=f"qa_visits_{n}")
        self.scope = scope_for_staff(director)
        self.headers = {"Authorization": f"Bearer {token_create(username=director.user.username)}"}
        self.client = Client()
        for code, price in PRICES.items():
            ServiceItemFactory(chain=self.chain, code=code, list_price_fen=price)
        self.customer = CustomerFactory(chain=self.chain, home_clinic=self.clinic, stage=Stage.LEAD)
        self.today = timezone.localdate()
        self.base = self.today - dt.timedelta(days=10)
        # the reference model
        self.appts: dict[str, dict] = {}  # by external id (or a local name for one sent without)
        self.orders: list[dict] = []  # {id, ext, day, lines: [{id, amount, refunded}], payments, amount, refunded}
        self.refunds: dict[tuple[int, str], dict] = {}  # (order id, external id) → the first answer
        self.plans: dict[int, dict] = {}  # id → {ext, steps: {seq: status}, status}
        self.plan_ext: dict[str, int] = {}
        self.procedures: dict[str, dict] = {}
        self.procedure_count = 0
        self.spend = 0
        self.stage = Stage.LEAD
        self.sent: list[tuple[str, str, dict, int, dict]] = []  # (kind, url, body, status, json) by key order
        self.keys: list[str] = []

    # --- helpers ---------------------------------------------------------------------------------------

    def post(self, kind: str, url: str, body: dict, *, key: str | None = None):
        new = key is None
        key = key or f"qa-{next(_seq)}"
        response = self.client.post(url, data=json.dumps(body), content_type="application/json",
                                    headers={**self.headers, "Idempotency-Key": key})
        assert response.status_code < 500, response.content
        if new and response.status_code in (200, 201, 409, 422):
            self.sent.append((kind, url, body, response.status_code, response.json()))
            self.keys.append(key)
        return response

    def refused(self, response, before: dict, *fields: str):
        """A 4xx that names one of `fields` (when given) and changed nothing."""
        assert 400 <= response.status_code < 500, (response.status_code, response.content)
        if fields:
            named = {e["field"].removeprefix("body.").removeprefix("path.") for e in response.json().get("errors", [])}
            assert named & set(fields), (fields, response.json())
        assert snapshot_diff(before, snapshot()) == []

    def advance(self, stage: str):
        if rank(stage) > rank(self.stage):
            self.stage = stage

    def at(self, day: int, hour: int) -> str:
        return dt.datetime.combine(self.base + dt.timedelta(days=day), dt.time(hour)).isoformat()

    # --- appointments ----------------------------------------------------------------------------------

    @rule(ext=st.sampled_from(["A1", "A2", "A3", None]), status=st.sampled_from(STATUSES),
          day=st.integers(0, 3), hour=st.integers(8, 18), ahead=st.sampled_from([False, False, False, True]))
    def appointment(self, ext, status, day, hour, ahead):
        start = (dt.datetime.combine(self.today + dt.timedelta(days=20), dt.time(hour)) if ahead
                 else dt.datetime.combine(self.base + dt.timedelta(days=day), dt.time(hour)))
        body = {"customer_id": self.customer.id, "clinic": self.clinic.code, "start_at": start.isoformat(),
                "end_at": (start + dt.timedelta(minutes=30)).isoformat(), "status": status}
        if ext:
            body["external_id"] = ext
        before = snapshot()
        response = self.post("appointment", "/api/appointments", body)
        if ahead and status not in ("booked", "cancelled"):
            self.refused(response, before, "start_at")
            return
        assert response.status_code == (200 if ext in self.appts else 201), response.content
        assert response.json()["status"] == status
        self.appts[ext or f"local-{next(_seq)}"] = {"status": status, "day": start.date()}
        self.advance(Stage.BOOKED)
        if status in VISIT:
            self.advance(Stage.ARRIVED)

    # --- orders ----------------------------------------------------------------------------------------

    @rule(ext=st.sampled_from(["O1", "O2", "O3", None]), day=st.integers(0, 3), hour=st.integers(8, 18),
          lines=st.lists(st.tuples(st.sampled_from(CODES), st.integers(1, 3), st.sampled_from([None, 0, 1000, 7777]),
                                   st.integers(0, 100)), min_size=1, max_size=4),
          methods=st.lists(st.sampled_from(METHODS), min_size=0, max_size=3), payment_error=st.sampled_from([0, 0, 1, -1]))
    def order(self, ext, day, hour, lines, methods, payment_error):
        body_lines, amounts = [], []
        for code, qty, unit, discount_pct in lines:
            price = PRICES[code] if unit is None else unit
            discount = qty * price * discount_pct // 100
            line = {"item_code": code, "quantity": qty, "discount_fen": discount}
            if unit is not None:
                line["unit_price_fen"] = unit
            body_lines.append(line)
            amounts.append(qty * price - discount)
        total = sum(amounts)
        payments = []
        if methods and total > 0:
            parts = len(methods)
            shares = [total // parts] * parts
            shares[0] += total - sum(shares)
            shares[-1] += payment_error
            payments = [{"method": m, "amount_fen": a} for m, a in zip(methods, shares, strict=True) if a > 0]
        body = {"customer_id": self.customer.id, "clinic": self.clinic.code, "ordered_at": self.at(day, hour),
                "lines": body_lines, "payments": payments}
        if ext:
            body["external_id"] = ext
        known = next((o for o in self.orders if ext and o["ext"] == ext), None)
        before = snapshot()
        response = self.post("order", "/api/orders", body)
        if known:  # an immutable fact: the same bill answers the first, a changed one is a 409; nothing changes
            same = {k: body[k] for k in ("ordered_at", "lines")} == {k: known["body"][k] for k in ("ordered_at", "lines")}
            same = same and sorted(map(str, body["payments"])) == sorted(map(str, known["body"]["payments"]))
            assert response.status_code == (200 if same else 409), response.content
            if same:
                assert response.json()["id"] == known["id"]
            else:
                assert response.json()["code"] == "external_id_conflict"
            assert snapshot_diff(before, snapshot()) == []
            return
        if payments and sum(p["amount_fen"] for p in payments) != total:
            self.refused(response, before, "payments")
            return
        assert response.status_code == 201, response.content
        out = response.json()
        assert out["amount_fen"] == total
        assert [ln["amount_fen"] for ln in out["lines"]] == amounts
        self.orders.append({"id": out["id"], "ext": ext, "day": self.base + dt.timedelta(days=day),
                            "lines": [{"id": ln["id"], "amount": a, "refunded": 0}
                                      for ln, a in zip(out["lines"], amounts, strict=True)],
                            "payments": sum(p["amount_fen"] for p in payments) if payments else None,
                            "amount": total, "refunded": 0, "body": body})
        self.spend += total
        self.advance(Stage.TREATED)

    @precondition(lambda self: any(o["ext"] for o in self.orders))
    @rule(data=st.data())
    def order_again(self, data):
        """A POS retrying a bill under a new key (a timeout, a second terminal): the first bill, nothing changes."""
        known = data.draw(st.sampled_from([o for o in self.orders if o["ext"]]))
        before = snapshot()
        response = self.post("order", "/api/orders", known["body"])
        assert response.status_code == 200, response.content
        assert response.json()["id"] == known["id"]
        assert snapshot_diff(before, snapshot()) == []

    # --- refunds ---------------------------------------------------------------------------------------

    REFUND = dict(data=st.data(), mode=st.sampled_from(["amount", "lines", "whole"]),
                  ext=st.sampled_from(["R1", "R2", None]), size=st.sampled_from(["part", "left", "over", "one"]))

    @precondition(lambda self: self.orders)
    @rule(**REFUND)
    def refund(self, data, mode, ext, size):
        self.refund_one(data, mode, ext, size)

    @precondition(lambda self: self.orders)
    @rule(**REFUND)
    def refund_more(self, data, mode, ext, size):  # refunds are drawn twice as often: they need an order first
        self.refund_one(data, mode, ext, size)

    def refund_one(self, data, mode, ext, size):
        order = data.draw(st.sampled_from(self.orders))
        left = order["amount"] - order["refunded"]
        body: dict = {"reason": "qa"}
        if ext:
            body["external_id"] = ext
        want: dict[int, int] = {}  # line id → amount, when valid
        error = None
        if mode == "whole":
            body["whole"] = True
            if left <= 0:
                error = "whole"
            else:
                want = self.spread(order, left)
        elif mode == "amount":
            amount = {"part": max(left // 2, 1), "left": max(left, 1), "over": left + 1, "one": 1}[size]
            body["amount_fen"] = amount
            if amount > left:
                error = "amount_fen"
            else:
                want = self.spread(order, amount)
        else:
            picked = data.draw(st.lists(st.sampled_from(order["lines"]), min_size=1, max_size=3))
            body["lines"] = []
            taken: dict[int, int] = {}
            for i, line in enumerate(picked):
                rest = line["amount"] - line["refunded"] - taken.get(line["id"], 0)
                amount = {"part": max(rest // 2, 1), "left": max(rest, 1), "over": rest + 1, "one": 1}[size]
                body["lines"].append({"line_id": line["id"], "amount_fen": amount})
                if amount > rest:
                    error = error or f"lines[{i}].amount_fen"
                else:
                    taken[line["id"]] = taken.get(line["id"], 0) + amount
            want = taken
        first = self.refunds.get((order["id"], ext)) if ext else None
        before = snapshot()
        response = self.post("refund", f"/api/orders/{order['id']}/refunds", body)
        if first:  # a known external id: the first refund, nothing changes
            assert response.status_code == 200, response.content
            assert response.json()["id"] == first["id"]
            assert snapshot_diff(before, snapshot()) == []
            return
        if error:
            self.refused(response, before, error)
            return
        assert response.status_code == 201, response.content
        out = response.json()
        assert {ln["line_id"]: ln["amount_fen"] for ln in out["lines"]} == want
        total = sum(want.values())
        assert out["amount_fen"] == total
        for line in order["lines"]:
            line["refunded"] += want.get(line["id"], 0)
        order["refunded"] += total
        self.spend -= total
        assert out["order_refunded_fen"] == order["refunded"]
        if ext:
            self.refunds[(order["id"], ext)] = out

    @staticmethod
    def spread(order: dict, amount: int) -> dict[int, int]:
        """An amount is spread over the lines in order (the order's lines by id), each up to what is left of it."""
        out = {}
        for line in sorted(order["lines"], key=lambda ln: ln["id"]):
            take = min(amount, line["amount"] - line["refunded"])
            if take:
                out[line["id"]] = take
                amount -= take
        return out

    # --- treatment plans -------------------------------------------------------------------------------

    @rule(ext=st.sampled_from(["P1", "P2", None]),
          steps=st.lists(st.tuples(st.integers(1, 5), st.sampled_from(CODES),
                                   st.sampled_from(["planned", "done", "cancelled"])), min_size=1, max_size=4),
          status=st.sampled_from([None, None, "active", "completed", "abandoned"]))
    def plan(self, ext, steps, status):
        body = {"customer_id": self.customer.id, "clinic": self.clinic.code, "title": "种植方案",
                "steps": [{"seq": seq, "item_code": code, "status": s} for seq, code, s in steps]}
        if ext:
            body["external_id"] = ext
        if status:
            body["status"] = status
        seqs = [seq for seq, _, _ in steps]
        before = snapshot()
        response = self.post("plan", "/api/treatment-plans", body)
        duplicate = next((f"steps[{i}].seq" for i, seq in enumerate(seqs) if seq in seqs[:i]), None)
        if duplicate:
            self.refused(response, before, duplicate)
            return
        if status == "completed" and any(s not in ("done", "cancelled") for _, _, s in steps):
            self.refused(response, before, "status")
            return
        known = self.plan_ext.get(ext) if ext else None
        assert response.status_code == (200 if known else 201), response.content
        plan_id = response.json()["id"]
        if known:
            assert plan_id == known
        model = self.plans.get(plan_id) or {"ext": ext, "status": "active"}
        model["steps"] = {seq: s for seq, _, s in steps}
        self.recount(model, status)
        self.plans[plan_id] = model
        if ext:
            self.plan_ext[ext] = plan_id
        self.check_plan_out(plan_id, response.json())

    @precondition(lambda self: self.plans)
    @rule(data=st.data(), seq=st.integers(1, 6), status=st.sampled_from(["planned", "done", "cancelled"]))
    def step(self, data, seq, status):
        plan_id = data.draw(st.sampled_from(sorted(self.plans)))
        model = self.plans[plan_id]
        before = snapshot()
        response = self.post("step", f"/api/treatment-plans/{plan_id}/steps/{seq}", {"status": status})
        if seq not in model["steps"]:
            self.refused(response, before, "seq")
            return
        assert response.status_code == 200, response.content
        model["steps"][seq] = status
        self.recount(model, None)
        self.check_plan_out(plan_id, response.json())

    @staticmethod
    def recount(model: dict, status: str | None):
        counted = [s for s in model["steps"].values() if s != "cancelled"]
        model["total"], model["done"] = len(counted), counted.count("done")
        if status:
            model["status"] = status
        elif model["status"] != "abandoned":
            model["status"] = "completed" if model["total"] and model["done"] == model["total"] else "active"

    def check_plan_out(self, plan_id: int, out: dict):
        model = self.plans[plan_id]
        assert (out["steps_total"], out["steps_done"], out["status"]) == (model["total"], model["done"],
                                                                         model["status"])
        assert out["progress_percent"] == (100 * model["done"] // model["total"] if model["total"] else 0)
        assert {s["seq"]: s["status"] for s in out["steps"]} == model["steps"]
        assert (out["completed_at"] is not None) == (model["status"] == "completed")

    # --- procedures ------------------------------------------------------------------------------------

    @rule(ext=st.sampled_from(["X1", "X2", None]), code=st.sampled_from(CODES), day=st.integers(0, 3),
          ahead=st.sampled_from([False, False, False, True]))
    def procedure(self, ext, code, day, ahead):
        performed = self.today + dt.timedelta(days=5) if ahead else self.base + dt.timedelta(days=day)
        body = {"customer_id": self.customer.id, "clinic": self.clinic.code, "item_code": code,
                "performed_on": performed.isoformat()}
        if ext:
            body["external_id"] = ext
        before = snapshot()
        response = self.post("procedure", "/api/procedures", body)
        if ext in self.procedures:  # the same procedure answers the first, a changed one is a 409; nothing changes
            first = self.procedures[ext]
            same = (code, performed.isoformat()) == (first["body"]["item_code"], first["body"]["performed_on"])
            assert response.status_code == (200 if same else 409), response.content
            if same:
                assert response.json()["id"] == first["id"]
            else:
                assert response.json()["code"] == "external_id_conflict"
            assert snapshot_diff(before, snapshot()) == []
            return
        if ahead:
            self.refused(response, before, "performed_on")
            return
        assert response.status_code == 201, response.content
        self.procedure_count += 1
        if ext:
            self.procedures[ext] = {**response.json(), "body": body}

    # --- idempotency -----------------------------------------------------------------------------------

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def replay(self, data):
        i = data.draw(st.integers(0, len(self.sent) - 1))
        kind, url, body, status, out = self.sent[i]
        before = snapshot()
        response = self.post(kind, url, body, key=self.keys[i])
        assert (response.status_code, response.json()) == (status, out)
        assert snapshot_diff(before, snapshot()) == []

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def key_reused_with_another_body(self, data):
        i = data.draw(st.integers(0, len(self.sent) - 1))
        kind, url, body, _, _ = self.sent[i]
        other = dict(body)
        if kind == "step":
            other["status"] = "cancelled" if body["status"] != "cancelled" else "planned"
        elif kind == "refund":
            other["reason"] = "another"
        elif kind == "plan":
            other["title"] = "另一方案"
        else:
            other["notes"] = "another"
        before = snapshot()
        response = self.post(kind, url, other, key=self.keys[i])
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "idempotency_key_reused"
        assert snapshot_diff(before, snapshot()) == []

    # --- invariants ------------------------------------------------------------------------------------

    @invariant()
    def money_adds_up(self):
        if not hasattr(self, "customer"):
            return
        orders = {o.id: o for o in Order.objects.filter(customer=self.customer)}
        assert sorted(orders) == sorted(o["id"] for o in self.orders)
        for model in self.orders:
            order = orders[model["id"]]
            lines = {ln.id: ln for ln in OrderLine.objects.filter(order=order)}
            assert order.amount_fen == sum(ln.amount_fen for ln in lines.values()) == model["amount"]
            if model["payments"] is not None:
                assert sum(p.amount_fen for p in Payment.objects.filter(order=order)) == order.amount_fen
            refunds = list(Refund.objects.filter(order=order))
            assert order.refunded_fen == sum(r.amount_fen for r in refunds) == model["refunded"]
            assert sum(rl.amount_fen for rl in RefundLine.objects.filter(refund__order=order)) == order.refunded_fen
            assert 0 <= order.refunded_fen <= order.amount_fen
            for line in model["lines"]:
                row = lines[line["id"]]
                assert (row.amount_fen, row.refunded_fen) == (line["amount"], line["refunded"])
                assert 0 <= row.refunded_fen <= row.amount_fen
                assert row.refunded_fen == sum(rl.amount_fen for rl in RefundLine.objects.filter(order_line=row))
            expected = ("paid" if not order.refunded_fen
                        else "refunded" if order.refunded_fen == order.amount_fen else "partially_refunded")
            assert order.status == expected

    @invariant()
    def the_customer_agrees(self):
        if not hasattr(self, "customer"):
            return
        response = self.client.get(f"/api/customers/{self.customer.id}", headers=self.headers)
        assert response.status_code == 200, response.content
        out = response.json()
        assert out["lifetime_spend_fen"] == self.spend
        assert out["stage"] == self.stage
        assert out["counts"] == {"appointments": len(self.appts), "orders": len(self.orders),
                                 "treatment_plans": len(self.plans)}
        assert out["visit_count"] == self.visit_count(), (self.appts, [o["day"] for o in self.orders])
        assert self.customer.procedures.count() == self.procedure_count

    def visit_count(self) -> int:
        """The rule `_visit_day_counted` documents: arrived or completed appointments, plus the days with a bill and
        no such appointment."""
        visit_days = [a["day"] for a in self.appts.values() if a["status"] in VISIT]
        bill_days = {o["day"] for o in self.orders}
        return len(visit_days) + len(bill_days - set(visit_days))

    @invariant()
    def plans_agree(self):
        if not hasattr(self, "customer"):
            return
        rows = {p.id: p for p in TreatmentPlan.objects.filter(customer=self.customer)}
        assert sorted(rows) == sorted(self.plans)
        for plan_id, model in self.plans.items():
            row = rows[plan_id]
            assert (row.steps_total, row.steps_done, row.status) == (model["total"], model["done"], model["status"])
        for at_least in (0, 50, 100):
            listed = set(unfinished_plan_list(self.scope, min_progress_percent=at_least)
                         .filter(customer=self.customer).values_list("id", flat=True))
            expected = {pid for pid, m in self.plans.items() if m["status"] == "active"
                        and (m["total"] and 100 * m["done"] // m["total"] or 0) >= at_least}
            assert listed == expected, at_least


def test_visits_money_progress_and_idempotency_hold_on_random_api_sequences():
    run_state_machine_as_test(VisitMachine, settings=settings(
        max_examples=20, stateful_step_count=20, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


# --- the bugs the machine found, as plain examples ----------------------------------------------------------


def _post(client, url, body, token, key):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})


def test_a_plan_whose_every_step_is_cancelled_is_not_listed_as_half_or_wholly_done(client, patient_a, catalogue,
                                                                                   director_token, director_scope):
    # given: an active plan at 0 % (no step counts), and one at 50 %
    empty = _post(client, "/api/treatment-plans", {
        "customer_id": patient_a.id, "clinic": "SH01", "title": "正畸",
        "steps": [{"seq": 1, "item_code": "CL01", "status": "cancelled"}]}, director_token, "p1").json()
    half = _post(client, "/api/treatment-plans", {
        "customer_id": patient_a.id, "clinic": "SH01", "title": "种植",
        "steps": [{"seq": 1, "item_code": "CL01", "status": "done"}, {"seq": 2, "item_code": "FI01"}]},
        director_token, "p2").json()
    assert (empty["status"], empty["progress_percent"], half["progress_percent"]) == ("active", 0, 50)
    # when
    listed = {at: set(unfinished_plan_list(director_scope, min_progress_percent=at).values_list("id", flat=True))
              for at in (0, 50, 100)}
    # then
    assert listed == {0: {empty["id"], half["id"]}, 50: {half["id"]}, 100: set()}


def test_a_visit_corrected_back_and_forth_or_moved_to_a_billed_day_counts_once(client, patient_a, catalogue,
                                                                               director_token):
    # given: a PMS that marks an appointment arrived, corrects it to booked, then arrived again
    day = (timezone.localdate() - dt.timedelta(days=3)).isoformat()
    body = {"customer_id": patient_a.id, "clinic": "SH01", "start_at": f"{day}T09:00:00",
            "end_at": f"{day}T09:30:00", "external_id": "PMS-1"}
    counts = []
    for i, status in enumerate(["arrived", "booked", "arrived", "cancelled"]):
        assert _post(client, "/api/appointments", {**body, "status": status}, director_token, f"a{i}").status_code < 300
        patient_a.refresh_from_db()
        counts.append(patient_a.visit_count)
    # a bill on another day, then the visit moves to that day: the day is one visit, not two
    other = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    assert _post(client, "/api/orders", {"customer_id": patient_a.id, "clinic": "SH01",
                                         "ordered_at": f"{other}T10:00:00", "lines": [{"item_code": "EX01"}]},
                 director_token, "o1").status_code == 201
    _post(client, "/api/appointments", {**body, "status": "completed"}, director_token, "a4")
    patient_a.refresh_from_db()
    counts.append(patient_a.visit_count)
    _post(client, "/api/appointments", {**body, "start_at": f"{other}T09:00:00", "end_at": f"{other}T09:30:00",
                                        "status": "completed"}, director_token, "a5")
    patient_a.refresh_from_db()
    counts.append(patient_a.visit_count)
    # then: 1, 0, 1, 0 visits; then the bill's day and the visit's (2); then one day with both (1)
    assert counts == [1, 0, 1, 0, 2, 1]


def test_a_visit_corrected_away_or_moved_gives_back_its_first_and_last_visit_days(client, patient_a, catalogue,
                                                                                 director_token):
    # given: a bill three weeks ago, and an appointment a PMS marked arrived yesterday by mistake
    def at(days: int) -> str:
        return (timezone.localdate() - dt.timedelta(days=days)).isoformat()

    def span():
        patient_a.refresh_from_db()
        return tuple(timezone.localdate(x) if x else None for x in (patient_a.first_visit_at, patient_a.last_visit_at))

    assert _post(client, "/api/orders", {"customer_id": patient_a.id, "clinic": "SH01", "ordered_at": f"{at(21)}T10:00:00",
                                         "lines": [{"item_code": "EX01"}]}, director_token, "o1").status_code == 201
    body = {"customer_id": patient_a.id, "clinic": "SH01", "start_at": f"{at(1)}T09:00:00",
            "end_at": f"{at(1)}T09:30:00", "external_id": "PMS-9"}
    assert _post(client, "/api/appointments", {**body, "status": "arrived"}, director_token, "a1").status_code < 300
    three_weeks, yesterday = (timezone.localdate() - dt.timedelta(days=d) for d in (21, 1))
    assert span() == (three_weeks, yesterday)
    # when the PMS takes it back, the last visit is the bill's day again
    assert _post(client, "/api/appointments", {**body, "status": "cancelled"}, director_token, "a2").status_code < 300
    assert span() == (three_weeks, three_weeks)
    # and an arrival moved earlier than the bill becomes the first visit, the bill the last
    early = {**body, "start_at": f"{at(30)}T09:00:00", "end_at": f"{at(30)}T09:30:00"}
    assert _post(client, "/api/appointments", {**early, "status": "arrived"}, director_token, "a3").status_code < 300
    assert _post(client, "/api/appointments", {**early, "status": "completed"}, director_token, "a4").status_code < 300
    assert span() == (timezone.localdate() - dt.timedelta(days=30), three_weeks)
