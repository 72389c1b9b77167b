"""Outreach: accounts in the pipeline, activities with the people on both sides, the non-monetary
compensation ledger, tasks, tiers and their cadence, territories, collateral and calendar feeds.

Nothing here holds patient data: a liaison reads all of it.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from liaison.core.models import ConstraintErrorsOnFields, TimeStampedModel
from liaison.feedback.validators import no_patient_identifiers

# Pipeline ------------------------------------------------------------------------------------


class Stage(models.TextChoices):
    TARGET = "target", "Target"
    CONTACTED = "contacted", "Contacted"
    ENGAGED = "engaged", "Engaged"
    REFERRING = "referring", "Referring"
    AT_RISK = "at_risk", "At risk"
    LAPSED = "lapsed", "Lapsed"


# Stages an account can be "moved forward" from by outreach alone (before it refers).
PROSPECT_STAGES = (Stage.TARGET, Stage.CONTACTED, Stage.ENGAGED)


class Trend(models.TextChoices):
    """The account's referral trend, set by analytics (`services.set_referral_trend`)."""

    UNKNOWN = "", "Unknown"
    RISING = "rising", "Rising"
    STEADY = "steady", "Steady"
    COOLING = "cooling", "Cooling"


class AccountSource(models.TextChoices):
    DIRECTORY = "directory", "Directory"
    MARKET_DATA = "market_data", "Market data (opportunities)"
    REFERRAL = "referral", "First referral"
    DEMO = "demo", "Demo data"


class Tier(models.Model):
    """A/B/C: how much attention an account deserves, with its cadence rules."""

    code = models.CharField(max_length=2, unique=True)
    name = models.CharField(max_length=60)
    description = models.CharField(max_length=300, blank=True)
    rank = models.PositiveSmallIntegerField(default=0, help_text="order: the most important first")

    class Meta:
        ordering = ["rank", "code"]

    def __str__(self) -> str:
        return f"Tier {self.code}"


class Touch(models.TextChoices):
    IN_PERSON = "in_person", "Visit"
    LUNCH = "lunch", "Lunch or in-service"
    ANY = "any", "Any touch"


class CadenceUnit(models.TextChoices):
    """Days and weeks are rolling intervals; months and quarters are calendar periods."""

    DAY = "day", "days"
    WEEK = "week", "weeks"
    MONTH = "month", "calendar months"
    QUARTER = "quarter", "calendar quarters"


class CadenceRule(models.Model):
    """'Tier A: visit every 30 days', 'Tier A: lunch every quarter'."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="rules")
    touch = models.CharField(max_length=10, choices=Touch.choices)
    every = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(366)])
    unit = models.CharField(max_length=8, choices=CadenceUnit.choices)

    class Meta:
        ordering = ["tier__rank", "touch"]
        constraints = [models.UniqueConstraint(fields=["tier", "touch"], name="cadence_rule_once_per_touch")]

    def __str__(self) -> str:
        touch = {Touch.IN_PERSON: "visit", Touch.LUNCH: "lunch", Touch.ANY: "touch"}[self.touch]
        if self.unit in (CadenceUnit.MONTH, CadenceUnit.QUARTER) and self.every == 1:
            return f"{touch} every calendar {self.unit}"
        return f"{touch} every {self.every} {self.get_unit_display()}"


class Territory(TimeStampedModel):
    """ZIP codes and counties assigned to a liaison; accounts inside inherit the liaison as owner."""

    name = models.CharField(max_length=100, unique=True)
    liaison = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="territories",
        limit_choices_to={"role": "liaison"},
    )
    zip_codes = models.JSONField(default=list, blank=True, help_text="5-digit ZIP codes")
    counties = models.JSONField(default=list, blank=True, help_text="e.g. 'Franklin County, OH'")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "territories"

    def __str__(self) -> str:
        return self.name


class AccountQuerySet(models.QuerySet["Account"]):
    def owned_by(self, user: object) -> AccountQuerySet:
        return self.filter(owner=user)


class Account(ConstraintErrorsOnFields, TimeStampedModel):
    """A referring practice (or one of its locations) that outreach works on."""

    practice = models.ForeignKey(
        "directory.Practice", on_delete=models.PROTECT, related_name="outreach_accounts"
    )
    location = models.ForeignKey(
        "directory.Location",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outreach_accounts",
        help_text="only for an account that is one office of a practice",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_accounts",
    )
    owner_from_territory = models.BooleanField(
        default=True, help_text="the owner follows the territory's liaison"
    )
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="accounts")
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.TARGET, editable=False)
    stage_changed_at = models.DateTimeField(default=timezone.now, editable=False)
    trend = models.CharField(max_length=8, choices=Trend.choices, blank=True, editable=False)
    source = models.CharField(max_length=12, choices=AccountSource.choices, default=AccountSource.DIRECTORY)
    potential = models.CharField(
        max_length=300,
        blank=True,
        validators=[no_patient_identifiers],
        help_text="why it matters: e.g. '6 PCPs, sends knees to a competitor'",
    )
    first_referral_at = models.DateTimeField(null=True, blank=True, editable=False)
    first_referral_after_outreach = models.BooleanField(null=True, editable=False)

    objects = AccountQuerySet.as_manager()
    constraint_fields = {"duplicate_account": "practice"}

    class Meta:
        ordering = ["practice__name", "location__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice"],
                condition=Q(location__isnull=True),
                name="account_once_per_practice",
                violation_error_code="duplicate_account",
                violation_error_message="This practice is already in the pipeline.",
            ),
            models.UniqueConstraint(
                fields=["practice", "location"],
                condition=Q(location__isnull=False),
                name="account_once_per_location",
                violation_error_code="duplicate_account",
                violation_error_message="This office is already in the pipeline.",
            ),
        ]
        indexes = [models.Index(fields=["stage"]), models.Index(fields=["owner", "stage"])]

    def __str__(self) -> str:
        if self.location_id:
            return f"{self.practice.name} – {self.location.name or self.location.city}"
        return self.practice.name

    def clean(self) -> None:
        if self.practice_id and self.practice.is_ours:
            raise ValidationError({"practice": ["Our own organisation is not an outreach account."]})
        if self.location_id and self.location.practice_id != self.practice_id:
            raise ValidationError({"location": ["This office belongs to another practice."]})


class AccountStageChange(models.Model):
    """One row per stage change: the pipeline's history (and how analytics measures it)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.CharField(max_length=10, choices=Stage.choices, blank=True)
    to_stage = models.CharField(max_length=10, choices=Stage.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["account", "at"])]

    def __str__(self) -> str:
        return f"{self.account}: {self.from_stage or '(new)'} -> {self.to_stage}"


# Activities -----------------------------------------------------------------------------------


class ActivityKind(models.TextChoices):
    VISIT = "visit", "Visit"
    LUNCH = "lunch", "Lunch / in-service"
    DROP_IN = "drop_in", "Drop-in"
    CALL = "call", "Call"
    EMAIL = "email", "Email"
    LETTER = "letter", "Letter"
    EVENT = "event", "Seminar or event"


IN_PERSON_KINDS = frozenset(
    {ActivityKind.VISIT, ActivityKind.LUNCH, ActivityKind.DROP_IN, ActivityKind.EVENT}
)
TOUCH_KINDS = {
    Touch.IN_PERSON: IN_PERSON_KINDS,
    Touch.LUNCH: frozenset({ActivityKind.LUNCH}),
    Touch.ANY: frozenset(ActivityKind.values),
}


class Purpose(models.TextChoices):
    INTRODUCTION = "introduction", "Introduction"
    RELATIONSHIP = "relationship", "Keep in touch"
    NEW_SERVICE = "new_service", "New service or physician"
    EDUCATION = "education", "Clinical education / in-service"
    REFERRAL_PROCESS = "referral_process", "How to refer"
    ISSUE_FOLLOW_UP = "issue_follow_up", "Follow up an issue"
    OTHER = "other", "Other"


class ActivityStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    COMPLETED = "completed", "Done"
    CANCELLED = "cancelled", "Cancelled"


class Activity(TimeStampedModel):
    """A touch with a referring office: visit, lunch, call, email, letter, event, drop-in."""

    kind = models.CharField(max_length=8, choices=ActivityKind.choices, default=ActivityKind.VISIT)
    status = models.CharField(max_length=10, choices=ActivityStatus.choices, default=ActivityStatus.COMPLETED)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="activities"
    )
    location = models.ForeignKey(
        "directory.Location", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    occurred_at = models.DateTimeField("when", default=timezone.now)
    duration_minutes = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(24 * 60)]
    )
    liaison = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="outreach_activities",
        help_text="who did it (and logged it)",
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices, blank=True)
    # Liaisons read every word of these (and a task's title reaches a phone's calendar):
    # the validator refuses obvious patient identifiers.
    topics = models.TextField(blank=True, validators=[no_patient_identifiers])
    clinical_questions = models.TextField(
        "clinical questions raised", blank=True, validators=[no_patient_identifiers]
    )
    outcome = models.TextField(blank=True, validators=[no_patient_identifiers])
    next_step = models.CharField(max_length=300, blank=True, validators=[no_patient_identifiers])
    cost = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="food, gifts: counted against referring physicians' yearly limit",
    )
    office_head_count = models.PositiveSmallIntegerField(
        "people served from the office",
        null=True,
        blank=True,
        validators=[MaxValueValidator(500)],
        help_text="if more ate than are listed; the cost is shared per head",
    )

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["account", "occurred_at"]),
            models.Index(fields=["liaison", "occurred_at"]),
            models.Index(fields=["occurred_at"]),
        ]

    def __str__(self) -> str:
        where = str(self.account) if self.account_id else "no account"
        return f"{self.get_kind_display()} · {where} · {timezone.localtime(self.occurred_at):%Y-%m-%d}"

    @property
    def is_in_person(self) -> bool:
        return self.kind in IN_PERSON_KINDS

    @property
    def local_date(self) -> object:
        return timezone.localdate(self.occurred_at)

    def clean(self) -> None:
        if self.account_id is None and self.kind != ActivityKind.EVENT:
            raise ValidationError(
                {"account": ["Pick the office this was with (only an event may have none)."]}
            )
        if self.location_id and self.location.practice.is_ours and self.kind != ActivityKind.EVENT:
            raise ValidationError({"location": ["Pick the referring office, not one of our sites."]})


class Attendee(models.Model):
    """Someone at an activity: one of our physicians, a referring provider, or office staff."""

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="attendees")
    provider = models.ForeignKey(
        "directory.Provider", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    contact = models.ForeignKey(
        "directory.Contact", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_ours = models.BooleanField(default=False, help_text="one of our physicians")

    class Meta:
        ordering = ["-is_ours", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(provider__isnull=False) & Q(contact__isnull=True))
                | (Q(provider__isnull=True) & Q(contact__isnull=False)),
                name="attendee_is_a_provider_or_a_contact",
            ),
            models.UniqueConstraint(
                fields=["activity", "provider"],
                condition=Q(provider__isnull=False),
                name="attendee_provider_once",
            ),
            models.UniqueConstraint(
                fields=["activity", "contact"],
                condition=Q(contact__isnull=False),
                name="attendee_contact_once",
            ),
        ]
        indexes = [models.Index(fields=["provider", "activity"])]

    def __str__(self) -> str:
        return str(self.provider or self.contact)


class CompensationLimit(models.Model):
    """The CMS non-monetary compensation limit per physician for one calendar year (42 CFR 411.357(k))."""

    year = models.PositiveSmallIntegerField(
        unique=True, validators=[MinValueValidator(2000), MaxValueValidator(2100)]
    )
    amount = models.DecimalField(max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    note = models.CharField(max_length=200, blank=True, help_text="e.g. the CMS page it comes from")

    class Meta:
        ordering = ["-year"]

    def __str__(self) -> str:
        return f"{self.year}: ${self.amount}"


class LedgerEntry(models.Model):
    """A referring physician's share of an activity's cost (the non-monetary compensation ledger).

    Rewritten by the activity services whenever the activity changes; only completed activities
    count in the totals, planned ones in the projections."""

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="ledger_entries")
    provider = models.ForeignKey(
        "directory.Provider", on_delete=models.PROTECT, related_name="compensation_entries"
    )
    on = models.DateField()
    year = models.PositiveSmallIntegerField()
    amount = models.DecimalField(max_digits=8, decimal_places=2)

    class Meta:
        ordering = ["on", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["activity", "provider"], name="ledger_entry_once_per_activity")
        ]
        indexes = [models.Index(fields=["provider", "year"]), models.Index(fields=["year"])]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.provider} {self.on}: ${self.amount}"


# Tasks --------------------------------------------------------------------------------------


class TaskKind(models.TextChoices):
    FOLLOW_UP = "follow_up", "Follow-up"
    CADENCE = "cadence", "Cadence (due touch)"
    SERVICE_LEVEL = "sla", "Referral overdue"
    OTHER = "other", "Other"


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class Task(TimeStampedModel):
    """Something to do by a date: a next step, a due touch. Assigned to a liaison, a coordinator
    or one of our physicians (follow-up by the physician matters)."""

    title = models.CharField(max_length=200, validators=[no_patient_identifiers])
    details = models.TextField(blank=True, validators=[no_patient_identifiers])
    kind = models.CharField(max_length=10, choices=TaskKind.choices, default=TaskKind.FOLLOW_UP)
    cadence_touch = models.CharField(max_length=10, choices=Touch.choices, blank=True, editable=False)
    due_on = models.DateField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="outreach_tasks"
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    activity = models.ForeignKey(
        Activity, null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_ups"
    )
    referral = models.ForeignKey(
        "referrals.Referral",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tasks",
        help_text="an overdue referral step (the title names the referral number, never the patient)",
    )
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    done_at = models.DateTimeField(null=True, blank=True, editable=False)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["due_on", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "cadence_touch"],
                condition=Q(status="open", kind="cadence"),
                name="one_open_cadence_task_per_touch",
            )
        ]
        indexes = [
            models.Index(fields=["assignee", "status", "due_on"]),
            models.Index(fields=["account", "status"]),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_overdue(self) -> bool:
        return self.status == TaskStatus.OPEN and self.due_on < timezone.localdate()


# Collateral ----------------------------------------------------------------------------------


class CollateralKind(models.TextChoices):
    BROCHURE = "brochure", "Brochure"
    REFERRAL_PAD = "referral_pad", "Referral pad"
    FAX_FORM = "fax_form", "Fax referral form"
    BUSINESS_CARD = "business_card", "Business cards"
    OTHER = "other", "Other"


class CollateralItem(TimeStampedModel):
    """Something liaisons hand out; the file is kept under MEDIA_ROOT/collateral/."""

    title = models.CharField(max_length=150)
    kind = models.CharField(max_length=16, choices=CollateralKind.choices, default=CollateralKind.BROCHURE)
    description = models.CharField(max_length=300, blank=True)
    file = models.FileField(upload_to="collateral/%Y/", blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class MaterialLeft(models.Model):
    """What was left where: collateral handed out at an activity."""

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="materials")
    item = models.ForeignKey(CollateralItem, on_delete=models.PROTECT, related_name="left_at")
    quantity = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10000)]
    )

    class Meta:
        ordering = ["item__title"]
        constraints = [
            models.UniqueConstraint(fields=["activity", "item"], name="material_once_per_activity")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.item}"


# Calendar ------------------------------------------------------------------------------------


class CalendarFeedQuerySet(models.QuerySet["CalendarFeed"]):
    def usable(self) -> CalendarFeedQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class CalendarFeed(models.Model):
    """A private iCalendar URL of a user's visits, lunches and tasks. Only the token's SHA-256 is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = CalendarFeedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"calendar of {self.user} ({self.prefix}…)"
