"""Analytics over the API: the same figures as the pages (counts and referrers, never a patient
field), for the roles that see analytics; KPIs for everyone (their own, or everyone's for managers)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from liaison.analytics import selectors
from liaison.analytics.models import CoolingAlert, Grain
from liaison.analytics.selectors import VolumeFilters
from liaison.api import require

router = Router(tags=["analytics"])


def _reader(request: HttpRequest) -> None:
    require(request.user.can_see_analytics, "Your role does not give access to analytics.")


class RefreshOut(Schema):
    as_of: date | None = Field(description="the day the figures describe")
    refreshed_at: str | None


class VolumeRow(Schema):
    period: str
    referrals: int
    scheduled: int
    seen: int
    notes: int


class VolumeOut(RefreshOut):
    grain: str
    rows: list[VolumeRow]


class AlertOut(Schema):
    id: int
    referrer_id: int = Field(alias="provider_id")
    account_id: int | None
    opened_on: date
    cleared_on: date | None
    baseline_per_month: float
    expected_recent: float
    recent_count: int
    recent_days: int
    p_value: float
    explanation: str


class TableOut(Schema):
    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]


def _refreshed() -> dict[str, Any]:
    run = selectors.last_refresh()
    return {
        "as_of": run.as_of if run else None,
        "refreshed_at": run.finished_at.isoformat() if run and run.finished_at else None,
    }


@router.get("/analytics/volume", response=VolumeOut, summary="Referral volume by month or week")
def volume(
    request: HttpRequest,
    grain: Grain = Grain.MONTH,
    months: int = Query(12, ge=3, le=36),
    site: int | None = Query(None, ge=1, le=2**63 - 1),
    physician: int | None = Query(None, ge=1, le=2**63 - 1),
    service_line: int | None = Query(None, ge=1, le=2**63 - 1),
    payer: str = "",
    specialty: str = "",
    territory: int | None = Query(None, ge=1, le=2**63 - 1),
) -> dict[str, Any]:
    _reader(request)
    f = VolumeFilters(grain, months, site, physician, service_line, payer, specialty, territory)
    refreshed = _refreshed()
    table = selectors.volume_table(f, refreshed["as_of"] or date.today())
    return {**refreshed, "grain": grain, "rows": table.rows}


@router.get("/analytics/cooling-alerts", response=list[AlertOut], summary="Referrers cooling off")
def cooling_alerts(request: HttpRequest, include_cleared: bool = False) -> Any:
    _reader(request)
    qs = CoolingAlert.objects.order_by("p_value", "-opened_on")
    if not include_cleared:
        qs = qs.filter(cleared_on__isnull=True)
    return qs[:500]


def _table(t: selectors.Table) -> dict[str, Any]:
    return {"name": t.name, "title": t.title, "columns": [c.key for c in t.columns], "rows": t.rows}


@router.get("/analytics/kpis", response=list[TableOut], summary="KPIs per role (yours, or everyone's)")
def kpis(request: HttpRequest) -> list[dict[str, Any]]:
    return [_table(t) for t in selectors.kpi_tables(request.user)]


@router.get(
    "/analytics/attribution",
    response=TableOut,
    summary="Referrals attributed to outreach (difference in differences)",
)
def attribution(request: HttpRequest, by: str = Query("kind", pattern="^(kind|liaison|physician)$")) -> Any:
    _reader(request)
    table, method, _ = selectors.attribution_table(by)
    if table is None:
        return {"name": f"attribution_{by}", "title": "Not computed yet", "columns": [], "rows": []}
    return {**_table(table), "title": f"{table.title}. {method}"}
