from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class LiaisonAdminSite(AdminSite):
    """The Django admin, for the admin role only (other roles get the login page, then 403)."""

    site_header = "Liaison administration"
    site_title = "Liaison admin"

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and getattr(request.user, "is_admin", False))


class LiaisonAdminConfig(AdminConfig):
    default_site = "liaison.core.admin_site.LiaisonAdminSite"
