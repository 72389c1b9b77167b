"""The refresh job: rebuild the analytics rollups from the referral and outreach history rows, run the
cooling detector, open and clear alerts (which mark accounts at risk through outreach's hooks), and
precompute the tables that are too costly to compute per page view.

It reads every referral once (no patient field: only ids, dates, statuses and the payer's name),
so its cost grows with the history, not with the number of page views. `liaison analytics refresh`
runs it from the command line (with a progress bar), the worker runs it every hour, and managers
can start it from the dashboard (with progress on the job page).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from liaison.analytics.models import (
    CoolingAlert,
    Grain,
    Loyalty,
    ReferrerStat,
    RefreshRun,
    Snapshot,
    VolumeCell,
)
from liaison.audit.services import record
from liaison.core.jobs import Progress

if TYPE_CHECKING:
    from liaison.analytics import attribution, cooling

ACTOR = "analytics"
WEEKS_KEPT = 26
LOYAL_SHARE = 0.6  # a referrer sending us at least this share of the patients it shares with our specialty
ALERT_TASK_DAYS = 7
KPI_DAYS = 28
TREND_MIN_CHANGE = 3  # referrals: a smaller change between the last two quarters is "steady"

STEPS = [
    "reading referrals",
    "volume rollups",
    "referrer statistics",
    "cooling detection",
    "leakage and turnaround",
    "outreach attribution",
    "KPIs and reciprocity",
]


@dataclass
class Loaded:
    """Every referral as parallel arrays (no patient data)."""

    ids: list[int] = field(default_factory=list)
    referrer: list[int | None] = field(default_factory=list)
    location: list[int | None] = field(default_factory=list)
    site: list[int | None] = field(default_factory=list)
    physician: list[int | None] = field(default_factory=list)
    service_line: list[int | None] = field(default_factory=list)
    payer: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    assigned: list[int | None] = field(default_factory=list)
    received: list[date] = field(default_factory=list)
    first_contact: list[date | None] = field(default_factory=list)
    appointment: list[date | None] = field(default_factory=list)
    seen: list[date | None] = field(default_factory=list)
    note: list[date | None] = field(default_factory=list)


def _local_date(value: datetime | None, tz: Any) -> date | None:
    return value.astimezone(tz).date() if value is not None else None


def load_referrals(as_of: date) -> Loaded:
    from liaison.referrals.models import Referral

    tz = timezone.get_current_timezone()
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    rows = (
        Referral.objects.filter(received_at__lt=end)
        .order_by()
        .values_list(
            "id",
            "referring_provider_id",
            "referring_location_id",
            "site_id",
            "referred_to_physician_id",
            "service_line_id",
            "payer",
            "status",
            "assigned_to_id",
            "received_at",
            "first_contact_at",
            "appointment_at",
            "seen_at",
            "note_sent_at",
        )
    )
    out = Loaded()
    for r in rows.iterator(chunk_size=20000):
        out.ids.append(r[0])
        out.referrer.append(r[1])
        out.location.append(r[2])
        out.site.append(r[3])
        out.physician.append(r[4])
        out.service_line.append(r[5])
        out.payer.append(r[6] or "")
        out.status.append(r[7])
        out.assigned.append(r[8])
        out.received.append(r[9].astimezone(tz).date())
        out.first_contact.append(_local_date(r[10], tz))
        out.appointment.append(_local_date(r[11], tz))
        out.seen.append(_local_date(r[12], tz))
        out.note.append(_local_date(r[13], tz))
    return out


def month_start(d: date) -> date:
    return d.replace(day=1)


def week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


# Lookups ---------------------------------------------------------------------------------------


@dataclass
class Lookups:
    specialty: dict[int, str]  # referring provider -> primary taxonomy code
    territory_of_location: dict[int, int | None]
    practice_of_location: dict[int, int]
    account_of_location: dict[int, int]  # an office account, else the practice's account
    provider_name: dict[int, str]


def build_lookups(data: Loaded) -> Lookups:
    from liaison.directory.models import Location, Provider
    from liaison.outreach.models import Account, Territory

    referrer_ids = {p for p in data.referrer if p is not None}
    location_ids = {loc for loc in data.location if loc is not None}
    specialty, names = {}, {}
    ids = list(referrer_ids)
    for i in range(0, len(ids), 5000):
        for pk, code, first, last, credential in Provider.objects.filter(
            pk__in=ids[i : i + 5000]
        ).values_list("pk", "primary_taxonomy_id", "first_name", "last_name", "credential"):
            specialty[pk] = code or ""
            names[pk] = _provider_name(first, last, credential)
    territories = list(Territory.objects.all())
    by_zip = {z: t.pk for t in territories for z in t.zip_codes}
    by_county = {c: t.pk for t in territories for c in t.counties}
    practice_accounts, office_accounts = {}, {}
    for pk, practice_id, location_id in Account.objects.values_list("pk", "practice_id", "location_id"):
        if location_id:
            office_accounts[location_id] = pk
        else:
            practice_accounts[practice_id] = pk
    territory_of, practice_of, account_of = {}, {}, {}
    ids = list(location_ids)
    for i in range(0, len(ids), 5000):
        for pk, practice_id, zip_code, county, state in Location.objects.filter(
            pk__in=ids[i : i + 5000]
        ).values_list("pk", "practice_id", "zip_code", "county", "state"):
            territory_of[pk] = by_zip.get((zip_code or "")[:5]) or (
                by_county.get(f"{county}, {state}") if county else None
            )
            practice_of[pk] = practice_id
            account = office_accounts.get(pk) or practice_accounts.get(practice_id)
            if account:
                account_of[pk] = account
    return Lookups(specialty, territory_of, practice_of, account_of, names)


def _provider_name(first: str, last: str, credential: str) -> str:
    name = f"{first} {last}".strip()
    if credential in ("MD", "DO"):
        return f"Dr. {name}"
    return f"{name}, {credential}" if credential else name


# Volume rollups --------------------------------------------------------------------------------


def rebuild_volume(data: Loaded, lk: Lookups, as_of: date) -> int:
    first_week = week_start(as_of) - timedelta(weeks=WEEKS_KEPT - 1)
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for i in range(len(data.ids)):
        received = data.received[i]
        loc = data.location[i]
        ref = data.referrer[i]
        dims = (
            data.site[i],
            data.physician[i],
            data.service_line[i],
            data.payer[i],
            lk.specialty.get(ref, "") if ref else "",
            lk.territory_of_location.get(loc) if loc else None,
        )
        flags = (
            1,
            1 if data.appointment[i] is not None else 0,
            1 if data.seen[i] is not None else 0,
            1 if data.note[i] is not None else 0,
        )
        keys = [(Grain.MONTH, month_start(received), *dims)]
        if received >= first_week:
            keys.append((Grain.WEEK, week_start(received), *dims))
        for key in keys:
            c = cells[key]
            c[0] += flags[0]
            c[1] += flags[1]
            c[2] += flags[2]
            c[3] += flags[3]
    objs = [
        VolumeCell(
            grain=k[0],
            period=k[1],
            site_id=k[2],
            physician_id=k[3],
            service_line_id=k[4],
            payer=k[5],
            specialty=k[6],
            territory_id=k[7],
            referrals=v[0],
            scheduled=v[1],
            seen=v[2],
            note_sent=v[3],
        )
        for k, v in cells.items()
    ]
    VolumeCell.objects.all().delete()
    VolumeCell.objects.bulk_create(objs, batch_size=2000)
    return len(objs)


# Referrer statistics ---------------------------------------------------------------------------


def referrer_histories(data: Loaded) -> dict[int, list[date]]:
    history: dict[int, list[date]] = defaultdict(list)
    for ref, received in zip(data.referrer, data.received, strict=True):
        if ref is not None:
            history[ref].append(received)
    return history


def _latest_location(data: Loaded) -> dict[int, int]:
    latest: dict[int, tuple[date, int]] = {}
    for ref, loc, received in zip(data.referrer, data.location, data.received, strict=True):
        if ref is None or loc is None:
            continue
        seen = latest.get(ref)
        if seen is None or received >= seen[0]:
            latest[ref] = (received, loc)
    return {ref: loc for ref, (_, loc) in latest.items()}


def rebuild_referrer_stats(
    history: dict[int, list[date]], data: Loaded, lk: Lookups, as_of: date
) -> dict[int, ReferrerStat]:
    from liaison.marketdata.models import Opportunity

    shares = {
        pk: (us, them)
        for pk, us, them in Opportunity.objects.filter(provider_id__in=list(history)).values_list(
            "provider_id", "shared_with_us", "shared_with_competitors"
        )
    }
    location_of = _latest_location(data)
    months = [month_start(as_of)]
    for _ in range(11):
        months.insert(0, month_start(months[0] - timedelta(days=1)))
    d90, d180, d365 = (as_of - timedelta(days=n) for n in (90, 180, 365))
    stats = {}
    for ref, dates in history.items():
        loc = location_of.get(ref)
        monthly = Counter(month_start(d) for d in dates if d >= months[0])
        us, them = shares.get(ref, (0, 0))
        # Every referrer here sent us patients: if CMS lists none shared with ours, its pairs with
        # them were under 11 (not published) or the data predate it, and the share is unknown.
        share = us / (us + them) if us else None
        stats[ref] = ReferrerStat(
            provider_id=ref,
            practice_id=lk.practice_of_location.get(loc) if loc else None,
            account_id=lk.account_of_location.get(loc) if loc else None,
            territory_id=lk.territory_of_location.get(loc) if loc else None,
            specialty=lk.specialty.get(ref, ""),
            first_on=min(dates),
            last_on=max(dates),
            total=len(dates),
            last_90=sum(1 for d in dates if d > d90),
            prev_90=sum(1 for d in dates if d180 < d <= d90),
            last_365=sum(1 for d in dates if d > d365),
            monthly=[monthly.get(m, 0) for m in months],
            share_with_us=share,
            loyalty=(
                Loyalty.UNKNOWN
                if share is None
                else Loyalty.LOYAL
                if share >= LOYAL_SHARE
                else Loyalty.SPLITTER
            ),
        )
    ReferrerStat.objects.all().delete()
    ReferrerStat.objects.bulk_create(stats.values(), batch_size=2000)
    return stats


# Cooling alerts --------------------------------------------------------------------------------


@dataclass
class AlertCounts:
    opened: int = 0
    cleared: int = 0
    verdicts: list[cooling.CoolingVerdict] = field(default_factory=list)


def run_cooling(
    history: dict[int, list[date]], stats: dict[int, ReferrerStat], lk: Lookups, as_of: date
) -> AlertCounts:
    """Open an alert for each newly cooling referrer (the account goes at risk and its owner gets a
    task) and clear the open alerts whose referrer recovered (the account leaves "at risk" when none
    of its referrers is still cooling). Safe to run any number of times for the same day."""
    from liaison.analytics import cooling

    all_dates = [d for dates in history.values() for d in dates]
    season = cooling.seasonal_index(all_dates, as_of) if all_dates else None
    verdicts = cooling.detect_many(
        {str(k): v for k, v in history.items()},
        as_of,
        names={str(k): lk.provider_name.get(k, f"Provider {k}") for k in history},
        seasonality=season,
    )
    counts = AlertCounts(verdicts=verdicts)
    by_provider = {int(v.referrer_id): v for v in verdicts}
    open_alerts = {a.provider_id: a for a in CoolingAlert.objects.filter(cleared_on__isnull=True)}
    touched_accounts: set[int] = set()
    for provider_id, verdict in by_provider.items():
        alert = open_alerts.get(provider_id)
        if verdict.cooling and alert is None:
            stat = stats.get(provider_id)
            _open_alert(provider_id, verdict, stat.account_id if stat else None, as_of)
            counts.opened += 1
        elif alert is not None and verdict.recovered:
            _clear_alert(alert, as_of, "referrals back in line with the baseline")
            counts.cleared += 1
            if alert.account_id:
                touched_accounts.add(alert.account_id)
    for account_id in touched_accounts:
        _maybe_clear_account(account_id)
    return counts


def _open_alert(
    provider_id: int, verdict: cooling.CoolingVerdict, account_id: int | None, as_of: date
) -> None:
    from liaison.outreach import services as outreach
    from liaison.outreach.models import Account, Stage, TaskKind, Trend

    with transaction.atomic():
        alert = CoolingAlert.objects.create(
            provider_id=provider_id,
            account_id=account_id,
            opened_on=as_of,
            baseline_per_month=verdict.baseline_per_month,
            history_months=verdict.history_months,
            expected_recent=verdict.expected_recent,
            recent_count=verdict.recent_count,
            recent_days=verdict.recent_days,
            p_value=verdict.p_value,
            explanation=verdict.explanation[:500],
        )
        record(
            ACTOR,
            "open_cooling_alert",
            alert,
            changes={
                "p_value": [None, round(verdict.p_value, 6)],
                "recent_count": [None, verdict.recent_count],
            },
        )
        if account_id is None:
            return
        account = Account.objects.select_related("owner").get(pk=account_id)
        outreach.set_referral_trend(account, trend=Trend.COOLING, actor=ACTOR)
        if account.stage in (Stage.REFERRING, Stage.AT_RISK):
            outreach.mark_at_risk(account, reason=verdict.explanation[:300], actor=ACTOR)
        if account.owner is not None and account.owner.is_active:
            task = outreach.create_task(
                actor=ACTOR,
                title=f"Referrals cooling: {verdict.explanation.split(' averaged')[0]}"[:200],
                details=verdict.explanation,
                due_on=as_of + timedelta(days=ALERT_TASK_DAYS),
                assignee=account.owner,
                account=account,
                kind=TaskKind.FOLLOW_UP,
            )
            CoolingAlert.objects.filter(pk=alert.pk).update(task=task)


def _clear_alert(alert: CoolingAlert, as_of: date, reason: str) -> None:
    with transaction.atomic():
        CoolingAlert.objects.filter(pk=alert.pk).update(cleared_on=as_of, cleared_reason=reason)
        record(ACTOR, "clear_cooling_alert", alert, changes={"cleared_on": [None, as_of.isoformat()]})


def _maybe_clear_account(account_id: int) -> None:
    from liaison.outreach import services as outreach
    from liaison.outreach.models import Account, Trend

    if CoolingAlert.objects.filter(account_id=account_id, cleared_on__isnull=True).exists():
        return
    account = Account.objects.get(pk=account_id)
    outreach.clear_at_risk(account, reason="referrals recovered (analytics)", actor=ACTOR)
    outreach.set_referral_trend(account, trend=Trend.STEADY, actor=ACTOR)


def update_trends(stats: dict[int, ReferrerStat]) -> int:
    """Rising / steady for accounts without an open alert, from their last two quarters."""
    from liaison.outreach import services as outreach
    from liaison.outreach.models import Account, Trend

    last, prev = Counter(), Counter()
    for s in stats.values():
        if s.account_id:
            last[s.account_id] += s.last_90
            prev[s.account_id] += s.prev_90
    cooling_accounts = set(
        CoolingAlert.objects.filter(cleared_on__isnull=True, account__isnull=False).values_list(
            "account_id", flat=True
        )
    )
    changed = 0
    for account in Account.objects.filter(pk__in=list(last | prev)).exclude(pk__in=cooling_accounts):
        a, b = last[account.pk], prev[account.pk]
        trend = Trend.RISING if a - b >= max(TREND_MIN_CHANGE, 0.25 * b) else Trend.STEADY
        if account.trend != trend:
            outreach.set_referral_trend(account, trend=trend, actor=ACTOR)
            changed += 1
    return changed


# Leakage and turnaround ------------------------------------------------------------------------


def _holidays() -> np.ndarray:
    from liaison.referrals.models import Holiday

    return np.array(list(Holiday.objects.values_list("date", flat=True)), dtype="datetime64[D]")


def business_days(starts: list[date], ends: list[date], holidays: np.ndarray) -> np.ndarray:
    if not starts:
        return np.array([], dtype=float)
    return np.busday_count(
        np.array(starts, dtype="datetime64[D]"), np.array(ends, dtype="datetime64[D]"), holidays=holidays
    ).astype(float)


def _pct(values: Iterable[float]) -> tuple[float | None, float | None]:
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return None, None
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 90))


def leakage(data: Loaded, lk: Lookups, as_of: date) -> dict[str, Any]:
    """Referrals received in the 12 months before the last 30 days (time to act): how many were
    never scheduled or never seen, why, by site and by referrer."""
    from liaison.referrals.models import DeclineReason, EventKind, ReferralEvent, Status

    decline_labels = dict(DeclineReason.choices)
    start, end = as_of - timedelta(days=395), as_of - timedelta(days=30)
    idx = [i for i in range(len(data.ids)) if start < data.received[i] <= end]
    declined_ids = [data.ids[i] for i in idx if data.status[i] == Status.DECLINED]
    reasons = (
        dict(
            ReferralEvent.objects.filter(
                kind=EventKind.STATUS, to_status=Status.DECLINED, referral_id__in=declined_ids
            ).values_list("referral_id", "data__decline_reason")
        )
        if declined_ids
        else {}
    )
    by_reason: Counter = Counter()
    by_site: dict[Any, Counter] = defaultdict(Counter)
    by_referrer: dict[Any, Counter] = defaultdict(Counter)
    for i in idx:
        scheduled = data.appointment[i] is not None
        seen = data.seen[i] is not None
        if not scheduled:
            outcome = "never scheduled"
            status = data.status[i]
            if status == Status.DECLINED:
                code = reasons.get(data.ids[i]) or ""
                reason = f"declined: {decline_labels.get(code, code or 'no reason given').lower()}"
            elif status == Status.CANCELLED:
                reason = "cancelled before scheduling"
            else:
                reason = "still waiting to be scheduled"
        elif not seen:
            outcome = "never seen"
            reason = {"no_show": "no-show", "cancelled": "cancelled after scheduling"}.get(
                data.status[i], "scheduled, visit not recorded"
            )
        else:
            outcome = "seen"
            reason = ""
        for bucket in (by_site[data.site[i]], by_referrer[data.referrer[i]]):
            bucket["referrals"] += 1
            bucket[outcome] += 1
        if reason:
            by_reason[(outcome, reason)] += 1
    top_refs = sorted(
        (r for r in by_referrer if r is not None),
        key=lambda r: -(by_referrer[r]["never scheduled"] + by_referrer[r]["never seen"]),
    )[:25]
    return {
        "window": [start.isoformat(), end.isoformat()],
        "total": len(idx),
        "by_reason": [{"outcome": o, "reason": r, "referrals": n} for (o, r), n in by_reason.most_common()],
        "by_site": [{"site": s, **c} for s, c in by_site.items()],
        "by_referrer": [
            {"provider": r, "name": lk.provider_name.get(r, ""), **by_referrer[r]} for r in top_refs
        ],
    }


def turnaround(data: Loaded, as_of: date) -> dict[str, Any]:
    """Receipt to appointment and visit to consult note, in business days (p50 / p90, share within
    the service line's level), per site, physician and coordinator, over the last 12 months."""
    from liaison.referrals.models import ServiceLine

    levels = {
        pk: (appt, note)
        for pk, appt, note in ServiceLine.objects.values_list("pk", "appointment_days", "note_days")
    }
    holidays = _holidays()
    start = as_of - timedelta(days=365)
    appt_idx = [i for i in range(len(data.ids)) if data.appointment[i] and data.received[i] > start]
    note_idx = [i for i in range(len(data.ids)) if data.seen[i] and data.note[i] and data.seen[i] > start]
    appt_days = business_days(
        [data.received[i] for i in appt_idx], [data.appointment[i] for i in appt_idx], holidays
    )
    note_days = business_days([data.seen[i] for i in note_idx], [data.note[i] for i in note_idx], holidays)
    out: dict[str, Any] = {}
    for dim, column in (("site", data.site), ("physician", data.physician), ("coordinator", data.assigned)):
        groups: dict[Any, dict[str, list]] = defaultdict(
            lambda: {"appt": [], "appt_ok": [], "note": [], "note_ok": []}
        )
        for j, i in enumerate(appt_idx):
            g = groups[column[i]]
            g["appt"].append(appt_days[j])
            level = levels.get(data.service_line[i])
            if level:
                g["appt_ok"].append(appt_days[j] <= level[0])
        for j, i in enumerate(note_idx):
            g = groups[column[i]]
            g["note"].append(note_days[j])
            level = levels.get(data.service_line[i])
            if level:
                g["note_ok"].append(note_days[j] <= level[1])
        rows = []
        for key, g in groups.items():
            a50, a90 = _pct(g["appt"])
            n50, n90 = _pct(g["note"])
            rows.append(
                {
                    "key": key,
                    "scheduled": len(g["appt"]),
                    "appt_p50": a50,
                    "appt_p90": a90,
                    "appt_within": (sum(g["appt_ok"]) / len(g["appt_ok"])) if g["appt_ok"] else None,
                    "notes": len(g["note"]),
                    "note_p50": n50,
                    "note_p90": n90,
                    "note_within": (sum(g["note_ok"]) / len(g["note_ok"])) if g["note_ok"] else None,
                }
            )
        out[dim] = rows
    return out


# Attribution -----------------------------------------------------------------------------------


def attribution_reports(data: Loaded, lk: Lookups, as_of: date) -> dict[str, Any]:
    from liaison.analytics import attribution
    from liaison.outreach.models import Account, Activity, ActivityStatus, Attendee

    start = as_of - timedelta(days=730)
    tz = timezone.get_current_timezone()
    # A year more of outreach than is reported: episodes, volume matching and the untouched
    # comparison accounts all look back before the first reported episode.
    activities = list(
        Activity.objects.filter(
            status=ActivityStatus.COMPLETED,
            account__isnull=False,
            occurred_at__date__gte=start - timedelta(days=365),
        ).values_list("pk", "account_id", "occurred_at", "kind", "cost", "liaison__full_name")
    )
    ours: dict[int, list[str]] = defaultdict(list)
    ids = [a[0] for a in activities]
    for i in range(0, len(ids), 5000):
        for activity_id, first, last, credential in Attendee.objects.filter(
            activity_id__in=ids[i : i + 5000], is_ours=True
        ).values_list("activity_id", "provider__first_name", "provider__last_name", "provider__credential"):
            ours[activity_id].append(_provider_name(first, last, credential))
    touches = [
        attribution.Touch(
            account_id=str(account),
            on=occurred.astimezone(tz).date(),
            kind=kind,
            cost=float(cost or 0),
            liaison=liaison or "",
            physicians=tuple(ours.get(pk, ())),
        )
        for pk, account, occurred, kind, cost, liaison in activities
    ]
    referrals: dict[str, list[date]] = defaultdict(list)
    for loc, received in zip(data.location, data.received, strict=True):
        account = lk.account_of_location.get(loc) if loc else None
        if account:
            referrals[str(account)].append(received)
    accounts = [str(pk) for pk in Account.objects.values_list("pk", flat=True)]
    out = {}
    for by in ("kind", "liaison", "physician"):
        report = attribution.estimate(touches, referrals, accounts, start=start, end=as_of, by=by)
        out[by] = {
            "window_days": report.window_days,
            # Episodes count when they start in these days (their after-window is then complete).
            "starts": [start.isoformat(), (as_of - timedelta(days=report.window_days)).isoformat()],
            "method": report.method,
            "overall": _row(report.overall),
            "rows": [_row(r) for r in report.rows],
        }
    return out


def _row(row: attribution.AttributionRow) -> dict[str, Any]:
    return {k: getattr(row, k) for k in row.__dataclass_fields__}


# KPIs and reciprocity --------------------------------------------------------------------------


def kpis(data: Loaded, as_of: date) -> dict[str, Any]:
    """The last `KPI_DAYS` days, per person (the weekly digest and the KPI pages read this)."""
    from liaison.accounts.models import Role, User
    from liaison.feedback.models import Issue
    from liaison.outreach.models import (
        PROSPECT_STAGES,
        Account,
        AccountStageChange,
        Activity,
        ActivityKind,
        ActivityStatus,
        Attendee,
        Stage,
        Task,
        TaskKind,
        TaskStatus,
    )
    from liaison.referrals.models import Notification

    tz = timezone.get_current_timezone()
    start = as_of - timedelta(days=KPI_DAYS - 1)
    start_dt = datetime.combine(start, datetime.min.time(), tzinfo=tz)
    end_dt = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    weeks = KPI_DAYS / 7
    users = {u.pk: u for u in User.objects.filter(is_active=True)}
    holidays = _holidays()

    liaisons: dict[int, dict[str, Any]] = {}
    for pk, u in users.items():
        if u.role in (Role.LIAISON, Role.MANAGER):
            liaisons[pk] = {
                "user": pk,
                "name": u.full_name,
                "opened": 0,
                "touches": 0,
                "moves": 0,
                "cadence_due": 0,
                "cadence_kept": 0,
            }
    for owner, n in Counter(
        Account.objects.filter(
            first_referral_after_outreach=True, first_referral_at__gte=start_dt, first_referral_at__lt=end_dt
        ).values_list("owner_id", flat=True)
    ).items():
        if owner in liaisons:
            liaisons[owner]["opened"] = n
    for liaison, n in Counter(
        Activity.objects.filter(
            status=ActivityStatus.COMPLETED, occurred_at__gte=start_dt, occurred_at__lt=end_dt
        ).values_list("liaison_id", flat=True)
    ).items():
        if liaison in liaisons:
            liaisons[liaison]["touches"] = n
    forward = [Stage.CONTACTED, Stage.ENGAGED, Stage.REFERRING]
    for owner, from_stage in AccountStageChange.objects.filter(
        at__gte=start_dt, at__lt=end_dt, to_stage__in=forward
    ).values_list("account__owner_id", "from_stage"):
        if owner in liaisons and (from_stage in PROSPECT_STAGES or not from_stage):
            liaisons[owner]["moves"] += 1
    for assignee, status, done_at, due_on in (
        Task.objects.filter(kind=TaskKind.CADENCE, due_on__gte=start, due_on__lte=as_of)
        .exclude(status=TaskStatus.CANCELLED)
        .values_list("assignee_id", "status", "done_at", "due_on")
    ):
        if assignee not in liaisons:
            continue
        kept = status == TaskStatus.DONE and done_at is not None and done_at.astimezone(tz).date() <= due_on
        if due_on == as_of and not kept:
            continue  # due today and not done yet: not late until the day is over
        liaisons[assignee]["cadence_due"] += 1
        liaisons[assignee]["cadence_kept"] += kept
    for row in liaisons.values():
        row["touches_per_week"] = round(row["touches"] / weeks, 1)
        row["cadence_kept_share"] = row["cadence_kept"] / row["cadence_due"] if row["cadence_due"] else None

    coordinators: dict[int, dict[str, Any]] = {
        pk: {
            "user": pk,
            "name": u.full_name,
            "scheduled": 0,
            "schedule_p50": None,
            "notified": 0,
            "notify_p50_hours": None,
            "notify_within_day": None,
            "notes": 0,
            "loop_closed": None,
            "issues_resolved": 0,
            "issue_p50_days": None,
        }
        for pk, u in users.items()
        if u.role in (Role.COORDINATOR, Role.MANAGER)
    }
    levels_note: dict[int, int] = {}
    from liaison.referrals.models import ServiceLine

    levels_note = dict(ServiceLine.objects.values_list("pk", "note_days"))
    sched: dict[int, list[tuple[date, date]]] = defaultdict(list)
    notes: dict[int, list[tuple[date, date, int | None]]] = defaultdict(list)
    for i in range(len(data.ids)):
        who = data.assigned[i]
        if who not in coordinators:
            continue
        first_sched = data.appointment[i]
        if first_sched and start <= data.received[i] <= as_of:
            sched[who].append((data.received[i], first_sched))
        if data.note[i] and data.seen[i] and start <= data.note[i] <= as_of:
            notes[who].append((data.seen[i], data.note[i], data.service_line[i]))
    for who, pairs in sched.items():
        days = business_days([a for a, _ in pairs], [b for _, b in pairs], holidays)
        coordinators[who]["scheduled"] = len(pairs)
        coordinators[who]["schedule_p50"] = float(np.percentile(days, 50))
    for who, triples in notes.items():
        days = business_days([a for a, _, _ in triples], [b for _, b, _ in triples], holidays)
        ok = [d <= levels_note.get(sl, 2) for d, (_, _, sl) in zip(days, triples, strict=True)]
        coordinators[who]["notes"] = len(triples)
        coordinators[who]["loop_closed"] = sum(ok) / len(ok)
    # Hours from the step to the office having heard of it: a letter counts once it was faxed or
    # mailed, not when it was prepared; one not sent yet counts as late once a day has passed.
    delays: dict[int, list[float]] = defaultdict(list)
    for assignee, sent, event_at in Notification.objects.filter(
        event__at__gte=start_dt, event__at__lt=end_dt
    ).values_list("referral__assigned_to_id", "sent_at", "event__at"):
        if assignee not in coordinators:
            continue
        if sent is None and (end_dt - event_at).total_seconds() < 86400:
            continue  # not due yet
        delays[assignee].append(
            math.inf if sent is None else max(0.0, (sent - event_at).total_seconds() / 3600)
        )
    for who, hours in delays.items():
        coordinators[who]["notified"] = len(hours)
        p50 = float(np.percentile(hours, 50, method="lower"))
        coordinators[who]["notify_p50_hours"] = p50 if math.isfinite(p50) else None  # most not sent
        coordinators[who]["notify_within_day"] = sum(h <= 24 for h in hours) / len(hours)
    resolved: dict[int, list[float]] = defaultdict(list)
    for assignee, created, resolved_at in Issue.objects.filter(
        resolved_at__gte=start_dt, resolved_at__lt=end_dt
    ).values_list("assignee_id", "created_at", "resolved_at"):
        if assignee in coordinators:
            resolved[assignee].append((resolved_at - created).total_seconds() / 86400)
    for who, days in resolved.items():
        coordinators[who]["issues_resolved"] = len(days)
        coordinators[who]["issue_p50_days"] = float(np.percentile(days, 50))

    physicians: dict[int, dict[str, Any]] = {}
    physician_users = {u.provider_id: u for u in users.values() if u.role == Role.PHYSICIAN and u.provider_id}
    from liaison.directory.models import Provider

    for pk, first, last, credential in Provider.objects.filter(is_ours=True).values_list(
        "pk", "first_name", "last_name", "credential"
    ):
        user = physician_users.get(pk)
        physicians[pk] = {
            "provider": pk,
            "user": user.pk if user else None,
            "name": _provider_name(first, last, credential),
            "lunches": 0,
            "offices": 0,
            "notes": 0,
            "note_p50": None,
        }
    offices: dict[int, set] = defaultdict(set)
    for provider, account in Attendee.objects.filter(
        is_ours=True,
        activity__kind=ActivityKind.LUNCH,
        activity__status=ActivityStatus.COMPLETED,
        activity__occurred_at__gte=start_dt,
        activity__occurred_at__lt=end_dt,
    ).values_list("provider_id", "activity__account_id"):
        if provider in physicians:
            physicians[provider]["lunches"] += 1
            offices[provider].add(account)
    for provider, accounts in offices.items():
        physicians[provider]["offices"] = len(accounts)
    turn: dict[int, list[tuple[date, date]]] = defaultdict(list)
    for i in range(len(data.ids)):
        p = data.physician[i]
        if p in physicians and data.note[i] and data.seen[i] and start <= data.note[i] <= as_of:
            turn[p].append((data.seen[i], data.note[i]))
    for p, pairs in turn.items():
        days = business_days([a for a, _ in pairs], [b for _, b in pairs], holidays)
        physicians[p]["notes"] = len(pairs)
        physicians[p]["note_p50"] = float(np.percentile(days, 50))

    def active(rows: dict[int, dict[str, Any]], role: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
        """Everyone of the role; managers only where they did that work in the period."""
        kept = [r for pk, r in rows.items() if users[pk].role == role or any(r[k] for k in keys)]
        return sorted(kept, key=lambda r: r["name"])

    return {
        "period": [start.isoformat(), as_of.isoformat()],
        "liaisons": active(liaisons, Role.LIAISON, ("touches", "opened", "moves", "cadence_due")),
        "coordinators": active(
            coordinators, Role.COORDINATOR, ("scheduled", "notes", "notified", "issues_resolved")
        ),
        "physicians": sorted(physicians.values(), key=lambda r: r["name"]),
    }


def reciprocity(data: Loaded, lk: Lookups, as_of: date) -> list[dict[str, Any]]:
    """Referrals in (from each partner practice) and out (from us to it), over the last 12 months."""
    from liaison.directory.models import Practice
    from liaison.referrals.models import OutboundReferral

    start = as_of - timedelta(days=365)
    tz = timezone.get_current_timezone()
    start_dt = datetime.combine(start, datetime.min.time(), tzinfo=tz)
    inbound: Counter = Counter()
    for loc, received in zip(data.location, data.received, strict=True):
        if loc and received > start:
            practice = lk.practice_of_location.get(loc)
            if practice:
                inbound[practice] += 1
    outbound = Counter(
        OutboundReferral.objects.filter(sent_at__gte=start_dt, to_location__isnull=False).values_list(
            "to_location__practice_id", flat=True
        )
    )
    partners = set(outbound) | {p for p, _ in inbound.most_common(200)}
    names = dict(Practice.objects.filter(pk__in=partners).values_list("pk", "name"))
    rows = [
        {
            "practice": p,
            "name": names.get(p, ""),
            "inbound": inbound.get(p, 0),
            "outbound": outbound.get(p, 0),
        }
        for p in partners
    ]
    rows.sort(key=lambda r: (-(r["inbound"] + r["outbound"]), r["name"]))
    return rows


# The job ---------------------------------------------------------------------------------------


def refresh(*, as_of: date | None = None, progress: Progress | None = None, actor: Any = ACTOR) -> RefreshRun:
    """Rebuild everything; returns the finished RefreshRun. Dashboards read the previous run's
    figures until this one commits each table."""
    progress = progress or Progress()
    as_of = as_of or timezone.localdate()
    run = RefreshRun.objects.create(as_of=as_of, actor_label=str(actor)[:254])
    began = time.monotonic()
    progress.start(len(STEPS), STEPS[0])
    try:
        data = load_referrals(as_of)
        lk = build_lookups(data)
        progress.advance(1, STEPS[1])
        with transaction.atomic():
            rebuild_volume(data, lk, as_of)
        progress.advance(1, STEPS[2])
        history = referrer_histories(data)
        with transaction.atomic():
            stats = rebuild_referrer_stats(history, data, lk, as_of)
        progress.advance(1, STEPS[3])
        alerts = run_cooling(history, stats, lk, as_of)
        update_trends(stats)
        progress.advance(1, STEPS[4])
        _save_snapshot("leakage", leakage(data, lk, as_of))
        _save_snapshot("turnaround", turnaround(data, as_of))
        progress.advance(1, STEPS[5])
        _save_snapshot("attribution", attribution_reports(data, lk, as_of))
        progress.advance(1, STEPS[6])
        _save_snapshot("kpis", kpis(data, as_of))
        _save_snapshot("reciprocity", {"rows": reciprocity(data, lk, as_of)})
        progress.advance(1, "done")
    except Exception as exc:
        RefreshRun.objects.filter(pk=run.pk).update(
            status=RefreshRun.Status.FAILED,
            finished_at=timezone.now(),
            message=type(exc).__name__,
            seconds=time.monotonic() - began,
        )
        raise
    seconds = time.monotonic() - began
    RefreshRun.objects.filter(pk=run.pk).update(
        status=RefreshRun.Status.DONE,
        finished_at=timezone.now(),
        referrals=len(data.ids),
        referrers=len(history),
        alerts_opened=alerts.opened,
        alerts_cleared=alerts.cleared,
        seconds=seconds,
    )
    run.refresh_from_db()
    progress.finish(
        f"{len(data.ids):,} referrals, {len(history):,} referrers; "
        f"{alerts.opened} alerts opened, {alerts.cleared} cleared ({seconds:.1f} s)",
        result={
            "referrals": len(data.ids),
            "cooling alerts opened": alerts.opened,
            "cooling alerts cleared": alerts.cleared,
        },
    )
    return run


def _save_snapshot(name: str, data: Any) -> None:
    Snapshot.objects.update_or_create(name=name, defaults={"data": data, "computed_at": timezone.now()})
