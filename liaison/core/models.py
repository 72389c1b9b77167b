from __future__ import annotations

from django.conf import settings
from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class JobRun(models.Model):
    """A long-running job that a user started and watches: import, send, recompute.

    The task itself runs in the worker (django-tasks); this row carries what the page shows:
    status, progress and a short result. It never holds patient data.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=80)
    label = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task_result_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_status_display()})"

    @property
    def percent(self) -> int | None:
        if not self.progress_total:
            return None
        return min(100, round(100 * self.progress_done / self.progress_total))

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class PeriodicSlot(models.Model):
    """One row per (periodic job, time slot): the unique constraint lets any number of
    workers run the scheduler while each slot is enqueued exactly once."""

    name = models.CharField(max_length=120)
    slot = models.DateTimeField()
    enqueued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "slot"], name="periodic_slot_once")]

    def __str__(self) -> str:
        return f"{self.name} @ {self.slot:%Y-%m-%d %H:%M}"


class ConstraintErrorsOnFields(models.Model):
    """Report a violated constraint on the field it is about (not as a page-level error).

    `constraint_fields` maps a constraint's `violation_error_code` to the field to blame.
    """

    constraint_fields: dict[str, str] = {}

    class Meta:
        abstract = True

    def validate_constraints(self, exclude: object = None) -> None:
        from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

        try:
            super().validate_constraints(exclude=exclude)
        except ValidationError as exc:
            errors: dict[str, list] = {}
            for field, field_errors in exc.error_dict.items():
                for err in field_errors:
                    target = (
                        self.constraint_fields.get(err.code or "", field)
                        if field == NON_FIELD_ERRORS
                        else field
                    )
                    errors.setdefault(target, []).append(err)
            raise ValidationError(errors) from None
