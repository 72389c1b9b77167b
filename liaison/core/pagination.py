from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest


class IdsFirstPaginator(Paginator):
    """Orders and slices the primary keys only, then fetches the page's rows by key (a "deferred
    join"): when the order cannot come from an index, the database sorts narrow keys instead of
    every matching row with all the columns and joins of the page."""

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = min(bottom + self.per_page, self.count)
        return self._get_page(ids_first(self.object_list, bottom, top), number, self)


def ids_first(qs: QuerySet, start: int, stop: int) -> list[Any]:
    """`list(qs[start:stop])`, by sorting and slicing the keys first, then fetching those rows."""
    ids = list(qs.values_list("pk", flat=True)[start:stop])
    rows = {row.pk: row for row in qs.order_by().filter(pk__in=ids)}
    return [rows[pk] for pk in ids if pk in rows]


def paginate(request: HttpRequest, qs: QuerySet, per_page: int = 25) -> Page:
    """The requested page (a bad or too-large page number gives the nearest valid page)."""
    return Paginator(qs, per_page).get_page(request.GET.get("page"))
