"""The 360 page's cards contributed by higher apps (membership, loyalty): the view that answers opening one of a
card's action forms (they load when opened: core.subforms, templates/includes/subform.html)."""

from django.http import Http404
from django.urls import reverse
from django.views.decorators.http import require_GET

from smileloop.clinics.enums import Perm
from smileloop.clinics.web import require_permission, staff_view
from smileloop.core.scoping import Scope
from smileloop.core.subforms import subform_response
from smileloop.customers.selectors import customer_get


def card_form_view(*, forms: dict, template: str, anchor: str, card):
    """A view `(request, customer_id, name)` for a card's forms: `forms` maps each form's name to its title (the
    page title without JavaScript), `card(scope, customer)` builds the card whose template partial `<name>-form`
    renders the form, `anchor` is the card's id on the 360 page. Scoped (404 outside the staff member's clinics)
    and for staff who may edit customers."""

    @staff_view
    @require_GET
    def view(request, scope: Scope, customer_id: int, name: str):
        if name not in forms:
            raise Http404(name)
        customer = customer_get(scope, customer_id)
        require_permission(scope, Perm.CUSTOMER_EDIT)
        return subform_response(request, partial=f"{template}#{name}-form",
                                context={"customer": customer, "card": card(scope, customer)},
                                title=str(forms[name]),
                                back=reverse("customers:detail", args=[customer.id]) + f"#{anchor}")

    return view
