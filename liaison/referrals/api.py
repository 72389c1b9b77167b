"""Referral endpoints. Patient data: only roles that may see it (others get 403, audited);
physicians only their own patients (others' are 404); every read is audited."""

from datetime import date, datetime
from typing import Annotated, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema, Status
from ninja.pagination import PageNumberPagination, paginate

from liaison.core.pagination import ids_first
from liaison.referrals import selectors, services
from liaison.referrals.models import Referral
from liaison.referrals.models import Status as ReferralStatus

router = Router(tags=["referrals"])
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


def _phi_user(request: HttpRequest) -> Any:
    if not request.user.can_see_phi:
        services.record_denied(request.user, "", request.path)
        raise PermissionDenied("Referrals hold patient data, which your role does not give access to.")
    return request.user


def _get(request: HttpRequest, pk: int) -> Referral:
    try:
        return selectors.get_referral_for_user(_phi_user(request), pk)
    except Http404:
        services.record_denied(request.user, pk, request.path)
        raise


class ReferrerOut(Schema):
    id: int | None
    name: str
    npi: str


class ReferralOut(Schema):
    id: int
    status: str
    urgency: str
    channel: str
    patient_first_name: str
    patient_last_name: str
    patient_dob: date
    patient_phone: str
    patient_mrn: str
    payer: str
    member_id: str
    reason: str
    icd10_codes: str
    referrer: ReferrerOut
    referrer_to_match: bool
    site_id: int | None
    referred_to_physician_id: int | None
    service_line_id: int | None
    assigned_to_id: int | None
    received_at: datetime
    first_contact_at: datetime | None
    appointment_at: datetime | None
    seen_at: datetime | None
    note_sent_at: datetime | None
    closed_at: datetime | None
    next_statuses: list[str]

    @staticmethod
    def resolve_referrer(obj: Referral) -> dict[str, Any]:
        if obj.referring_provider is not None:
            p = obj.referring_provider
            return {"id": p.pk, "name": p.display_name, "npi": p.npi}
        r = obj.referrer_as_received
        return {
            "id": None,
            "name": f"{r.get('first_name', '')} {r.get('last_name', '')}".strip(),
            "npi": r.get("npi", ""),
        }

    @staticmethod
    def resolve_next_statuses(obj: Referral) -> list[str]:
        return list(obj.next_statuses)


class EventOut(Schema):
    at: datetime
    actor: str = Field(alias="actor_label")
    kind: str
    from_status: str
    to_status: str
    note: str
    data: dict


class ReferralIn(Schema):
    patient_first_name: str
    patient_last_name: str
    patient_dob: date
    patient_phone: str = ""
    patient_mrn: str = ""
    patient_zip: str = ""
    payer: str = ""
    member_id: str = ""
    reason: str = ""
    icd10_codes: str = ""
    urgency: str = "routine"
    channel: str = "ereferral"
    referring_npi: str = Field(
        "", description="matched against the directory; unknown = flagged 'referrer to match'"
    )
    referring_first_name: str = ""
    referring_last_name: str = ""
    referring_phone: str = ""
    referring_fax: str = ""
    site_id: Id | None = None
    referred_to_physician_id: Id | None = None
    service_line_id: Id | None = None


class StatusIn(Schema):
    status: str = Field(
        description="received, accepted, declined, scheduled, seen, no_show, cancelled, note_sent, closed"
    )
    note: str = ""
    appointment_at: datetime | None = None
    decline_reason: str = ""
    channel: str = ""
    included: list[str] = []


class QueueQuery(Schema):
    view: str = Field("open", description=", ".join(selectors.QUEUE_VIEWS))
    site: Id | None = None
    service_line: Id | None = None
    urgency: str = ""
    sort: str = "urgency"


class QueueSearch(QueueQuery):
    patient: str = Field("", description="the patient's exact last name")


def _queue(request: HttpRequest, filters: QueueQuery, patient: str = "") -> "_AuditedPage":
    user = _phi_user(request)
    if filters.view not in selectors.QUEUE_VIEWS:
        raise ValidationError({"view": [f"One of: {', '.join(selectors.QUEUE_VIEWS)}."]})
    f = selectors.QueueFilters(**{**filters.dict(exclude={"patient"}), "patient": patient})
    return _AuditedPage(selectors.work_queue(user, f), user, keys_first=not selectors.in_index_order(f))


@router.get("/referrals", response=list[ReferralOut], summary="The work queue (patient data: audited)")
@paginate(PageNumberPagination, page_size=50, max_page_size=200)
def list_referrals(request: HttpRequest, filters: Query[QueueQuery]) -> Any:
    return _queue(request, filters)


@router.post(
    "/referrals/search",
    response=list[ReferralOut],
    summary="The work queue, searched by patient (patient data: audited)",
    description="As `GET /referrals`, with the patient's last name in the body: a name in a URL would "
    "end up in server and proxy logs.",
)
@paginate(PageNumberPagination, page_size=50, max_page_size=200)
def search_referrals(request: HttpRequest, filters: QueueSearch) -> Any:
    return _queue(request, filters, filters.patient)


class _AuditedPage:
    """Lets the paginator slice the queryset (sorting the keys first where no index gives the
    order, as the queue page does), then audits exactly the referrals returned."""

    def __init__(self, qs: QuerySet[Referral], user: Any, *, keys_first: bool) -> None:
        self.qs, self.user, self.keys_first = qs, user, keys_first

    def count(self) -> int:
        return self.qs.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, item: slice) -> list[Referral]:
        if self.keys_first:
            rows = ids_first(self.qs, item.start or 0, item.stop)
        else:
            rows = list(self.qs[item])
        services.record_phi_list(self.user, rows, "api_list")
        return rows


@router.get("/referrals/{referral_id}", response=ReferralOut)
def get_referral(request: HttpRequest, referral_id: Id) -> Referral:
    referral = _get(request, referral_id)
    services.record_phi_view(request.user, referral, "api_view")
    return referral


@router.get("/referrals/{referral_id}/events", response=list[EventOut], summary="The referral's timeline")
def referral_events(request: HttpRequest, referral_id: Id) -> list[Any]:
    referral = _get(request, referral_id)
    services.record_phi_view(request.user, referral, "api_view")
    return selectors.timeline(referral)


@router.post("/referrals", response={201: ReferralOut})
def create_referral(request: HttpRequest, payload: ReferralIn) -> Status[Referral]:
    user = _phi_user(request)
    d = payload.dict()
    referrer = services.ReferrerInfo(
        npi=d.pop("referring_npi"),
        first_name=d.pop("referring_first_name"),
        last_name=d.pop("referring_last_name"),
        phone=d.pop("referring_phone"),
        fax=d.pop("referring_fax"),
    )
    referral = services.receive_referral(actor=user, referrer=referrer, **d)
    return Status(201, selectors.get_referral_for_user(user, referral.pk))


@router.post("/referrals/{referral_id}/status", response=ReferralOut, summary="Move along the lifecycle")
def change_status(request: HttpRequest, referral_id: Id, payload: StatusIn) -> Referral:
    referral = _get(request, referral_id)
    if payload.status not in ReferralStatus.values:
        raise ValidationError({"status": [f"One of: {', '.join(ReferralStatus.values)}."]})
    services.change_status(
        referral,
        payload.status,
        actor=request.user,
        note=payload.note,
        appointment_at=payload.appointment_at,
        decline_reason=payload.decline_reason,
        channel=payload.channel,
        included=payload.included,
    )
    return selectors.get_referral_for_user(request.user, referral.pk)
