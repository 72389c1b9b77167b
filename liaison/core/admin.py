"""Admin saves go through the audit trail like every other write."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.http import HttpRequest

from liaison.audit.services import record
from liaison.core.models import JobRun


class AuditedModelAdmin(admin.ModelAdmin):
    """Records an audit row for each save and delete made in the admin."""

    phi_fields: tuple[str, ...] = ()

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            changed = {
                name: "(patient data changed)" if name in self.phi_fields else "(changed in admin)"
                for name in form.changed_data
            }
            record(request.user, "update" if change else "create", obj, changes=changed)

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with transaction.atomic():
            record(request.user, "delete", obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        with transaction.atomic():
            for obj in queryset:
                record(request.user, "delete", obj)
            super().delete_queryset(request, queryset)


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ["label", "kind", "status", "progress_done", "progress_total", "created_by", "created_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [f.name for f in JobRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
