"""What a rule is compiled against (the chain, the day, the time zone, the clinics' coordinates) and the
constants the fields share."""

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from smileloop.customers.enums import InteractionKind
from smileloop.visits.enums import AppointmentStatus

KM_PER_DEGREE = 111.32  # one degree of latitude (and of longitude at the equator), as the demo data uses
MAX_DAYS = 3650
MAX_FEN = 10**12
VISIT_STATUSES = (AppointmentStatus.ARRIVED, AppointmentStatus.COMPLETED)  # what counts as a visit (visits app)
CONTACT_KINDS = (InteractionKind.CALL, InteractionKind.CHAT, InteractionKind.SMS)  # staff contact on the timeline


@dataclass(frozen=True)
class Ctx:
    """What a leaf compiles against: the chain, the day the segment is evaluated for, the time zone whose
    midnights bound day windows, and the coordinates of the clinics distance conditions name (read by
    compiler.compile). `aggregates` picks how spend/visit aggregates compile (leaves.aggregate_leaf); "auto"
    is the production choice."""

    chain_id: int
    today: dt.date
    tz: ZoneInfo
    aggregates: str = "auto"
    clinics: dict = field(default_factory=dict)  # clinic id → (latitude, longitude), for distance conditions
    tags: dict | None = None  # tag code → id, read before the statement (None: look codes up inside it)
    # Positive "has such a row" conditions on selective, indexed rows (tags, plans, procedures, memberships)
    # as `id IN (…)` instead of a correlated EXISTS: SQLite (3.40) never turns EXISTS into a join, so it
    # walked every customer of the chain and probed per customer; with IN it reads the few rows once and
    # fetches their customers by primary key (leaves.has_rows). PostgreSQL plans both as a semi-join.
    rows_in: bool = False

    def day_start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)

    def window(self, days: int) -> tuple[dt.datetime, dt.datetime]:
        """The last `days` days including today: [midnight of today − days + 1, midnight of tomorrow)."""
        return (self.day_start(self.today - dt.timedelta(days=days - 1)),
                self.day_start(self.today + dt.timedelta(days=1)))


def shift_years(day: dt.date, years: int) -> dt.date:
    """`day` moved back `years` years; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)
