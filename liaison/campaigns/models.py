"""Campaigns: segments of the directory, templates, email sends with a record per recipient, the
suppression list, quizzes, event invitations with RSVPs and check-in, and mail-merge letters.

Nothing here is patient data: recipients are referring providers and office staff from the
directory, and merge fields come from an allow-list (`campaigns.merge.MERGE_FIELDS`).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from liaison.core.models import TimeStampedModel
from liaison.directory.models import ContactRole

# Segments -------------------------------------------------------------------------------------


class Audience(models.TextChoices):
    """Who in a referring office: providers by kind, and office staff by their directory role."""

    PHYSICIAN = "physician", "Physicians"
    MID_LEVEL = "mid_level", "Mid-levels (NP, PA)"
    OTHER_CLINICIAN = "other_clinician", "Other clinicians"
    OFFICE_MANAGER = ContactRole.OFFICE_MANAGER.value, "Office managers"
    REFERRAL_COORDINATOR = ContactRole.REFERRAL_COORDINATOR.value, "Referral coordinators"
    NURSE = ContactRole.NURSE.value, "Nurses"
    MEDICAL_ASSISTANT = ContactRole.MEDICAL_ASSISTANT.value, "Medical assistants"
    RECEPTIONIST = ContactRole.RECEPTIONIST.value, "Receptionists"
    BILLING = ContactRole.BILLING.value, "Billing staff"
    OTHER_STAFF = ContactRole.OTHER.value, "Other office staff"


PROVIDER_AUDIENCES = frozenset({Audience.PHYSICIAN, Audience.MID_LEVEL, Audience.OTHER_CLINICIAN})


class Consent(models.TextChoices):
    ANY = "", "Anyone"
    EMAIL = "email", "Agreed to receive our emails"
    NO_EMAIL = "no_email", "Not agreed to email (for letters)"


class Segment(TimeStampedModel):
    """A saved set of criteria, evaluated again each time a campaign is sent or previewed.

    Empty criteria do not filter. Lists hold codes and ids (not foreign keys) so that deleting a
    territory can never silently widen a segment: evaluation refuses a missing one."""

    name = models.CharField(max_length=150)
    description = models.CharField(max_length=300, blank=True)
    audiences = models.JSONField("who", default=list, blank=True)
    tiers = models.JSONField(default=list, blank=True, help_text="tier codes")
    stages = models.JSONField(default=list, blank=True)
    specialties = models.JSONField(default=list, blank=True, help_text="NUCC taxonomy codes")
    territories = models.JSONField(default=list, blank=True, help_text="territory ids")
    touched_within_days = models.PositiveSmallIntegerField(
        "touched in the last (days)", null=True, blank=True, validators=[MaxValueValidator(3660)]
    )
    untouched_days = models.PositiveSmallIntegerField(
        "not touched for (days)", null=True, blank=True, validators=[MaxValueValidator(3660)]
    )
    consent = models.CharField(max_length=10, choices=Consent.choices, blank=True, default=Consent.ANY)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


# Templates ------------------------------------------------------------------------------------


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    LETTER = "letter", "Printed letter"


class Template(TimeStampedModel):
    """Subject and body with merge fields such as {{ recipient.first_name }} (see merge.py)."""

    name = models.CharField(max_length=150)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.CharField(max_length=200, help_text="the email's subject, or the letter's 'Re:' line")
    body_text = models.TextField("plain text", help_text="paragraphs separated by a blank line")
    body_html = models.TextField(
        "HTML", blank=True, help_text="optional: without it the email's HTML is made from the plain text"
    )
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


# Campaigns ------------------------------------------------------------------------------------


class CampaignKind(models.TextChoices):
    NEWSLETTER = "newsletter", "Newsletter or announcement"
    QUIZ = "quiz", "Quiz"
    EVENT = "event", "Event invitation"
    LETTER = "letter", "Letter"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    STOPPED = "stopped", "Stopped"


class Campaign(TimeStampedModel):
    """One send of a template to a segment. What was sent is frozen on the campaign when it starts."""

    name = models.CharField(max_length=150)
    kind = models.CharField(max_length=12, choices=CampaignKind.choices, default=CampaignKind.NEWSLETTER)
    status = models.CharField(
        max_length=8, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT, editable=False
    )
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="campaigns")
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="campaigns")
    featured_physician = models.ForeignKey(
        "directory.Provider",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"is_ours": True},
        verbose_name="our physician",
        help_text="for {{ physician.name }}: a new physician, the speaker, the letter's signatory",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Frozen when sending starts: what every recipient gets, whatever happens to the template later.
    subject = models.CharField(max_length=200, blank=True, editable=False)
    body_text = models.TextField(blank=True, editable=False)
    body_html = models.TextField(blank=True, editable=False)
    from_email = models.CharField(max_length=254, blank=True, editable=False)
    sender_name = models.CharField(max_length=200, blank=True, editable=False)
    postal_address = models.CharField(max_length=300, blank=True, editable=False)
    tracking = models.BooleanField(default=False, editable=False)
    merge_values = models.JSONField(default=dict, blank=True, editable=False)
    audience = models.JSONField(default=dict, blank=True, editable=False, help_text="counts at send time")
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    job_run = models.ForeignKey(
        "core.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    letters_pdf = models.FileField(upload_to="campaigns/letters/", blank=True, editable=False)

    # The sender's lease: one sender per campaign, taken and renewed with conditional updates.
    sender_token = models.CharField(max_length=32, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    retry_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "lease_until"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_letter(self) -> bool:
        return self.kind == CampaignKind.LETTER

    @property
    def is_draft(self) -> bool:
        return self.status == CampaignStatus.DRAFT

    @property
    def channel(self) -> str:
        return Channel.LETTER if self.is_letter else Channel.EMAIL


class RecipientStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"
    UNCERTAIN = "uncertain", "Uncertain (sender stopped mid-send)"
    SKIPPED = "skipped", "Not sent"
    PRINTED = "printed", "Letter printed"


class Recipient(models.Model):
    """One person a campaign goes to, with what happened. The claim (`claimed_by`) is how a
    sender takes the row before talking to the mail server, so that nothing is sent twice."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    contact = models.ForeignKey(
        "directory.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.ForeignKey(
        "directory.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    practice = models.ForeignKey(
        "directory.Practice", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    location = models.ForeignKey(
        "directory.Location", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    account = models.ForeignKey(
        "outreach.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    email = models.CharField(max_length=254, blank=True)
    merge = models.JSONField(default=dict, blank=True, help_text="allow-listed merge values")
    status = models.CharField(max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED)
    reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    activity = models.ForeignKey(
        "outreach.Activity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "email"], condition=~Q(email=""), name="recipient_email_once"
            ),
            models.UniqueConstraint(
                fields=["campaign", "contact"],
                condition=Q(contact__isnull=False),
                name="recipient_contact_once",
            ),
            models.UniqueConstraint(
                fields=["campaign", "provider"],
                condition=Q(provider__isnull=False),
                name="recipient_provider_once",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "next_attempt_at"]),
            models.Index(fields=["email"]),
            models.Index(fields=["message_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name


class AttemptOutcome(models.TextChoices):
    SENT = "sent", "Accepted by the mail server"
    TEMPORARY = "temporary", "Temporary failure (will retry)"
    GAVE_UP = "gave_up", "Temporary failures: gave up"
    BOUNCED = "bounced", "Address refused"
    FAILED = "failed", "Refused"
    UNCERTAIN = "uncertain", "Connection lost: delivery unknown"


class DeliveryAttempt(models.Model):
    """Each time a sender handed a message to the mail server: the history of a recipient."""

    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="attempts_made")
    at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    smtp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.recipient_id}: {self.outcome}"


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINT = "complaint", "Marked as spam"
    MANUAL = "manual", "Added by hand"


class Suppression(models.Model):
    """An address we never email again, in any campaign (checked as each message is claimed)."""

    email = models.CharField(max_length=254, unique=True)
    reason = models.CharField(max_length=12, choices=SuppressionReason.choices)
    at = models.DateTimeField(default=timezone.now)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="suppressions"
    )
    recipient = models.ForeignKey(
        Recipient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.CharField(max_length=300, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.email} ({self.get_reason_display()})"


# Quizzes --------------------------------------------------------------------------------------


class QuizRule(models.TextChoices):
    FIRST = "first", "The first all-correct answer wins"
    RANDOM = "random", "Drawn at random among the all-correct answers"


class Quiz(models.Model):
    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="quiz")
    closes_at = models.DateTimeField("answers accepted until")
    opens_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="set when sent")
    rule = models.CharField(max_length=8, choices=QuizRule.choices, default=QuizRule.FIRST)
    prize = models.CharField(max_length=200, blank=True, help_text="e.g. a coffee for the office")

    class Meta:
        verbose_name_plural = "quizzes"

    def __str__(self) -> str:
        return f"quiz of {self.campaign}"

    def is_open(self, at: object = None) -> bool:
        at = at or timezone.now()
        return self.opens_at is not None and self.opens_at <= at < self.closes_at


class Question(models.Model):
    quiz = models.ForeignKey(Quiz, on_delete=models.CASCADE, related_name="questions")
    position = models.PositiveSmallIntegerField()
    text = models.CharField(max_length=500)
    choices = models.JSONField(default=list)
    correct = models.PositiveSmallIntegerField(help_text="index of the right choice, from 0")

    class Meta:
        ordering = ["position", "pk"]
        constraints = [models.UniqueConstraint(fields=["quiz", "position"], name="question_position_once")]

    def __str__(self) -> str:
        return self.text


class QuizAnswer(models.Model):
    quiz = models.ForeignKey(Quiz, on_delete=models.CASCADE, related_name="answers")
    recipient = models.OneToOneField(Recipient, on_delete=models.CASCADE, related_name="quiz_answer")
    choices = models.JSONField(default=dict, help_text="{question id: choice index}")
    correct_count = models.PositiveSmallIntegerField(default=0)
    all_correct = models.BooleanField(default=False)
    submitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["submitted_at", "pk"]
        indexes = [models.Index(fields=["quiz", "all_correct", "submitted_at"])]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.correct_count} right"


class QuizDraw(models.Model):
    """How the winner was chosen, kept for anyone to check: the rule, the ordered candidates, the
    seed of a random draw (random.Random(seed).choice(candidates) gives the same winner again)."""

    quiz = models.OneToOneField(Quiz, on_delete=models.CASCADE, related_name="draw")
    rule = models.CharField(max_length=8, choices=QuizRule.choices)
    seed = models.CharField(max_length=40, blank=True)
    candidates = models.JSONField(default=list, help_text="all-correct answer ids, in order")
    winner = models.ForeignKey(QuizAnswer, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    drawn_at = models.DateTimeField(default=timezone.now)
    drawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254)

    def __str__(self) -> str:
        return f"draw of {self.quiz}"


# Events ---------------------------------------------------------------------------------------


class EventKind(models.TextChoices):
    SEMINAR = "seminar", "Seminar"
    GRAND_ROUNDS = "grand_rounds", "Grand rounds"
    OPEN_HOUSE = "open_house", "Open house"
    OTHER = "other", "Other event"


class Event(models.Model):
    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="event")
    kind = models.CharField(max_length=14, choices=EventKind.choices, default=EventKind.SEMINAR)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    site = models.ForeignKey(
        "directory.Location",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"practice__is_ours": True},
        verbose_name="at our site",
    )
    venue = models.CharField(
        max_length=300, blank=True, help_text="room, or the address if not one of our sites"
    )
    capacity = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    speakers = models.ManyToManyField(
        "directory.Provider", blank=True, related_name="+", limit_choices_to={"is_ours": True}
    )

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.campaign}"

    @property
    def where(self) -> str:
        parts = [self.venue] if self.venue else []
        if self.site_id:
            parts.append(f"{self.site.practice.name}, {self.site.short_address}")
        return " · ".join(parts)


class RsvpAnswer(models.TextChoices):
    YES = "yes", "Will attend"
    NO = "no", "Cannot attend"


class Rsvp(models.Model):
    """Each answer is a row; a person's latest one counts."""

    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="rsvps")
    answer = models.CharField(max_length=4, choices=RsvpAnswer.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["recipient", "at"])]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.answer}"


class Attendance(models.Model):
    """Someone invited who came; logged as an outreach activity on their office's account."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="attendances")
    recipient = models.OneToOneField(Recipient, on_delete=models.CASCADE, related_name="attendance")
    activity = models.ForeignKey(
        "outreach.Activity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    checked_in_at = models.DateTimeField(default=timezone.now)
    checked_in_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["checked_in_at", "pk"]

    def __str__(self) -> str:
        return f"{self.recipient} at {self.event}"
