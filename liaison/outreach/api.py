"""Outreach endpoints: accounts (the pipeline), activities (with attendees, materials, ledger
shares) and tasks. No patient data. Reading: admin, manager, liaison, coordinator, analyst (and a
physician: the activities they attended, their own tasks). Writing: see the selectors' rules."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.pagination import PageNumberPagination, paginate

from liaison.accounts.models import User
from liaison.api import require
from liaison.directory.models import Contact, Location, Practice, Provider
from liaison.outreach import selectors, services
from liaison.outreach.models import (
    Account,
    Activity,
    ActivityKind,
    ActivityStatus,
    CollateralItem,
    Stage,
    Task,
    TaskStatus,
    Tier,
)

router = Router(tags=["outreach"])

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Money = Annotated[Decimal, Field(ge=0, max_digits=8, decimal_places=2)]


# Schemas -------------------------------------------------------------------------------------------


class AttendeeOut(Schema):
    provider_id: int | None
    contact_id: int | None
    is_ours: bool = Field(description="one of our physicians")
    name: str
    role: str = Field(description="the contact's role, or the provider's credential")

    @staticmethod
    def resolve_name(obj: Any) -> str:
        return str(obj)

    @staticmethod
    def resolve_role(obj: Any) -> str:
        return obj.contact.role if obj.contact_id else obj.provider.credential


class MaterialOut(Schema):
    item_id: int
    title: str
    quantity: int

    @staticmethod
    def resolve_title(obj: Any) -> str:
        return obj.item.title


class ShareOut(Schema):
    provider_id: int
    amount: Decimal
    year: int


class ActivityOut(Schema):
    id: int
    kind: str
    status: str
    account_id: int | None
    location_id: int | None
    occurred_at: datetime
    duration_minutes: int | None
    liaison_id: int | None
    purpose: str
    topics: str
    clinical_questions: str
    outcome: str
    next_step: str
    cost: Decimal
    office_head_count: int | None
    attendees: list[AttendeeOut]
    materials: list[MaterialOut]
    ledger: list[ShareOut] = Field(
        description="each referring physician's share, counted against the yearly limit"
    )
    follow_up_task_ids: list[int]
    limit_warnings: list[str] = Field([], description="on create and update: 80 % reached, or over the limit")

    @staticmethod
    def resolve_attendees(obj: Activity) -> list[Any]:
        return list(obj.attendees.all())

    @staticmethod
    def resolve_materials(obj: Activity) -> list[Any]:
        return list(obj.materials.all())

    @staticmethod
    def resolve_ledger(obj: Activity) -> list[Any]:
        return list(obj.ledger_entries.all())

    @staticmethod
    def resolve_follow_up_task_ids(obj: Activity) -> list[int]:
        return [t.pk for t in obj.follow_ups.all()]

    @staticmethod
    def resolve_limit_warnings(obj: Activity) -> list[str]:
        return [w.message for w in getattr(obj, "limit_warnings", [])]


class NewAttendeeIn(Schema):
    first_name: str = Field(min_length=1, max_length=80)
    last_name: str = Field("", max_length=80)
    role: str = "other"


class MaterialIn(Schema):
    item_id: Id
    quantity: int = Field(1, ge=1, le=10000)


class FollowUpIn(Schema):
    title: str = Field(min_length=1, max_length=200)
    due_on: date
    assignee_id: Id


class ActivityIn(Schema):
    account_id: Id | None = Field(None, description="required unless kind is 'event'")
    kind: ActivityKind
    occurred_at: datetime | None = Field(None, description="default now; in the future: planned")
    status: ActivityStatus | None = None
    location_id: Id | None = None
    duration_minutes: int | None = Field(None, ge=0, le=1440)
    our_physician_ids: list[Id] = []
    provider_ids: list[Id] = Field([], description="referring providers")
    contact_ids: list[Id] = Field([], description="office staff")
    new_attendees: list[NewAttendeeIn] = Field([], description="met on the spot: added to the office's staff")
    materials: list[MaterialIn] = []
    purpose: str = ""
    topics: str = ""
    clinical_questions: str = ""
    outcome: str = ""
    next_step: str = ""
    cost: Money = Decimal("0")
    office_head_count: int | None = Field(None, ge=0, le=500)
    follow_up: FollowUpIn | None = Field(None, description="creates a task")
    confirm_over_limit: bool = Field(
        False, description="record it even though a physician goes over the yearly limit"
    )


class ActivityPatch(Schema):
    kind: ActivityKind | None = None
    occurred_at: datetime | None = None
    status: ActivityStatus | None = None
    location_id: Id | None = None
    duration_minutes: int | None = Field(None, ge=0, le=1440)
    our_physician_ids: list[Id] | None = None
    provider_ids: list[Id] | None = None
    contact_ids: list[Id] | None = None
    new_attendees: list[NewAttendeeIn] = []
    materials: list[MaterialIn] | None = None
    purpose: str | None = None
    topics: str | None = None
    clinical_questions: str | None = None
    outcome: str | None = None
    next_step: str | None = None
    cost: Money | None = None
    office_head_count: int | None = Field(None, ge=0, le=500)
    follow_up: FollowUpIn | None = None
    confirm_over_limit: bool = False


class AccountOut(Schema):
    id: int
    practice_id: int
    practice_name: str
    location_id: int | None
    owner_id: int | None
    owner_from_territory: bool
    tier: str | None
    stage: str
    stage_changed_at: datetime
    trend: str
    source: str
    potential: str
    first_referral_at: datetime | None
    last_touch: datetime | None = None
    next_planned: datetime | None = None

    @staticmethod
    def resolve_practice_name(obj: Account) -> str:
        return obj.practice.name

    @staticmethod
    def resolve_tier(obj: Account) -> str | None:
        return obj.tier.code if obj.tier_id else None


class StageChangeOut(Schema):
    from_stage: str
    to_stage: str
    at: datetime
    actor_label: str
    reason: str


class AccountDetailOut(AccountOut):
    stage_history: list[StageChangeOut]

    @staticmethod
    def resolve_stage_history(obj: Account) -> list[Any]:
        return list(obj.stage_changes.order_by("at", "pk"))


class AccountIn(Schema):
    practice_id: Id
    location_id: Id | None = None
    tier: str | None = Field(None, description="A, B or C")
    owner_id: Id | None = Field(None, description="default: the territory's liaison")
    potential: str = ""
    note: str = ""


class AccountPatch(Schema):
    tier: str | None = Field(None, description="A, B, C, or '' for none")
    owner_id: Id | None = None
    follow_territory: bool | None = None
    potential: str | None = None
    stage: Stage | None = None
    stage_reason: str = ""


class AccountQuery(Schema):
    q: str = ""
    stage: str = ""
    tier: str = Field("", description="A, B or C")
    owner: str = Field("", description="'me', 'none' or a user id")
    trend: str = ""


class TaskOut(Schema):
    id: int
    title: str
    details: str
    kind: str
    due_on: date
    assignee_id: int
    account_id: int | None
    activity_id: int | None
    status: str
    done_at: datetime | None


class TaskIn(Schema):
    title: str = Field(min_length=1, max_length=200)
    due_on: date
    assignee_id: Id
    account_id: Id | None = None
    details: str = ""


class TaskPatch(Schema):
    title: str | None = Field(None, min_length=1, max_length=200)
    due_on: date | None = None
    assignee_id: Id | None = None
    details: str | None = None
    status: TaskStatus | None = Field(None, description="done, cancelled, or open (reopen)")


# Helpers ----------------------------------------------------------------------------------------------


def _by_ids(model: Any, ids: list[int] | None, field: str, qs: QuerySet | None = None) -> list[Any] | None:
    if ids is None:
        return None
    qs = model.objects.all() if qs is None else qs
    found = {o.pk: o for o in qs.filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({field: [f"Unknown id(s): {', '.join(map(str, missing))}."]})
    return [found[i] for i in dict.fromkeys(ids)]


def _user(pk: int, field: str) -> User:
    user = User.objects.filter(pk=pk, is_active=True).first()
    if user is None:
        raise ValidationError({field: [f"Unknown user {pk}."]})
    return user


def _tier(code: str | None) -> Tier | None:
    if not code:
        return None
    tier = Tier.objects.filter(code=code.upper()).first()
    if tier is None:
        raise ValidationError({"tier": [f"Unknown tier {code!r}."]})
    return tier


def _activity_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("kind", "status"):
        if data.get(key) is not None:
            out[key] = str(data[key].value if hasattr(data[key], "value") else data[key])
    mapping = {
        "our_physician_ids": ("our_physicians", Provider),
        "provider_ids": ("providers", Provider),
        "contact_ids": ("contacts", Contact),
    }
    for key, (name, model) in mapping.items():
        if key in data:
            qs = (
                model.objects.select_related("primary_taxonomy")
                if model is Provider
                else model.objects.select_related("practice")
            )
            out[name] = _by_ids(model, data[key], key, qs)
    if data.get("new_attendees"):
        out["new_attendees"] = [
            services.NewAttendee(a["first_name"], a["last_name"], a["role"]) for a in data["new_attendees"]
        ]
    if data.get("materials") is not None:
        items = {
            i.pk: i for i in CollateralItem.objects.filter(pk__in=[m["item_id"] for m in data["materials"]])
        }
        missing = [m["item_id"] for m in data["materials"] if m["item_id"] not in items]
        if missing:
            raise ValidationError(
                {"materials": [f"Unknown collateral item(s): {', '.join(map(str, missing))}."]}
            )
        out["materials"] = {items[m["item_id"]]: m["quantity"] for m in data["materials"]}
    if data.get("follow_up"):
        f = data["follow_up"]
        out["follow_up"] = services.FollowUp(
            f["title"], f["due_on"], _user(f["assignee_id"], "follow_up.assignee_id")
        )
    if "location_id" in data:
        out["location"] = get_object_or_404(Location, pk=data["location_id"]) if data["location_id"] else None
    for key in ("occurred_at", "duration_minutes", "office_head_count"):
        if key in data:
            out[key] = data[key]
    for key in ("purpose", "topics", "clinical_questions", "outcome", "next_step", "cost"):
        if key in data and data[key] is not None:
            out[key] = data[key]
    out["confirm_over_limit"] = bool(data.get("confirm_over_limit"))
    return out


def _activity(request: HttpRequest, pk: int) -> Activity:
    selectors.get_activity_for_user(request.user, pk)
    return selectors.activities_with_details(Activity.objects.filter(pk=pk)).get()


# Activities -------------------------------------------------------------------------------------------


@router.get("/activities", response=list[ActivityOut], summary="List activities")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_activities(
    request: HttpRequest,
    account_id: Id | None = None,
    kind: ActivityKind | None = None,
    status: ActivityStatus | None = None,
    mine: bool = False,
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[Activity]:
    account = selectors.get_account_for_user(request.user, account_id) if account_id else None
    f = selectors.ActivityFilters(
        kind=kind.value if kind else "",
        status=status.value if status else "",
        mine=mine,
        account=account,
        since=since,
        until=until,
    )
    return selectors.search_activities(request.user, f)


@router.get("/activities/{activity_id}", response=ActivityOut)
def get_activity(request: HttpRequest, activity_id: Id) -> Activity:
    return _activity(request, activity_id)


@router.post("/activities", response={201: ActivityOut}, summary="Log or plan an activity")
def create_activity(request: HttpRequest, payload: ActivityIn) -> Status[Activity]:
    require(request.user.can_log_outreach)
    data = payload.dict()
    account = (
        selectors.get_account_for_user(request.user, data.pop("account_id")) if payload.account_id else None
    )
    activity = services.log_activity(actor=request.user, account=account, **_activity_kwargs(data))
    out = _activity(request, activity.pk)
    out.limit_warnings = activity.limit_warnings  # type: ignore[attr-defined]
    return Status(201, out)


@router.patch("/activities/{activity_id}", response=ActivityOut)
def update_activity(request: HttpRequest, activity_id: Id, payload: ActivityPatch) -> Activity:
    activity = selectors.get_activity_for_user(request.user, activity_id)
    require(
        selectors.can_edit_activity(request.user, activity),
        "Only the liaison who logged it or a manager changes it.",
    )
    data = payload.dict(exclude_unset=True)
    activity = services.update_activity(activity, actor=request.user, **_activity_kwargs(data))
    out = _activity(request, activity.pk)
    out.limit_warnings = activity.limit_warnings  # type: ignore[attr-defined]
    return out


# Accounts ---------------------------------------------------------------------------------------------


@router.get("/accounts", response=list[AccountOut], summary="The pipeline")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_accounts(request: HttpRequest, filters: Query[AccountQuery]) -> QuerySet[Account]:
    require(request.user.can_read_outreach)
    return selectors.search_accounts(
        request.user,
        selectors.AccountFilters(
            q=filters.q,
            stage=filters.stage,
            tier=_tier(filters.tier),
            owner=filters.owner,
            trend=filters.trend,
        ),
    )


@router.get("/accounts/{account_id}", response=AccountDetailOut)
def get_account(request: HttpRequest, account_id: Id) -> Account:
    account = selectors.get_account_for_user(request.user, account_id)
    return (
        selectors.with_last_touch(Account.objects.filter(pk=account.pk))
        .select_related("practice", "tier")
        .get()
    )


@router.post(
    "/accounts", response={201: AccountDetailOut}, summary="Add a practice (or an office) to the pipeline"
)
def create_account(request: HttpRequest, payload: AccountIn) -> Status[Account]:
    require(request.user.can_log_outreach)
    practice = get_object_or_404(Practice, pk=payload.practice_id)
    location = get_object_or_404(Location, pk=payload.location_id) if payload.location_id else None
    owner = _user(payload.owner_id, "owner_id") if payload.owner_id else None
    if owner is not None and owner != request.user:
        require(request.user.can_manage_outreach, "Only a manager gives an account to someone else.")
    account = services.add_to_pipeline(
        practice, actor=request.user, location=location, owner=owner, tier=_tier(payload.tier),
        potential=payload.potential, note=payload.note,
    )  # fmt: skip
    return Status(201, get_account(request, account.pk))


@router.patch("/accounts/{account_id}", response=AccountDetailOut)
def update_account(request: HttpRequest, account_id: Id, payload: AccountPatch) -> Account:
    account = selectors.get_account_for_user(request.user, account_id)
    require(
        selectors.can_edit_account(request.user, account), "Only the account's owner or a manager changes it."
    )
    data = payload.dict(exclude_unset=True)
    kwargs: dict[str, Any] = {}
    if "owner_id" in data or data.get("follow_territory"):
        require(request.user.can_manage_outreach, "Only a manager reassigns an account.")
        if data.get("follow_territory"):
            kwargs["follow_territory"] = True
        else:
            kwargs["owner"] = _user(data["owner_id"], "owner_id") if data["owner_id"] else None
    if "tier" in data:
        kwargs["tier"] = _tier(data["tier"])
    if data.get("potential") is not None:
        kwargs["potential"] = data["potential"]
    if kwargs:
        services.update_account(account, actor=request.user, **kwargs)
    if data.get("stage"):
        services.change_stage(
            account, str(data["stage"].value), actor=request.user, reason=data.get("stage_reason", "")
        )
    return get_account(request, account.pk)


# Tasks -------------------------------------------------------------------------------------------------


@router.get(
    "/tasks",
    response=list[TaskOut],
    summary="Tasks (default: mine, open)",
    description="assignee: 'me', '' (everyone) or a user id; status: open, done, cancelled or '' (all).",
)
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_tasks(
    request: HttpRequest,
    assignee: str = "me",
    status: str = "open",
    account_id: Id | None = None,
) -> QuerySet[Task]:
    if status and status not in TaskStatus.values:
        raise ValidationError({"status": [f"Unknown status {status!r}."]})
    qs = selectors.search_tasks(request.user, assignee=assignee, status=status)
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    return qs


@router.get("/tasks/{task_id}", response=TaskOut)
def get_task(request: HttpRequest, task_id: Id) -> Task:
    return selectors.get_task_for_user(request.user, task_id)


@router.post("/tasks", response={201: TaskOut})
def create_task(request: HttpRequest, payload: TaskIn) -> Status[Task]:
    require(request.user.can_log_outreach)
    account = selectors.get_account_for_user(request.user, payload.account_id) if payload.account_id else None
    task = services.create_task(
        actor=request.user, title=payload.title, due_on=payload.due_on,
        assignee=_user(payload.assignee_id, "assignee_id"), account=account, details=payload.details,
    )  # fmt: skip
    return Status(201, task)


@router.patch("/tasks/{task_id}", response=TaskOut)
def update_task(request: HttpRequest, task_id: Id, payload: TaskPatch) -> Task:
    task = selectors.get_task_for_user(request.user, task_id)
    require(
        selectors.can_change_task(request.user, task),
        "Only the person it is for, its author or a manager changes it.",
    )
    data = payload.dict(exclude_unset=True)
    status = data.pop("status", None)
    if "assignee_id" in data:
        data["assignee"] = _user(data.pop("assignee_id"), "assignee_id")
    data = {k: v for k, v in data.items() if v is not None}
    if status == TaskStatus.OPEN:
        services.reopen_task(task, actor=request.user)
    if data:
        services.update_task(Task.objects.get(pk=task.pk), actor=request.user, **data)
    if status == TaskStatus.DONE:
        services.complete_task(task, actor=request.user)
    elif status == TaskStatus.CANCELLED:
        services.cancel_task(task, actor=request.user)
    return Task.objects.get(pk=task.pk)
