"""The audit log and idempotency records are evidence: visible in the admin, never edited there."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import router

from smileloop.core.admin_scope import RECORD, ChainScoped
from smileloop.core.models import AuditEvent, IdempotencyRecord


class ReadOnlyAdmin(ChainScoped, admin.ModelAdmin):
    """Records the services write (evidence, history, watermarks): shown in the admin, never added, edited or deleted
    there. Every app's admin of such a model uses this. Hidden from a chain admin (core.admin_scope) unless the
    admin grants RECORD: the staff pages show a chain's records in their scope, masked and audited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class FixedOnChange:
    """ModelAdmin mixin: what a saved row belongs to (`fixed_on_change`: its chain, unless a subclass names its plan or
    tier) is read-only on its change page, as the records that refer to the row (patients, orders, memberships,
    ledger entries) stay where they are."""

    fixed_on_change: tuple[str, ...] = ("chain",)

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), *(self.fixed_on_change if obj is not None else ()))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            return form
        return type(form.__name__, (_FixedUniqueForm, form), {"fixed_on_change": tuple(self.fixed_on_change)})


class _FixedUniqueForm:
    """A change form whose read-only `fixed_on_change` fields are still part of the unique constraints that name
    them. Django leaves a field the form does not edit out of its model checks, so a constraint on (chain, code)
    went unchecked and a code another row of the chain has was an IntegrityError (a 500) instead of a form error.
    The error goes on the constraint's one edited field, else on top of the form."""

    fixed_on_change: tuple[str, ...] = ()

    def validate_unique(self):
        super().validate_unique()
        fixed = set(self.fixed_on_change)
        exclude = self._get_validation_exclusions() - fixed
        using = router.db_for_write(type(self.instance), instance=self.instance)
        for model, constraints in self.instance.get_constraints():
            for constraint in constraints:
                fields = set(getattr(constraint, "fields", ()) or ())
                if not fields & fixed:
                    continue  # checked by Django already
                try:
                    constraint.validate(model, self.instance, exclude=exclude, using=using)
                except ValidationError as error:
                    edited = [name for name in fields - fixed if name in self.fields]
                    self.add_error(edited[0] if len(edited) == 1 else None, error)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    chain_admin_actions = RECORD
    chain_path = "actor__staff__chain"
    list_display = ("created_at", "actor", "action", "object_type", "object_id", "reason", "ip_address")
    list_filter = ("action", "object_type")
    search_fields = ("object_id", "reason", "actor__username")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "operation", "key", "status_code")
    list_filter = ("operation", "status_code")
    search_fields = ("key",)
    list_select_related = ("user",)
    exclude = ("response",)
