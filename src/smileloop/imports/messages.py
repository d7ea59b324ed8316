"""Import error messages in the reader's language.

Parsing, matching and scope checks record English messages: they are also the JSON report's (`--report`) and the
API's, which stay English, and a stored report is read later in whichever language its reader uses (a check run for
a Chinese-speaking uploader is shown in English to an English-speaking colleague, and the reverse). The staff page
translates them when it shows them (`message_display`): fixed messages through the catalogue (listed here so
`makemessages` finds them), messages that carry a number, a name or a list through the patterns below."""

import re

from django.utils.translation import gettext, gettext_noop, pgettext

from smileloop.core.messages import message_display as core_message_display
from smileloop.customers.enums import Channel

FIXED = [
    gettext_noop("is required"),
    gettext_noop("is required (phone or PMS id)"),
    gettext_noop("is not a clinic of this chain"),
    gettext_noop("is not a staff member of this chain"),
    gettext_noop("is not yes/no (use 是/否, Y/N or 1/0)"),
    gettext_noop("must be a whole number ≥ 1"),
    gettext_noop("is not a payment method (现金/微信/支付宝/银行卡/医保/储值 or cash/wechat_pay/…)"),
    gettext_noop("is not a real calendar date"),
    gettext_noop("phone is empty"),
    gettext_noop("is not a phone number"),
    gettext_noop("is not a valid phone number"),
    gettext_noop("is a service number (400, 800, premium rate), not a person's"),
    gettext_noop("date is empty"),
    gettext_noop("is not a date (use 1990-01-05, 1990/1/5, 1990年1月5日 or 19900105)"),
    gettext_noop("is not a valid Excel date number"),
    gettext_noop("is in the future"),
    gettext_noop("is before 1900"),
    gettext_noop("is before 1980-01-01"),
    gettext_noop("is an age, not a date of birth"),
    gettext_noop("is a year, not a date of birth: write the whole date (1990-01-05)"),
    gettext_noop("is not a gender (use 男/女, M/F or male/female)"),
    gettext_noop("channel is empty"),
    gettext_noop("is not in the service catalogue"),
    gettext_noop("must not be negative"),
    gettext_noop("must be a number of yuan"),
    gettext_noop("would take the customer's lifetime spend past the most it can hold"),
    gettext_noop("must be a finite number"),
    gettext_noop("has more than 2 decimal places"),
    gettext_noop("is in scientific notation, so its last digits are lost; in Excel format the column as text or a "
                 "number without decimals and save the file again"),
    gettext_noop("is a formula: the import reads a formula as its text, not its result; copy the column and paste it "
                 "back as values"),
    gettext_noop("is not a date and time (use 2024-03-01 14:30, 2024/3/1 2:30 PM or 2024-03-01T06:30:00Z)"),
    gettext_noop("is not one of your clinics"),
    gettext_noop("does not work at one of your clinics"),
    gettext_noop("belongs to a customer outside your clinics; a colleague who sees every clinic can import this row"),
    gettext_noop("is required: you see only your clinics' patients, so name one of them"),
    gettext_noop("order number appears again after other orders; keep the rows of one order together"),
    gettext_noop("is required (the customer has no home clinic)"),
    gettext_noop("holds the numbers of different customers; keep one number per row"),
    gettext_noop("is the number of a customer with another name (a shared line?): give the patient's own phone or PMS "
                 "id"),
    gettext_noop("no customer with this phone"),
    gettext_noop("no customer with this PMS id"),
    gettext_noop("belongs to another customer than the phone; merge them first"),
    gettext_noop("is already recorded for another customer; give this bill its own order number"),
    gettext_noop("is the number of a relative: they or this row's patient were erased during the import, no "
                 "household was linked"),
    gettext_noop("is the number of a relative: they or this row's patient were merged into another record during the "
                 "import, no household was linked; link them from the kept record's page"),
    gettext_noop("belongs to a patient whose personal information was erased during the import: the row is not "
                 "imported"),
    gettext_noop("belongs to a patient merged into another record during the import: import this row again"),
    gettext_noop("belongs to a patient merged into another record during the import: the row is imported into the "
                 "record kept"),
]


def _channels_display(choices: str) -> str:
    """The channels an unknown source could have been, as channel_parse lists them ('wechat_oa, wecom, … other or
    微信/抖音/小红书/转介绍/…'), by their labels in the reader's language: the codes mean nothing to the front desk."""
    codes, _sep, examples = choices.partition(" or ")
    try:
        labels = pgettext("list separator", ", ").join(str(Channel(code.strip()).label) for code in codes.split(","))
    except ValueError:  # not the list channel_parse writes: as it is
        return choices
    if not examples:
        return labels
    return gettext("%(labels)s, or words such as %(examples)s") % {"labels": labels, "examples": examples}


PATTERNS = [
    (re.compile(r"^is longer than (?P<n>\d+) characters$"), gettext_noop("is longer than %(n)s characters")),
    (re.compile(r"^must be at most (?P<n>[\d.]+)$"), gettext_noop("must be at most %(n)s")),
    (re.compile(r"^an order has at most (?P<max>\d+) lines \(this is its line (?P<n>\d+)\)$"),
     gettext_noop("an order has at most %(max)s lines (this is its line %(n)s)")),
    (re.compile(r"^has (?P<cells>\d+) cells, more than the header's (?P<width>\d+): a cell holding the delimiter \(a "
                r"comma\) without quotes moved the cells after it; quote that cell, or save the file again from Excel$"),
     gettext_noop("has %(cells)s cells, more than the header's %(width)s: a cell holding the delimiter (a comma) without "
                  "quotes moved the cells after it; quote that cell, or save the file again from Excel")),
    (re.compile(r"^must be a number between -(?P<n>\d+) and \d+$"), gettext_noop("must be a number between -%(n)s and %(n)s")),
    (re.compile(r"^is not a known channel \((?P<choices>.*)\)$"), gettext_noop("is not a known channel (%(choices)s)"),
     {"choices": _channels_display}),
    (re.compile(r"^must be between 0 and the line's list total \((?P<yuan>[-\d.]+)\)$"),
     gettext_noop("must be between 0 and the line's list total (%(yuan)s)")),
    (re.compile(r"^does not equal quantity × unit price − discount \((?P<yuan>[-\d.]+)\)$"),
     gettext_noop("does not equal quantity × unit price − discount (%(yuan)s)")),
    (re.compile(r"^matches several clinics \((?P<names>.*)\); use the full name$"),
     gettext_noop("matches several clinics (%(names)s); use the full name")),
    (re.compile(r"^is the name of several clinics; use the clinic code \((?P<codes>.*)\)$"),
     gettext_noop("is the name of several clinics; use the clinic code (%(codes)s)")),
    (re.compile(r"^is the number of a relative \((?P<note>.*)\): give the patient's own phone or PMS id$"),
     gettext_noop("is the number of a relative (%(note)s): give the patient's own phone or PMS id")),
    (re.compile(r"^holds several numbers, and “(?P<part>.*)” (?P<reason>.+)$"),
     gettext_noop("holds several numbers, and “%(part)s” %(reason)s"), {"reason": lambda v: message_display(v)}),
    (re.compile(r"^holds (?P<n>\d+) numbers; at most (?P<max>\d+) are read from one cell$"),
     gettext_noop("holds %(n)s numbers; at most %(max)s are read from one cell")),
    (re.compile(r"^belongs to a different person than (?P<column>.*) (?P<value>[^ ]*); merge them first$"),
     gettext_noop("belongs to a different person than %(column)s %(value)s; merge them first")),
    (re.compile(r"^order has an invalid row \(row (?P<row>\d+)\); the whole order is skipped$"),
     gettext_noop("order has an invalid row (row %(row)s); the whole order is skipped")),
    (re.compile(r"^names another customer than row (?P<row>\d+) of the same order$"),
     gettext_noop("names another customer than row %(row)s of the same order")),
    (re.compile(r"^differs from row (?P<row>\d+) of the same order$"),
     gettext_noop("differs from row %(row)s of the same order")),
    (re.compile(r"^is another day than row (?P<row>\d+) of the same order$"),
     gettext_noop("is another day than row %(row)s of the same order")),
    (re.compile(r"^is already recorded with another amount \((?P<on_file>[-\d.]+), this file (?P<file>[-\d.]+)\); "
                r"a recorded bill is not changed: refund it and import the corrected one under a new order number$"),
     gettext_noop("is already recorded with another amount (%(on_file)s, this file %(file)s); a recorded bill is not "
                  "changed: refund it and import the corrected one under a new order number")),
    (re.compile(r"^is the number of a relative \((?P<note>.*)\), and no one named (?P<name>.*) is in that relative's "
                r"family: give the patient's own phone or PMS id$"),
     gettext_noop("is the number of a relative (%(note)s), and no one named %(name)s is in that relative's family: "
                  "give the patient's own phone or PMS id")),
    (re.compile(r"^differs from the name of the person with this phone \((?P<name>.*)\): the row is merged into them, "
                r"and their name is kept$"),
     gettext_noop("differs from the name of the person with this phone (%(name)s): the row is merged into them, and "
                  "their name is kept")),
]


def message_display(message: str) -> str:
    """`message` in the active language when the catalogue or a pattern has it, else as it is."""
    return core_message_display(message, patterns=PATTERNS)
