"""Action forms of the 360 page's cards, loaded when staff open them (templates/includes/subform.html).

Rendering every card's forms on every 360 page view cost about half of the page (select widgets with their
choices, the queries behind them) for forms that most views never open. A card now renders only the summaries;
`subform_response` answers the GET that opening one sends."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def subform_response(request: HttpRequest, *, partial: str, context: dict, title: str, back: str) -> HttpResponse:
    """The form partial alone for htmx (swapped into the opened <details>); without htmx, a page of its own
    around it (the form still posts to its action and comes back to `back`)."""
    if request.htmx:
        return render(request, partial, context)
    return render(request, "includes/subform_page.html", {**context, "partial": partial, "title": title,
                                                          "back": back})
