"""Market data endpoints: the ranked opportunities and the prospects flagged for outreach."""

from datetime import datetime
from typing import Annotated

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import PageNumberPagination, paginate

from liaison.api import require
from liaison.directory.models import Provider
from liaison.directory.selectors import our_sites
from liaison.marketdata import selectors, services
from liaison.marketdata.models import Opportunity, Prospect

router = Router(tags=["market data"])

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class OpportunityOut(Schema):
    provider_id: int
    provider_name: str
    npi: str
    practice_id: int | None
    practice_name: str
    specialty: str
    score: float = Field(description="0-100")
    explanation: str
    distance_miles: float
    nearest_site_id: int | None
    shared_with_us: int
    our_physicians: int
    shared_with_competitors: int
    competitors: int
    volume: int
    specialty_fit: float
    points: dict[str, float] = Field(
        description="the score's parts: leakage, relationship, volume, fit, proximity"
    )
    flagged: bool = Field(description="flagged for the outreach pipeline from market data")
    pipeline_stage: str | None = Field(
        description="the stage of the practice's outreach account (target, contacted, engaged, "
        "referring, at_risk, lapsed); null: not in the pipeline"
    )

    @staticmethod
    def resolve_provider_name(obj: Opportunity) -> str:
        return obj.provider.display_name

    @staticmethod
    def resolve_npi(obj: Opportunity) -> str:
        return obj.provider.npi

    @staticmethod
    def resolve_practice_name(obj: Opportunity) -> str:
        return obj.practice.name if obj.practice else ""

    @staticmethod
    def resolve_specialty(obj: Opportunity) -> str:
        return obj.provider.primary_taxonomy.name if obj.provider.primary_taxonomy else ""

    @staticmethod
    def resolve_points(obj: Opportunity) -> dict[str, float]:
        return obj.components.get("points", {})


class OpportunityQuery(FilterSchema):
    q: str = Field("", description="name words or the start of an NPI")
    specialty: str = Field("", description="NUCC code or words of a specialty name")
    max_miles: float | None = Field(None, gt=0, le=selectors.MAX_RADIUS_MILES)
    min_shared: int | None = Field(
        None, ge=0, description="at least this many patients shared with us and competitors"
    )
    site: Id | None = Field(None, description="nearest to this site (location id)")
    unflagged: bool = Field(False, description="only those neither flagged nor at a practice in the pipeline")

    def to_filters(self) -> selectors.OpportunityFilters:
        site = get_object_or_404(our_sites(), pk=self.site) if self.site is not None else None
        return selectors.OpportunityFilters(
            q=self.q,
            specialty=self.specialty,
            max_miles=self.max_miles,
            min_shared=self.min_shared,
            site=site,
            unflagged=self.unflagged,
        )


class ProspectIn(Schema):
    provider_id: Id


class ProspectOut(Schema):
    id: int
    practice_id: int
    provider_id: int | None
    flagged_by: str | None
    flagged_at: datetime
    score: float | None
    explanation: str

    @staticmethod
    def resolve_flagged_by(obj: Prospect) -> str | None:
        return obj.flagged_by.email if obj.flagged_by else None


@router.get(
    "/opportunities", response=list[OpportunityOut], summary="Ranked referral opportunities near our sites"
)
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_opportunities(request: HttpRequest, filters: Query[OpportunityQuery]) -> QuerySet[Opportunity]:
    require(request.user.can_see_market_data, "Your role does not see market data.")
    return selectors.opportunities(filters.to_filters())


@router.get("/prospects", response=list[ProspectOut], summary="Providers and practices flagged for outreach")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_prospects(request: HttpRequest) -> QuerySet[Prospect]:
    require(request.user.can_see_market_data, "Your role does not see market data.")
    return selectors.prospects()


@router.post(
    "/prospects",
    response={200: ProspectOut, 201: ProspectOut},
    summary="Add a provider to the outreach pipeline",
)
def create_prospect(request: HttpRequest, payload: ProspectIn) -> Status[Prospect]:
    require(request.user.can_flag_prospects, "Your role cannot add prospects to the outreach pipeline.")
    provider = Provider.objects.filter(pk=payload.provider_id).first()
    if provider is None:
        raise ValidationError({"provider_id": [f"No provider {payload.provider_id}."]})
    prospect, created = services.flag_prospect(actor=request.user, provider=provider)
    return Status(201 if created else 200, prospect)
