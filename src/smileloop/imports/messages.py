"""Import error messages in the reader's language.

Parsing raises English messages: they are also the JSON report's (`--report`) and the API's, which stay English.
The staff page translates them when it shows them (`message_display`): fixed messages through the catalogue
(listed here so `makemessages` finds them), messages that carry a number or a list through the patterns below.
Messages written with gettext at the source (matching, scope) arrive translated already."""

import re

from django.utils.translation import gettext_noop

from smileloop.core.messages import message_display as core_message_display

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
    gettext_noop("date is empty"),
    gettext_noop("is not a date (use 1990-01-05, 1990/1/5, 1990年1月5日 or 19900105)"),
    gettext_noop("is not a valid Excel date number"),
    gettext_noop("is in the future"),
    gettext_noop("is before 1900"),
    gettext_noop("is an age, not a date of birth"),
    gettext_noop("is not a gender (use 男/女, M/F or male/female)"),
    gettext_noop("channel is empty"),
    gettext_noop("is not in the service catalogue"),
    gettext_noop("must not be negative"),
    gettext_noop("must be a number of yuan"),
    gettext_noop("must be a finite number"),
    gettext_noop("has more than 2 decimal places"),
    gettext_noop("is in scientific notation, so its last digits are lost; in Excel format the column as text or a "
                 "number without decimals and save the file again"),
    gettext_noop("is a formula: the import reads a formula as its text, not its result; copy the column and paste it "
                 "back as values"),
]
PATTERNS = [
    (re.compile(r"^is longer than (?P<n>\d+) characters$"), gettext_noop("is longer than %(n)s characters")),
    (re.compile(r"^must be a number between -(?P<n>\d+) and \d+$"), gettext_noop("must be a number between -%(n)s and %(n)s")),
    (re.compile(r"^is not a known channel \((?P<choices>.*)\)$"), gettext_noop("is not a known channel (%(choices)s)")),
    (re.compile(r"^must be between 0 and the line's list total \((?P<yuan>[-\d.]+)\)$"),
     gettext_noop("must be between 0 and the line's list total (%(yuan)s)")),
    (re.compile(r"^does not equal quantity × unit price − discount \((?P<yuan>[-\d.]+)\)$"),
     gettext_noop("does not equal quantity × unit price − discount (%(yuan)s)")),
    (re.compile(r"^matches several clinics \((?P<names>.*)\); use the full name$"),
     gettext_noop("matches several clinics (%(names)s); use the full name")),
    (re.compile(r"^is the number of a relative \((?P<note>.*)\): give the patient's own phone or PMS id$"),
     gettext_noop("is the number of a relative (%(note)s): give the patient's own phone or PMS id")),
    (re.compile(r"^holds several numbers, and “(?P<part>.*)” (?P<reason>.+)$"),
     gettext_noop("holds several numbers, and “%(part)s” %(reason)s"), {"reason": lambda v: message_display(v)}),
    (re.compile(r"^holds (?P<n>\d+) numbers; at most (?P<max>\d+) are read from one cell$"),
     gettext_noop("holds %(n)s numbers; at most %(max)s are read from one cell")),
]


def message_display(message: str) -> str:
    """`message` in the active language when the catalogue or a pattern has it, else as it is."""
    return core_message_display(message, patterns=PATTERNS)
