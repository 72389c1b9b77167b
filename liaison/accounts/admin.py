from django.contrib import admin

from liaison.accounts.models import ApiToken, User
from liaison.core.admin import AuditedModelAdmin


@admin.register(User)
class UserAdmin(AuditedModelAdmin):
    list_display = ["email", "full_name", "role", "is_active", "last_login"]
    list_filter = ["role", "is_active"]
    search_fields = ["email", "full_name"]
    exclude = ["password"]
    readonly_fields = ["last_login", "date_joined"]

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False  # users are deactivated, never deleted: the audit trail names them


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["user", "prefix", "digest", "created_at", "last_used_at"]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False
