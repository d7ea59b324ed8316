"""A clinic's opening hours (`Clinic.opening_hours`): weekday → [opening, closing], each "HH:MM" in the clinic's
(its chain's) local time, e.g. {"mon": ["09:00", "18:00"]}; a day left out is closed.

A closing time at or before the opening time closes the next day: ["18:00", "02:00"] is a late-night (emergency)
clinic open from Monday 18:00 to Tuesday 02:00, so Tuesday 01:00 belongs to Monday's hours. "24:00" closes at
midnight, and ["00:00", "24:00"] is round the clock. Refused: equal times (open no minute, or a whole day that
"00:00"-"24:00" says plainly), a night longer than MAX_OVERNIGHT_MINUTES (["09:00", "08:00"] is a typo, not 23
hours), and a night that runs past the next day's opening. The admin's box also takes "18:00-02:00" and stores it
as the pair."""

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
DAY_NAMES = {"mon": _("Monday"), "tue": _("Tuesday"), "wed": _("Wednesday"), "thu": _("Thursday"),
             "fri": _("Friday"), "sat": _("Saturday"), "sun": _("Sunday")}
MAX_OVERNIGHT_MINUTES = 16 * 60  # 18:00–10:00 at the most: a night clinic, not a day clinic's times swapped
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
_RANGE = re.compile(r"\s*(\S+?)\s*[-–—~～至到]\s*(\S+)\s*")


def _minutes(text: str) -> int:
    return 24 * 60 if text == "24:00" else int(text[:2]) * 60 + int(text[3:])


def span(hours: list[str]) -> tuple[int, int]:
    """[opening, closing] as minutes from the opening day's midnight, closing after opening: ["18:00", "02:00"] →
    (1080, 1560)."""
    start, end = _minutes(hours[0]), _minutes(hours[1])
    return start, end if end > start else end + 24 * 60


def opening_hours_clean(value) -> dict[str, list[str]]:
    """The opening hours as stored, or ValidationError with every day's problem in words. Empty → {}."""
    if value in (None, "", [], {}):
        return {}
    if not isinstance(value, dict):
        raise ValidationError(_('Write the opening hours as {"mon": ["09:00", "18:00"], "tue": "18:00-02:00"} '
                                "(mon … sun; a day left out is closed), or leave the box empty."), code="invalid")
    problems, clean = [], {}
    for day, hours in value.items():
        if day not in WEEKDAYS:
            problems.append(ValidationError(_("“%(day)s” is no day: use mon, tue, wed, thu, fri, sat or sun."),
                                            code="day", params={"day": day}))
            continue
        label = DAY_NAMES[day]
        if isinstance(hours, str) and _RANGE.fullmatch(hours):
            hours = list(_RANGE.fullmatch(hours).groups())
        if not (isinstance(hours, list) and len(hours) == 2 and all(isinstance(t, str) for t in hours)
                and _TIME.fullmatch(hours[0]) and hours[0] != "24:00" and _TIME.fullmatch(hours[1])):
            problems.append(ValidationError(
                _('%(day)s: write the opening and closing time as ["09:00", "18:00"] or "09:00-18:00" (00:00 to '
                  "23:59; 24:00 to close at midnight)."), code="format", params={"day": label}))
            continue
        if hours[0] == hours[1]:
            problems.append(ValidationError(
                _('%(day)s opens and closes at %(time)s: leave a closed day out, and write a day open round the '
                  'clock as ["00:00", "24:00"].'), code="equal", params={"day": label, "time": hours[0]}))
            continue
        start, end = span(hours)
        if end > 24 * 60 and end - start > MAX_OVERNIGHT_MINUTES:
            problems.append(ValidationError(
                _("%(day)s: %(open)s to %(close)s the next day would be %(hours)d hours. A closing time after "
                  "midnight is for a late-night clinic (e.g. 18:00-02:00): check the two times."), code="overnight",
                params={"day": label, "open": hours[0], "close": hours[1], "hours": round((end - start) / 60)}))
            continue
        clean[day] = hours
    for day, hours in clean.items():
        following = WEEKDAYS[(WEEKDAYS.index(day) + 1) % 7]
        start, end = span(hours)
        if end > 24 * 60 and following in clean and span(clean[following])[0] < end - 24 * 60:
            problems.append(ValidationError(
                _("%(day)s's hours run to %(close)s on %(next)s, after %(next)s opens at %(open)s: make them one "
                  "opening or close earlier."), code="overlap",
                params={"day": DAY_NAMES[day], "close": hours[1], "next": DAY_NAMES[following],
                        "open": clean[following][0]}))
    if problems:
        raise ValidationError(problems)
    return {day: clean[day] for day in WEEKDAYS if day in clean}


def is_open(opening_hours: dict, at: dt.datetime | dt.time, weekday: int | None = None) -> bool:
    """Whether the hours hold the local moment `at` (a naive or local datetime; or a time with its `weekday`, 0 =
    Monday). The day before's late-night hours count: Tuesday 01:00 is open under {"mon": ["18:00", "02:00"]}.
    An opening includes its opening minute, not its closing one."""
    if isinstance(at, dt.datetime):
        weekday, at = at.weekday(), at.time()
    minute = at.hour * 60 + at.minute
    today, yesterday = WEEKDAYS[weekday], WEEKDAYS[(weekday - 1) % 7]
    if today in (opening_hours or {}):
        start, end = span(opening_hours[today])
        if start <= minute < end:
            return True
    if yesterday in (opening_hours or {}):
        start, end = span(opening_hours[yesterday])
        if minute + 24 * 60 < end:
            return True
    return False
