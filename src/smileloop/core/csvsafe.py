"""CSV cells a spreadsheet will not run: every CSV the product writes passes user text through csv_safe."""


def csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a cell whose first character is = + - @, a tab or a carriage
    return, or whose first character after spaces is = + - @, is prefixed with ' (OWASP's list; spreadsheets trim
    leading spaces before they look for a formula)."""
    if text and (text[0] in "\t\r" or text.lstrip()[:1] in ("=", "+", "-", "@")):
        return "'" + text
    return text
