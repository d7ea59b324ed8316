"""Rendering a step's script for one task: the inbox shows the script with every variable filled in.

Values come from the task (`context` stored at creation: procedure, a survey link …) and live rows (the
customer's name, the clinic, the treating doctor); `days_since` is counted from the anchor's local day to
today, and `when` names that day as the patient reads it today ("昨天" the day after, "3天前", "11月3日" once a
task is late: a script that says "yesterday" is wrong when it is sent a week later). Unknown or missing values
render as "—" rather than failing: a script must always show.
"""

import datetime as dt
import re
import string
import zoneinfo

from django.utils import timezone

MISSING = "—"

# name → provider(tasks) -> {task_id: value}; higher apps add theirs (surveys: "survey_link") from ready().
_PROVIDERS: dict = {}


def context_provider_register(name: str, provider) -> None:
    """`provider(tasks: list[FollowupTask]) -> dict[int, str]` fills `{name}` for tasks that lack it."""
    _PROVIDERS[name] = provider


class _Values(dict):
    anchor_day: dt.date | None = None
    today: dt.date | None = None

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
    return f"on {day.isoformat()}"


def _local_date(value: dt.datetime, tz: str) -> dt.date:
    return timezone.localtime(value, zoneinfo.ZoneInfo(tz)).date()


def _date_value(ctx: dict, tz: str) -> str | None:
    """{date} of a task whose meaningful day is not the anchor: a birthday, a card's expiry."""
    birthday, year = ctx.get("birthday"), ctx.get("birthday_year")
    if birthday and year:
        try:
            day = dt.date.fromisoformat(str(birthday)[:10])
            return f"{int(year):04d}-{day.month:02d}-{day.day:02d}"
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
        return _local_date(moment, tz).isoformat()
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
    values.setdefault("date", _date_value(ctx, tz) or anchor_day.isoformat())
    values.anchor_day, values.today = anchor_day, today
    days = ctx.get("days_since_base")
    base = dt.date.fromisoformat(days) if isinstance(days, str) else anchor_day
    values["days_since"] = max((today - base).days, 0)
    return values


def script_render(template: str, values: dict) -> str:
    out = []
    try:
        for literal, field, _spec, _conv in string.Formatter().parse(template or ""):
            out.append(literal)
            if field == "when" and getattr(values, "anchor_day", None) and getattr(values, "today", None):
                out.append(when_words(values.anchor_day, values.today, chinese=bool(_CJK.search(template))))
            elif field is not None:
                out.append(str(values[field]) if field in values else MISSING)
    except ValueError:  # a stray brace: show the text as written rather than nothing
        return template
    return "".join(out)


def tasks_scripts_fill(tasks: list, *, today: dt.date, tz: str = "Asia/Shanghai") -> None:
    """Set `task.script_text` on each task (tasks loaded with customer, clinic, doctor and step)."""
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
