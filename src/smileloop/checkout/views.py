"""Staff pages for checkout: the bill page (/checkout/new/?customer=ID: lines, codes, points, wallet → an
htmx-refreshed priced breakdown → payments → pay), the receipt with its refund form, and the gift card /
voucher look-up with holder registration.

Every view gets the staff member's Scope first; customers come from customers.selectors.customer_get and
settlements from checkout.selectors.settlement_get, so anything outside the scope is a 404. Pay, refund and
holder registration need Perm.VISIT_EDIT. A refused operation (wrong code, expired, excluded item,
insufficient balance, missing consent, price changed, clawback too large) is shown on the page with status
422 and changes nothing: the services raise before writing, or roll their transaction back. Each rendered
bill or refund form carries a fresh key, so a double submit of one form writes once.
"""

import uuid

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smileloop.checkout.errors import PriceChanged
from smileloop.checkout.forms import PAY_METHODS, BillForm, HolderForm, RefundForm, lines_from, payments_from
from smileloop.checkout.messages import checkout_message_display, field_message_display
from smileloop.checkout.selectors import settlement_get, settlement_refund_list
from smileloop.checkout.services import checkout_pay, checkout_price, checkout_refund
from smileloop.clinics.enums import Perm
from smileloop.clinics.selectors import clinic_list
from smileloop.clinics.web import require_permission as _require
from smileloop.clinics.web import staff_view
from smileloop.core import errors
from smileloop.core.forms import FORM_KEY_MISSING, form_key_valid
from smileloop.core.money import fen_to_yuan
from smileloop.core.scoping import Scope
from smileloop.customers.selectors import customer_get
from smileloop.giftcards import selectors as giftcard_selectors
from smileloop.giftcards.errors import WrongCode
from smileloop.giftcards.services import giftcard_holder_register
from smileloop.membership.selectors import membership_current
from smileloop.visits.selectors import service_item_list

EMPTY_ROWS = 3


def _error_messages(exc: errors.DomainError) -> list[str]:
    """A refusal in the reader's language (checkout.messages; the services' English stays the API's)."""
    if isinstance(exc, errors.ValidationFailed):
        return [field_message_display(e.field, e.message) for e in exc.errors]
    return [checkout_message_display(str(exc))]


# --- the bill --------------------------------------------------------------------------------------------


def _family_holder(scope: Scope, customer):
    """(the holder of the family card the customer is bound to, or None; that holder as the scope may see them:
    a holder of another clinic is masked, 张*, and has no id). The wallet is paid from either way."""
    current = membership_current(scope, customer)
    if current.binding is None:
        return None, None
    return current.binding.holder.customer, current.bound_to


def _bill_context(request, scope: Scope, customer, *, data=None, extra_rows: int = 0) -> dict:
    clinics = list(clinic_list(scope))
    holder, holder_shown = _family_holder(scope, customer)
    form = BillForm(data, clinics=clinics, holder=holder,
                    initial={"clinic": customer.home_clinic_id if any(c.id == customer.home_clinic_id
                                                                      for c in clinics) else None})
    lines = lines_from(data) if data is not None else []
    rows = [{"item": str(line["item_id"] or line["item_code"]), "quantity": line["quantity"], "tooth": line["tooth"]}
            for line in lines]
    rows += [{"item": "", "quantity": 1, "tooth": ""}] * max(EMPTY_ROWS - len(rows) + extra_rows, extra_rows)
    return {"customer": customer, "form": form, "rows": rows, "items": list(service_item_list(scope)),
            "holder": holder_shown, "pay_methods": PAY_METHODS, "pay_rows": _pay_rows(data),
            "key": uuid.uuid4().hex, "can_pay": scope.can(Perm.VISIT_EDIT)}


def _pay_rows(data) -> list[dict]:
    """The two payment rows as the cashier left them. Every change of the form re-prices it and replaces the
    breakdown they sit in: rendered empty, a chosen WeChat Pay would silently become cash."""
    methods, amounts = (data.getlist("pay_method"), data.getlist("pay_amount")) if data is not None else ([], [])
    return [{"method": methods[i] if i < len(methods) else "", "amount": (amounts[i] if i < len(amounts) else "")[:20]}
            for i in range(2)]


def _price(scope: Scope, customer, form: BillForm, data):
    """(bill, error messages): prices the form's bill; writes nothing."""
    if not form.is_valid():
        return None, [_("%(field)s: %(message)s") % {"field": form.fields[f].label if f in form.fields else f,
                                                        "message": " ".join(e)} for f, e in form.errors.items()]
    clinic = next((c for c in clinic_list(scope) if c.id == form.cleaned_data["clinic"]), None)
    if clinic is None:
        return None, [_("Choose one of your clinics.")]
    lines = lines_from(data)
    if not lines:
        return None, [_("Add at least one line from the catalogue.")]
    try:
        return checkout_price(customer=customer, clinic=clinic, lines=lines, reader=scope,
                              **form.price_arguments(customer=customer)), []
    except errors.DomainError as exc:
        return None, _error_messages(exc)


@staff_view
@require_http_methods(["GET", "POST"])
def checkout_new(request, scope: Scope):
    """GET: the empty bill for ?customer=ID. POST action=price (htmx: the breakdown fragment), add_line (the page
    with one more row) or pay (→ the receipt)."""
    _require(scope, Perm.VISIT_EDIT)
    data = request.POST if request.method == "POST" else None
    customer = customer_get(scope, (data or request.GET).get("customer"))
    action = data.get("action", "price") if data is not None else ""
    context = _bill_context(request, scope, customer, data=data, extra_rows=1 if action == "add_line" else 0)
    status = 200
    if action in ("price", "pay"):
        bill, problems = _price(scope, customer, context["form"], data)
        context.update(bill=bill, problems=problems)
        if action == "pay" and bill is not None:
            return _pay(request, scope, bill, context)
        status = 422 if problems else 200
        if request.htmx and action == "price":
            return render(request, "checkout/bill.html#breakdown", context, status=status)
    return render(request, "checkout/bill.html", context, status=status)


def _form_key(data) -> str | None:
    """The key the rendered form carries (a double submit writes once on it); None when it is missing, which a
    page never sends: all such posts would share one key and replay each other's bill or refund."""
    return form_key_valid(data.get("key"))


# A form whose key already paid (or refunded) something else: an old copy of the page (Back after paying) changed
# and sent again. The page comes back with a new key, so a second click records this one as its own.
_KEY_USED_BILL = gettext_lazy("This page already paid a different bill (it is an earlier copy, e.g. after Back). "
                              "Nothing was recorded: check the breakdown and pay again to record this bill.")
_KEY_USED_REFUND = gettext_lazy("This form already made a different refund (it is an earlier copy of the page). "
                                "Nothing was refunded: check the bill and submit the refund again.")


def _pay(request, scope: Scope, bill, context: dict) -> HttpResponse:
    data = request.POST
    if _form_key(data) is None:
        context["problems"] = [str(FORM_KEY_MISSING)]
        return render(request, "checkout/bill.html", context, status=422)
    try:
        if (data.get("priced_total") != str(bill.total_fen) or data.get("priced_cash") != str(bill.cash_fen)):
            raise PriceChanged(_("The bill changed since it was priced (balances, codes or prices): check the new "
                                 "breakdown and pay again."), field="priced")
        payments = payments_from(data, bill.cash_fen)
        settlement = checkout_pay(priced=bill, payments=payments, key=f"web:{scope.user_id}:{_form_key(data)}",
                                  actor=getattr(request.user, "staff", None))
    except errors.DomainError as exc:
        reused = exc.code == "idempotency_key_reused"
        context["problems"] = [str(_KEY_USED_BILL)] if reused else _error_messages(exc)
        return render(request, "checkout/bill.html", context,
                      status=409 if reused or isinstance(exc, PriceChanged) else 422)
    messages.success(request, _("Paid. Settlement #%(id)s recorded.") % {"id": settlement.id})
    url = reverse("checkout:receipt", args=[settlement.id])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


# --- receipt and refund ------------------------------------------------------------------------------------


def _receipt(request, scope: Scope, settlement, *, form=None, problems=(), status: int = 200) -> HttpResponse:
    order = settlement.order
    return render(request, "checkout/receipt.html", {
        "settlement": settlement, "order": order, "bill": settlement.breakdown,
        "order_lines": list(order.lines.select_related("item").order_by("id")),
        "payments": list(order.payments.order_by("id")),  # how the cash part was taken: the till's reconciliation
        "refunds": settlement_refund_list(settlement),  # each with what it gave back by method
        "form": form or RefundForm(), "problems": problems, "key": uuid.uuid4().hex,
        "can_refund": scope.can(Perm.VISIT_EDIT) and order.refunded_fen < order.amount_fen,
    }, status=status)


@staff_view
@require_GET
def receipt(request, scope: Scope, settlement_id: int):
    return _receipt(request, scope, settlement_get(scope, settlement_id))


@staff_view
@require_POST
def refund(request, scope: Scope, settlement_id: int):
    _require(scope, Perm.VISIT_EDIT)
    settlement = settlement_get(scope, settlement_id)
    form = RefundForm(request.POST)
    if not form.is_valid():
        return _receipt(request, scope, settlement, form=form, status=422)
    lines = None
    # Ids as the page writes them: ASCII digits a database id can hold ("²" is a digit to isdigit(), not to int()).
    ids = [int(v) for v in request.POST.getlist("line") if v.isascii() and v.isdigit() and len(v) <= 18]
    if form.cleaned_data["scope"] == "all" and ids:
        # Ticked lines under "the whole bill": refunding everything would give back more than the cashier meant.
        return _receipt(request, scope, settlement, form=form, status=422,
                        problems=[_("Lines are ticked but the refund is set to the whole bill: choose \"Selected "
                                    "lines\" to refund only them, or untick them. Nothing was refunded.")])
    if form.cleaned_data["scope"] == "lines":
        if not ids:
            return _receipt(request, scope, settlement, form=form, status=422,
                            problems=[_("Select the lines to refund.")])
        order_lines = {ol.id: ol for ol in settlement.order.lines.select_related("item")}
        left = {i: ol.quantity - settlement.units_refunded.get(str(i), 0) for i, ol in order_lines.items()}
        # Lines refunded in full since the page was read (another tab, a colleague, Back): units all given back, or
        # money all given back (a package-covered line of 0 fen still has units to give back).
        spent = [ol.item.name for i, ol in order_lines.items()
                 if i in ids and (left[i] <= 0 or 0 < ol.amount_fen <= ol.refunded_fen)]
        lines = [{"line_id": i, "quantity": left[i]} if left.get(i) else {"line_id": i} for i in ids]
    if _form_key(request.POST) is None:
        return _receipt(request, scope, settlement, form=form, status=422, problems=[str(FORM_KEY_MISSING)])
    try:
        done = checkout_refund(settlement=settlement, lines=lines, key=f"web:{scope.user_id}:{_form_key(request.POST)}",
                               actor=getattr(request.user, "staff", None), reason=form.cleaned_data["reason"])
    except errors.DomainError as exc:
        if exc.code == "idempotency_key_reused":
            return _receipt(request, scope, settlement, form=form, problems=[str(_KEY_USED_REFUND)], status=409)
        if form.cleaned_data["scope"] == "lines" and spent:
            # After the service (a resent form replays its refund): its bound for such a line read "must be between
            # 0.01 and 0.00 yuan".
            return _receipt(request, scope, settlement, form=form, status=422, problems=[
                _("%(item)s is already refunded in full: untick it. Nothing was refunded.") % {"item": name}
                for name in spent])
        return _receipt(request, scope, settlement, form=form, problems=_error_messages(exc), status=422)
    messages.success(request, _("Refunded %(amount)s yuan.") % {"amount": fen_to_yuan(done.amount_fen)})
    return redirect("checkout:receipt", settlement_id=settlement.id)


# --- gift card / voucher look-up ---------------------------------------------------------------------------


def _lookup(scope: Scope, code: str) -> dict:
    """The card or voucher with this code in the staff member's chain (codes are bearer instruments valid at
    every clinic of the chain); the people it names only as far as the scope shows them."""
    found = giftcard_selectors.code_lookup(scope, code)
    return {"card": found.card, "voucher": found.voucher, "balance_fen": found.balance_fen, "history": found.history,
            "giver": found.giver, "holder": found.holder}


def _codes_page(request, scope: Scope, code: str, *, form=None, problems=(), status: int = 200) -> HttpResponse:
    context = {"code": code, "problems": list(problems), "form": form or HolderForm(),
               "can_register": scope.can(Perm.VISIT_EDIT)}
    if code:
        try:
            context.update(_lookup(scope, code))
        except WrongCode as exc:
            context["problems"].append(checkout_message_display(str(exc)))
            status = 404 if status == 200 else status
    return render(request, "checkout/codes.html", context, status=status)


@staff_view
@require_GET
def codes(request, scope: Scope):
    return _codes_page(request, scope, (request.GET.get("code") or "").strip())


@staff_view
@require_POST
def holder_register(request, scope: Scope):
    _require(scope, Perm.VISIT_EDIT)
    code = (request.POST.get("code") or "").strip()
    form = HolderForm(request.POST)
    if not form.is_valid():
        return _codes_page(request, scope, code, form=form, status=422)
    try:
        card = giftcard_selectors.giftcard_get_by_code(chain_id=scope.chain_id, code=code)
        customer = customer_get(scope, form.cleaned_data["customer"])
        giftcard_holder_register(card=card, customer=customer, actor=getattr(request.user, "staff", None))
    except errors.NotFound:
        return _codes_page(request, scope, code, form=form, status=422,
                           problems=[_("No customer with this number in your clinics.")])
    except errors.DomainError as exc:
        return _codes_page(request, scope, code, form=form, problems=_error_messages(exc), status=422)
    messages.success(request, _("%(name)s is registered as the holder: the card stays valid.") % {"name": customer.name})
    return redirect(f"{reverse('checkout:codes')}?code={card.code}")
