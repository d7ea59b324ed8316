"""The service catalogue is configuration and is edited here; appointments, orders, plans and procedures
arrive from the PMS/POS through the API and are read-only in the admin (and hidden from a chain admin, who sees
them on the staff pages: patients' records, not configuration)."""

from django import forms
from django.contrib import admin
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from smileloop.core.admin import FixedOnChange
from smileloop.core.admin_scope import CONFIGURATION, ChainScoped
from smileloop.core.bounds import MAX_FEN
from smileloop.core.money import fen_to_yuan
from smileloop.visits.models import (
    Appointment,
    Order,
    OrderLine,
    Payment,
    PlanStep,
    Procedure,
    Refund,
    ServiceItem,
    TreatmentPlan,
)


class _ReadOnly:
    def get_readonly_fields(self, request, obj=None):
        return self.fields or [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceItemForm(forms.ModelForm):
    """The price is whole fen from 0 to MAX_FEN, refused on its field (the database's check would only name its
    constraint, and the upper bound keeps line totals within a bigint)."""

    list_price_fen = forms.IntegerField(label=_("list price (fen)"),
                                        validators=[MinValueValidator(0), MaxValueValidator(MAX_FEN)])

    class Meta:
        model = ServiceItem
        fields = "__all__"  # noqa: DJ007 - the admin chooses what is shown


@admin.register(ServiceItem)
class ServiceItemAdmin(FixedOnChange, ChainScoped, admin.ModelAdmin):
    chain_admin_actions = CONFIGURATION
    form = ServiceItemForm
    list_display = ("code", "name", "category", "list_price", "is_special_price", "is_surgical", "is_active", "chain")
    list_filter = ("chain", "category", "is_special_price", "is_surgical", "is_active")
    search_fields = ("code", "name")
    list_select_related = ("chain",)

    @admin.display(description=_("list price (yuan)"), ordering="list_price_fen")
    def list_price(self, obj):
        return fen_to_yuan(obj.list_price_fen)

    def has_delete_permission(self, request, obj=None):
        return False  # orders and plans refer to items; deactivate instead


@admin.register(Appointment)
class AppointmentAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("start_at", "clinic", "customer", "doctor", "status")
    list_filter = ("status", "clinic")
    list_select_related = ("clinic", "customer", "doctor")
    date_hierarchy = "start_at"
    show_full_result_count = False


class OrderLineInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = OrderLine
    fields = ("item", "quantity", "unit_price_fen", "discount_fen", "amount_fen", "refunded_fen", "tooth")
    extra = 0


class PaymentInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = Payment
    fields = ("method", "amount_fen", "paid_at")
    extra = 0


class RefundInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = Refund
    fields = ("amount_fen", "method", "reason", "refunded_at", "actor")
    extra = 0


@admin.register(Order)
class OrderAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("ordered_at", "clinic", "customer", "amount", "status", "external_id")
    list_filter = ("status", "clinic")
    search_fields = ("=external_id",)
    list_select_related = ("clinic", "customer")
    date_hierarchy = "ordered_at"
    inlines = (OrderLineInline, PaymentInline, RefundInline)
    show_full_result_count = False

    @admin.display(description=_("amount (yuan)"), ordering="amount_fen")
    def amount(self, obj):
        return fen_to_yuan(obj.amount_fen)


class PlanStepInline(_ReadOnly, ChainScoped, admin.TabularInline):
    model = PlanStep
    fields = ("seq", "item", "tooth", "status", "done_at")
    extra = 0


@admin.register(TreatmentPlan)
class TreatmentPlanAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("planned_at", "title", "clinic", "customer", "status", "steps_done", "steps_total")
    list_filter = ("status", "clinic")
    list_select_related = ("clinic", "customer")
    inlines = (PlanStepInline,)
    show_full_result_count = False


@admin.register(Procedure)
class ProcedureAdmin(_ReadOnly, ChainScoped, admin.ModelAdmin):
    list_display = ("performed_on", "item", "tooth", "clinic", "customer", "doctor")
    list_filter = ("clinic", "item__category")
    list_select_related = ("item", "clinic", "customer", "doctor")
    date_hierarchy = "performed_on"
    show_full_result_count = False
