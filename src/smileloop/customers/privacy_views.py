"""The 360 page's Privacy card: the person's data copy and the erasure of their personal information (PIPL art. 45,
47), both for staff with customer.privacy, both for a patient in the reader's scope only (else a 404)."""

from django.contrib import messages
from django.http import HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from smileloop.clinics.enums import Perm
from smileloop.clinics.web import client_ip, htmx_redirect, require_permission, staff_view
from smileloop.core import errors
from smileloop.core.money import fen_to_yuan
from smileloop.core.scoping import Scope
from smileloop.customers import selectors
from smileloop.customers.data_copy import customer_data_export
from smileloop.customers.forms import DataCopyForm, EraseForm
from smileloop.customers.privacy import ObligationsOwed, customer_erase
from smileloop.customers.views import _render_360

# What an obligation (customers.privacy.Obligation.code, from the apps that register checks) is called on the page.
OBLIGATION_LABELS = {"wallet": gettext_lazy("stored value"), "gift_card": gettext_lazy("gift card balance"),
                     "package": gettext_lazy("refund of a service package in force (cancel it first)")}


@staff_view
@require_POST
def data_copy(request, scope: Scope, customer_id: int):
    """Download the person's copy (XLSX); a reason is required and the export is audited."""
    customer = selectors.customer_get(scope, customer_id)
    require_permission(scope, Perm.CUSTOMER_PRIVACY)
    form = DataCopyForm(request.POST)
    if form.is_valid():
        try:
            name, content = customer_data_export(scope=scope, customer=customer, reason=form.cleaned_data["reason"],
                                                 ip_address=client_ip(request))
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        else:
            response = HttpResponse(
                content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
    return _render_360(request, scope, customer, fragment="privacy", status=422, copy_form=form)


@staff_view
@require_POST
def erase(request, scope: Scope, customer_id: int):
    """Erase the person's personal information, after the reason and the typed confirmation."""
    customer = selectors.customer_get(scope, customer_id)
    require_permission(scope, Perm.CUSTOMER_PRIVACY)
    if customer.erased_at is not None:
        # The form sent again (Back, another tab) or a colleague erased them meanwhile: the erasure is done, and its
        # confirmation (the name or phone tail, blanked now) could only be refused, on a card that no longer shows
        # the form (a 422 without a word).
        messages.info(request, _("This patient's personal information was already erased; nothing more was changed."))
        return htmx_redirect(request, reverse("customers:detail", args=[customer.id]))
    form = EraseForm(request.POST, customer=customer)
    if form.is_valid():
        try:
            customer_erase(scope=scope, customer=customer, actor=request.user.staff,
                           reason=form.cleaned_data["reason"], forfeit=form.cleaned_data["forfeit"],
                           ip_address=client_ip(request))
        except errors.ValidationFailed as exc:
            form.add_domain_errors(exc)
        except ObligationsOwed as exc:
            owed = "; ".join(f"{OBLIGATION_LABELS.get(o.code, o.code)} ¥{fen_to_yuan(o.amount_fen)}"
                             for o in exc.obligations)
            form.add_error("forfeit", _("The clinic still owes this patient: %(owed)s. Refund it first, or tick the "
                                        "box if the patient gives it up.") % {"owed": owed})
        else:
            messages.success(request, _("The patient's personal information was erased."))
            return htmx_redirect(request, reverse("customers:detail", args=[customer.id]))
    return _render_360(request, scope, customer, fragment="privacy", status=422, erase_form=form)
