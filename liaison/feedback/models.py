"""Feedback from referring offices: issues they raise and satisfaction surveys.

No patient data: forms say so and refuse obvious patient identifiers (`validators.py`); a link to
a referral (which holds the patient) will be a foreign key, never a copy of its details.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from liaison.core.models import TimeStampedModel
from liaison.feedback.validators import no_patient_identifiers


class IssueCategory(models.TextChoices):
    ACCESS = "access", "Access and scheduling"
    COMMUNICATION = "communication", "Communication"
    CLINICAL = "clinical", "Clinical"
    BILLING = "billing", "Billing"
    COURTESY = "courtesy", "Staff courtesy"
    OTHER = "other", "Other"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


# Default time to resolve, by severity (the due date the form proposes).
DUE_DAYS = {Severity.LOW: 14, Severity.MEDIUM: 7, Severity.HIGH: 3, Severity.CRITICAL: 1}


class IssueStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    RESOLVED = "resolved", "Resolved (office not yet told)"
    CLOSED = "closed", "Closed (office informed)"


OPEN_STATUSES = (IssueStatus.OPEN, IssueStatus.IN_PROGRESS, IssueStatus.RESOLVED)


class Issue(TimeStampedModel):
    """A problem a referring office raised with us, followed until the office is told it is fixed."""

    practice = models.ForeignKey("directory.Practice", on_delete=models.PROTECT, related_name="issues")
    location = models.ForeignKey(
        "directory.Location", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reporter = models.ForeignKey(
        "directory.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="issues_reported",
        help_text="who in the office raised it",
    )
    category = models.CharField(max_length=16, choices=IssueCategory.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.MEDIUM)
    summary = models.CharField(max_length=200, validators=[no_patient_identifiers])
    details = models.TextField(blank=True, validators=[no_patient_identifiers])
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_issues",
    )
    due_on = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=12, choices=IssueStatus.choices, default=IssueStatus.OPEN, editable=False
    )
    resolution = models.TextField(blank=True, validators=[no_patient_identifiers])
    resolved_at = models.DateTimeField(null=True, blank=True, editable=False)
    office_informed_at = models.DateTimeField(null=True, blank=True, editable=False)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "due_on"]), models.Index(fields=["practice", "status"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.summary}" if self.pk else self.summary

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_overdue(self) -> bool:
        return (
            self.status in (IssueStatus.OPEN, IssueStatus.IN_PROGRESS)
            and self.due_on is not None
            and self.due_on < timezone.localdate()
        )

    @staticmethod
    def default_due(severity: str) -> object:
        return timezone.localdate() + timedelta(days=DUE_DAYS.get(severity, 7))


class InformedBy(models.TextChoices):
    PHONE = "phone", "Phone"
    EMAIL = "email", "Email"
    VISIT = "visit", "In person"
    LETTER = "letter", "Letter or fax"


class IssueEvent(models.Model):
    """The issue's history: opened, each status change, assignment, notes, office informed."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        STATUS = "status", "Status changed"
        ASSIGNED = "assigned", "Assigned"
        NOTE = "note", "Note"
        OFFICE_INFORMED = "office_informed", "Office informed"

    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_status = models.CharField(max_length=12, choices=IssueStatus.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=IssueStatus.choices, blank=True)
    note = models.TextField(blank=True, validators=[no_patient_identifiers])
    informed_by = models.CharField(max_length=8, choices=InformedBy.choices, blank=True)
    informed_contact = models.ForeignKey(
        "directory.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"issue {self.issue_id}: {self.get_kind_display()}"


# Surveys ------------------------------------------------------------------------------------


class Survey(TimeStampedModel):
    """A short satisfaction survey: the NPS question plus a few 1-5 questions (`questions`)."""

    title = models.CharField(max_length=150)
    intro = models.TextField(blank=True)
    questions = models.JSONField(
        default=list, help_text='[{"key": "ease", "text": "How easy is it to refer a patient to us?"}]'
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class SurveyInvitation(models.Model):
    """One contact invited to answer. The emailed link carries a token of which only the SHA-256 is kept."""

    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="invitations")
    contact = models.ForeignKey(
        "directory.Contact", on_delete=models.PROTECT, related_name="survey_invitations"
    )
    practice = models.ForeignKey("directory.Practice", on_delete=models.PROTECT, related_name="+")
    email = models.EmailField()
    digest = models.CharField(max_length=64, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["practice", "sent_at"])]

    def __str__(self) -> str:
        return f"{self.survey} → {self.contact}"

    @property
    def is_answerable(self) -> bool:
        return (
            self.sent_at is not None
            and self.responded_at is None
            and (self.expires_at is None or self.expires_at > timezone.now())
        )


class SurveyResponse(models.Model):
    invitation = models.OneToOneField(SurveyInvitation, on_delete=models.CASCADE, related_name="response")
    practice = models.ForeignKey(
        "directory.Practice", on_delete=models.PROTECT, related_name="survey_responses"
    )
    nps = models.PositiveSmallIntegerField(
        "how likely to recommend us (0-10)", validators=[MinValueValidator(0), MaxValueValidator(10)]
    )
    answers = models.JSONField(default=dict, blank=True)
    comment = models.TextField(blank=True, validators=[no_patient_identifiers])
    submitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-submitted_at", "-pk"]
        indexes = [models.Index(fields=["practice", "submitted_at"])]

    def __str__(self) -> str:
        return f"NPS {self.nps} from {self.practice_id} on {self.submitted_at:%Y-%m-%d}"

    @property
    def nps_group(self) -> str:
        return "promoter" if self.nps >= 9 else "passive" if self.nps >= 7 else "detractor"
