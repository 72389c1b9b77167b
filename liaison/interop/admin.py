"""Admin pages of the intake: the HL7 message log (no patient data shown) and saved mappings."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from liaison.core.admin import AuditedModelAdmin
from liaison.interop.models import ColumnMapping, Hl7Message


@admin.register(Hl7Message)
class Hl7MessageAdmin(AuditedModelAdmin):
    """Recent messages and what we answered. The raw message (patient data) is never shown."""

    list_display = [
        "received_at",
        "message_type",
        "control_id",
        "sending_facility",
        "channel",
        "outcome",
        "error_code",
        "short_error",
        "result",
        "referral_id",
    ]
    list_filter = ["outcome", "message_type", "channel", "sending_facility"]
    search_fields = ["control_id"]
    date_hierarchy = "received_at"
    fields = [
        "received_at",
        "channel",
        "peer",
        "sending_application",
        "sending_facility",
        "control_id",
        "message_type",
        "outcome",
        "error_code",
        "error",
        "result",
        "referral_id",
        "duplicate_of_id",
    ]
    readonly_fields = fields
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="error")
    def short_error(self, obj: Hl7Message) -> str:
        return obj.error[:80]

    def get_queryset(self, request: HttpRequest):  # noqa: ANN201
        # Never load the encrypted raw message for a list that does not show it.
        return super().get_queryset(request).defer("raw")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Hl7Message | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Hl7Message | None = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Hl7Message | None = None) -> bool:
        return request.user.is_active and request.user.is_admin


@admin.register(ColumnMapping)
class ColumnMappingAdmin(AuditedModelAdmin):
    list_display = ["name", "source_system", "created_by", "updated_at"]
    readonly_fields = ["source_system", "headers", "created_by"]
