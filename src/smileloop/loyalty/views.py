"""Staff pages: the loyalty card on the customer 360 page (points, lots, wallet, history, packages, and htmx
forms to top up, award points, exchange a gift and sell a package) and the configuration pages (earn rules,
redeem terms, top-up bonus rules, gifts, packages) for roles with Perm.CONFIG.

Every view gets the staff member's Scope and reads customers only through scoped selectors; a customer outside
the scope is a 404. A mutating POST answers with the updated card fragment (htmx; 422 with the form's errors
on refusal, nothing changed) or redirects to the 360 page.
"""

from functools import cached_property

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.models import Chain
from smileloop.clinics.web import htmx_redirect, staff_view
from smileloop.clinics.web import require_permission as _require
from smileloop.core import errors
from smileloop.core.money import fen_to_yuan
from smileloop.core.scoping import Scope
from smileloop.customers.cards import card_form_view
from smileloop.customers.models import Customer
from smileloop.customers.sections import SECTIONS
from smileloop.customers.selectors import customer_get
from smileloop.ledger.enums import AccountKind
from smileloop.ledger.memos import memos_text
from smileloop.loyalty import selectors, services
from smileloop.loyalty.enums import PurchaseStatus, RefundRule
from smileloop.loyalty.forms import (
    AwardForm,
    BonusRuleForm,
    EarnRuleForm,
    EntitlementForm,
    GiftExchangeForm,
    GiftForm,
    PackageCancelForm,
    PackageForm,
    PackageSellForm,
    RedeemTermsForm,
    TopupForm,
    to_fen,
)
from smileloop.loyalty.models import PackageEntitlement, RedeemSettings
from smileloop.visits.enums import PaymentMethod

CARD_TEMPLATE = "loyalty/_loyalty_card.html"
# The card's action forms (each a template partial `<name>-form`), with the title of their no-JavaScript page.
CARD_FORMS = {"topup": gettext_lazy("Top up stored value"), "award": gettext_lazy("Award points"),
              "gift": gettext_lazy("Exchange points for a gift"), "package": gettext_lazy("Sell a service package")}


def _url(name: str, *args) -> str | None:
    """None while the loyalty URLs are not mounted (the card then shows read-only)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


# --- the loyalty card ------------------------------------------------------------------------------------


class LoyaltyCard:
    """Lazy read model of the 360 page's loyalty card: queried only when the template renders it."""

    def __init__(self, scope: Scope, customer: Customer, **forms):
        self.scope, self.customer, self.forms = scope, customer, forms
        # The bound forms a refused POST passed in: rendered open, in place; the others load when opened.
        self.open = {name: True for name in forms}

    def __bool__(self) -> bool:
        return True

    @cached_property
    def accounts(self):
        return selectors.holder_accounts(self.customer)

    @cached_property
    def points(self):
        return selectors.points_summary(self.customer, account=self.accounts.get(AccountKind.POINTS))

    @cached_property
    def wallet(self):
        return selectors.wallet_balance(self.customer, accounts=self.accounts)

    @cached_property
    def history(self):
        """The latest entries, each with `memo_shown`: its memo as the reader may read it (a family member of
        another clinic that a memo names by id is masked, 张*, without the id; the stored memo keeps it)."""
        entries = selectors.ledger_history(self.customer)
        for entry, shown in zip(entries, memos_text([e.transaction.memo for e in entries], self.scope), strict=True):
            entry.memo_shown = shown
        return entries

    @cached_property
    def topups(self):
        return selectors.topups_for(self.customer, limit=5)

    @cached_property
    def topup_bonus(self):
        """What a top-up would earn, shown on the top-up form (a tier's own rules replace the chain's)."""
        return selectors.topup_bonus_schedule(self.customer)

    @cached_property
    def entitlements(self):
        return selectors.entitlements_for_customer(self.customer)

    @cached_property
    def purchases(self):
        return selectors.purchases_for(self.customer, limit=5)

    @property
    def can_edit(self) -> bool:
        # An erased (PIPL) record is offered no top-up, award, gift or package, as the member card offers no enrolment.
        return self.scope.can(Perm.CUSTOMER_EDIT) and self.customer.erased_at is None

    @cached_property
    def held(self) -> list:
        """The packages this customer holds, newest first, each with `cancel_url` when the reader may cancel it (in
        force, the reader may refund — `payment.refund` — and its bill, if any, is of one of the reader's clinics)."""
        may = self.scope.can(Perm.PAYMENT_REFUND)
        rows = selectors.purchases_held(self.customer)
        for p in rows:
            p.in_force = p.status == PurchaseStatus.ACTIVE and p.period_end > timezone.now()
            mine = p.order_id is None or self.scope.allows_clinic(p.order.clinic_id)
            p.cancel_url = (_url("loyalty:package_cancel", self.customer.id, p.id) if may and p.in_force and mine
                            else None)
        return rows

    @cached_property
    def urls(self) -> dict:
        return {name: _url(f"loyalty:{name}", self.customer.id) for name in CARD_FORMS}

    @cached_property
    def form_urls(self) -> dict:
        return {name: _url("loyalty:form", self.customer.id, name) for name in CARD_FORMS}

    def _form(self, name: str, factory):
        if name not in self.forms:
            self.forms[name] = factory()
        return self.forms[name]

    @property
    def topup_form(self):
        return self._form("topup", TopupForm)

    @property
    def award_form(self):
        return self._form("award", lambda: AwardForm(self.scope))

    @property
    def gift_form(self):
        return self._form("gift", lambda: GiftExchangeForm(self.scope))

    @property
    def package_form(self):
        return self._form("package", lambda: PackageSellForm(self.scope, holder=self.customer))


def loyalty_card_load(scope: Scope, customer: Customer) -> LoyaltyCard:
    """The 360 section loader (registered as `loyalty` in LoyaltyConfig.ready)."""
    return LoyaltyCard(scope, customer)


# Opening one of the card's action forms (they load when opened).
card_form = card_form_view(forms=CARD_FORMS, template=CARD_TEMPLATE, anchor="loyalty", card=LoyaltyCard)


def _card(request, scope: Scope, customer: Customer, *, status: int = 200, member_card: bool = False,
          **forms) -> HttpResponse:
    if not request.htmx and status == 200:
        return redirect(reverse("customers:detail", args=[customer.id]) + "#loyalty")
    response = render(request, CARD_TEMPLATE, {"customer": customer, "card": LoyaltyCard(scope, customer, **forms)},
                      status=status)
    load = SECTIONS.get("membership")
    if member_card and load is not None:
        # A top-up or a sale re-evaluates the membership (a stored-value tier is reached by topping up): the 360
        # page's member card comes along, swapped by its form's hx-select-oob, or it would still offer "Enrol".
        response.content += render_to_string("membership/_member_card.html",
                                             {"customer": customer, "card": load(scope, customer)}, request).encode()
    return response


def _card_action(request, scope: Scope, customer_id: int, *, form_name: str, make_form, run,
                 member_card: bool = False):
    """Validate the form, call `run(customer, cleaned_data)`, answer with the card (422 with errors on refusal);
    `member_card`: the action may change the membership, and the member card is sent too."""
    customer = customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    form = make_form(customer)
    if form.is_valid():
        try:
            run(customer, form.cleaned_data)
        except errors.DomainError as exc:
            if isinstance(exc, (errors.NotFound, errors.PermissionDenied)):
                raise
            form.add_domain_error(exc)
        else:
            return _card(request, scope, customer, member_card=member_card)
    return _card(request, scope, customer, status=422, **{form_name: form})


def _billing_clinic(scope: Scope, customer):
    """Where a sale on the card is billed: the patient's clinic, as a top-up's money is; a patient without one at
    the first of the reader's clinics."""
    if customer.home_clinic_id:
        return customer.home_clinic
    from smileloop.clinics.models import Clinic

    clinics = Clinic.objects.filter(chain_id=scope.chain_id).order_by("id")
    if not scope.is_chain_wide:
        clinics = clinics.filter(pk__in=scope.clinic_ids)
    return clinics.first()


@staff_view
@require_POST
def topup(request, scope: Scope, customer_id: int):
    def run(customer, data):
        services.wallet_topup(customer=customer, amount_fen=to_fen(data["amount_yuan"]), method=data["method"],
                              key=f"web:{data['key']}", actor=request.user.staff, clinic=customer.home_clinic)

    return _card_action(request, scope, customer_id, form_name="topup", make_form=lambda c: TopupForm(request.POST),
                        run=run, member_card=True)


@staff_view
@require_POST
def award(request, scope: Scope, customer_id: int):
    def run(customer, data):
        services.points_award(customer=customer, rule_code=data["rule"].code, key=f"web:{data['key']}",
                              actor=request.user.staff, source=(data.get("note") or "")[:80])

    return _card_action(request, scope, customer_id, form_name="award",
                        make_form=lambda c: AwardForm(scope, request.POST), run=run)


@staff_view
@require_POST
def gift(request, scope: Scope, customer_id: int):
    def run(customer, data):
        services.gift_exchange(customer=customer, gift=data["gift"], quantity=data["quantity"],
                               key=f"web:{data['key']}", actor=request.user.staff)

    return _card_action(request, scope, customer_id, form_name="gift",
                        make_form=lambda c: GiftExchangeForm(scope, request.POST), run=run)


@staff_view
@require_POST
def package(request, scope: Scope, customer_id: int):
    def run(customer, data):
        price = data["package"].price_fen
        services.package_sell(package=data["package"], holder=customer, covered=list(data["covered"]),
                              key=f"web:{data['key']}", actor=request.user.staff,
                              clinic=_billing_clinic(scope, customer),
                              payments=[{"method": data["method"], "amount_fen": price}] if price else [],
                              reader=scope, wallet_holder=data["wallet_holder"] if price else None,
                              per_use_consent=bool(data.get("per_use_consent")))

    return _card_action(request, scope, customer_id, form_name="package",
                        make_form=lambda c: PackageSellForm(scope, request.POST, holder=c), run=run, member_card=True)


@staff_view
@require_http_methods(["GET", "POST"])
def package_cancel(request, scope: Scope, customer_id: int, purchase_id: int):
    """The confirmation page of a cancellation: what was used by whom, what each rule refunds and how; POST cancels
    and goes back to the 360 page, a refusal comes back here (422) with its errors and nothing changed."""
    customer = customer_get(scope, customer_id)
    _require(scope, Perm.PAYMENT_REFUND)
    purchase = selectors.purchase_get(scope, purchase_id)
    if purchase.holder_id != customer.id:
        raise errors.NotFound("Package purchase not found")
    if purchase.order_id and not scope.allows_clinic(purchase.order.clinic_id):
        raise errors.PermissionDenied("The package's bill belongs to a clinic outside your clinics")
    quote = selectors.package_cancel_quote(purchase)
    form = PackageCancelForm(request.POST or None, quote=quote)
    back = reverse("customers:detail", args=[customer.id]) + "#loyalty"
    if request.method == "POST" and form.is_valid():
        try:
            cancellation = services.package_cancel(purchase=purchase, key=f"web:{form.cleaned_data['key']}",
                                                   actor=request.user.staff, **form.service_data())
        except errors.DomainError as exc:
            if isinstance(exc, (errors.NotFound, errors.PermissionDenied)):
                raise
            form.add_domain_error(exc)
        else:
            messages.success(request, _("Package cancelled."))
            clawback = cancellation.detail.get("clawback") or {}
            if clawback.get("shortfall_points"):
                # What the cashier gives back in money is less what spent points are worth (as at checkout).
                messages.info(request, _("%(points)s points the package's bill earned were taken back; "
                                         "%(spent)s already used, ¥%(yuan)s, are withheld from the money refunded.")
                              % {"points": clawback.get("points", 0), "spent": clawback["shortfall_points"],
                                 "yuan": fen_to_yuan(clawback.get("shortfall_fen", 0))})
            elif clawback.get("points"):
                messages.info(request, _("%(points)s points the package's bill earned were taken back.")
                              % {"points": clawback["points"]})
            return htmx_redirect(request, back)
    in_force = purchase.status == PurchaseStatus.ACTIVE and purchase.period_end > timezone.now()
    return render(request, "loyalty/package_cancel.html", {
        "customer": customer, "purchase": purchase, "quote": quote, "form": form, "back": back,
        "in_force": in_force, "rules": [(label, quote.by_rule[value]) for value, label in RefundRule.choices],
        "payments": [(PaymentMethod(method).label, amount) for method, amount in quote.payments]},
        status=422 if request.method == "POST" else 200)


# --- configuration -------------------------------------------------------------------------------------------


@staff_view
@require_GET
def config(request, scope: Scope):
    _require(scope, Perm.CONFIG)
    return render(request, "loyalty/config.html", {
        "earn_rules": selectors.earn_rule_list(scope),
        "terms": services.points_redeem_terms(chain_id=scope.chain_id),
        "bonus_rules": selectors.bonus_rule_list(scope),
        "gifts": selectors.gift_list(scope),
        "packages": selectors.package_list(scope),
    })


def _config_form(request, *, form, save, title: str):
    back = reverse("loyalty:config")
    if request.method == "POST" and form.is_valid():
        try:
            save(form.service_data())
        except errors.ValidationFailed as exc:
            form.add_domain_error(exc)
        else:
            messages.success(request, _("Saved."))
            return redirect(back)
    return render(request, "loyalty/config_form.html", {"form": form, "title": title, "back": back},
                  status=422 if request.method == "POST" else 200)


def _chain(scope: Scope) -> Chain:
    return Chain.objects.get(pk=scope.chain_id)


@staff_view
@require_http_methods(["GET", "POST"])
def earn_rule_edit(request, scope: Scope, rule_id: int | None = None):
    _require(scope, Perm.CONFIG)
    rule = selectors.earn_rule_get(scope, rule_id) if rule_id else None
    return _config_form(request, form=EarnRuleForm(request.POST or None, instance=rule),
                        title=rule.name if rule else _("New earn rule"),
                        save=lambda data: services.earn_rule_save(chain=_chain(scope), rule=rule, data=data))


@staff_view
@require_http_methods(["GET", "POST"])
def redeem_terms_edit(request, scope: Scope):
    _require(scope, Perm.CONFIG)
    row = RedeemSettings.objects.filter(chain_id=scope.chain_id).first()
    return _config_form(request, form=RedeemTermsForm(request.POST or None, instance=row), title=_("Redeem terms"),
                        save=lambda data: services.redeem_terms_save(chain=_chain(scope), data=data))


@staff_view
@require_http_methods(["GET", "POST"])
def bonus_rule_edit(request, scope: Scope, rule_id: int | None = None):
    _require(scope, Perm.CONFIG)
    rule = selectors.bonus_rule_get(scope, rule_id) if rule_id else None
    return _config_form(request, form=BonusRuleForm(request.POST or None, instance=rule),
                        title=_("Top-up bonus rule"),
                        save=lambda data: services.topup_bonus_rule_save(chain=_chain(scope), rule=rule, data=data))


@staff_view
@require_http_methods(["GET", "POST"])
def gift_edit(request, scope: Scope, gift_id: int | None = None):
    _require(scope, Perm.CONFIG)
    gift_row = selectors.gift_get(scope, gift_id) if gift_id else None
    form = GiftForm(request.POST or None, instance=gift_row)
    return _config_form(request, form=form, title=gift_row.name if gift_row else _("New gift"),
                        save=lambda data: services.gift_save(chain=_chain(scope), gift=gift_row, data=data,
                                                             stock_seen=form.cleaned_data.get("stock_seen")))


@staff_view
@require_http_methods(["GET", "POST"])
def package_edit(request, scope: Scope, package_id: int | None = None):
    _require(scope, Perm.CONFIG)
    row = selectors.package_get(scope, package_id) if package_id else None
    return _config_form(request, form=PackageForm(request.POST or None, instance=row),
                        title=row.name if row else _("New package"),
                        save=lambda data: services.package_save(chain=_chain(scope), package=row, data=data))


@staff_view
@require_http_methods(["GET", "POST"])
def entitlement_edit(request, scope: Scope, package_id: int, entitlement_id: int | None = None):
    _require(scope, Perm.CONFIG)
    row = selectors.package_get(scope, package_id)
    entitlement = None
    if entitlement_id:
        entitlement = PackageEntitlement.objects.filter(package=row, pk=entitlement_id).first()
        if entitlement is None:
            raise errors.NotFound("Entitlement not found")
    return _config_form(request, form=EntitlementForm(request.POST or None, instance=entitlement),
                        title=_("Entitlement of %(package)s") % {"package": row.name},
                        save=lambda data: services.package_entitlement_save(package=row, entitlement=entitlement,
                                                                            data=data))
