"""Referrals: each referred patient from receipt to consult note back.

Patient fields are encrypted at rest (liaison.core.phi); the status is the last of the referral's
`ReferralEvent` history rows, cached on the referral (with the milestone times) so that work
queues and service-level checks are plain indexed queries. Only services write either.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from liaison.core.models import TimeStampedModel
from liaison.core.phi import EncryptedDateField, EncryptedTextField


class Status(models.TextChoices):
    """Aligned with HL7 BSeR Task.businessStatus."""

    RECEIVED = "received", "Received"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    SCHEDULED = "scheduled", "Scheduled"
    SEEN = "seen", "Seen"
    NO_SHOW = "no_show", "No-show"
    CANCELLED = "cancelled", "Cancelled"
    NOTE_SENT = "note_sent", "Consult note sent"
    CLOSED = "closed", "Closed"


OPEN_STATUSES = (
    Status.RECEIVED,
    Status.ACCEPTED,
    Status.SCHEDULED,
    Status.SEEN,
    Status.NO_SHOW,
    Status.NOTE_SENT,
)
# The button that moves a referral to each status, as a verb ("Accept", not "Accepted").
ACTION_LABELS = {
    Status.RECEIVED: "Re-open",
    Status.ACCEPTED: "Accept",
    Status.DECLINED: "Decline",
    Status.SCHEDULED: "Schedule",
    Status.SEEN: "Mark seen",
    Status.NO_SHOW: "Record a no-show",
    Status.CANCELLED: "Cancel the referral",
    Status.NOTE_SENT: "Record the consult note sent",
    Status.CLOSED: "Close",
}

# Where each status may go next; "reopen" goes back to received from an ending.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.RECEIVED: (Status.ACCEPTED, Status.DECLINED, Status.CANCELLED),
    Status.ACCEPTED: (Status.SCHEDULED, Status.DECLINED, Status.CANCELLED),
    Status.SCHEDULED: (Status.SCHEDULED, Status.SEEN, Status.NO_SHOW, Status.CANCELLED),
    Status.NO_SHOW: (Status.SCHEDULED, Status.CANCELLED, Status.CLOSED),
    Status.SEEN: (Status.NOTE_SENT,),
    Status.NOTE_SENT: (Status.CLOSED,),
    Status.DECLINED: (Status.RECEIVED,),
    Status.CANCELLED: (Status.RECEIVED,),
    Status.CLOSED: (Status.RECEIVED,),
}


class Urgency(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    STAT = "stat", "Stat (same day)"


URGENCY_RANK = {Urgency.STAT: 0, Urgency.URGENT: 1, Urgency.ROUTINE: 2}


def urgency_rank(where: models.Q | None = None) -> models.Case:
    """URGENCY_RANK in SQL (the work queue's order); with `where`, only where it holds, else null."""
    only = where or models.Q()
    return models.Case(
        *(
            models.When(only & models.Q(urgency=u), then=models.Value(rank))
            for u, rank in URGENCY_RANK.items()
        ),
        default=None,
        output_field=models.SmallIntegerField(null=True),
    )


class Channel(models.TextChoices):
    FAX = "fax", "Fax"
    PHONE = "phone", "Phone"
    EREFERRAL = "ereferral", "E-referral"
    HL7 = "hl7", "HL7 v2"
    FHIR = "fhir", "FHIR"
    PORTAL = "portal", "Referring-office portal"
    WALK_IN = "walk_in", "Walk-in"
    IMPORT = "import", "File import"


class ServiceLine(TimeStampedModel):
    """A clinical service (e.g. joint replacement, sports medicine) with its service levels,
    in business days."""

    name = models.CharField(max_length=100, unique=True)
    first_contact_days = models.PositiveSmallIntegerField(
        default=1, help_text="receipt to first contact with the patient"
    )
    appointment_days = models.PositiveSmallIntegerField(default=10, help_text="receipt to the appointment")
    note_days = models.PositiveSmallIntegerField(default=2, help_text="visit to consult note sent")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Holiday(models.Model):
    """A day the practice is closed: not counted in service levels."""

    date = models.DateField(unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class ReferralQuerySet(models.QuerySet["Referral"]):
    def open(self) -> ReferralQuerySet:
        return self.filter(status__in=OPEN_STATUSES)

    def for_user(self, user: object) -> ReferralQuerySet:
        """The referrals a user may see with their patient data: none for liaisons and analysts,
        their own patients for physicians, all for coordinators, managers and admins."""
        if not getattr(user, "can_see_phi", False):
            return self.none()
        if user.role == "physician":
            granted = EmergencyAccess.objects.filter(user=user, expires_at__gt=timezone.now()).values(
                "referral_id"
            )
            own = (
                models.Q(referred_to_physician_id=user.provider_id)
                if user.provider_id
                else models.Q(pk__in=[])
            )
            return self.filter(own | models.Q(pk__in=granted))
        return self


class Referral(TimeStampedModel):
    # Patient (PHI: encrypted; the blind indexes allow duplicate detection and exact search).
    patient_first_name = EncryptedTextField()
    patient_last_name = EncryptedTextField()
    patient_dob = EncryptedDateField("patient date of birth")
    patient_phone = EncryptedTextField(blank=True)
    patient_mrn = EncryptedTextField("MRN", blank=True)
    patient_zip = EncryptedTextField("patient ZIP", blank=True)
    member_id = EncryptedTextField("member id", blank=True)
    reason = EncryptedTextField("reason for referral", blank=True)
    icd10_codes = EncryptedTextField("ICD-10 codes", blank=True, help_text="comma-separated")
    patient_key = models.CharField(
        max_length=40, db_index=True, editable=False, help_text="blind index: last name + DOB"
    )
    patient_name_key = models.CharField(
        max_length=40, db_index=True, editable=False, help_text="blind index: last name"
    )
    mrn_key = models.CharField(max_length=40, db_index=True, blank=True, editable=False)

    payer = models.CharField(
        max_length=100, blank=True, help_text="the health plan (not patient-identifying)"
    )

    # Who referred: an unknown referrer never loses the referral, it is flagged for a human.
    # Foreign keys and status without an index of their own where a composite index below starts
    # with them: each index costs every insert (a 100k-row import maintains them all).
    referring_provider = models.ForeignKey(
        "directory.Provider",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referrals_sent",
        db_index=False,
    )
    referring_location = models.ForeignKey(
        "directory.Location", null=True, blank=True, on_delete=models.PROTECT, related_name="referrals_sent"
    )
    referrer_to_match = models.BooleanField(default=False)  # indexed where true: "referral_to_match"
    referrer_as_received = models.JSONField(
        default=dict,
        blank=True,
        help_text="the referrer as the source gave it: npi, name, phone, fax, practice",
    )

    # To whom.
    site = models.ForeignKey(
        "directory.Location",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referrals_received",
        limit_choices_to={"practice__is_ours": True},
        verbose_name="our site",
        db_index=False,
    )
    referred_to_physician = models.ForeignKey(
        "directory.Provider",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referrals_received",
        limit_choices_to={"is_ours": True},
        verbose_name="our physician",
    )
    service_line = models.ForeignKey(
        ServiceLine, null=True, blank=True, on_delete=models.PROTECT, related_name="referrals"
    )

    urgency = models.CharField(max_length=8, choices=Urgency.choices, default=Urgency.ROUTINE)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.FAX)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_referrals",
        db_index=False,
    )

    # Current state, cached from the history rows by the services.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The work queue's default order, kept by the database: 0 stat, 1 urgent, 2 routine while the
    # referral is open, empty once it has ended. With its partial index the queue's first page is
    # read in order instead of sorting every open referral (1M referrals: 1.1 s to a few ms).
    queue_rank = models.GeneratedField(
        expression=urgency_rank(models.Q(status__in=OPEN_STATUSES)),
        output_field=models.SmallIntegerField(null=True),
        db_persist=True,
    )
    first_contact_at = models.DateTimeField(null=True, blank=True)
    appointment_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    note_sent_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    # Identifiers of the sending system, for idempotent intake.
    source_system = models.CharField(max_length=100, blank=True)
    external_id = models.CharField(
        max_length=100, blank=True, help_text="HL7 RF1-6 / RF1-11, FHIR identifier"
    )

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["status", "received_at"]),
            models.Index(fields=["assigned_to", "status"]),
            models.Index(fields=["referring_provider", "received_at"]),
            models.Index(fields=["site", "status"]),
            # The few referrals whose referrer is still to be matched (the navigation counts them).
            models.Index(
                fields=["status"], condition=models.Q(referrer_to_match=True), name="referral_to_match"
            ),
            # The open work queue in its default order (see queue_rank).
            models.Index(
                fields=["queue_rank", "received_at", "id"],
                condition=models.Q(queue_rank__isnull=False),
                name="referral_queue",
            ),
            # Referrals awaiting their first contact, counted and ordered from the index alone.
            models.Index(
                fields=["status", "first_contact_at", "queue_rank", "received_at", "id"],
                condition=models.Q(first_contact_at__isnull=True),
                name="referral_not_contacted",
            ),
            # Leakage (analytics): the referrals never scheduled, and those scheduled but never seen,
            # by site, our physician and coordinator. Small (only the leaked rows), they let the
            # drill-downs count without reading the table (PostgreSQL 1M rows: 500 ms to 3 ms).
            # received_at last: a drill-down lists these newest first from the index alone.
            models.Index(
                fields=["site", "referred_to_physician", "assigned_to", "received_at"],
                condition=models.Q(appointment_at__isnull=True),
                name="referral_never_scheduled",
            ),
            models.Index(
                fields=["site", "referred_to_physician", "assigned_to", "received_at"],
                condition=models.Q(appointment_at__isnull=False, seen_at__isnull=True),
                name="referral_never_seen",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "external_id"],
                condition=~models.Q(external_id=""),
                name="referral_external_id_once",
            )
        ]

    objects = ReferralQuerySet.as_manager()

    def __str__(self) -> str:
        # Never the patient's name: this string lands in audit rows, logs and page titles.
        return f"Referral #{self.pk}"

    @property
    def patient_name(self) -> str:
        return f"{self.patient_first_name} {self.patient_last_name}".strip()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def next_statuses(self) -> tuple[str, ...]:
        return TRANSITIONS.get(self.status, ())


PHI_FIELDS = (
    "patient_first_name",
    "patient_last_name",
    "patient_dob",
    "patient_phone",
    "patient_mrn",
    "patient_zip",
    "member_id",
    "reason",
    "icd10_codes",
)


class EventKind(models.TextChoices):
    STATUS = "status", "Status change"
    CONTACT = "contact", "Contact with the patient"
    NOTE = "note", "Note"
    NOTIFICATION = "notification", "Referring office informed"
    DOCUMENT = "document", "Document attached"
    ASSIGNMENT = "assignment", "Assigned"
    REFERRER = "referrer", "Referrer matched"
    EDIT = "edit", "Details changed"


class ReferralEvent(models.Model):
    """One step in a referral's life: who, when, from which status to which, and a note."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="events", db_index=False)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=254, help_text="the user's email, or the system that acted")
    kind = models.CharField(max_length=12, choices=EventKind.choices)
    from_status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    note = EncryptedTextField(blank=True, help_text="may mention the patient: encrypted")
    data = models.JSONField(
        default=dict, blank=True, help_text="non-PHI details: appointment time, reason codes, channel"
    )

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["referral", "at"]), models.Index(fields=["kind", "to_status", "at"])]

    def __str__(self) -> str:
        return f"{self.referral} {self.kind} {self.to_status} @ {self.at:%Y-%m-%d %H:%M}"

    @property
    def appointment(self) -> datetime | None:
        """The appointment this step booked (kept in `data` as ISO text), or None."""
        try:
            return datetime.fromisoformat(self.data.get("appointment_at") or "")
        except (AttributeError, TypeError, ValueError):
            return None

    @property
    def decline_reason_label(self) -> str:
        code = self.data.get("decline_reason", "") if isinstance(self.data, dict) else ""
        return DeclineReason(code).label if code in DeclineReason.values else code

    @property
    def included_labels(self) -> list[str]:
        """What went back with the consult note, in words."""
        from liaison.referrals.notifications import INCLUDED_LABELS

        included = self.data.get("included", []) if isinstance(self.data, dict) else []
        return [INCLUDED_LABELS.get(code, code) for code in included]

    @property
    def contact_label(self) -> str:
        """A contact with the patient's outcome, in words ("Left a message")."""
        code = self.data.get("outcome", "") if isinstance(self.data, dict) else ""
        return ContactOutcome(code).label if code in ContactOutcome.values else code

    @property
    def notification_label(self) -> str:
        """What was done to tell the office, in words: a letter is only prepared until it is faxed."""
        data = self.data if isinstance(self.data, dict) else {}
        milestone, outcome = data.get("milestone", ""), data.get("outcome", "")
        about = Status(milestone).label.lower() if milestone in Status.values else milestone
        what = {
            NotifyBy.LETTER: "Letter to the office faxed or mailed"
            if outcome == Notification.Outcome.SENT
            else "Letter to the office prepared",
            NotifyBy.EMAIL: "Email to the office",
            NotifyBy.FHIR: "FHIR update to the office",
        }.get(data.get("channel", ""), "Office notified")
        result = (
            Notification.Outcome(outcome).label.lower() if outcome in Notification.Outcome.values else outcome
        )
        return f"{what} ({about}): {result}" if result else f"{what} ({about})"


class ContactOutcome(models.TextChoices):
    REACHED = "reached", "Reached the patient"
    LEFT_MESSAGE = "left_message", "Left a message"
    NO_ANSWER = "no_answer", "No answer"
    WRONG_NUMBER = "wrong_number", "Wrong number"


class DeclineReason(models.TextChoices):
    NOT_COVERED = "not_covered", "Insurance not accepted"
    WRONG_SPECIALTY = "wrong_specialty", "Not our specialty"
    INCOMPLETE = "incomplete", "Missing information"
    PATIENT_DECLINED = "patient_declined", "Patient declined"
    UNREACHABLE = "unreachable", "Patient unreachable"
    OTHER = "other", "Other"


def document_path(instance: ReferralDocument, filename: str) -> str:
    # The stored name says nothing about the patient (the original name is kept encrypted).
    return f"referrals/{timezone.now():%Y/%m}/{instance.referral_id}-{timezone.now():%H%M%S%f}.bin"


class ReferralDocument(models.Model):
    """A document that came with the referral (often a fax), stored encrypted."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=document_path, max_length=200)
    filename = EncryptedTextField(help_text="original name (may contain the patient's name)")
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["uploaded_at"]

    def __str__(self) -> str:
        return f"Document #{self.pk} of {self.referral}"


class SlaKind(models.TextChoices):
    FIRST_CONTACT = "first_contact", "First contact with the patient"
    APPOINTMENT = "appointment", "Appointment"
    NOTE = "note", "Consult note sent"


class SlaBreach(models.Model):
    """A service level a referral missed: opened by the SLA check, closed when the step is done."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="sla_breaches")
    kind = models.CharField(max_length=14, choices=SlaKind.choices)
    due_at = models.DateTimeField()
    detected_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [models.UniqueConstraint(fields=["referral", "kind"], name="one_breach_per_sla")]

    def __str__(self) -> str:
        return f"{self.referral} missed {self.kind}"


class NotifyBy(models.TextChoices):
    LETTER = "letter", "Letter / fax (PDF)"
    EMAIL = "email", "Email (no patient data, link to the portal)"
    FHIR = "fhir", "FHIR Task update"
    NONE = "none", "Do not notify"


class OfficePreference(models.Model):
    """How a referring office wants to hear about its referrals."""

    location = models.OneToOneField(
        "directory.Location", on_delete=models.CASCADE, related_name="referral_preference"
    )
    notify_by = models.CharField(max_length=8, choices=NotifyBy.choices, default=NotifyBy.LETTER)
    contact = models.ForeignKey(
        "directory.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="who receives the emails (usually the referral coordinator)",
    )
    fhir_endpoint = models.URLField(blank=True, help_text="base URL that receives Task updates (FHIR)")

    def __str__(self) -> str:
        return f"{self.location}: {self.get_notify_by_display()}"


class Notification(models.Model):
    """One message to the referring office about one milestone."""

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        READY = "ready", "Ready to fax or mail"
        FAILED = "failed", "Failed"

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="notifications")
    event = models.ForeignKey(
        ReferralEvent,
        on_delete=models.CASCADE,
        related_name="notifications",
        help_text="the milestone it reports",
    )
    milestone = models.CharField(max_length=10, choices=Status.choices)
    channel = models.CharField(max_length=8, choices=NotifyBy.choices)
    recipient = models.CharField(
        max_length=254, blank=True, help_text="email address, fax number or endpoint"
    )
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    detail = models.CharField(max_length=300, blank=True, help_text="non-PHI: why it failed, message id")
    document = models.FileField(
        upload_to="notifications/%Y/%m/", blank=True, max_length=200, help_text="encrypted PDF"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when the office got it: at once for an email or a FHIR update, when faxed or mailed for a letter",
    )

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="one_notification_per_milestone")
        ]
        # The queue's "Letters to send": the few letters still waiting, not every notification.
        indexes = [
            models.Index(
                fields=["referral"],
                condition=models.Q(channel="letter", outcome="ready"),
                name="notification_letter_to_send",
            )
        ]

    def __str__(self) -> str:
        return f"{self.referral} {self.milestone} by {self.channel}"


class PortalToken(models.Model):
    """A one-time sign-in link for a referring-office contact (only its SHA-256 is stored)."""

    contact = models.ForeignKey("directory.Contact", on_delete=models.CASCADE, related_name="portal_tokens")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"portal link for contact {self.contact_id}"


class OutboundReferral(models.Model):
    """Refer back: one of our patients referred to a partner (a primary-care physician or another
    specialist), preferably one who refers to us."""

    referral = models.ForeignKey(
        Referral,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outbound",
        help_text="the referral that brought us the patient, if any",
    )
    patient_first_name = EncryptedTextField(blank=True)
    patient_last_name = EncryptedTextField(blank=True)
    patient_dob = EncryptedDateField(blank=True, null=True)
    to_provider = models.ForeignKey(
        "directory.Provider", on_delete=models.PROTECT, related_name="referrals_from_us"
    )
    to_location = models.ForeignKey(
        "directory.Location",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referrals_from_us",
    )
    specialty = models.ForeignKey(
        "directory.Taxonomy", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = EncryptedTextField(blank=True)
    urgency = models.CharField(max_length=8, choices=Urgency.choices, default=Urgency.ROUTINE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    sent_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"Outbound referral #{self.pk}"


class EmergencyAccess(models.Model):
    """Break-glass: a physician opens a referral that is not theirs, giving a reason. The access
    lasts an hour, is audited, and the admins are told (HIPAA 164.312(a)(2)(ii))."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="emergency_accesses"
    )
    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="emergency_accesses")
    reason = EncryptedTextField(help_text="may describe the patient's situation: encrypted")
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-granted_at"]

    def __str__(self) -> str:
        return f"emergency access to {self.referral} by user {self.user_id}"
