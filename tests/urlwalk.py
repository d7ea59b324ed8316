"""The named URL patterns of the staff namespaces, for tests that walk every page."""

from django.urls import URLPattern, URLResolver, get_resolver


def named_urls(namespaces) -> list[tuple[str, list[str]]]:
    """("namespace:name", its path parameters in order) for every named pattern in `namespaces`."""
    found = []

    def walk(patterns, namespace):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, entry.namespace or namespace)
            elif isinstance(entry, URLPattern) and entry.name and namespace in namespaces:
                found.append((f"{namespace}:{entry.name}", list(entry.pattern.converters)))

    walk(get_resolver().url_patterns, None)
    return found
