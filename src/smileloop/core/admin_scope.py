"""The Django admin, scoped to a chain.

A superuser (the operator) sees and edits every chain's rows under the ModelAdmins' own rules. Anyone else reaches
the admin only as the administrator of one chain: `admin_chain_id` asks the function the clinics app registers
(`admin_chain_resolver_register`) which chain the login may administer, and None means no admin at all (Django's
hand-given model permissions are not consulted: they know nothing of chains).

Every ModelAdmin and inline uses `ChainScoped`, which for such a chain administrator
- grants exactly `chain_admin_actions` (configuration: view/add/change/delete, still subject to the admin's own
  refusals such as "switch off, don't delete"; records of what happened: view, or nothing);
- filters the rows to the chain (`chain_path`: "chain", or through a parent, e.g. "plan__chain"), so another chain's
  object by URL is a 404, like a missing one;
- limits foreign-key and many-to-many choices to the chain, and list filters to the values of the chain's rows; a
  raw-id box names only a row of the chain beside it (Django's names whatever row the typed id is);
- fixes the `chain` of a new row to theirs: the field is not offered, and a posted value is ignored.
"""

from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.http import Http404

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
CONFIGURATION = frozenset({VIEW, ADD, CHANGE, DELETE})
RECORD = frozenset({VIEW})  # evidence a chain administrator may read
HIDDEN = frozenset()

_chain_resolver: Callable[[object], int | None] | None = None
_UNSET = object()


def admin_chain_resolver_register(resolver: Callable[[object], int | None]) -> None:
    """`resolver(user)` answers the chain the (non-superuser, active) login may administer, or None."""
    global _chain_resolver
    _chain_resolver = resolver


def admin_chain_id(request) -> int | None:
    """The chain a non-superuser administers in this request, or None (no admin access). Cached on the request."""
    cached = getattr(request, "_admin_chain_id", _UNSET)
    if cached is not _UNSET:
        return cached
    user = request.user
    chain_id = None
    if user.is_authenticated and user.is_active and user.is_staff and _chain_resolver is not None:
        chain_id = _chain_resolver(user)
    request._admin_chain_id = chain_id
    return chain_id


def chain_path_of(model, admin_site=admin.site) -> str | None:
    """How rows of `model` reach their chain: the registered ChainScoped admin's `chain_path`, else its own `chain`
    field, else None (not reachable: a chain administrator gets no choice of it)."""
    model_admin = admin_site._registry.get(model)
    if isinstance(model_admin, ChainScoped):
        return model_admin.resolved_chain_path()
    try:
        model._meta.get_field("chain")
    except FieldDoesNotExist:
        return None
    return "chain"


class _FixedChainField(forms.ModelChoiceField):
    """A new row's chain: always the administrator's, whatever is posted (hidden, not offered)."""

    def __init__(self, *, queryset, chain_id: int):
        super().__init__(queryset=queryset, widget=forms.HiddenInput, required=True, initial=chain_id)
        self.chain_id = chain_id

    def clean(self, value):
        return super().clean(self.chain_id)


class _ChainRawIdWidget(ForeignKeyRawIdWidget):
    """A raw-id box that names its row (and links to it) only when the row is one of `queryset`, the field's choices
    cut to the chain: Django's looks up any id, so a form sent back with another chain's id typed in named that
    chain's row."""

    def __init__(self, rel, admin_site, *, queryset, attrs=None, using=None):
        super().__init__(rel, admin_site, attrs=attrs, using=using)
        self.queryset = queryset

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            known = self.queryset.filter(**{key: value}).exists()
        except (ValueError, TypeError, ValidationError):
            known = False
        return super().label_and_url_for_value(value) if known else ("", "")


class ChainScoped:
    """ModelAdmin / InlineModelAdmin mixin; list it before the admin's base class (and after mixins that refuse
    more, such as a read-only one)."""

    chain_admin_actions: frozenset[str] = HIDDEN
    chain_path: str | None = None  # None: the model's own "chain" field

    def resolved_chain_path(self) -> str | None:
        if self.chain_path is not None:
            return self.chain_path
        try:
            self.model._meta.get_field("chain")
        except FieldDoesNotExist:
            return None
        return "chain"

    # -- who may do what ------------------------------------------------------------------------------------------
    def _chain_admin_may(self, request, action: str) -> bool:
        return admin_chain_id(request) is not None and action in self.chain_admin_actions \
            and self.resolved_chain_path() is not None

    def has_module_permission(self, request):
        if request.user.is_superuser:
            return super().has_module_permission(request)
        return self._chain_admin_may(request, VIEW)

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_view_permission(request, obj)
        return self._chain_admin_may(request, VIEW)

    def has_add_permission(self, request, *args):
        if request.user.is_superuser:
            return super().has_add_permission(request, *args)
        return self._chain_admin_may(request, ADD)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_change_permission(request, obj)
        return self._chain_admin_may(request, CHANGE)

    def has_delete_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_delete_permission(request, obj)
        return self._chain_admin_may(request, DELETE)

    # -- which rows -----------------------------------------------------------------------------------------------
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        chain_id, path = admin_chain_id(request), self.resolved_chain_path()
        if chain_id is None or path is None or not self.chain_admin_actions:
            return queryset.none()
        return queryset.filter(**{path: chain_id})

    def get_object(self, request, object_id, from_field=None):
        """Another chain's row is a 404 for a chain administrator, as a missing one is (Django's admin would
        redirect to its index with "doesn't exist")."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None and not request.user.is_superuser:
            raise Http404
        return obj

    # -- which choices --------------------------------------------------------------------------------------------
    def get_field_queryset(self, db, db_field, request):
        queryset = super().get_field_queryset(db, db_field, request)
        if request.user.is_superuser:
            return queryset
        related = db_field.remote_field.model
        if queryset is None:
            queryset = related._default_manager.using(db).all()
        chain_id, path = admin_chain_id(request), chain_path_of(related, self.admin_site)
        if chain_id is None or path is None:
            return queryset.none()
        return queryset.filter(**{path: chain_id})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and not request.user.is_superuser and type(field.widget) is ForeignKeyRawIdWidget:
            field.widget = _ChainRawIdWidget(db_field.remote_field, self.admin_site, queryset=field.queryset,
                                             attrs=field.widget.attrs, using=kwargs.get("using"))
        return field

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if not request.user.is_superuser and db_field.name == "chain" and self.resolved_chain_path() == "chain" \
                and admin_chain_id(request) is not None:
            return _FixedChainField(queryset=db_field.remote_field.model._default_manager.all(),
                                    chain_id=admin_chain_id(request))
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        if request.user.is_superuser:
            return shown
        return [name for name in shown if name != "chain"]

    def get_list_filter(self, request):
        """No chain filter, and a relation's filter offers only what the chain's rows refer to (a plain related
        filter lists every chain's clinics, plans, groups by name)."""
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        scoped = []
        for spec in filters:
            if isinstance(spec, str):
                if spec == "chain":
                    continue
                if get_fields_from_path(self.model, spec)[-1].is_relation:
                    scoped.append((spec, admin.RelatedOnlyFieldListFilter))
                    continue
            scoped.append(spec)
        return scoped
