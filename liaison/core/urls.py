from django.urls import path

from liaison.core import views

app_name = "core"
urlpatterns = [
    path("", views.home, name="home"),
    path("start/", views.start, name="start"),
    path("jobs/<int:pk>/", views.job_progress, name="job"),
    path("healthz", views.healthz, name="healthz"),
]
