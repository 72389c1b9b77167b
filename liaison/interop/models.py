"""What the intake channels remember: HL7 messages received, appointment links, saved column
mappings and file uploads. Patient data only ever sits in encrypted fields (the raw HL7 message,
an uploaded file's name and content); every other column is safe to list on an admin page.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from liaison.core.phi import EncryptedTextField


class Hl7Outcome(models.TextChoices):
    ACCEPTED = "AA", "Accepted (AA)"
    ERROR = "AE", "Application error (AE)"
    REJECTED = "AR", "Rejected (AR)"


class Hl7Message(models.Model):
    """One HL7 v2 message received (from a file or the MLLP listener) and what we answered."""

    class Channel(models.TextChoices):
        MLLP = "mllp", "MLLP listener"
        FILE = "file", "File import"

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    channel = models.CharField(max_length=4, choices=Channel.choices)
    peer = models.CharField(max_length=100, blank=True, help_text="the sender's address (MLLP)")
    sending_application = models.CharField(max_length=100, blank=True, help_text="MSH-3")
    sending_facility = models.CharField(max_length=100, blank=True, help_text="MSH-4")
    control_id = models.CharField("message control id", max_length=100, blank=True, help_text="MSH-10")
    message_type = models.CharField(max_length=20, blank=True, help_text="MSH-9, e.g. REF^I12")
    digest = models.CharField(
        max_length=64, db_index=True, help_text="keyed hash of the message: recognises a re-sent one"
    )
    outcome = models.CharField(max_length=2, choices=Hl7Outcome.choices)
    error_code = models.CharField(max_length=4, blank=True, help_text="HL7 table 0357")
    error = models.CharField(max_length=500, blank=True, help_text="why (never patient data)")
    result = models.CharField(max_length=200, blank=True, help_text="what it did, e.g. 'created'")
    referral = models.ForeignKey(
        "referrals.Referral", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    raw = EncryptedTextField(blank=True, help_text="the message as received (PHI: encrypted)")

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = "HL7 message"
        indexes = [models.Index(fields=["sending_facility", "control_id"])]

    def __str__(self) -> str:
        return f"HL7 {self.message_type or '?'} {self.control_id or '(no id)'} {self.outcome}"


class AppointmentLink(models.Model):
    """Which referral a scheduling system's appointment (SCH-1 / SCH-2) belongs to, so that the
    reschedule and no-show messages that follow find it."""

    source_system = models.CharField(max_length=100)
    placer_id = models.CharField(max_length=100, blank=True, help_text="SCH-1")
    filler_id = models.CharField(max_length=100, blank=True, help_text="SCH-2")
    referral = models.ForeignKey("referrals.Referral", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["source_system", "filler_id"]),
            models.Index(fields=["source_system", "placer_id"]),
        ]

    def __str__(self) -> str:
        return f"appointment {self.filler_id or self.placer_id} of {self.referral}"


class ColumnMapping(models.Model):
    """A saved answer to "which column holds what" for one practice-management export."""

    name = models.CharField(max_length=100, unique=True)
    source_system = models.CharField(
        max_length=100,
        editable=False,
        help_text="'csv:<name at creation>': with the row key, recognises rows already imported",
    )
    columns = models.JSONField(default=dict, help_text="target field -> column header")
    dob_format = models.CharField("date of birth format", max_length=20, default="%m/%d/%Y")
    date_format = models.CharField("other dates format", max_length=20, default="%m/%d/%Y")
    headers = models.JSONField(default=list, help_text="the header it was made for (to propose it again)")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReferralImport(models.Model):
    """An uploaded practice-management export, from upload to import. The file is PHI: stored
    encrypted, deleted once imported (or abandoned)."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        IMPORTING = "importing", "Importing"
        IMPORTED = "imported", "Imported"
        FAILED = "failed", "Nothing imported"

    file = models.FileField(upload_to="imports/%Y/%m/", max_length=200, blank=True)
    filename = EncryptedTextField(help_text="original name (may contain a patient's name)")
    kind = models.CharField(max_length=4, choices=[("csv", "CSV"), ("xlsx", "Excel")])
    size = models.PositiveIntegerField()
    headers = models.JSONField(default=list)
    row_count = models.PositiveIntegerField(default=0)
    mapping = models.ForeignKey(
        ColumnMapping, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports"
    )
    skip_bad_rows = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UPLOADED)
    job = models.ForeignKey("core.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    result = models.JSONField(default=dict, blank=True, help_text="counts and row errors (no patient data)")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Referral import #{self.pk}"
