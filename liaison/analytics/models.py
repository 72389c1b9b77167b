"""Analytics tables. Nothing here is entered by a user: the refresh job (`liaison analytics refresh`,
hourly in the worker) rebuilds the rollups from the referral and outreach history rows, and keeps
the cooling alerts' own history (an alert row per episode, opened and cleared).

None of these tables holds patient data: counts, dates, referrers and our sites only.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class RefreshRun(models.Model):
    """One run of the refresh job: when the dashboards' figures were computed, and how long it took."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    as_of = models.DateField(help_text="the day the figures describe (referrals up to its end)")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    referrals = models.PositiveIntegerField(default=0)
    referrers = models.PositiveIntegerField(default=0)
    alerts_opened = models.PositiveIntegerField(default=0)
    alerts_cleared = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"Analytics refresh {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class Grain(models.TextChoices):
    MONTH = "month", "Month"
    WEEK = "week", "Week"


class VolumeCell(models.Model):
    """Referral counts for one period and one combination of the slices the dashboard filters by.

    Months cover the whole history; weeks the last `WEEKS_KEPT` weeks (the weekly trend)."""

    grain = models.CharField(max_length=5, choices=Grain.choices)
    period = models.DateField(help_text="first day of the month, or Monday of the week")
    site = models.ForeignKey("directory.Location", null=True, on_delete=models.CASCADE, related_name="+")
    physician = models.ForeignKey("directory.Provider", null=True, on_delete=models.CASCADE, related_name="+")
    service_line = models.ForeignKey(
        "referrals.ServiceLine", null=True, on_delete=models.CASCADE, related_name="+"
    )
    payer = models.CharField(max_length=100, blank=True)
    specialty = models.CharField(max_length=10, blank=True, help_text="the referrer's primary taxonomy code")
    territory = models.ForeignKey("outreach.Territory", null=True, on_delete=models.CASCADE, related_name="+")
    referrals = models.PositiveIntegerField(default=0)
    scheduled = models.PositiveIntegerField(default=0, help_text="reached an appointment")
    seen = models.PositiveIntegerField(default=0)
    note_sent = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["grain", "period"])]

    def __str__(self) -> str:
        return f"{self.grain} {self.period}: {self.referrals}"


class Loyalty(models.TextChoices):
    UNKNOWN = "", "Unknown"
    LOYAL = "loyal", "Loyal"
    SPLITTER = "splitter", "Splitter"


class ReferrerStat(models.Model):
    """One row per referring provider: volume, first and last referral, and (where market data has
    their shared-patient totals) the share of their patients they send to us."""

    provider = models.OneToOneField(
        "directory.Provider", primary_key=True, on_delete=models.CASCADE, related_name="referrer_stat"
    )
    practice = models.ForeignKey("directory.Practice", null=True, on_delete=models.SET_NULL, related_name="+")
    account = models.ForeignKey("outreach.Account", null=True, on_delete=models.SET_NULL, related_name="+")
    territory = models.ForeignKey(
        "outreach.Territory", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    specialty = models.CharField(max_length=10, blank=True)
    first_on = models.DateField()
    last_on = models.DateField()
    total = models.PositiveIntegerField(default=0)
    last_90 = models.PositiveIntegerField(default=0)
    prev_90 = models.PositiveIntegerField(default=0)
    last_365 = models.PositiveIntegerField(default=0)
    monthly = models.JSONField(default=list, help_text="counts of the last 12 months, oldest first")
    share_with_us = models.FloatField(
        null=True, help_text="patients shared with our physicians / with all of our specialty (market data)"
    )
    loyalty = models.CharField(max_length=8, choices=Loyalty.choices, blank=True)

    class Meta:
        indexes = [
            # In the order the pages list them, so that the first 20 are read without a sort.
            models.Index(fields=["-last_365", "provider"], name="referrerstat_top"),
            models.Index(fields=["-first_on", "provider"], name="referrerstat_first"),
            models.Index(fields=["-last_on", "provider"], name="referrerstat_last"),
        ]

    def __str__(self) -> str:
        return f"Referrer stats of provider {self.provider_id}"


class CoolingAlert(models.Model):
    """One episode of a referrer cooling off: opened by the detector, cleared when volume recovers.

    The figures are those of the run that opened it (the explanation quotes them)."""

    provider = models.ForeignKey(
        "directory.Provider", on_delete=models.CASCADE, related_name="cooling_alerts"
    )
    account = models.ForeignKey(
        "outreach.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="cooling_alerts"
    )
    opened_on = models.DateField()
    cleared_on = models.DateField(null=True, blank=True)
    cleared_reason = models.CharField(max_length=300, blank=True)
    baseline_per_month = models.FloatField()
    history_months = models.FloatField()
    expected_recent = models.FloatField()
    recent_count = models.PositiveIntegerField()
    recent_days = models.PositiveSmallIntegerField()
    p_value = models.FloatField()
    explanation = models.CharField(max_length=500)
    task = models.ForeignKey(
        "outreach.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="cooling_alerts"
    )

    class Meta:
        ordering = ["-opened_on", "p_value"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider"], condition=Q(cleared_on__isnull=True), name="one_open_cooling_alert"
            )
        ]
        indexes = [models.Index(fields=["cleared_on", "opened_on"])]

    def __str__(self) -> str:
        return f"Cooling alert on provider {self.provider_id} ({self.opened_on})"

    @property
    def is_open(self) -> bool:
        return self.cleared_on is None


class Snapshot(models.Model):
    """A precomputed table (leakage, turnaround, attribution, KPIs, reciprocity) as JSON rows."""

    name = models.CharField(max_length=60, unique=True)
    computed_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict)

    def __str__(self) -> str:
        return self.name
