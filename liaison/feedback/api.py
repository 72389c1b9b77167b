"""Issues raised by referring offices. No patient data (texts refuse obvious identifiers).
Reading: admin, manager, liaison, coordinator, analyst. Writing: admin, manager, liaison, coordinator."""

from datetime import date, datetime
from typing import Annotated, Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.pagination import PageNumberPagination, paginate

from liaison.accounts.models import User
from liaison.api import require
from liaison.directory.models import Contact, Location, Practice
from liaison.feedback import selectors, services
from liaison.feedback.models import InformedBy, Issue, IssueCategory, IssueStatus, Severity

router = Router(tags=["feedback"])

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class IssueEventOut(Schema):
    kind: str
    from_status: str
    to_status: str
    note: str
    informed_by: str
    at: datetime
    actor_label: str


class IssueOut(Schema):
    id: int
    practice_id: int
    location_id: int | None
    reporter_id: int | None
    category: str
    severity: str
    summary: str
    details: str
    assignee_id: int | None
    due_on: date | None
    status: str
    resolution: str
    resolved_at: datetime | None
    office_informed_at: datetime | None
    created_at: datetime


class IssueDetailOut(IssueOut):
    events: list[IssueEventOut]

    @staticmethod
    def resolve_events(obj: Issue) -> list[Any]:
        return list(obj.events.all())


class IssueIn(Schema):
    practice_id: Id
    category: IssueCategory
    summary: str = Field(min_length=1, max_length=200, description="no patient identifiers")
    severity: Severity = Severity.MEDIUM
    details: str = ""
    reporter_id: Id | None = Field(None, description="the office contact who raised it")
    location_id: Id | None = None
    assignee_id: Id | None = None
    due_on: date | None = Field(None, description="default: from the severity")


class OfficeInformedIn(Schema):
    how: InformedBy
    contact_id: Id | None = None
    note: str = ""


class IssuePatch(Schema):
    category: IssueCategory | None = None
    severity: Severity | None = None
    summary: str | None = Field(None, min_length=1, max_length=200)
    details: str | None = None
    reporter_id: Id | None = None
    location_id: Id | None = None
    due_on: date | None = None
    assignee_id: Id | None = None
    status: IssueStatus | None = Field(None, description="open, in_progress, resolved (with resolution)")
    resolution: str | None = None
    note: str = ""
    office_informed: OfficeInformedIn | None = Field(
        None, description="the last step: closes a resolved issue"
    )


def _user(pk: int | None) -> User | None:
    return get_object_or_404(User, pk=pk, is_active=True) if pk else None


@router.get(
    "/issues",
    response=list[IssueOut],
    summary="Issues from referring offices",
    description="status: 'open' (any open status), 'all', or one status; assignee: 'me', 'none' or a user id.",
)
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_issues(
    request: HttpRequest,
    status: str = "open",
    category: str = "",
    severity: str = "",
    assignee: str = "",
    practice_id: Id | None = None,
    overdue: bool = False,
) -> QuerySet[Issue]:
    require(request.user.can_read_outreach)
    practice = get_object_or_404(Practice, pk=practice_id) if practice_id else None
    f = selectors.IssueFilters(status, category, severity, assignee, practice, overdue)
    return selectors.search_issues(request.user, f)


@router.get("/issues/{issue_id}", response=IssueDetailOut)
def get_issue(request: HttpRequest, issue_id: Id) -> Issue:
    require(request.user.can_read_outreach)
    return selectors.get_issue_for_user(request.user, issue_id)


@router.post("/issues", response={201: IssueDetailOut}, summary="Log an issue an office raised")
def create_issue(request: HttpRequest, payload: IssueIn) -> Status[Issue]:
    require(request.user.can_log_outreach)
    practice = get_object_or_404(Practice, pk=payload.practice_id)
    issue = services.log_issue(
        actor=request.user,
        practice=practice,
        category=payload.category.value,
        summary=payload.summary,
        severity=payload.severity.value,
        details=payload.details,
        reporter=get_object_or_404(Contact, pk=payload.reporter_id) if payload.reporter_id else None,
        location=get_object_or_404(Location, pk=payload.location_id) if payload.location_id else None,
        assignee=_user(payload.assignee_id),
        due_on=payload.due_on,
    )
    return Status(201, selectors.get_issue_for_user(request.user, issue.pk))


@router.patch("/issues/{issue_id}", response=IssueDetailOut)
def update_issue(request: HttpRequest, issue_id: Id, payload: IssuePatch) -> Issue:
    require(request.user.can_log_outreach)
    issue = selectors.get_issue_for_user(request.user, issue_id)
    data = payload.dict(exclude_unset=True)
    fields: dict[str, Any] = {}
    for key in ("category", "severity"):
        if data.get(key) is not None:
            fields[key] = str(data[key].value if hasattr(data[key], "value") else data[key])
    for key in ("summary", "details", "due_on"):
        if key in data and data[key] is not None:
            fields[key] = data[key]
    if "reporter_id" in data:
        fields["reporter"] = (
            get_object_or_404(Contact, pk=data["reporter_id"]) if data["reporter_id"] else None
        )
    if "location_id" in data:
        fields["location"] = (
            get_object_or_404(Location, pk=data["location_id"]) if data["location_id"] else None
        )
    if fields:
        services.update_issue(issue, actor=request.user, **fields)
    if "assignee_id" in data:
        services.assign_issue(Issue.objects.get(pk=issue.pk), _user(data["assignee_id"]), actor=request.user)
    if data.get("status"):
        services.change_issue_status(
            issue,
            str(data["status"].value),
            actor=request.user,
            note=data.get("note", ""),
            resolution=data.get("resolution"),
        )
    elif data.get("note"):
        services.add_issue_note(issue, data["note"], actor=request.user)
    if data.get("office_informed"):
        inf = data["office_informed"]
        services.record_office_informed(
            issue,
            actor=request.user,
            how=str(inf["how"].value if hasattr(inf["how"], "value") else inf["how"]),
            contact=get_object_or_404(Contact, pk=inf["contact_id"]) if inf.get("contact_id") else None,
            note=inf.get("note", ""),
        )
    return selectors.get_issue_for_user(request.user, issue.pk)
