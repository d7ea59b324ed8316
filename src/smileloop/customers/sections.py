"""Sections of the customer 360 page contributed by higher apps (visits now; membership, tags, follow-ups
later), registered from their AppConfig.ready() so this app never imports them (the layers rule)."""

SECTIONS: dict = {}


def section_register(name: str, loader) -> None:
    """`loader(scope, customer)` returns what the 360 template reads as `view.<name>`."""
    SECTIONS[name] = loader
