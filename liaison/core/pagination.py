from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest


def paginate(request: HttpRequest, qs: QuerySet, per_page: int = 25) -> Page:
    """The requested page (a bad or too-large page number gives the nearest valid page)."""
    return Paginator(qs, per_page).get_page(request.GET.get("page"))
