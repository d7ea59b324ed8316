"""The timeline entries an import writes, stored in English and shown in the reader's language
(customers.timeline)."""

from django.utils.translation import gettext_noop

IMPORTED = gettext_noop("imported from %(file)s")
IMPORT_FILLED = gettext_noop("import from %(file)s filled: %(fields)s")


def timeline_templates_install() -> None:
    from smileloop.customers.timeline import fields_label, timeline_templates_register

    timeline_templates_register(IMPORTED, IMPORT_FILLED, labels={"fields": fields_label})
