"""Rendering a step's script for one task: the inbox shows the script with every variable filled in.

Values come from the task (`context` stored at creation: procedure, a survey link …) and live rows (the
customer's name, the clinic, the treating doctor); `days_since` is counted from the anchor's local day to
today, and `when` names that day as the patient reads it today ("昨天" the day after, "3天前", "11月3日" once a
task is late: a script that says "yesterday" is wrong when it is sent a week later); `date` (a birthday, a card's
expiry, else the anchor day) reads as a date in the script's language too: 2027年3月5日, 5 March 2027. Unknown or missing values
render as "—" rather than failing: a script must always show.

A patient without a phone (a child) is called through a relative (`task.guardian`): a `{name}` in a greeting
("{name}您好", "Hello {name}") then addresses the person on the line ("石子轩家长您好"); every other `{name}` (an
instruction to staff: "{name}的生日在…") still names the patient.
"""

import calendar
import datetime as dt
import re
import string
import zoneinfo

from django.utils import timezone

from smileloop.core.dates import age_on

MISSING = "—"

# name → provider(tasks) -> {task_id: value}; higher apps add theirs (surveys: "survey_link") from ready().
_PROVIDERS: dict = {}


def context_provider_register(name: str, provider) -> None:
    """`provider(tasks: list[FollowupTask]) -> dict[int, str]` fills `{name}` for tasks that lack it."""
    _PROVIDERS[name] = provider


class _Values(dict):
    anchor_day: dt.date | None = None
    today: dt.date | None = None
    via_relative_minor: bool | None = None  # set when the call goes through a relative: is the patient a minor?

    def __missing__(self, key):
        return MISSING


_CJK = re.compile(r"[\u3400-\u9fff]")


def when_words(day: dt.date, today: dt.date, *, chinese: bool) -> str:
    """`day` relative to `today`, in the script's own language (the patient reads the script, not the staff
    member's interface): 今天 / 昨天 / 前天 / N天前 within a week, then the date."""
    days = (today - day).days
    if chinese:
        if 0 <= days <= 6:
            return ("今天", "昨天", "前天")[days] if days < 3 else f"{days}天前"
        return f"{day.month}月{day.day}日" if day.year == today.year else f"{day.year}年{day.month}月{day.day}日"
    if 0 <= days <= 6:
        return ("today", "yesterday")[days] if days < 2 else f"{days} days ago"
    return f"on {date_words(day, chinese=False)}"


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def date_words(day: dt.date, *, chinese: bool) -> str:
    """A date as the patient reads it in the script's language: 2027年3月5日 / 5 March 2027 (never ISO, which reads
    as a database value in a message to a patient)."""
    if chinese:
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def addressee(name: str, *, minor: bool, chinese: bool) -> str:
    """The greeting's name when a relative answers for the patient: a child's parent (家长), else family (家属)."""
    if chinese:
        return f"{name}{'家长' if minor else '家属'}"
    return f"{name}'s {'parent' if minor else 'family'}"


def _local_date(value: dt.datetime, tz: str) -> dt.date:
    return timezone.localtime(value, zoneinfo.ZoneInfo(tz)).date()


def _date_value(ctx: dict, tz: str) -> dt.date | None:
    """{date} of a task whose meaningful day is not the anchor: a birthday, a card's expiry."""
    birthday, year = ctx.get("birthday"), ctx.get("birthday_year")
    if birthday and year:
        try:
            day = dt.date.fromisoformat(str(birthday)[:10])
            year = int(year)
            # 29 February in a common year is kept on the 28th, the day the birthday task was made for
            return dt.date(year, day.month, min(day.day, calendar.monthrange(year, day.month)[1]))
        except ValueError:
            return None
    expires = ctx.get("expires_at")
    if expires:
        try:
            moment = dt.datetime.fromisoformat(str(expires))
        except ValueError:
            return None
        if timezone.is_naive(moment):  # SQLite stores UTC without an offset
            moment = moment.replace(tzinfo=dt.UTC)
        return _local_date(moment, tz)
    return None


def task_values(task, *, today: dt.date, tz: str = "Asia/Shanghai") -> dict:
    ctx = task.context or {}
    anchor_day = _local_date(task.anchor_at, tz)
    values = _Values({k: v for k, v in ctx.items() if v not in (None, "")})
    values.setdefault("name", task.customer.name)
    if task.clinic_id:
        values.setdefault("clinic", task.clinic.name)
    if task.doctor_id:
        values.setdefault("doctor", task.doctor.name)
    values.setdefault("date", _date_value(ctx, tz) or anchor_day)  # a date: rendered in the script's language
    values.anchor_day, values.today = anchor_day, today
    if getattr(task, "guardian", None) is not None and not task.customer.mobile:
        age = age_on(task.customer.birthday, today)
        values.via_relative_minor = age is not None and age < 18
    days = ctx.get("days_since_base")
    base = dt.date.fromisoformat(days) if isinstance(days, str) else anchor_day
    values["days_since"] = max((today - base).days, 0)
    return values


_GREETING_AFTER = re.compile(r"\s*(您好|你好)")
_GREETING_BEFORE = re.compile(r"(^|\W)(hello|hi|dear)[\s,]*$", re.IGNORECASE)


def _greets(before: str, rest: list) -> bool:
    after = rest[0][0] if rest else ""
    return bool(_GREETING_AFTER.match(after) or _GREETING_BEFORE.search(before))


def script_render(template: str, values: dict) -> str:
    chinese = bool(_CJK.search(template or ""))
    minor = getattr(values, "via_relative_minor", None)
    try:
        parts = list(string.Formatter().parse(template or ""))
    except ValueError:  # a stray brace: show the text as written rather than nothing
        return template
    out = []
    for i, (literal, field, _spec, _conv) in enumerate(parts):
        out.append(literal)
        if field == "when" and getattr(values, "anchor_day", None) and getattr(values, "today", None):
            out.append(when_words(values.anchor_day, values.today, chinese=chinese))
        elif field == "name" and minor is not None and "name" in values and _greets(literal, parts[i + 1:]):
            out.append(addressee(str(values["name"]), minor=minor, chinese=chinese))
        elif field is not None and isinstance(values.get(field), dt.date):
            out.append(date_words(values[field], chinese=chinese))
        elif field is not None:
            out.append(str(values[field]) if field in values else MISSING)
    return "".join(out)


def tasks_scripts_fill(tasks: list, *, today: dt.date, tz: str = "Asia/Shanghai") -> None:
    """Set `task.script_text` on each task (tasks loaded with customer, clinic, doctor and step; `task.guardian`
    filled first where a relative is called)."""
    extra: dict[str, dict] = {}
    for name, provider in _PROVIDERS.items():
        needing = [t for t in tasks if "{" + name + "}" in (t.step.script or "") and not (t.context or {}).get(name)]
        if needing:
            extra[name] = provider(needing) or {}
    for task in tasks:
        values = task_values(task, today=today, tz=tz)
        for name, by_task in extra.items():
            if task.id in by_task:
                values[name] = by_task[task.id]
        task.script_text = script_render(task.step.script, values)
