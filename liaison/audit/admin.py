from django.contrib import admin
from django.http import HttpRequest

from liaison.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is written by services, never edited."""

    list_display = ["seq", "at", "actor_label", "action", "object_type", "object_id", "phi"]
    list_filter = ["action", "object_type", "phi"]
    search_fields = ["actor_label", "object_id", "request_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
