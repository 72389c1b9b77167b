"""Market data: what the public CMS files say about the providers around our sites.

Everything here is public (NPPES, CMS shared patient patterns, Medicare utilisation): no patient
data. The directory (`liaison.directory`) stays the one place a provider lives; this package keeps
what NPPES said about each NPI (so that hand edits are never overwritten), the shared-patient pairs
and Medicare volumes of the providers we care about, the scores computed from them, and the
prospects a liaison flagged for outreach.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from liaison.directory.models import Location, Practice, Provider


class ImportKind(models.TextChoices):
    NPPES = "nppes", "NPPES providers"
    DEACTIVATIONS = "deactivations", "NPPES deactivation report"
    SHARED_PATIENTS = "shared-patients", "Shared patients"
    UTILIZATION = "utilization", "Medicare utilisation"


class ImportRun(models.Model):
    """One import of one file. An interrupted run is resumed by running the same import again."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Finished"
        FAILED = "failed", "Stopped"

    kind = models.CharField(max_length=20, choices=ImportKind.choices)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    # Same file (name, size, first and last megabyte) with the same filters: a re-run resumes it.
    file_key = models.CharField(max_length=64, db_index=True)
    file_format = models.CharField(max_length=120, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    message = models.CharField(max_length=500, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254, blank=True)
    job_run = models.ForeignKey(
        "core.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    # Kept rows already committed, and the key of the last one (checked when resuming).
    checkpoint = models.PositiveBigIntegerField(default=0)
    checkpoint_key = models.CharField(max_length=40, blank=True)
    rows_read = models.PositiveBigIntegerField(null=True, blank=True)
    rows_kept = models.PositiveBigIntegerField(default=0)
    inserted = models.PositiveBigIntegerField(default=0)
    updated = models.PositiveBigIntegerField(default=0)
    unchanged = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)
    rejected = models.PositiveBigIntegerField(default=0)
    # The first 100 of each: [{"row": 12, "reason": "...", "key": "..."}]
    rejected_rows = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    warning_count = models.PositiveBigIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.file_name}"

    STALE_AFTER = timedelta(minutes=10)

    @property
    def is_interrupted(self) -> bool:
        """Still marked running, but no batch committed for a while: the process died."""
        return self.status == self.Status.RUNNING and timezone.now() - self.heartbeat_at > self.STALE_AFTER

    @property
    def status_label(self) -> str:
        if self.is_interrupted:
            return "Interrupted (run the same import again to resume)"
        return self.get_status_display()

    def summary(self) -> str:
        read = f"{self.rows_read:,} rows read" if self.rows_read is not None else "rows read not counted"
        return (
            f"{read}, {self.rows_kept:,} kept: {self.inserted:,} inserted, {self.updated:,} updated, "
            f"{self.unchanged:,} unchanged, {self.skipped:,} skipped, {self.rejected:,} rejected"
        )

    def result(self) -> dict:
        """The figures the job page shows."""
        out = {
            "file": self.file_name,
            "format": self.file_format,
            "rows read": self.rows_read,
            "kept": self.rows_kept,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "rejected": self.rejected,
        }
        for item in self.rejected_rows[:5]:
            out[f"rejected row {item.get('row') or '?'}"] = item["reason"]
        if self.rejected > 5:
            out["all rejections"] = f"listed on the import page (/marketdata/imports/{self.pk}/)"
        return out


class NppesRecord(models.Model):
    """What NPPES last said about an NPI, kept apart from the directory.

    `values` holds the directory fields as NPPES gave them the last time they were applied: an
    import only changes a directory field that still equals that value (or is blank), so a hand
    edit is never overwritten. `hand_edited` names the fields kept because someone changed them.
    """

    npi = models.CharField("NPI", max_length=10, primary_key=True)
    entity_type = models.PositiveSmallIntegerField(null=True, blank=True)  # 1 individual, 2 organisation
    values = models.JSONField(default=dict)
    row_hash = models.CharField(max_length=40)
    address_key = models.CharField(max_length=200, blank=True)
    address = models.CharField(max_length=300, blank=True)
    taxonomy_codes = models.JSONField(default=list, blank=True)
    enumerated_on = models.DateField(null=True, blank=True)
    updated_on = models.DateField(null=True, blank=True)
    deactivated_on = models.DateField(null=True, blank=True)
    reactivated_on = models.DateField(null=True, blank=True)
    hand_edited = models.JSONField(default=list, blank=True)
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="nppes_records"
    )
    practice = models.ForeignKey(
        Practice, null=True, blank=True, on_delete=models.SET_NULL, related_name="nppes_records"
    )
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_run = models.ForeignKey(ImportRun, null=True, on_delete=models.SET_NULL, related_name="+")
    last_run = models.ForeignKey(ImportRun, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "NPPES record"

    def __str__(self) -> str:
        return self.npi

    @property
    def is_deactivated(self) -> bool:
        return bool(self.deactivated_on) and not (
            self.reactivated_on and self.reactivated_on >= self.deactivated_on
        )


class DirectoryChange(models.Model):
    """What an NPPES import changed that a liaison should hear about."""

    class Kind(models.TextChoices):
        NEW = "new", "New provider"
        NEW_PRACTICE = "new_practice", "New organisation"
        MOVED = "moved", "Moved"
        DEACTIVATED = "deactivated", "NPI deactivated"
        REACTIVATED = "reactivated", "NPI reactivated"

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    npi = models.CharField("NPI", max_length=10)
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    practice = models.ForeignKey(Practice, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=250)
    specialty = models.CharField(max_length=200, blank=True)
    old_address = models.CharField(max_length=300, blank=True)
    new_address = models.CharField(max_length=300, blank=True)
    distance_miles = models.FloatField(null=True, blank=True, help_text="from the nearest of our sites")
    nearest_site = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    on_date = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "distance_miles", "name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "npi", "kind"], name="directory_change_once_per_run")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.name}"


class SharedPatientDataset(models.Model):
    """One shared-patient file's worth of pairs: a source, a year and (CMS) a day window."""

    class Source(models.TextChoices):
        CMS = "cms", "CMS Physician Shared Patient Patterns"
        CARESET = "careset", "CareSet Hop Teaming"

    key = models.CharField(max_length=40, unique=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    window_days = models.PositiveSmallIntegerField(null=True, blank=True)
    pairs = models.PositiveIntegerField(default=0)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-imported_at"]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        parts = [self.get_source_display()]
        if self.year:
            parts.append(str(self.year))
        if self.window_days:
            parts.append(f"{self.window_days}-day window")
        return ", ".join(parts)


class SharedPatientPair(models.Model):
    """Two providers who saw the same Medicare patients (from_npi first), from one dataset.

    Only pairs touching our physicians, our competitors or providers near our sites are kept.
    """

    dataset = models.ForeignKey(SharedPatientDataset, on_delete=models.CASCADE, related_name="pair_set")
    from_npi = models.CharField(max_length=10)
    to_npi = models.CharField(max_length=10)
    patients = models.PositiveIntegerField(help_text="distinct beneficiaries (bene_count / patient_count)")
    transactions = models.PositiveIntegerField(
        null=True, blank=True, help_text="encounters (pair_count / transaction_count)"
    )
    same_day = models.PositiveIntegerField(null=True, blank=True)
    average_day_wait = models.FloatField(null=True, blank=True)
    std_day_wait = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "from_npi", "to_npi"], name="shared_pair_once")
        ]
        # The unique constraint serves lookups by (dataset, from_npi); this one the other direction.
        indexes = [models.Index(fields=["dataset", "to_npi"])]

    def __str__(self) -> str:
        return f"{self.from_npi} -> {self.to_npi}: {self.patients}"


class ProcedureVolume(models.Model):
    """Medicare Physician & Other Practitioners, by provider and service: one HCPCS code a year."""

    npi = models.CharField("NPI", max_length=10)
    year = models.PositiveSmallIntegerField()
    hcpcs_code = models.CharField("HCPCS code", max_length=10)
    hcpcs_description = models.CharField(max_length=300, blank=True)
    place_of_service = models.CharField(max_length=1, blank=True, help_text="F facility, O office")
    beneficiaries = models.PositiveIntegerField(null=True, blank=True)
    services = models.FloatField(null=True, blank=True)
    average_payment = models.FloatField(null=True, blank=True, help_text="average Medicare payment, USD")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["npi", "year", "hcpcs_code", "place_of_service"], name="procedure_volume_once"
            )
        ]
        indexes = [models.Index(fields=["npi", "year"])]

    def __str__(self) -> str:
        return f"{self.npi} {self.year} {self.hcpcs_code}"


class MedicareProfile(models.Model):
    """Medicare Physician & Other Practitioners, by provider: volume and payer-mix signal for a year."""

    npi = models.CharField("NPI", max_length=10)
    year = models.PositiveSmallIntegerField()
    beneficiaries = models.PositiveIntegerField(null=True, blank=True)
    services = models.FloatField(null=True, blank=True)
    hcpcs_codes = models.PositiveIntegerField(null=True, blank=True)
    dual_eligible = models.PositiveIntegerField(
        null=True, blank=True, help_text="beneficiaries also on Medicaid (blank when CMS suppressed it)"
    )
    not_dual_eligible = models.PositiveIntegerField(null=True, blank=True)
    average_age = models.FloatField(null=True, blank=True)
    average_risk_score = models.FloatField(null=True, blank=True)
    total_payment = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["npi", "year"], name="medicare_profile_once")]

    def __str__(self) -> str:
        return f"{self.npi} {self.year}"

    @property
    def dual_share(self) -> float | None:
        known = (self.dual_eligible or 0) + (self.not_dual_eligible or 0)
        if self.dual_eligible is None or not known:
            return None
        return self.dual_eligible / known


class Opportunity(models.Model):
    """An external provider near our sites with its explained score (recomputed after each import)."""

    provider = models.OneToOneField(Provider, on_delete=models.CASCADE, related_name="opportunity")
    practice = models.ForeignKey(Practice, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    nearest_site = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    distance_miles = models.FloatField()
    classification = models.CharField(max_length=120, blank=True)
    shared_with_us = models.PositiveIntegerField(default=0)
    our_physicians = models.PositiveSmallIntegerField(default=0)
    shared_with_competitors = models.PositiveIntegerField(default=0)
    competitors = models.PositiveSmallIntegerField(default=0)
    volume = models.PositiveIntegerField(default=0)
    specialty_fit = models.FloatField(default=0)
    score = models.FloatField(db_index=True)
    explanation = models.CharField(max_length=500)
    components = models.JSONField(default=dict)
    dataset = models.CharField(max_length=120, blank=True)
    scored_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "opportunities"
        ordering = ["-score", "distance_miles", "pk"]

    def __str__(self) -> str:
        return f"{self.provider}: {self.score:.0f}"

    @property
    def shared_total(self) -> int:
        return self.shared_with_us + self.shared_with_competitors

    @property
    def our_share(self) -> float | None:
        return self.shared_with_us / self.shared_total if self.shared_total else None


class Prospect(models.Model):
    """A provider or practice a liaison flagged for the outreach pipeline (the outreach domain turns
    the flag into a pipeline stage)."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="prospect_flags")
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.CASCADE, related_name="prospect_flags"
    )
    flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    flagged_at = models.DateTimeField(default=timezone.now)
    score = models.FloatField(null=True, blank=True)
    explanation = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-flagged_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "provider"],
                condition=Q(provider__isnull=False),
                name="prospect_provider_once",
            ),
            models.UniqueConstraint(
                fields=["practice"], condition=Q(provider__isnull=True), name="prospect_practice_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider or self.practice} (flagged)"
