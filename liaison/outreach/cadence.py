"""Cadence: which accounts are due a touch, by their tier's rules.

Two kinds of rule (docs/outreach.md, "Cadence"):

- **Rolling** (days, weeks): the next touch is due `every` days after the last completed one;
  an account never touched is due today. The task is created a week ahead of the due date.
- **Calendar** (months, quarters): at least one touch in each calendar period (periods of
  `every` months or quarters counted from 1 January). A touch in December does not count for
  January's quarter. The task, due on the period's last day, is created in the period's final
  stretch (its last third, at most 30 days), unless the period already has a touch.

A planned (scheduled) activity that would satisfy the rule stops the task being created.
Touches: "visit" is any in-person activity (visit, lunch, drop-in, event); "lunch" is a lunch
or in-service; "any touch" includes calls, emails and letters.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Max, Min, OuterRef, QuerySet, Subquery
from django.utils import timezone

from liaison.outreach.models import (
    TOUCH_KINDS,
    Account,
    Activity,
    ActivityStatus,
    CadenceRule,
    CadenceUnit,
    Touch,
)

ROLLING_LEAD_DAYS = 7
CALENDAR_LEAD_MAX_DAYS = 30


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    return date(d.year + y, m + 1, 1)


def period_bounds(day: date, unit: str, every: int) -> tuple[date, date]:
    """The calendar period containing `day`: blocks of `every` months or quarters from 1 January."""
    months = every * (3 if unit == CadenceUnit.QUARTER else 1)
    start_month = (day.month - 1) // months * months + 1
    start = date(day.year, start_month, 1)
    end = min(_add_months(start, months), date(day.year + 1, 1, 1)) - timedelta(days=1)
    return start, end


def period_label(start: date, end: date, unit: str, every: int) -> str:
    if unit == CadenceUnit.QUARTER and every == 1:
        return f"Q{(start.month - 1) // 3 + 1} {start.year}"
    if unit == CadenceUnit.MONTH and every == 1:
        return f"{calendar.month_name[start.month]} {start.year}"
    return f"{start:%b} – {end:%b %Y}"


@dataclass(frozen=True)
class Due:
    """An account that needs a touch by `due_on` under `rule`."""

    account: Account
    rule: CadenceRule
    last_touch: date | None
    due_on: date
    period: str  # e.g. "Q1 2026" for calendar rules, "" for rolling ones

    @property
    def touch(self) -> str:
        return self.rule.touch

    def is_overdue(self, today: date) -> bool:
        return self.due_on < today

    @property
    def title(self) -> str:
        what = {Touch.IN_PERSON: "Visit", Touch.LUNCH: "Lunch or in-service", Touch.ANY: "Touch base with"}[
            self.rule.touch
        ]
        sep = " at" if self.rule.touch == Touch.LUNCH else ""
        when = f" in {self.period}" if self.period else ""
        return f"{what}{sep} {self.account}{when} ({self.rule.tier}: {self.rule})"[:200]


def evaluate_rule(
    rule: CadenceRule, last_touch: date | None, next_planned: date | None, today: date
) -> tuple[date, str] | None:
    """(due date, period label) if a task should exist today under `rule`, else None."""
    if rule.unit in (CadenceUnit.DAY, CadenceUnit.WEEK):
        interval = timedelta(days=rule.every * (7 if rule.unit == CadenceUnit.WEEK else 1))
        due = last_touch + interval if last_touch else today
        if due - today > timedelta(days=ROLLING_LEAD_DAYS):
            return None
        if next_planned is not None and next_planned >= today:
            return None  # already scheduled
        return due, ""
    start, end = period_bounds(today, rule.unit, rule.every)
    if last_touch is not None and last_touch >= start:
        return None  # this period already has its touch
    if next_planned is not None and start <= next_planned <= end:
        return None
    lead = min(CALENDAR_LEAD_MAX_DAYS, ((end - start).days + 1) // 3)
    if (end - today).days >= lead:
        return None
    return end, period_label(start, end, rule.unit, rule.every)


def _touch_annotations() -> dict:
    """Per touch: the last completed and the next planned activity of the matching kinds."""
    out = {}
    for touch, kinds in TOUCH_KINDS.items():
        acts = Activity.objects.filter(account=OuterRef("pk"), kind__in=list(kinds))
        out[f"last_{touch}"] = Subquery(
            acts.filter(status=ActivityStatus.COMPLETED)
            .values("account")
            .annotate(m=Max("occurred_at"))
            .values("m")[:1]
        )
        out[f"next_{touch}"] = Subquery(
            acts.filter(status=ActivityStatus.PLANNED, occurred_at__gte=timezone.now() - timedelta(days=1))
            .values("account")
            .annotate(m=Min("occurred_at"))
            .values("m")[:1]
        )
    return out


def with_touches(qs: QuerySet[Account]) -> QuerySet[Account]:
    """Accounts annotated with last_<touch> / next_<touch> datetimes (one query)."""
    return qs.annotate(**_touch_annotations())


def _local(value: datetime | None) -> date | None:
    return timezone.localdate(value) if value is not None else None


def due_touches(accounts: Iterable[Account], today: date | None = None) -> list[Due]:
    """Due touches of accounts annotated by `with_touches` whose tier (and its rules) is prefetched."""
    today = today or timezone.localdate()
    out = []
    for account in accounts:
        if account.tier is None:
            continue
        for rule in account.tier.rules.all():
            last = _local(getattr(account, f"last_{rule.touch}"))
            nxt = _local(getattr(account, f"next_{rule.touch}"))
            found = evaluate_rule(rule, last, nxt, today)
            if found is not None:
                out.append(Due(account, rule, last, found[0], found[1]))
    out.sort(key=lambda d: (d.due_on, d.account.practice.name))
    return out


def accounts_for_cadence(qs: QuerySet[Account] | None = None) -> QuerySet[Account]:
    qs = Account.objects.all() if qs is None else qs
    return with_touches(
        qs.filter(tier__isnull=False)
        .exclude(stage="lapsed")
        .select_related("practice", "location", "tier", "owner")
        .prefetch_related("tier__rules__tier")
    )
