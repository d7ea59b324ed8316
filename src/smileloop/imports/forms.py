from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from smileloop.clinics.selectors import clinic_list
from smileloop.core.scoping import Scope
from smileloop.imports.enums import ImportKind
from smileloop.imports.services.reading import SUPPORTED_EXTENSIONS


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file contains"), choices=ImportKind.choices,
                             initial=ImportKind.CUSTOMERS)
    file = forms.FileField(label=_("File (.xlsx or .csv)"))
    default_clinic = forms.ModelChoiceField(label=_("Clinic for customers whose row names none"), queryset=None,
                                            required=False, empty_label=_("— none —"))

    def __init__(self, *args, scope: Scope, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_clinic"].queryset = clinic_list(scope)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(SUPPORTED_EXTENSIONS):
            raise forms.ValidationError(_("Upload an .xlsx or .csv file"))
        limit = settings.SMILELOOP_IMPORT_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                _("The file is %(size)s; files up to %(limit)s are accepted: split it into several files")
                % {"size": filesizeformat(upload.size), "limit": filesizeformat(limit)})
        return upload


class ConfirmForm(forms.Form):
    skip_invalid = forms.BooleanField(label=_("Skip the invalid rows and import the others"), required=False)
