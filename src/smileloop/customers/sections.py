"""Sections of the customer 360 page contributed by higher apps (visits now; membership, tags, follow-ups
later), registered from their AppConfig.ready() so this app never imports them (the layers rule)."""

SECTIONS: dict = {}
PAGED_SECTIONS: set[str] = set()


def section_register(name: str, loader, *, paged: bool = False) -> None:
    """`loader(scope, customer)` returns what the 360 template reads as `c360.<name>`.

    A `paged` section is a long history (newest first): its loader is called as
    `loader(scope, customer, offset=…, limit=…)` and returns at most `limit` rows; the page shows one page of
    them with a "more" link (customers.views.HistoryPage)."""
    SECTIONS[name] = loader
    if paged:
        PAGED_SECTIONS.add(name)
    else:
        PAGED_SECTIONS.discard(name)
