"""Staff pages: the member card on the customer 360 page (with its htmx forms) and the programme
configuration pages (plans, tiers, benefits) for roles with Perm.CONFIG.

Every view gets the staff member's Scope and reads customers only through scoped selectors; a customer
outside the scope is a 404. Mutating POSTs return the updated card fragment (htmx) or redirect.
"""

from functools import cached_property

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.web import require_permission as _require
from smileloop.clinics.web import staff_view
from smileloop.core import errors
from smileloop.core.messages import message_display
from smileloop.core.scoping import Scope
from smileloop.customers.cards import card_form_view
from smileloop.customers.models import Customer
from smileloop.customers.selectors import customer_get
from smileloop.membership import selectors, services
from smileloop.membership.forms import (
    ERROR_MESSAGES,
    BenefitForm,
    CancelForm,
    EnrolForm,
    FamilyBindForm,
    PlanForm,
    RenewForm,
    RevealForm,
    TierChangeForm,
    TierForm,
    UnbindForm,
    to_fen,
)
from smileloop.membership.models import Benefit, MembershipPlan, Tier

CARD_TEMPLATE = "membership/_member_card.html"
# The card's action forms (each a template partial `<name>-form`), with the title of their no-JavaScript page.
CARD_FORMS = {"enrol": gettext_lazy("Enrol"), "renew": gettext_lazy("Renew"), "tier": gettext_lazy("Change tier"),
              "bind": gettext_lazy("Bind a family member"), "cancel": gettext_lazy("Cancel membership")}


def _url(name: str, *args) -> str | None:
    """None while the membership URLs are not mounted (the card then shows read-only)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


# --- the member card -----------------------------------------------------------------------------------


class MemberCard:
    """Lazy read model of the 360 page's member card: queried only when the template renders it."""

    def __init__(self, scope: Scope, customer: Customer, *, error: str = "", **forms):
        self.scope, self.customer, self.forms = scope, customer, forms
        # The bound forms a refused POST passed in: rendered open, in place; the others load when opened.
        self.open = {name: True for name in forms}
        self.error = error  # a refused action without a form of its own (a reveal), shown on top of the card

    def __bool__(self) -> bool:
        return True

    @cached_property
    def shown_forms(self) -> set[str]:
        """The action forms the card offers now: enrol to a non-member; renew (not for a lifetime card), tier (when
        the plan has another tier to move to), bind (when the tier has family slots) and cancel to a member. The
        template draws exactly these, and `message` speaks for any other."""
        m = self.membership
        if m is None:
            return {"enrol"}
        other_tier = Tier.objects.filter(plan_id=m.plan_id).exclude(pk=m.tier_id).exists()
        return ({"cancel"} | ({"bind"} if m.tier.family_slots > 0 else set()) | ({"renew"} if m.expires_at else set())
                | ({"tier"} if other_tier else set()))

    @cached_property
    def message(self) -> str:
        """The refusal shown on top of the card: a refused action without a form of its own (a reveal), or one whose
        form the card does not offer (an enrol posted for a member, a renewal of a lifetime card), so that no refusal
        is silent."""
        if self.error:
            return self.error
        parts = []
        for name, form in self.forms.items():
            if name in self.shown_forms or not form.errors:
                continue
            for field, errs in form.errors.items():
                label = (form.fields[field].label or field) if field in form.fields else ""
                parts += [f"{label}: {e}" if label else str(e) for e in errs]
        return " ".join(parts)

    @cached_property
    def current(self):
        # The card is built for a customer obtained through customer_get(scope, …) (the 360 page, the card
        # actions): the scope was checked there.
        return selectors.membership_current_in_scope(self.scope, self.customer)

    @property
    def membership(self):
        return self.current.own

    @cached_property
    def benefits(self):
        return selectors.benefits_for(self.customer, include_unrevealed=True, own=self.membership)

    @cached_property
    def family(self):
        return list(selectors.family_bindings_of(self.membership)) if self.membership else []

    @cached_property
    def events(self):
        return selectors.membership_events(self.customer)

    @cached_property
    def reveals(self):
        return list(selectors.revealed_benefits_history(self.customer))

    @property
    def can_edit(self) -> bool:
        # An erased (PIPL) record is offered no action, as on the rest of the 360 page: nobody enrols, renews or
        # binds an anonymous record.
        return self.scope.can(Perm.CUSTOMER_EDIT) and self.customer.erased_at is None

    @cached_property
    def urls(self) -> dict:
        cid = self.customer.id
        names = ["enrol", "renew", "tier", "cancel", "evaluate", "bind"]
        urls = {name: _url(f"membership:{name}", cid) for name in names}
        urls["detail"] = _url("customers:detail", cid)
        return urls

    @cached_property
    def form_urls(self) -> dict:
        return {name: _url("membership:form", self.customer.id, name) for name in CARD_FORMS}

    def form(self, name: str, factory):
        if name not in self.forms:
            self.forms[name] = factory()
        return self.forms[name]

    @property
    def enrol_form(self):
        return self.form("enrol", lambda: EnrolForm(self.scope))

    @property
    def renew_form(self):
        return self.form("renew", RenewForm)

    @property
    def tier_form(self):
        return self.form("tier", lambda: TierChangeForm(membership=self.membership))

    @property
    def cancel_form(self):
        return self.form("cancel", CancelForm)

    @property
    def bind_form(self):
        return self.form("bind", lambda: FamilyBindForm(self.scope, holder=self.customer))

    @cached_property
    def benefit_rows(self):
        rows = []
        for view in self.benefits:
            url = _url("membership:reveal", self.customer.id, view.benefit.id) if view.hidden and not view.reveal else None
            rows.append({"view": view, "reveal_url": url})
        return rows

    @cached_property
    def family_rows(self):
        rows = []
        for b in self.family:
            person = selectors.person_in_scope(self.scope, b.member)  # a relative of another clinic: masked, no link
            rows.append({"binding": b, "person": person,
                         "unbind_url": _url("membership:unbind", self.customer.id, b.member_id) if person.id else None})
        return rows


def member_card_load(scope: Scope, customer: Customer) -> MemberCard:
    """The 360 section loader (registered as `membership` in MembershipConfig.ready)."""
    return MemberCard(scope, customer)


# Opening one of the card's action forms (they load when opened).
card_form = card_form_view(forms=CARD_FORMS, template=CARD_TEMPLATE, anchor="membership", card=MemberCard)


def _card(request, scope: Scope, customer: Customer, *, status: int = 200, **forms) -> HttpResponse:
    if not request.htmx and status == 200:
        return redirect(reverse("customers:detail", args=[customer.id]) + "#membership")
    context = {"customer": customer, "card": MemberCard(scope, customer, **forms)}
    return render(request, CARD_TEMPLATE, context, status=status)


def _card_action(request, scope, customer_id, *, form_name, form, run):
    """Validate `form`, call `run(cleaned_data)`, and answer with the card (422 with errors on refusal)."""
    customer = customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    if form.is_valid():
        try:
            run(customer, form.cleaned_data)
        except errors.DomainError as exc:
            if isinstance(exc, (errors.NotFound, errors.PermissionDenied)):
                raise
            form.add_domain_error(exc)
        else:
            return _card(request, scope, customer)
    return _card(request, scope, customer, status=422, **{form_name: form})


def _own(customer: Customer):
    membership = selectors.own_membership_in_force(customer)
    if membership is None:
        raise errors.Conflict(_("This customer has no active membership."), code="not_a_member")
    return membership


@staff_view
@require_POST
def enrol(request, scope: Scope, customer_id: int):
    def run(customer, data):
        with transaction.atomic():
            services.membership_enrol(customer=customer, plan=data["plan"], tier=data.get("tier"),
                                      fee_fen=to_fen(data.get("fee_yuan")), actor=request.user.staff)
            services.benefit_actions_run(reveals=services.benefits_reveal_due(customer=customer),
                                         actor=request.user.staff)

    return _card_action(request, scope, customer_id, form_name="enrol", form=EnrolForm(scope, request.POST), run=run)


@staff_view
@require_POST
def renew(request, scope: Scope, customer_id: int):
    def run(customer, data):
        membership = selectors.own_membership(customer) or selectors.latest_membership(customer)
        if membership is None:
            raise errors.Conflict(_("This customer has no membership to renew."), code="not_a_member")
        services.membership_renew(membership=membership, fee_fen=to_fen(data.get("fee_yuan")),
                                  actor=request.user.staff, key=f"web:{data['key']}")

    return _card_action(request, scope, customer_id, form_name="renew", form=RenewForm(request.POST), run=run)


@staff_view
@require_POST
def tier_change(request, scope: Scope, customer_id: int):
    customer = customer_get(scope, customer_id)
    membership = selectors.own_membership_in_force(customer)

    def run(customer, data):
        own = _own(customer)
        change = services.membership_upgrade if data["tier"].rank > own.tier.rank else services.membership_downgrade
        change(membership=own, tier=data["tier"], reason=data.get("reason") or "", actor=request.user.staff)

    return _card_action(request, scope, customer_id, form_name="tier",
                        form=TierChangeForm(request.POST, membership=membership), run=run)


@staff_view
@require_POST
def cancel(request, scope: Scope, customer_id: int):
    def run(customer, data):
        services.membership_cancel(membership=_own(customer), reason=data["reason"], actor=request.user.staff)

    return _card_action(request, scope, customer_id, form_name="cancel", form=CancelForm(request.POST), run=run)


@staff_view
@require_POST
def evaluate(request, scope: Scope, customer_id: int):
    customer = customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    with transaction.atomic():
        services.membership_evaluate(customer=customer, actor=request.user.staff)
        services.benefit_actions_run(reveals=services.benefits_reveal_due(customer=customer), actor=request.user.staff)
    return _card(request, scope, customer)


@staff_view
@require_POST
def family_bind(request, scope: Scope, customer_id: int):
    customer = customer_get(scope, customer_id)

    def run(customer, data):
        services.family_bind(holder=customer, member=data["member"], relation=data["relation"],
                             consent_source=data.get("consent_source") or "",
                             consent_evidence=data.get("consent_evidence") or "", actor=request.user.staff)

    return _card_action(request, scope, customer_id, form_name="bind",
                        form=FamilyBindForm(scope, request.POST, holder=customer), run=run)


@staff_view
@require_POST
def family_unbind(request, scope: Scope, customer_id: int, member_id: int):
    customer = customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    binding = selectors.family_binding_get(scope, holder=customer, member_id=member_id)
    form = UnbindForm(request.POST)
    if not form.is_valid():  # a reason too long or with a NUL: refused with the card, not dropped for the default one
        error = _("This family member cannot be unbound: %(reason)s") % {"reason": " ".join(form.errors["reason"])}
        return render(request, CARD_TEMPLATE, {"customer": customer, "card": MemberCard(scope, customer, error=error)},
                      status=422)
    services.family_unbind(binding=binding, reason=form.cleaned_data.get("reason") or "", actor=request.user.staff)
    return _card(request, scope, customer)


@staff_view
@require_POST
def benefit_reveal(request, scope: Scope, customer_id: int, benefit_id: int):
    customer = customer_get(scope, customer_id)
    _require(scope, Perm.CUSTOMER_EDIT)
    benefit = selectors.benefit_get(scope, benefit_id)
    form = RevealForm(request.POST)
    if not form.is_valid():  # a note too long or with a NUL: refused, not dropped for the default one
        error = _("This benefit cannot be revealed: %(reason)s") % {"reason": " ".join(form.errors["detail"])}
        return render(request, CARD_TEMPLATE, {"customer": customer, "card": MemberCard(scope, customer, error=error)},
                      status=422)
    try:
        with transaction.atomic():
            reveal = services.benefit_reveal(membership=_own(customer), benefit=benefit, trigger="staff_decision",
                                             detail=form.cleaned_data.get("detail") or "", actor=request.user.staff)
            services.benefit_actions_run(reveals=[reveal], actor=request.user.staff)
    except errors.DomainError as exc:
        if isinstance(exc, (errors.NotFound, errors.PermissionDenied)):
            raise
        # The card again, with the reason on top: a bare sentence would replace the whole card (htmx swaps a 422).
        reason = ERROR_MESSAGES.get(exc.code) or message_display(exc.message)
        error = _("This benefit cannot be revealed: %(reason)s") % {"reason": reason}
        return render(request, CARD_TEMPLATE, {"customer": customer, "card": MemberCard(scope, customer, error=error)},
                      status=422)
    return _card(request, scope, customer)


# --- configuration -------------------------------------------------------------------------------------


@staff_view
@require_GET
def plan_list(request, scope: Scope):
    _require(scope, Perm.CONFIG)
    return render(request, "membership/plan_list.html", {"plans": selectors.plan_list(scope)})


def _config_form(request, scope: Scope, *, form, save, title: str, back: str, success_url):
    if request.method == "POST" and form.is_valid():
        try:
            obj = save(form.service_data())
        except errors.ValidationFailed as exc:
            form.add_domain_error(exc)
        else:
            messages.success(request, _("Saved."))
            return redirect(success_url(obj))
    return render(request, "membership/config_form.html", {"form": form, "title": title, "back": back},
                  status=422 if request.method == "POST" else 200)


@staff_view
@require_http_methods(["GET", "POST"])
def plan_create(request, scope: Scope):
    _require(scope, Perm.CONFIG)
    from smileloop.clinics.models import Chain

    chain = Chain.objects.get(pk=scope.chain_id)
    return _config_form(request, scope, form=PlanForm(request.POST or None), title=_("New membership plan"),
                        back=reverse("membership:plans"),
                        save=lambda data: services.plan_save(chain=chain, data=data),
                        success_url=lambda plan: reverse("membership:plan_edit", args=[plan.id]))


@staff_view
@require_http_methods(["GET", "POST"])
def plan_edit(request, scope: Scope, plan_id: int):
    _require(scope, Perm.CONFIG)
    plan = selectors.plan_get(scope, plan_id)
    chain = plan.chain
    response = _config_form(request, scope, form=PlanForm(request.POST or None, instance=MembershipPlan.objects.get(pk=plan.pk)),
                            title=plan.name, back=reverse("membership:plans"),
                            save=lambda data: services.plan_save(chain=chain, plan=plan, data=data),
                            success_url=lambda p: reverse("membership:plan_edit", args=[p.id]))
    if request.method == "GET":
        tiers = plan.tiers.order_by("rank").prefetch_related("benefits")
        response = render(request, "membership/plan_detail.html",
                          {"plan": plan, "tiers": tiers, "form": PlanForm(instance=plan)})
    return response


@staff_view
@require_http_methods(["GET", "POST"])
def tier_create(request, scope: Scope, plan_id: int):
    _require(scope, Perm.CONFIG)
    plan = selectors.plan_get(scope, plan_id)
    back = reverse("membership:plan_edit", args=[plan.id])
    return _config_form(request, scope, form=TierForm(request.POST or None, instance=Tier(plan=plan)),
                        title=_("New tier of %(plan)s") % {"plan": plan.name}, back=back,
                        save=lambda data: services.tier_save(plan=plan, data=data), success_url=lambda t: back)


@staff_view
@require_http_methods(["GET", "POST"])
def tier_edit(request, scope: Scope, tier_id: int):
    _require(scope, Perm.CONFIG)
    tier = selectors.tier_get(scope, tier_id)
    back = reverse("membership:plan_edit", args=[tier.plan_id])
    return _config_form(request, scope, form=TierForm(request.POST or None, instance=Tier.objects.get(pk=tier.pk)),
                        title=str(tier), back=back,
                        save=lambda data: services.tier_save(plan=tier.plan, tier=tier, data=data),
                        success_url=lambda t: back)


@staff_view
@require_http_methods(["GET", "POST"])
def benefit_create(request, scope: Scope, tier_id: int):
    _require(scope, Perm.CONFIG)
    tier = selectors.tier_get(scope, tier_id)
    back = reverse("membership:plan_edit", args=[tier.plan_id])
    return _config_form(request, scope, form=BenefitForm(request.POST or None, instance=Benefit(tier=tier)),
                        title=_("New benefit of %(tier)s") % {"tier": tier}, back=back,
                        save=lambda data: services.benefit_save(tier=tier, data=data), success_url=lambda b: back)


@staff_view
@require_http_methods(["GET", "POST"])
def benefit_edit(request, scope: Scope, benefit_id: int):
    _require(scope, Perm.CONFIG)
    benefit = selectors.benefit_get(scope, benefit_id)
    back = reverse("membership:plan_edit", args=[benefit.tier.plan_id])
    return _config_form(request, scope,
                        form=BenefitForm(request.POST or None, instance=Benefit.objects.get(pk=benefit.pk)),
                        title=benefit.name, back=back,
                        save=lambda data: services.benefit_save(tier=benefit.tier, benefit=benefit, data=data),
                        success_url=lambda b: back)
