from django.urls import path

from liaison.analytics import views

app_name = "analytics"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("referrals/", views.referrals, name="referrals"),
    path("referrers/<int:pk>/", views.referrer, name="referrer"),
    path("leakage/", views.leakage, name="leakage"),
    path("attribution/", views.attribution, name="attribution"),
    path("kpis/", views.kpis, name="kpis"),
    path("reciprocity/", views.reciprocity, name="reciprocity"),
    path("refresh/", views.refresh, name="refresh"),
]
