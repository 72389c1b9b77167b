"""Reads of the market data that the pages, the API and the command line share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Sum

from liaison.directory.models import Location, Practice, Provider
from liaison.directory.selectors import specialty_q
from liaison.marketdata.models import (
    DirectoryChange,
    ImportKind,
    ImportRun,
    MedicareProfile,
    NppesRecord,
    Opportunity,
    ProcedureVolume,
    Prospect,
    SharedPatientPair,
)
from liaison.marketdata.scoring import latest_dataset, market_radius
from liaison.outreach.models import Account

MAX_RADIUS_MILES = 200


@dataclass
class OpportunityFilters:
    specialty: str = ""
    max_miles: float | None = None
    min_shared: int | None = None
    site: Location | None = None
    q: str = ""
    unflagged: bool = False


def _accounts_of(practice: Any) -> QuerySet[Account]:
    """The outreach accounts of a practice (an id or an OuterRef), the whole practice's first."""
    return Account.objects.filter(practice_id=practice).order_by(F("location_id").asc(nulls_first=True), "pk")


def opportunities(f: OpportunityFilters) -> QuerySet[Opportunity]:
    """Ranked opportunities with what the list shows, in a fixed number of queries: whether the
    provider was flagged, and the stage of its practice's outreach account if it has one (most
    good opportunities are offices the liaisons already work on)."""
    accounts = _accounts_of(OuterRef("practice_id"))
    qs = Opportunity.objects.select_related(
        "provider", "provider__primary_taxonomy", "practice", "nearest_site", "location"
    ).annotate(
        flagged=Exists(Prospect.objects.filter(provider_id=OuterRef("provider_id"))),
        account_id=Subquery(accounts.values("pk")[:1]),
        pipeline_stage=Subquery(accounts.values("stage")[:1]),
    )
    if f.specialty.strip():
        qs = qs.filter(
            Exists(Provider.objects.filter(pk=OuterRef("provider_id")).filter(specialty_q(f.specialty, "")))
        )
    if f.max_miles is not None:
        qs = qs.filter(distance_miles__lte=f.max_miles)
    if f.min_shared:
        qs = qs.alias(shared=F("shared_with_us") + F("shared_with_competitors")).filter(
            shared__gte=f.min_shared
        )
    if f.site is not None:
        qs = qs.filter(nearest_site=f.site)
    for token in f.q.split():
        qs = qs.filter(
            Q(provider__last_name__icontains=token)
            | Q(provider__first_name__icontains=token)
            | Q(practice__name__icontains=token)
            | Q(provider__npi__startswith=token)
        )
    if f.unflagged:  # neither flagged nor an account already
        qs = qs.filter(flagged=False, account_id__isnull=True)
    return qs.order_by("-score", "distance_miles", "pk")


def map_points(page: Any, sites: list[Location]) -> dict:
    """What the Leaflet map draws: our sites and the opportunities on this page."""
    return {
        "sites": [
            {"name": s.name or s.city, "lat": s.latitude, "lon": s.longitude}
            for s in sites
            if s.latitude is not None
        ],
        "opportunities": [
            {
                "name": o.provider.display_name,
                "practice": o.practice.name if o.practice else "",
                "score": o.score,
                "lat": o.location.latitude if o.location else None,
                "lon": o.location.longitude if o.location else None,
                "why": o.explanation,
            }
            for o in page
            if o.location is not None and o.location.latitude is not None
        ],
    }


@dataclass
class ChangesReport:
    run: ImportRun | None
    radius: float
    new_in_area: QuerySet[DirectoryChange] = field(default_factory=DirectoryChange.objects.none)
    new_practices_in_area: QuerySet[DirectoryChange] = field(default_factory=DirectoryChange.objects.none)
    moved: QuerySet[DirectoryChange] = field(default_factory=DirectoryChange.objects.none)
    deactivated: QuerySet[DirectoryChange] = field(default_factory=DirectoryChange.objects.none)
    reactivated: QuerySet[DirectoryChange] = field(default_factory=DirectoryChange.objects.none)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    new_in_area_count = property(lambda self: self.counts.get("new_in_area", 0))
    new_practices_in_area_count = property(lambda self: self.counts.get("new_practices_in_area", 0))
    moved_count = property(lambda self: self.counts.get("moved", 0))
    deactivated_count = property(lambda self: self.counts.get("deactivated", 0))
    reactivated_count = property(lambda self: self.counts.get("reactivated", 0))
    elsewhere_count = property(lambda self: self.counts.get("elsewhere", 0))


def nppes_runs() -> QuerySet[ImportRun]:
    return ImportRun.objects.filter(kind__in=[ImportKind.NPPES, ImportKind.DEACTIVATIONS]).order_by(
        "-started_at", "-pk"
    )


def directory_changes(run: ImportRun | None = None) -> ChangesReport:
    """New providers in our area, moves, deactivations and reactivations of one NPPES import
    (the latest by default)."""
    run = run or nppes_runs().filter(status=ImportRun.Status.SUCCEEDED).first()
    radius = market_radius()
    if run is None:
        return ChangesReport(run=None, radius=radius)
    base = DirectoryChange.objects.filter(run=run).select_related("nearest_site", "provider", "practice")
    in_area = Q(distance_miles__lte=radius)
    kinds = DirectoryChange.Kind
    report = ChangesReport(
        run=run,
        radius=radius,
        new_in_area=base.filter(in_area, kind=kinds.NEW).order_by("distance_miles", "name", "pk"),
        new_practices_in_area=base.filter(in_area, kind=kinds.NEW_PRACTICE).order_by(
            "distance_miles", "name", "pk"
        ),
        moved=base.filter(kind=kinds.MOVED).order_by("distance_miles", "name", "pk"),
        deactivated=base.filter(kind=kinds.DEACTIVATED).order_by("name", "pk"),
        reactivated=base.filter(kind=kinds.REACTIVATED).order_by("name", "pk"),
    )
    counts = {}
    for name in ("new_in_area", "new_practices_in_area", "moved", "deactivated", "reactivated"):
        counts[name] = getattr(report, name).count()
    counts["elsewhere"] = (
        DirectoryChange.objects.filter(run=run, kind__in=[kinds.NEW, kinds.NEW_PRACTICE])
        .exclude(in_area)
        .count()
    )
    report.counts = counts
    return report


@dataclass
class ProviderMarket:
    """The account intelligence a provider page shows."""

    opportunity: Opportunity | None
    profile: MedicareProfile | None
    procedures: list[ProcedureVolume]
    shared_with_us: int
    shared_pairs: int
    record: NppesRecord | None
    dataset: str
    flagged: bool
    account: Account | None  # the outreach account of the provider's practice, if any

    @property
    def empty(self) -> bool:
        return not (self.opportunity or self.profile or self.procedures or self.shared_pairs or self.record)


def provider_market(provider: Provider) -> ProviderMarket:
    opportunity = (
        Opportunity.objects.select_related("nearest_site", "practice").filter(provider=provider).first()
        if not provider.is_ours
        else None
    )
    profile = procedures = None
    if provider.npi:
        profile = MedicareProfile.objects.filter(npi=provider.npi).order_by("-year").first()
        year = (
            profile.year
            if profile
            else ProcedureVolume.objects.filter(npi=provider.npi)
            .order_by("-year")
            .values_list("year", flat=True)
            .first()
        )
        procedures = (
            list(
                ProcedureVolume.objects.filter(npi=provider.npi, year=year).order_by(
                    "-services", "hcpcs_code"
                )[:8]
            )
            if year
            else []
        )
    dataset = latest_dataset()
    shared_us = pairs = 0
    if dataset is not None and provider.npi:
        ours = Provider.objects.ours().exclude(npi="").values("npi")
        mine = SharedPatientPair.objects.filter(dataset=dataset).filter(
            Q(from_npi=provider.npi) | Q(to_npi=provider.npi)
        )
        pairs = mine.count()
        shared_us = (
            (
                mine.filter(Q(from_npi__in=ours) | Q(to_npi__in=ours))
                .exclude(from_npi=provider.npi, to_npi=provider.npi)
                .aggregate(n=Sum("patients"))["n"]
                or 0
            )
            if not provider.is_ours
            else 0
        )
    record = NppesRecord.objects.filter(npi=provider.npi).first() if provider.npi else None
    return ProviderMarket(
        opportunity=opportunity,
        profile=profile,
        procedures=procedures or [],
        shared_with_us=shared_us,
        shared_pairs=pairs,
        record=record,
        dataset=dataset.label if dataset else "",
        flagged=Prospect.objects.filter(provider=provider).exists(),
        account=pipeline_account(provider, opportunity) if not provider.is_ours else None,
    )


def practice_to_flag(provider: Provider, opportunity: Opportunity | None = None) -> Practice | None:
    """The practice a flag puts in the outreach pipeline: the opportunity's, else that of the
    provider's first office."""
    if opportunity is None:
        opportunity = Opportunity.objects.select_related("practice").filter(provider=provider).first()
    if opportunity is not None and opportunity.practice is not None:
        return opportunity.practice
    location = provider.locations.select_related("practice").order_by("pk").first()
    return location.practice if location is not None else None


def pipeline_account(provider: Provider, opportunity: Opportunity | None = None) -> Account | None:
    """The outreach account of the practice a flag would put in the pipeline, if it has one."""
    practice = practice_to_flag(provider, opportunity)
    return practice_account(practice.pk) if practice is not None else None


def practice_account(practice_id: int) -> Account | None:
    """The practice's outreach account (the whole practice's before one office's), if any."""
    return _accounts_of(practice_id).first()


def prospects() -> QuerySet[Prospect]:
    return Prospect.objects.select_related("practice", "provider", "flagged_by").order_by(
        "-flagged_at", "-pk"
    )
