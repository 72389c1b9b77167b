"""Reads for the analytics pages. Every table a page shows is a `Table`: the page renders it beside its
chart, and the same object is exported to CSV or XLSX, so an export always matches the screen.

No table holds a patient field. The drill-down to the referrals behind a number shows, to roles that
may see patient data, the referral's number (a link to its page, where reading is audited) and its
date; to the others only the month, the referrer and our side: no identifier, no exact date.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Substr
from django.urls import reverse
from django.utils import timezone

from liaison.analytics.models import CoolingAlert, Grain, ReferrerStat, RefreshRun, Snapshot, VolumeCell
from liaison.analytics.refresh import month_start, week_start

# Slices of the volume dashboard: query parameter -> (VolumeCell field, label).
SLICES = {
    "site": ("site_id", "Our site"),
    "physician": ("physician_id", "Our physician"),
    "service_line": ("service_line_id", "Service line"),
    "payer": ("payer", "Payer"),
    "specialty": ("specialty", "Referrer specialty"),
    "territory": ("territory_id", "Territory"),
}
LAPSED_AFTER_DAYS = 120
NEW_WITHIN_DAYS = 90


@dataclass
class Column:
    key: str
    label: str
    numeric: bool = False


@dataclass
class Table:
    """Rows of plain values (the export) with optional links per cell (the page)."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    note: str = ""

    def cells(self) -> list[list[tuple[Any, str, bool]]]:
        """(value, link, numeric) per cell, for the template."""
        out = []
        for i, row in enumerate(self.rows):
            links = self.links[i] if i < len(self.links) else {}
            out.append([(row.get(c.key), links.get(c.key, ""), c.numeric) for c in self.columns])
        return out


def last_refresh() -> RefreshRun | None:
    return RefreshRun.objects.filter(status=RefreshRun.Status.DONE).order_by("-finished_at").first()


def snapshot(name: str) -> Any:
    row = Snapshot.objects.filter(name=name).values_list("data", flat=True).first()
    return row or {}


# Filters ---------------------------------------------------------------------------------------


@dataclass
class VolumeFilters:
    grain: str = Grain.MONTH
    months: int = 12
    site: int | None = None
    physician: int | None = None
    service_line: int | None = None
    payer: str = ""
    specialty: str = ""
    territory: int | None = None

    def slice_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SLICES if getattr(self, k) not in (None, "")}


def volume_cells(f: VolumeFilters) -> QuerySet[VolumeCell]:
    qs = VolumeCell.objects.filter(grain=f.grain)
    for key, (column, _) in SLICES.items():
        value = getattr(f, key)
        if value not in (None, ""):
            qs = qs.filter(**{column: value})
    return qs


def period_bounds(grain: str, period: date) -> tuple[date, date]:
    if grain == Grain.WEEK:
        return period, period + timedelta(days=7)
    return period, month_start(period + timedelta(days=32))


def volume_table(f: VolumeFilters, as_of: date) -> Table:
    if f.grain == Grain.WEEK:
        first = week_start(as_of) - timedelta(weeks=25)
    else:
        first = month_start(as_of)
        for _ in range(f.months - 1):
            first = month_start(first - timedelta(days=1))
    totals = {
        row["period"]: row
        for row in volume_cells(f)
        .filter(period__gte=first)
        .values("period")
        .annotate(
            referrals=Sum("referrals"), scheduled=Sum("scheduled"), seen=Sum("seen"), notes=Sum("note_sent")
        )
        .order_by("period")
    }
    periods, p = [], first
    while p <= as_of:
        periods.append(p)
        p = p + timedelta(days=7) if f.grain == Grain.WEEK else month_start(p + timedelta(days=32))
    table = Table(
        name="volume",
        title=f"Referrals by {'week' if f.grain == Grain.WEEK else 'month'}",
        columns=[
            Column("period", "Week of" if f.grain == Grain.WEEK else "Month"),
            Column("referrals", "Referrals", True),
            Column("scheduled", "Scheduled", True),
            Column("seen", "Seen", True),
            Column("notes", "Consult note sent", True),
        ],
        note="Counted by the date each referral was received.",
    )
    last_day = as_of + timedelta(days=1)
    partial = (last_day - week_start(as_of)).days < 7 if f.grain == Grain.WEEK else last_day.day != 1
    if partial:
        grain = "week" if f.grain == Grain.WEEK else "month"
        table.note += f" The last {grain} is partial, to {as_of:%b %-d, %Y} (marked *): not a drop."
    for period in periods:
        row = totals.get(period, {})
        label = period.isoformat() if f.grain == Grain.WEEK else period.strftime("%Y-%m")
        if partial and period == periods[-1]:
            label += "*"
        table.rows.append(
            {
                "period": label,
                "referrals": row.get("referrals") or 0,
                "scheduled": row.get("scheduled") or 0,
                "seen": row.get("seen") or 0,
                "notes": row.get("notes") or 0,
            }
        )
        base = {"grain": f.grain, "period": period.isoformat(), **f.slice_params()}
        table.links.append(
            {
                "referrals": drill_url(base),
                "scheduled": drill_url({**base, "outcome": "scheduled"}),
                "seen": drill_url({**base, "outcome": "seen"}),
                "notes": drill_url({**base, "outcome": "note_sent"}),
            }
        )
    return table


def slice_table(f: VolumeFilters, by: str, as_of: date, names: dict[Any, str]) -> Table:
    """This month so far and the 11 before, split by one slice (e.g. by our site), largest first."""
    column, label = SLICES[by]
    first = month_start(as_of)
    for _ in range(11):
        first = month_start(first - timedelta(days=1))
    rows = (
        volume_cells(VolumeFilters(**{**f.__dict__, "grain": Grain.MONTH}))
        .filter(period__gte=first)
        .values(column)
        .annotate(referrals=Sum("referrals"))
        .order_by("-referrals")[:25]
    )
    table = Table(
        name=f"by_{by}",
        # Whole months from the volume cells: this one so far and the 11 before.
        title=f"By {label.lower()}, {first:%b %-d, %Y} to {as_of:%b %-d, %Y}",
        columns=[Column("slice", label), Column("referrals", "Referrals", True)],
    )
    for row in rows:
        key = row[column]
        table.rows.append({"slice": names.get(key, key) or "(none)", "referrals": row["referrals"]})
        params = {"since": first.isoformat(), "until": as_of.isoformat(), **f.slice_params()}
        if key not in (None, ""):
            params[by] = key
        table.links.append({"referrals": drill_url(params)})
    return table


def drill_url(params: dict[str, Any]) -> str:
    return (
        reverse("analytics:referrals")
        + "?"
        + urlencode({k: v for k, v in params.items() if v not in (None, "")})
    )


# Referrers -------------------------------------------------------------------------------------


def _referrer_table(name: str, title: str, qs: QuerySet[ReferrerStat], as_of: date, note: str = "") -> Table:
    # The windows the refresh counted in (`refresh.referrer_stats`): the 365 days to `as_of`.
    year = {"since": (as_of - timedelta(days=364)).isoformat(), "until": as_of.isoformat()}
    table = Table(
        name=name,
        title=title,
        columns=[
            Column("referrer", "Referrer"),
            Column("practice", "Practice"),
            Column("last_365", "Last 12 months", True),
            Column("last_90", "Last 90 days", True),
            Column("prev_90", "90 days before", True),
            Column("total", "All time", True),
            Column("first_on", "First referral"),
            Column("last_on", "Last referral"),
            Column("share", "Share to us"),
        ],
        note=note,
    )
    # prefetch, not a join: with a join SQLite sorts the whole table instead of reading the index
    for s in qs.prefetch_related("provider", "practice"):
        share = (
            "" if s.share_with_us is None else f"{s.share_with_us:.0%} ({s.get_loyalty_display().lower()})"
        )
        table.rows.append(
            {
                "referrer": _name(s.provider),
                "practice": s.practice.name if s.practice else "",
                "last_365": s.last_365,
                "last_90": s.last_90,
                "prev_90": s.prev_90,
                "total": s.total,
                "first_on": s.first_on.isoformat(),
                "last_on": s.last_on.isoformat(),
                "share": share,
            }
        )
        table.links.append(
            {
                "referrer": reverse("analytics:referrer", args=[s.provider_id]),
                "last_365": drill_url({"provider": s.provider_id, **year}),
                "total": drill_url({"provider": s.provider_id, "until": as_of.isoformat()}),
            }
        )
    return table


def _name(provider: Any) -> str:
    from liaison.analytics.refresh import _provider_name

    return _provider_name(provider.first_name, provider.last_name, provider.credential)


def referrer_stats(f: VolumeFilters) -> QuerySet[ReferrerStat]:
    qs = ReferrerStat.objects.all()
    if f.specialty:
        qs = qs.filter(specialty=f.specialty)
    if f.territory:
        qs = qs.filter(territory_id=f.territory)
    return qs


def top_referrers(f: VolumeFilters, as_of: date, limit: int = 20) -> Table:
    return _referrer_table(
        "top_referrers",
        "Top referrers",
        referrer_stats(f).order_by("-last_365", "provider_id")[:limit],
        as_of,
        note=f"Last 12 months: the 365 days to {as_of:%b %-d, %Y}. Share to us: patients shared with our "
        "physicians out of those shared with every physician of our specialty (market data); loyal from 60%.",
    )


def new_referrers(f: VolumeFilters, as_of: date, limit: int = 20) -> Table:
    since = as_of - timedelta(days=NEW_WITHIN_DAYS)
    return _referrer_table(
        "new_referrers",
        f"New referrers (first referral in the last {NEW_WITHIN_DAYS} days)",
        referrer_stats(f).filter(first_on__gt=since).order_by("-first_on", "provider_id")[:limit],
        as_of,
    )


def lapsed_referrers(f: VolumeFilters, as_of: date, limit: int = 20) -> Table:
    cutoff = as_of - timedelta(days=LAPSED_AFTER_DAYS)
    return _referrer_table(
        "lapsed_referrers",
        f"Lapsed referrers (3 or more referrals in all, none in {LAPSED_AFTER_DAYS} days)",
        referrer_stats(f)
        .filter(last_on__lt=cutoff, total__gte=3)
        .order_by("-last_on", "provider_id")[:limit],
        as_of,
    )


def alerts_table(open_only: bool = True, provider: int | None = None) -> Table:
    qs = CoolingAlert.objects.select_related(
        "provider", "account__practice", "account__location", "account__owner", "task"
    )
    if open_only:
        qs = qs.filter(cleared_on__isnull=True)
    if provider:
        qs = qs.filter(provider_id=provider)
    table = Table(
        name="cooling_alerts" if open_only else "alert_history",
        title="Cooling off: referrers at risk" if open_only else "Alert history",
        columns=[
            Column("referrer", "Referrer"),
            Column("account", "Account"),
            Column("owner", "Owner"),
            Column("explanation", "Why"),
            Column("p_value", "Probability", True),
            Column("last_on", "Last referral"),
            Column("opened_on", "Alert since"),
            Column("task", "Follow-up"),
            Column("cleared_on", "Cleared"),
        ],
        note="Each referrer's recent volume tested against its own baseline (rate, season, trend); "
        "see Cooling detection in the documentation. Follow-up: the task the alert gave the account's owner.",
    )
    alerts = list(qs.order_by("p_value", "-opened_on")[:200])
    last_on = dict(
        ReferrerStat.objects.filter(provider_id__in={a.provider_id for a in alerts}).values_list(
            "provider_id", "last_on"
        )
    )
    for a in alerts:
        task = a.task
        table.rows.append(
            {
                "referrer": _name(a.provider),
                "account": str(a.account) if a.account else "",
                "owner": a.account.owner.full_name if a.account and a.account.owner else "",
                "explanation": a.explanation,
                "p_value": f"{a.p_value:.2%}" if a.p_value >= 0.0001 else "< 0.01%",
                "last_on": last_on[a.provider_id].isoformat() if a.provider_id in last_on else "",
                "opened_on": a.opened_on.isoformat(),
                "task": ""
                if task is None
                else f"{task.get_status_display().lower()}, due {task.due_on:%b %-d, %Y}",
                "cleared_on": a.cleared_on.isoformat() if a.cleared_on else "",
            }
        )
        table.links.append(
            {
                "referrer": reverse("analytics:referrer", args=[a.provider_id]),
                "account": reverse("outreach:account", args=[a.account_id]) if a.account_id else "",
                "task": reverse("outreach:task_edit", args=[task.pk]) if task is not None else "",
            }
        )
    return table


def referrer_monthly(provider_id: int, as_of: date, months: int = 24) -> Table:
    """One referrer's history straight from the referrals (an index on referrer + date)."""
    from liaison.referrals.models import Referral

    first = month_start(as_of)
    for _ in range(months - 1):
        first = month_start(first - timedelta(days=1))
    tz = timezone.get_current_timezone()
    counts: dict[date, int] = defaultdict(int)
    for received in Referral.objects.filter(
        referring_provider_id=provider_id,
        received_at__gte=datetime.combine(first, datetime.min.time(), tzinfo=tz),
    ).values_list("received_at", flat=True):
        counts[month_start(received.astimezone(tz).date())] += 1
    table = Table(
        name="referrer_monthly",
        title="Referrals by month",
        columns=[Column("period", "Month"), Column("referrals", "Referrals", True)],
    )
    p = first
    while p <= as_of:
        table.rows.append({"period": p.strftime("%Y-%m"), "referrals": counts.get(p, 0)})
        table.links.append(
            {"referrals": drill_url({"provider": provider_id, "grain": Grain.MONTH, "period": p.isoformat()})}
        )
        p = month_start(p + timedelta(days=32))
    return table


# Drill-down ------------------------------------------------------------------------------------

OUTCOMES = {
    "scheduled": ("Scheduled", Q(appointment_at__isnull=False)),
    "seen": ("Seen", Q(seen_at__isnull=False)),
    "note_sent": ("Consult note sent", Q(note_sent_at__isnull=False)),
    "never_scheduled": ("Never scheduled", Q(appointment_at__isnull=True)),
    "never_seen": ("Scheduled, never seen", Q(appointment_at__isnull=False, seen_at__isnull=True)),
}


@dataclass
class DrillFilters:
    grain: str = ""
    period: date | None = None
    since: date | None = None
    until: date | None = None
    provider: int | None = None
    practice: int | None = None
    site: int | None = None
    physician: int | None = None
    service_line: int | None = None
    payer: str = ""
    specialty: str = ""
    territory: int | None = None
    outcome: str = ""
    coordinator: int | None = None


def drill_referrals(f: DrillFilters) -> QuerySet[Any]:
    """The referrals behind a number, as a queryset of plain values (never a patient field)."""
    from liaison.outreach.models import Territory
    from liaison.referrals.models import Referral

    tz = timezone.get_current_timezone()
    qs = Referral.objects.all()
    start = end = None
    if f.period and f.grain in Grain.values:
        start, end = period_bounds(f.grain, f.period)
    if f.since:
        start = max(start, f.since) if start else f.since
    if f.until:
        end = min(end, f.until + timedelta(days=1)) if end else f.until + timedelta(days=1)
    if start:
        qs = qs.filter(received_at__gte=datetime.combine(start, datetime.min.time(), tzinfo=tz))
    if end:
        qs = qs.filter(received_at__lt=datetime.combine(end, datetime.min.time(), tzinfo=tz))
    for key, column in (
        ("provider", "referring_provider_id"),
        ("practice", "referring_location__practice_id"),
        ("site", "site_id"),
        ("physician", "referred_to_physician_id"),
        ("service_line", "service_line_id"),
        ("coordinator", "assigned_to_id"),
    ):
        value = getattr(f, key)
        if value:
            qs = qs.filter(**{column: value})
    if f.payer:
        qs = qs.filter(payer=f.payer)
    if f.specialty:
        qs = qs.filter(referring_provider__primary_taxonomy_id=f.specialty)
    if f.territory:
        territory = Territory.objects.filter(pk=f.territory).first()
        if territory is None:
            return qs.none()
        from liaison.directory.models import Location

        counties = [c.rsplit(", ", 1) for c in territory.counties if ", " in c]
        place = Q(z5__in=territory.zip_codes)
        for county, state in counties:
            place |= Q(county=county, state=state)
        locations = Location.objects.annotate(z5=Substr("zip_code", 1, 5)).filter(place).values("pk")
        qs = qs.filter(referring_location__in=locations)
    if f.outcome in OUTCOMES:
        qs = qs.filter(OUTCOMES[f.outcome][1])
    return qs.order_by("-received_at", "-pk")


DRILL_VALUES = (
    "pk",
    "received_at",
    "status",
    "referring_provider__first_name",
    "referring_provider__last_name",
    "referring_provider__credential",
    "referring_location__practice__name",
    "site__name",
    "referred_to_physician__last_name",
    "service_line__name",
    "payer",
)


SIDE_COLUMNS = [
    Column("referrer", "Referrer"),
    Column("practice", "Practice"),
    Column("site", "Our site"),
    Column("physician", "Our physician"),
    Column("service_line", "Service line"),
]


def _sides(r: dict[str, Any]) -> dict[str, str]:
    """Who sent a referral, and where it went on our side."""
    referrer = " ".join(
        x for x in (r["referring_provider__first_name"], r["referring_provider__last_name"]) if x
    )
    physician = r["referred_to_physician__last_name"]
    return {
        "referrer": referrer or "(to match)",
        "practice": r["referring_location__practice__name"] or "",
        "site": r["site__name"] or "",
        "physician": f"Dr. {physician}" if physician else "",
        "service_line": r["service_line__name"] or "",
    }


def drill_table(rows: list[dict[str, Any]], *, identified: bool, payer: bool) -> Table:
    """The referrals behind a figure, one row each, never with a patient field. `identified` (roles
    that may open the referral, on the page) adds its number, linked, and exact date; otherwise the
    month only, since a number and any date but the year are identifiers under HIPAA's Safe Harbor
    rule. `payer` (roles that may see patient data) adds the payer, which with a month, a referrer
    and a service line could point at one patient of a small office."""
    from liaison.referrals.models import Status

    tz = timezone.get_current_timezone()
    columns = [Column("referral", "Referral")] if identified else []
    columns += [Column("received", "Received" if identified else "Month received"), *SIDE_COLUMNS]
    columns += [Column("payer", "Payer")] if payer else []
    table = Table(name="referrals", title="Referrals", columns=[*columns, Column("status", "Status")])
    labels = dict(Status.choices)
    for r in rows:
        received = r["received_at"].astimezone(tz)
        row = {
            "received": received.strftime("%Y-%m-%d" if identified else "%Y-%m"),
            **_sides(r),
            "status": labels.get(r["status"], r["status"]),
        }
        links = {}
        if identified:
            row["referral"] = f"#{r['pk']}"
            links["referral"] = reverse("referrals:detail", args=[r["pk"]])
        if payer:
            row["payer"] = r["payer"] or ""
        table.rows.append(row)
        table.links.append(links)
    return table


# Snapshot tables -------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".1f") -> Any:
    if value is None:
        return ""
    return format(value, spec)


def _names_of(model_path: str, ids: set[Any]) -> dict[Any, str]:
    from django.apps import apps

    model = apps.get_model(model_path)
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    if model_path == "directory.Provider":
        return {p.pk: _name(p) for p in model.objects.filter(pk__in=ids)}
    if model_path == "accounts.User":
        return dict(model.objects.filter(pk__in=ids).values_list("pk", "full_name"))
    return dict(model.objects.filter(pk__in=ids).values_list("pk", "name"))


def leakage_tables() -> list[Table]:
    data = snapshot("leakage")
    if not data:
        return []
    since, until = data["window"]
    reasons = Table(
        name="leakage_reasons",
        title="Why referrals leaked",
        columns=[
            Column("outcome", "Outcome"),
            Column("reason", "Reason"),
            Column("referrals", "Referrals", True),
        ],
        note=f"Referrals received {since} to {until} ({data['total']:,}): the last 30 days are left out "
        "because they may still be scheduled.",
    )
    for r in data["by_reason"]:
        reasons.rows.append(r)
        outcome = "never_scheduled" if r["outcome"] == "never scheduled" else "never_seen"
        reasons.links.append({"referrals": drill_url({"since": since, "until": until, "outcome": outcome})})
    tables = [reasons]
    for dim, model, label in (
        ("site", "directory.Location", "Our site"),
        ("referrer", "directory.Provider", "Referrer"),
    ):
        rows = data["by_site"] if dim == "site" else data["by_referrer"]
        key = "site" if dim == "site" else "provider"
        names = _names_of(model, {r[key] for r in rows})
        t = Table(
            name=f"leakage_by_{dim}",
            title=f"Leakage by {label.lower()}",
            columns=[
                Column("name", label),
                Column("referrals", "Referrals", True),
                Column("never_scheduled", "Never scheduled", True),
                Column("never_seen", "Scheduled, never seen", True),
                Column("leaked", "Leaked", True),
            ],
        )
        for r in sorted(rows, key=lambda r: -(r.get("never scheduled", 0) + r.get("never seen", 0))):
            leaked = r.get("never scheduled", 0) + r.get("never seen", 0)
            t.rows.append(
                {
                    "name": names.get(r[key], r.get("name") or "(none)"),
                    "referrals": r["referrals"],
                    "never_scheduled": r.get("never scheduled", 0),
                    "never_seen": r.get("never seen", 0),
                    "leaked": f"{leaked / r['referrals']:.0%}" if r["referrals"] else "",
                }
            )
            base = {"since": since, "until": until, key: r[key]}
            t.links.append(
                {
                    "referrals": drill_url(base),
                    "never_scheduled": drill_url({**base, "outcome": "never_scheduled"}),
                    "never_seen": drill_url({**base, "outcome": "never_seen"}),
                }
            )
        tables.append(t)
    return tables


def turnaround_tables() -> list[Table]:
    data = snapshot("turnaround")
    tables = []
    for dim, model, label in (
        ("site", "directory.Location", "Our site"),
        ("physician", "directory.Provider", "Our physician"),
        ("coordinator", "accounts.User", "Coordinator"),
    ):
        rows = data.get(dim, [])
        names = _names_of(model, {r["key"] for r in rows})
        t = Table(
            name=f"turnaround_{dim}",
            title=f"Turnaround by {label.lower()} (business days, last 12 months)",
            columns=[
                Column("name", label),
                Column("scheduled", "Scheduled", True),
                Column("appt_p50", "To appointment p50", True),
                Column("appt_p90", "p90", True),
                Column("appt_within", "Within level"),
                Column("notes", "Notes sent", True),
                Column("note_p50", "Visit to note p50", True),
                Column("note_p90", "p90", True),
                Column("note_within", "Within level"),
            ],
            note="Receipt to appointment, and visit to consult note sent, against each service line's level.",
        )
        for r in sorted(rows, key=lambda r: -r["scheduled"]):
            t.rows.append(
                {
                    "name": names.get(r["key"], "(none)"),
                    "scheduled": r["scheduled"],
                    "appt_p50": _fmt(r["appt_p50"]),
                    "appt_p90": _fmt(r["appt_p90"]),
                    "appt_within": _fmt(r["appt_within"], ".0%"),
                    "notes": r["notes"],
                    "note_p50": _fmt(r["note_p50"]),
                    "note_p90": _fmt(r["note_p90"]),
                    "note_within": _fmt(r["note_within"], ".0%"),
                }
            )
            key = {"site": "site", "physician": "physician", "coordinator": "coordinator"}[dim]
            t.links.append(
                {"scheduled": drill_url({key: r["key"], "outcome": "scheduled"})} if r["key"] else {}
            )
        tables.append(t)
    return tables


ATTRIBUTION_BY = {"kind": "Activity type", "liaison": "Liaison", "physician": "Our physician"}


def attribution_table(by: str) -> tuple[Table | None, str, int]:
    data = snapshot("attribution").get(by)
    if not data:
        return None, "", 0
    t = Table(
        name=f"attribution_{by}",
        title=f"Referrals attributed to outreach, by {ATTRIBUTION_BY[by].lower()}",
        columns=[
            Column("group", ATTRIBUTION_BY[by]),
            Column("touches", "Touches", True),
            Column("accounts", "Accounts", True),
            Column("before", "Before / account", True),
            Column("after", "After / account", True),
            Column("control", "Change in comparison accounts", True),
            Column("incremental", "Incremental referrals", True),
            Column("interval", "95% interval"),
            Column("cost", "Cost", True),
            Column("per_referral", "Cost per incremental referral", True),
        ],
    )
    kinds = {}
    if by == "kind":
        from liaison.outreach.models import ActivityKind

        kinds = dict(ActivityKind.choices)
    for r in [*data["rows"], data["overall"]]:
        interval = ""
        if r.get("low") is not None and r.get("high") is not None:
            interval = f"{r['low']:.1f} to {r['high']:.1f}"
        t.rows.append(
            {
                "group": kinds.get(r["group"], r["group"]),
                "touches": r["touches"],
                "accounts": r["accounts"],
                "before": _fmt(r["before_per_account"], ".2f"),
                "after": _fmt(r["after_per_account"], ".2f"),
                "control": _fmt(r["control_change_per_account"], "+.2f"),
                "incremental": _fmt(r["incremental"], ".1f"),
                "interval": interval,
                "cost": _fmt(r["cost"], ",.0f"),
                "per_referral": "no cost recorded"
                if not r["cost"]
                else "n/a"
                if r["cost_per_incremental"] is None
                else _fmt(r["cost_per_incremental"], ",.0f"),
            }
        )
    if data.get("starts"):
        first, last = (date.fromisoformat(d) for d in data["starts"])
        t.note = f"Episodes starting {first:%b %-d, %Y} to {last:%b %-d, %Y}. "
    t.note += (
        "Cost: what was recorded on the touches inside the evaluated episodes. Rows do not add up to "
        "'All outreach', which evaluates its own episodes (a touch that continues a chain of touches is "
        "not evaluated again)."
    )
    return t, data["method"], data["window_days"]


def kpi_tables(user: Any) -> list[Table]:
    """Managers and admins (and analysts) see everyone, by team; others their own row."""
    from liaison.accounts.models import Role

    data = snapshot("kpis")
    if not data:
        return []
    everyone = user.has_role(Role.ADMIN, Role.MANAGER, Role.ANALYST)
    period = " to ".join(data["period"])

    def mine(rows: list[dict], key: str = "user") -> list[dict]:
        return rows if everyone else [r for r in rows if r.get(key) == user.pk]

    tables = []
    liaisons = mine(data["liaisons"])
    if liaisons and (everyone or user.has_role(Role.LIAISON)):
        t = Table(
            name="kpi_liaisons",
            title="Liaisons",
            columns=[
                Column("name", "Liaison"),
                Column("opened", "Accounts opened", True),
                Column("touches_per_week", "Touches per week", True),
                Column("cadence", "Cadence kept"),
                Column("moves", "Pipeline moves", True),
            ],
            note=f"{period}. Opened: first referral after outreach. Cadence kept: cadence tasks due in the "
            "period done on time (today's once done). Moves: accounts moved forward (contacted, engaged, "
            "referring).",
        )
        for r in liaisons:
            t.rows.append(
                {
                    "name": r["name"],
                    "opened": r["opened"],
                    "touches_per_week": r["touches_per_week"],
                    "cadence": f"{r['cadence_kept']}/{r['cadence_due']}" if r["cadence_due"] else "",
                    "moves": r["moves"],
                }
            )
        tables.append(t)
    coordinators = mine(data["coordinators"])
    if coordinators and (everyone or user.has_role(Role.COORDINATOR)):
        t = Table(
            name="kpi_coordinators",
            title="Coordinators",
            columns=[
                Column("name", "Coordinator"),
                Column("scheduled", "Scheduled", True),
                Column("schedule_p50", "Days to schedule (p50)", True),
                Column("notify", "Office informed within a day"),
                Column("loop", "Loop closed on time"),
                Column("issues", "Issues resolved", True),
                Column("issue_days", "Days to resolve (p50)", True),
            ],
            note=f"{period}. Days are business days. Loop closed: consult note sent within the service "
            "line's level after the visit, so it reaches the referrer before the patient's follow-up.",
        )
        for r in coordinators:
            t.rows.append(
                {
                    "name": r["name"],
                    "scheduled": r["scheduled"],
                    "schedule_p50": _fmt(r["schedule_p50"]),
                    "notify": _fmt(r["notify_within_day"], ".0%"),
                    "loop": _fmt(r["loop_closed"], ".0%"),
                    "issues": r["issues_resolved"],
                    "issue_days": _fmt(r["issue_p50_days"]),
                }
            )
            t.links.append(
                {
                    "scheduled": drill_url(
                        {"coordinator": r["user"], "outcome": "scheduled", "since": data["period"][0]}
                    )
                }
            )
        tables.append(t)
    physicians = (
        data["physicians"] if everyone else [r for r in data["physicians"] if r.get("user") == user.pk]
    )
    if physicians:
        t = Table(
            name="kpi_physicians",
            title="Our physicians",
            columns=[
                Column("name", "Physician"),
                Column("lunches", "Lunches attended", True),
                Column("offices", "Offices met", True),
                Column("notes", "Consult notes", True),
                Column("note_p50", "Visit to note (p50, business days)", True),
            ],
            note=period,
        )
        for r in physicians:
            t.rows.append(
                {
                    k: (_fmt(r[k]) if k == "note_p50" else r[k])
                    for k in ("name", "lunches", "offices", "notes", "note_p50")
                }
            )
        tables.append(t)
    return tables


def reciprocity_table() -> Table:
    rows = snapshot("reciprocity").get("rows", [])
    t = Table(
        name="reciprocity",
        title="Reciprocity: referrals in and out per partner practice (last 12 months)",
        columns=[
            Column("name", "Practice"),
            Column("inbound", "They sent us", True),
            Column("outbound", "We sent them", True),
            Column("balance", "Balance", True),
        ],
    )
    for r in rows:
        t.rows.append({**r, "balance": r["inbound"] - r["outbound"]})
        t.links.append(
            {
                "name": reverse("directory:practice", args=[r["practice"]]),
                "inbound": drill_url(
                    {
                        "practice": r["practice"],
                        "since": (timezone.localdate() - timedelta(days=365)).isoformat(),
                    }
                ),
            }
        )
    return t
