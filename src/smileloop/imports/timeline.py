"""The timeline entries an import writes, stored in English and shown in the reader's language
(customers.timeline)."""

from django.utils.translation import gettext_noop

IMPORTED = gettext_noop("imported from %(file)s")
IMPORT_FILLED = gettext_noop("import from %(file)s filled: %(fields)s")
# A row for a person an earlier chunk of the file matched, merged into this record while the import ran
IMPORT_INTO_SURVIVOR = gettext_noop("row %(row)s of %(file)s was for #%(merged)s, merged into this record during the "
                                    "import: imported here")


def timeline_templates_install() -> None:
    from smileloop.customers.timeline import fields_label, timeline_templates_register

    timeline_templates_register(IMPORTED, IMPORT_FILLED, IMPORT_INTO_SURVIVOR, labels={"fields": fields_label})
