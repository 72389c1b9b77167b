"""The non-monetary compensation ledger (Stark law, 42 CFR 411.357(k)).

Rule (also in docs/outreach.md):

- Who counts: a referring **physician** in the Stark sense (42 CFR 411.351: doctor of medicine or
  osteopathy, dentist, podiatrist, optometrist, chiropractor). Mid-levels (NP, PA), nurses and
  office staff are listed as attendees but have no limit; our own physicians never count.
  Decided from the provider's primary NUCC taxonomy, else from the credential (MD, DO, DPM...).
- How much: the activity's cost divided per head among the people served from the office: the
  office attendees listed, or the head count given if more ate than are listed. Our own people
  (our physicians, the liaison) are not in the divisor, which makes each share larger: the
  conservative reading. Shares are rounded up to the cent.
- When: the calendar year of the activity's local date (the practice's time zone). Completed
  activities count; planned ones are shown as projections; cancelled ones count for nothing.
- The limit is set per calendar year by the admin (seeded: 2024 $507, 2025 $521, 2026 $535).
  A year without a limit uses the latest earlier one, and says so.
- Warnings: at 80 % of the limit, and when an activity (done or planned) would take a physician
  over it. Going over needs an explicit confirmation on the form or the API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal

from django.db.models import Count, Q, Sum

from liaison.directory.models import Provider
from liaison.outreach.models import ActivityStatus, CompensationLimit, LedgerEntry

WARNING_RATIO = Decimal("0.80")
CENT = Decimal("0.01")

STARK_PHYSICIAN_GROUPINGS = frozenset(
    {
        "Allopathic & Osteopathic Physicians",
        "Podiatric Medicine & Surgery Service Providers",
        "Chiropractic Providers",
    }
)
STARK_PHYSICIAN_CLASSIFICATIONS = frozenset({"Dentist", "Optometrist"})
STARK_PHYSICIAN_CREDENTIALS = frozenset({"MD", "DO", "DPM", "DC", "DDS", "DMD", "OD"})


def counts_against_limit(provider: Provider) -> bool:
    """Whether a provider is a referring physician whose non-monetary compensation is limited."""
    if provider.is_ours:
        return False
    taxonomy = provider.primary_taxonomy
    if taxonomy is not None:
        return (
            taxonomy.grouping in STARK_PHYSICIAN_GROUPINGS
            or taxonomy.classification in STARK_PHYSICIAN_CLASSIFICATIONS
        )
    tokens = set(re.split(r"[^A-Z]+", provider.credential.upper().replace(".", "")))
    return bool(tokens & STARK_PHYSICIAN_CREDENTIALS)


def per_head_share(cost: Decimal, office_attendees: int, head_count: int | None) -> Decimal:
    """Each person's share of `cost`; zero when nobody from the office was served."""
    heads = max(office_attendees, head_count or 0)
    if cost <= 0 or heads == 0:
        return Decimal("0.00")
    return (Decimal(cost) / heads).quantize(CENT, rounding=ROUND_UP)


@dataclass(frozen=True)
class YearLimit:
    year: int
    amount: Decimal
    set_for_year: int  # the year whose limit applies (an earlier one when this year has none)

    @property
    def is_carried_over(self) -> bool:
        return self.set_for_year != self.year


def limit_for(year: int, limits: Iterable[CompensationLimit] | None = None) -> YearLimit | None:
    rows = list(limits) if limits is not None else list(CompensationLimit.objects.filter(year__lte=year))
    candidates = [r for r in rows if r.year <= year]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: r.year)
    return YearLimit(year, best.amount, best.year)


@dataclass
class Standing:
    """A physician's year: what was spent on them, what is planned, against the limit."""

    provider: Provider
    year: int
    spent: Decimal
    planned: Decimal
    activities: int
    limit: YearLimit | None

    @property
    def projected(self) -> Decimal:
        return self.spent + self.planned

    @property
    def percent(self) -> int | None:
        if self.limit is None or not self.limit.amount:
            return None
        return int((100 * self.spent / self.limit.amount).to_integral_value(rounding=ROUND_UP))

    @property
    def level(self) -> str:
        """'over', 'warning' (80 % or a planned activity would exceed), or 'ok'."""
        if self.limit is None:
            return "ok"
        if self.spent > self.limit.amount:
            return "over"
        if self.spent >= WARNING_RATIO * self.limit.amount or self.projected > self.limit.amount:
            return "warning"
        return "ok"

    @property
    def remaining(self) -> Decimal | None:
        return None if self.limit is None else self.limit.amount - self.spent


def _sums(provider_ids: Iterable[int], year: int, exclude_activity_id: int | None = None) -> dict[int, dict]:
    qs = LedgerEntry.objects.filter(provider_id__in=list(provider_ids), year=year)
    if exclude_activity_id is not None:
        qs = qs.exclude(activity_id=exclude_activity_id)
    done = Q(activity__status=ActivityStatus.COMPLETED)
    planned = Q(activity__status=ActivityStatus.PLANNED)
    rows = qs.values("provider_id").annotate(
        spent=Sum("amount", filter=done), planned=Sum("amount", filter=planned), n=Count("pk", filter=done)
    )
    return {r["provider_id"]: r for r in rows}


def standings(providers: Iterable[Provider], year: int) -> list[Standing]:
    """Each provider's standing for `year` (two queries whatever the number of providers)."""
    providers = list(providers)
    sums = _sums([p.pk for p in providers], year)
    limit = limit_for(year)
    out = []
    for p in providers:
        s = sums.get(p.pk, {})
        out.append(
            Standing(
                p,
                year,
                s.get("spent") or Decimal("0"),
                s.get("planned") or Decimal("0"),
                s.get("n") or 0,
                limit,
            )
        )
    return out


@dataclass(frozen=True)
class LimitWarning:
    provider: Provider
    level: str  # "warning" (reaches 80 %) or "over"
    message: str
    total: Decimal
    limit: Decimal


def check_shares(
    shares: dict[Provider, Decimal], year: int, *, exclude_activity_id: int | None = None
) -> list[LimitWarning]:
    """Warnings for giving each provider `share` more in `year` (on top of what is done and planned)."""
    shares = {p: a for p, a in shares.items() if a > 0}
    if not shares:
        return []
    limit = limit_for(year)
    if limit is None:
        return []
    sums = _sums([p.pk for p in shares], year, exclude_activity_id)
    warnings = []
    for provider, share in shares.items():
        s = sums.get(provider.pk, {})
        total = (s.get("spent") or Decimal("0")) + (s.get("planned") or Decimal("0")) + share
        if total > limit.amount:
            warnings.append(
                LimitWarning(
                    provider,
                    "over",
                    f"{provider.display_name} would reach ${total:,.2f} in {year}, over the "
                    f"${limit.amount:,.2f} limit by ${total - limit.amount:,.2f} (this share ${share:,.2f}).",
                    total,
                    limit.amount,
                )
            )
        elif total >= WARNING_RATIO * limit.amount:
            pct = int((100 * total / limit.amount).to_integral_value(rounding=ROUND_UP))
            warnings.append(
                LimitWarning(
                    provider,
                    "warning",
                    f"{provider.display_name} reaches ${total:,.2f} of ${limit.amount:,.2f} in {year} ({pct} %).",
                    total,
                    limit.amount,
                )
            )
    return warnings


def yearly_report(year: int) -> list[Standing]:
    """Every referring physician with an entry in `year`, the most compensated first."""
    limit = limit_for(year)
    done = Q(activity__status=ActivityStatus.COMPLETED)
    planned = Q(activity__status=ActivityStatus.PLANNED)
    rows = list(
        LedgerEntry.objects.filter(year=year)
        .exclude(activity__status=ActivityStatus.CANCELLED)
        .values("provider_id")
        .annotate(
            spent=Sum("amount", filter=done),
            planned=Sum("amount", filter=planned),
            n=Count("pk", filter=done),
        )
    )
    providers = Provider.objects.select_related("primary_taxonomy").prefetch_related("locations__practice")
    by_id = {p.pk: p for p in providers.filter(pk__in=[r["provider_id"] for r in rows])}
    out = [
        Standing(
            by_id[r["provider_id"]],
            year,
            r["spent"] or Decimal("0"),
            r["planned"] or Decimal("0"),
            r["n"] or 0,
            limit,
        )
        for r in rows
    ]
    out.sort(key=lambda s: (-s.spent, -s.planned, s.provider.last_name, s.provider.first_name))
    return out
