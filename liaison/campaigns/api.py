"""Campaigns: segments, campaigns and their results, the suppression list. No patient data.
Reading: every role. Building and sending: admin, manager, liaison."""

from datetime import datetime
from typing import Annotated, Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.pagination import PageNumberPagination, paginate

from liaison.api import require
from liaison.campaigns import segments, selectors, services
from liaison.campaigns.models import Audience, Campaign, Consent, Segment, Suppression

router = Router(tags=["campaigns"])

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    audiences: list[str]
    tiers: list[str]
    stages: list[str]
    specialties: list[str]
    territories: list[int]
    touched_within_days: int | None
    untouched_days: int | None
    consent: str
    criteria: list[str]

    @staticmethod
    def resolve_criteria(obj: Segment) -> list[str]:
        return segments.describe(obj)


class SegmentIn(Schema):
    name: str = Field(min_length=1, max_length=150)
    description: str = ""
    audiences: list[Audience] = []
    tiers: list[str] = Field([], description="tier codes, e.g. A")
    stages: list[str] = []
    specialties: list[str] = Field([], description="NUCC taxonomy codes")
    territories: list[Id] = []
    touched_within_days: int | None = Field(None, ge=1, le=3660)
    untouched_days: int | None = Field(None, ge=1, le=3660)
    consent: Consent = Consent.ANY


class MemberOut(Schema):
    kind: str = Field(description="contact (office staff) or provider")
    id: int
    name: str
    audience: str
    email: str
    email_consent: bool
    practice_id: int
    practice_name: str
    location_id: int | None
    account_id: int | None


class MembersOut(Schema):
    count: int
    members: list[MemberOut]


class CampaignOut(Schema):
    id: int
    name: str
    kind: str
    status: str
    segment_id: int
    template_id: int
    featured_physician_id: int | None
    started_at: datetime | None
    finished_at: datetime | None
    job_run_id: int | None = Field(None, description="its progress: /jobs/{job_run_id}/")


class ReferralEffectOut(Schema):
    before: int
    after: int
    days_after: int
    offices: int


class ResultsOut(Schema):
    recipients: int
    by_status: dict[str, int]
    delivered: int
    printed: int
    bounced: int
    failed: int
    uncertain: int
    unsubscribed: int
    opened: int | None = None
    clicked: int | None = None
    quiz_answers: int | None = None
    quiz_all_correct: int | None = None
    quiz_winner_recipient_id: int | None = None
    rsvp_yes: int | None = None
    rsvp_no: int | None = None
    attended: int | None = None
    referrals: ReferralEffectOut | None = Field(
        None,
        description="referrals from the recipients' offices, up to 90 days after vs as many days before (counts)",
    )


class CampaignDetailOut(CampaignOut):
    audience: dict[str, int]
    results: ResultsOut | None


class RecipientOut(Schema):
    id: int
    name: str
    email: str
    status: str
    reason: str
    attempts: int
    sent_at: datetime | None
    practice_id: int | None
    contact_id: int | None
    provider_id: int | None


class SuppressionOut(Schema):
    email: str
    reason: str
    at: datetime
    campaign_id: int | None


class JobOut(Schema):
    job_id: int
    url: str


def _reader(request: HttpRequest) -> None:
    require(request.user.can_read_campaigns)


@router.get("/segments", response=list[SegmentOut], summary="Saved segments")
def list_segments(request: HttpRequest) -> QuerySet[Segment]:
    _reader(request)
    return selectors.segments_for(request.user).order_by("name", "pk")


@router.post("/segments", response={201: SegmentOut}, summary="Save a segment")
def create_segment(request: HttpRequest, payload: SegmentIn) -> Status[Segment]:
    require(request.user.can_send_campaigns)
    data = payload.dict()
    data["audiences"] = [str(a) for a in data["audiences"]]
    data["consent"] = str(data["consent"])
    return Status(201, services.save_segment(None, actor=request.user, **data))


@router.get("/segments/{segment_id}/members", response=MembersOut, summary="Who a segment means today")
def segment_members(request: HttpRequest, segment_id: Id, limit: int = 500) -> dict[str, Any]:
    _reader(request)
    segment = get_object_or_404(selectors.segments_for(request.user), pk=segment_id)
    members = segments.evaluate(segment)
    return {
        "count": len(members),
        "members": [
            {
                "kind": m.kind,
                "id": m.pk,
                "name": m.name,
                "audience": m.audience,
                "email": m.email,
                "email_consent": m.consent,
                "practice_id": m.practice_id,
                "practice_name": m.practice_name,
                "location_id": m.location_id,
                "account_id": m.account_id,
            }
            for m in members[: max(0, min(limit, 5000))]
        ],
    }


@router.get("/campaigns", response=list[CampaignOut], summary="Campaigns, newest first")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_campaigns(request: HttpRequest) -> QuerySet[Campaign]:
    _reader(request)
    return selectors.campaigns_for(request.user).order_by("-created_at", "-pk")


def _results(campaign: Campaign) -> dict[str, Any] | None:
    if campaign.is_draft:
        return None
    r = selectors.results(campaign)
    out: dict[str, Any] = {
        k: r[k]
        for k in ("recipients", "delivered", "printed", "bounced", "failed", "uncertain", "unsubscribed")
    }
    out["by_status"] = {value: n for value, _, n in r["by_status"]}
    out["opened"], out["clicked"] = r.get("opened"), r.get("clicked")
    if "quiz" in r:
        draw = r["quiz"]["draw"]
        out["quiz_answers"], out["quiz_all_correct"] = r["quiz"]["answers"], r["quiz"]["all_correct"]
        out["quiz_winner_recipient_id"] = draw.winner.recipient_id if draw and draw.winner else None
    if "event" in r:
        out["rsvp_yes"], out["rsvp_no"], out["attended"] = (
            r["event"]["yes"],
            r["event"]["no"],
            r["event"]["attended"],
        )
    effect = r["referrals"]
    if effect is not None:
        out["referrals"] = {
            "before": effect.before,
            "after": effect.after,
            "days_after": effect.days_after,
            "offices": effect.offices,
        }
    return out


@router.get("/campaigns/{campaign_id}", response=CampaignDetailOut, summary="A campaign and its results")
def get_campaign(request: HttpRequest, campaign_id: Id) -> Campaign:
    _reader(request)
    campaign = selectors.get_campaign_for_user(request.user, campaign_id)
    campaign.results = _results(campaign)  # type: ignore[attr-defined]
    return campaign


@router.get(
    "/campaigns/{campaign_id}/recipients",
    response=list[RecipientOut],
    summary="Each recipient and what happened",
)
@paginate(PageNumberPagination, page_size=100, max_page_size=1000)
def list_recipients(request: HttpRequest, campaign_id: Id, status: str = "") -> QuerySet[Any]:
    _reader(request)
    campaign = selectors.get_campaign_for_user(request.user, campaign_id)
    return selectors.recipients_of(campaign, status)


@router.post(
    "/campaigns/{campaign_id}/send", response={202: JobOut}, summary="Send (or print) a draft campaign"
)
def send_campaign(request: HttpRequest, campaign_id: Id) -> Status[dict[str, Any]]:
    require(request.user.can_send_campaigns)
    campaign = selectors.get_campaign_for_user(request.user, campaign_id)
    require(
        selectors.can_edit(request.user, campaign), "Only its author or a manager can send this campaign."
    )
    run = services.start_send(campaign, actor=request.user)
    return Status(202, {"job_id": run.pk, "url": f"/jobs/{run.pk}/"})


@router.get(
    "/suppressions", response=list[SuppressionOut], summary="Addresses never emailed (unsubscribed, bounced)"
)
@paginate(PageNumberPagination, page_size=100, max_page_size=1000)
def list_suppressions(request: HttpRequest) -> QuerySet[Suppression]:
    _reader(request)
    return selectors.suppressions()
