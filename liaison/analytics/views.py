"""Analytics pages. Thin: parse the filters, read through the selectors, render or export a table."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date
from functools import cached_property, wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from liaison.analytics import selectors, services
from liaison.analytics.models import Grain, VolumeCell
from liaison.analytics.selectors import DrillFilters, Table, VolumeFilters


def analytics_required(view: Callable) -> Callable:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.can_see_analytics:
            raise PermissionDenied("Your role does not give access to analytics.")
        return view(request, *args, **kwargs)

    return wrapper


def _int(value: str | None) -> int | None:
    """A positive id from the query string, or None (a huge number would overflow the database)."""
    return int(value) if value and value.isdigit() and len(value) <= 18 else None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _as_of() -> date:
    run = selectors.last_refresh()
    return run.as_of if run else timezone.localdate()


def export(table: Table, fmt: str) -> HttpResponse:
    """CSV or XLSX of one table, exactly the rows and columns on the page (never a patient field)."""
    header = [c.label for c in table.columns]
    rows = [[row.get(c.key, "") for c in table.columns] for row in table.rows]
    stamp = timezone.localdate().isoformat()
    if fmt == "xlsx":
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet(table.name[:31])
        ws.append(header)
        for r in rows:
            ws.append(["" if v is None else v for v in r])
        buf = io.BytesIO()
        wb.save(buf)
        response = HttpResponse(
            buf.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        response["Content-Disposition"] = f'attachment; filename="liaison-{table.name}-{stamp}.xlsx"'
        return response
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="liaison-{table.name}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _page(request: HttpRequest, template: str, tables: list[Table], ctx: dict[str, Any]) -> HttpResponse:
    fmt = request.GET.get("export", "")
    if fmt:
        if fmt not in ("csv", "xlsx"):
            raise Http404("Unknown export format.")
        wanted = request.GET.get("table", "")
        for table in tables:
            if table.name == wanted:
                return export(table, fmt)
        raise Http404("No such table on this page.")
    query = request.GET.copy()
    query.pop("page", None)
    ctx.update(
        tables={t.name: t for t in tables},
        last_refresh=selectors.last_refresh(),
        query=query.urlencode(),
        nav="analytics",
    )
    return render(request, template, ctx)


def _volume_filters(request: HttpRequest) -> VolumeFilters:
    g = request.GET
    grain = g.get("grain") if g.get("grain") in Grain.values else Grain.MONTH
    months = _int(g.get("months")) or 12
    return VolumeFilters(
        grain=grain,
        months=min(max(months, 3), 36),
        site=_int(g.get("site")),
        physician=_int(g.get("physician")),
        service_line=_int(g.get("service_line")),
        payer=g.get("payer", "")[:100],
        specialty=g.get("specialty", "")[:10],
        territory=_int(g.get("territory")),
    )


def _slice_options() -> dict[str, list[tuple[Any, str]]]:
    from liaison.directory.models import Location, Provider, Taxonomy
    from liaison.outreach.models import Territory
    from liaison.referrals.models import ServiceLine

    codes = set(VolumeCell.objects.filter(grain=Grain.MONTH).values_list("specialty", flat=True).distinct())
    return {
        "site": list(
            Location.objects.filter(
                pk__in=VolumeCell.objects.filter(grain=Grain.MONTH).values("site_id").distinct()
            ).values_list("pk", "name")
        ),
        # Our physicians with referrals (through the rollup: no scan of the whole provider table).
        "physician": [
            (p.pk, f"Dr. {p.last_name}, {p.first_name}")
            for p in Provider.objects.filter(
                pk__in=VolumeCell.objects.filter(grain=Grain.MONTH).values("physician_id").distinct()
            ).order_by("last_name", "first_name")
        ],
        "service_line": list(ServiceLine.objects.values_list("pk", "name")),
        "payer": [
            (p, p)
            for p in VolumeCell.objects.filter(grain=Grain.MONTH)
            .exclude(payer="")
            .values_list("payer", flat=True)
            .distinct()
            .order_by("payer")
        ],
        "specialty": list(
            Taxonomy.objects.filter(code__in=codes - {""})
            .order_by("display_name")
            .values_list("code", "display_name")
        ),
        "territory": list(Territory.objects.values_list("pk", "name")),
    }


@analytics_required
def dashboard(request: HttpRequest) -> HttpResponse:
    f = _volume_filters(request)
    as_of = _as_of()
    by = request.GET.get("by") if request.GET.get("by") in selectors.SLICES else "site"
    options = _slice_options()
    names = {k: v for k, v in options[by]}
    split = selectors.slice_table(f, by, as_of, names)
    filter_fields = [
        {
            "name": key,
            "label": label,
            "options": [(v, text, str(v) == str(getattr(f, key) or "")) for v, text in options[key]],
        }
        for key, (_, label) in selectors.SLICES.items()
    ]
    referrer_tables = [
        selectors.top_referrers(f, as_of),
        selectors.new_referrers(f, as_of),
        selectors.lapsed_referrers(f, as_of),
    ]
    # The referrer figures are kept per referrer, specialty and territory only: say so when a filter
    # they cannot follow is set, rather than show them as if filtered.
    ignored = [
        f"“{selectors.SLICES[k][1]}”" for k in ("site", "physician", "service_line", "payer") if getattr(f, k)
    ]
    if ignored:
        for table in referrer_tables:
            table.note = (
                f"The {' and '.join(ignored)} filter{'s' if len(ignored) > 1 else ''} above "
                f"appl{'y' if len(ignored) > 1 else 'ies'} to the chart and the split, not to these "
                f"referrers' figures (counted over every one). {table.note}"
            ).strip()
    tables = [selectors.volume_table(f, as_of), split, selectors.alerts_table(), *referrer_tables]
    return _page(
        request,
        "analytics/dashboard.html",
        tables,
        {
            "f": f,
            "by": by,
            "slices": selectors.SLICES,
            "as_of": as_of,
            "filter_fields": filter_fields,
            "slice_table": split,
            "month_choices": (12, 24, 36),
        },
    )


@analytics_required
def referrer(request: HttpRequest, pk: int) -> HttpResponse:
    from liaison.analytics.models import ReferrerStat
    from liaison.directory.models import Provider

    provider = get_object_or_404(Provider.objects.select_related("primary_taxonomy"), pk=pk, is_ours=False)
    tables = [selectors.referrer_monthly(pk, _as_of()), selectors.alerts_table(open_only=False, provider=pk)]
    stat = ReferrerStat.objects.filter(provider=provider).select_related("practice", "account").first()
    return _page(request, "analytics/referrer.html", tables, {"provider": provider, "stat": stat})


def _drill_filters(request: HttpRequest) -> DrillFilters:
    g = request.GET
    return DrillFilters(
        grain=g.get("grain", "") if g.get("grain") in Grain.values else "",
        period=_date(g.get("period")),
        since=_date(g.get("since")),
        until=_date(g.get("until")),
        provider=_int(g.get("provider")),
        practice=_int(g.get("practice")),
        site=_int(g.get("site")),
        physician=_int(g.get("physician")),
        service_line=_int(g.get("service_line")),
        payer=g.get("payer", "")[:100],
        specialty=g.get("specialty", "")[:10],
        territory=_int(g.get("territory")),
        outcome=g.get("outcome", "") if g.get("outcome") in selectors.OUTCOMES else "",
        coordinator=_int(g.get("coordinator")),
    )


EXPORT_LIMIT = 50_000
COUNT_CAP = 10_000


class DrillPaginator(Paginator):
    """Counts the referrals without the joins the rows need, and stops counting at `COUNT_CAP` (the
    figure the user came from is on the page they came from; counting a few hundred thousand rows
    exactly on every page would cost more than the list itself)."""

    def __init__(self, rows: QuerySet, counted: QuerySet, per_page: int) -> None:
        super().__init__(rows, per_page)
        self.counted = counted

    @cached_property
    def count(self) -> int:
        return self.counted.order_by()[: COUNT_CAP + 1].count()

    def page(self, number: Any) -> Page:
        """The page's keys first, sorted from an index without the joins, then their rows (a
        "deferred join"): the referrals never scheduled at a site were sorted with every joined
        column before (0.4 s at 1M referrals on SQLite, 12 ms this way)."""
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        ids = list(self.counted.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        rows = {row["pk"]: row for row in self.object_list.order_by().filter(pk__in=ids)}
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)

    @property
    def capped(self) -> bool:
        return self.count > COUNT_CAP


@analytics_required
def referrals(request: HttpRequest) -> HttpResponse:
    """The referrals behind a number, one row each, without any patient field; the referral's
    number and exact date on the page, and the payer, only for roles that may see patient data
    (`selectors.drill_table`). Exports are always by month, without a number."""
    f = _drill_filters(request)
    base = selectors.drill_referrals(f)
    qs = base.values(*selectors.DRILL_VALUES)
    phi = request.user.can_see_phi
    if request.GET.get("export"):
        table = selectors.drill_table(list(qs[:EXPORT_LIMIT]), identified=False, payer=phi)
        return _page(request, "analytics/referrals.html", [table], {})
    paginator = DrillPaginator(qs, base, per_page=50)
    page = paginator.get_page(request.GET.get("page"))
    total = paginator.count
    table = selectors.drill_table(list(page.object_list), identified=phi, payer=phi)
    described = [
        f"{label}: {value}"
        for label, value in (
            ("period", f"{f.grain} of {f.period}" if f.period else ""),
            ("from", f.since),
            ("to", f.until),
            ("outcome", selectors.OUTCOMES[f.outcome][0] if f.outcome else ""),
        )
        if value
    ]
    return _page(
        request,
        "analytics/referrals.html",
        [table],
        {
            "page": page,
            "total": total,
            "capped": total > COUNT_CAP,
            "described": described,
            "export_limit": EXPORT_LIMIT,
            "count_cap": COUNT_CAP,
        },
    )


@analytics_required
def leakage(request: HttpRequest) -> HttpResponse:
    tables = selectors.leakage_tables() + selectors.turnaround_tables()
    return _page(request, "analytics/leakage.html", tables, {})


@analytics_required
def attribution(request: HttpRequest) -> HttpResponse:
    by = request.GET.get("by") if request.GET.get("by") in selectors.ATTRIBUTION_BY else "kind"
    table, method, window = selectors.attribution_table(by)
    return _page(
        request,
        "analytics/attribution.html",
        [table] if table else [],
        {"by": by, "choices": selectors.ATTRIBUTION_BY, "method": method, "window": window, "table": table},
    )


@login_required
def kpis(request: HttpRequest) -> HttpResponse:
    tables = selectors.kpi_tables(request.user)
    return _page(request, "analytics/kpis.html", tables, {"kpi_tables": tables})


@analytics_required
def reciprocity(request: HttpRequest) -> HttpResponse:
    return _page(request, "analytics/reciprocity.html", [selectors.reciprocity_table()], {})


@require_POST
@login_required
def refresh(request: HttpRequest) -> HttpResponse:
    run = services.start_refresh(actor=request.user)
    return redirect("core:job", run.pk)
