from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from liaison.api import api

urlpatterns = [
    path("", include("liaison.core.urls")),
    path("accounts/", include("liaison.accounts.urls")),
    path("audit/", include("liaison.audit.urls")),
    path("directory/", include("liaison.directory.urls")),
    path("referrals/import/", include("liaison.interop.urls")),
    path("referrals/", include("liaison.referrals.urls")),
    path("portal/", include("liaison.referrals.portal_urls")),
    path("outreach/", include("liaison.outreach.urls")),
    path("feedback/", include("liaison.feedback.urls")),
    path("marketdata/", include("liaison.marketdata.urls")),
    path("campaigns/", include("liaison.campaigns.urls")),
    path("analytics/", include("liaison.analytics.urls")),
    path("c/", include("liaison.campaigns.public_urls")),
    path("api/v1/", api.urls),
    path("api/", RedirectView.as_view(pattern_name="api:openapi-view")),
    path("api/docs", RedirectView.as_view(pattern_name="api:openapi-view")),
    path("fhir/", include("liaison.interop.fhir_urls")),
    path("admin/", admin.site.urls),
]
